"""POST /api/score and GET /api/models/champion through a real HTTP client against the app on a loopback port."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from fraudcore import runtime
from fraudcore.api import MAX_BODY_BYTES, MAX_EVENTS, ApiError, parse_events, score_and_store
from fraudcore.ingest import ingest
from fraudcore.registry import promote
from fraudcore.store import Store
from tests.conftest import Trained, raw_event, running_app

JSON = {"Content-Type": "application/json"}


def as_json(event: dict) -> dict:
    """A raw event with plain JSON values (ISO times, Python numbers, null), the way a client would send it."""
    plain = {}
    for key, value in event.items():
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif hasattr(value, "item"):
            value = value.item()
        plain[key] = None if isinstance(value, float) and value != value else value  # NaN: unknown
    return plain


def install_champion(trained: Trained, isolated: Path) -> None:
    """Copy the session's trained model into this test's artifacts folder and make it the champion."""
    artifacts = isolated / "artifacts"
    shutil.copytree(trained.root / trained.model_id, artifacts / trained.model_id)
    promote(trained.model_id, root=artifacts, who="test", why="api tests")


def unrelated_events(trained: Trained, entities: list[str], n: int, skip: int = 1) -> list[int]:
    """Rows (after the first ``skip``) sharing no entity value with each other or earlier picks: their features do
    not depend on which of them the server has already stored."""
    seen: set[tuple[str, Any]] = set()
    for i in range(skip):
        seen |= {(e, raw_event(trained, i)[e]) for e in entities}
    picked = []
    for i in range(skip, len(trained.frame)):
        keys = {(e, raw_event(trained, i)[e]) for e in entities}
        if not keys & seen:
            picked.append(i)
            seen |= keys
            if len(picked) == n:
                return picked
    raise AssertionError(f"the training frame has fewer than {n} events with disjoint entities")


def stored(isolated: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and scores in the workbench file (read after the app stopped: DuckDB has one owning process)."""
    with Store.open(isolated / "data" / "workbench.duckdb", read_only=True) as store:
        events = store.query("SELECT event_id FROM events ORDER BY event_id")
        scores = store.query("SELECT event_id, model_id, score, tier, reasons FROM scores ORDER BY event_id")
    return events, scores


def test_score_paths_through_the_app(trained, scorer, isolated_paths):
    install_champion(trained, isolated_paths)
    first = as_json(raw_event(trained, 0))
    rows = unrelated_events(trained, scorer.entities, 12)
    batch = [as_json(raw_event(trained, i)) for i in rows]
    bad_batch = [batch[0], {**batch[1], "amount": "a lot"}, {k: v for k, v in batch[2].items() if k != "event_time"}]
    with running_app() as (base, _), requests.Session() as http:
        url = base + "/api/score"
        single = http.post(url, json=first, timeout=30)
        listed = http.post(url, json=batch, timeout=30)
        again = http.post(url, json=first, timeout=30)
        champion = http.get(base + "/api/models/champion", timeout=10)
        wrong_type = http.post(url, data=json.dumps(first), headers={"Content-Type": "text/plain"}, timeout=10)
        no_type = http.post(url, data=json.dumps(first).encode(), timeout=10)
        too_big = http.post(url, data=b" " * (MAX_BODY_BYTES + 1), headers=JSON, timeout=10)
        far_too_big = http.post(url, data=b" " * (8 * MAX_BODY_BYTES), headers=JSON, timeout=30)
        at_limit = http.post(url, data=b" " * MAX_BODY_BYTES, headers=JSON, timeout=10)
        streamed = http.post(url, data=(b" " * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 1)), headers=JSON,
                             timeout=10)
        too_many = http.post(url, json=[first] * (MAX_EVENTS + 1), timeout=10)
        broken = http.post(url, data=b'{"event_id": 1,\n "amount": }', headers=JSON, timeout=10)
        fields = http.post(url, json={**first, "amount": -5, "customer_id": [1], "event_time": "yesterday-ish"},
                           timeout=10)
        in_list = http.post(url, json=bad_batch, timeout=10)
        empty = http.post(url, json=[], timeout=10)
        text = http.post(url, json="an event", timeout=10)
        no_id = http.post(url, json={k: v for k, v in first.items() if k != "event_id"}, timeout=10)
        one_in_list = http.post(url, json=[{**batch[3], "amount": "a lot"}], timeout=10)
        blank_id = http.post(url, json={**batch[3], "event_id": "  "}, timeout=10)
        # JSON's escapes can carry an unpaired UTF-16 surrogate, which is not Unicode: refused, never stored
        surrogate = http.post(url, data=json.dumps({**batch[4], "merchant_category": "\ud800"}), headers=JSON,
                              timeout=10)
        surrogate_id = http.post(url, data=json.dumps([batch[4], {**batch[5], "event_id": "id-\udc00",
                                                                  "note\ud800": 1}]), headers=JSON, timeout=10)
        times = [http.post(url, json={**batch[6], "event_time": when}, timeout=10)
                 for when in ("2262-04-12T00:00:00", "0001-01-01", "now")]
        methods = {(method, path): http.request(method, base + path, timeout=10)
                   for method, path in (("GET", "/api/score"), ("PUT", "/api/score"),
                                        ("POST", "/api/models/champion"), ("GET", "/api/nowhere"),
                                        ("POST", "/api/nowhere/else"))}

    assert single.status_code == 200, single.text
    body = single.json()
    expected = scorer.score_event(raw_event(trained, 0))  # the store was empty: no history, like this call
    assert body["event_id"] == first["event_id"] and body["model_id"] == trained.model_id
    assert body["score"] == pytest.approx(expected.score, abs=1e-12) and body["tier"] == expected.tier
    assert [r["feature"] for r in body["reasons"]] == [r["feature"] for r in expected.reasons]
    assert len(body["reasons"]) == 3 and all(r["text"] for r in body["reasons"])

    assert listed.status_code == 200, listed.text
    results = listed.json()["results"]
    assert listed.json()["model_id"] == trained.model_id
    assert [r["event_id"] for r in results] == [e["event_id"] for e in batch]
    reference = [scorer.score_event(raw_event(trained, i)) for i in rows]  # disjoint entities: no shared history
    assert [r["score"] for r in results] == pytest.approx([e.score for e in reference], abs=1e-12)
    assert [r["tier"] for r in results] == [e.tier for e in reference]
    assert all(len(r["reasons"]) == 3 for r in results)  # every tier gets its reasons, not only alerts
    assert again.status_code == 200 and again.json()["score"] == pytest.approx(body["score"], abs=1e-12)

    assert champion.status_code == 200 and champion.json()["model_id"] == trained.model_id
    assert 0 < champion.json()["tiers"]["medium"] <= champion.json()["tiers"]["high"]

    for response in (wrong_type, no_type):
        assert response.status_code == 415 and "application/json" in response.json()["message"]
    assert "text/plain" in wrong_type.json()["message"]
    for response in (too_big, far_too_big, streamed):  # answered on the connection, not reset
        assert response.status_code == 413, response.text
        assert f"{MAX_BODY_BYTES:,} bytes" in response.json()["message"]
    assert at_limit.status_code == 422 and "empty" in at_limit.json()["message"]  # the limit itself is allowed
    assert too_many.status_code == 413 and str(MAX_EVENTS) in too_many.json()["message"]

    assert broken.status_code == 422
    assert "line 2, column 12" in broken.json()["errors"][0]["message"]
    assert fields.status_code == 422
    by_field = {e["field"]: e["message"] for e in fields.json()["errors"]}
    assert set(by_field) == {"amount", "customer_id", "event_time"}, by_field
    assert ">= 0" in by_field["amount"]
    assert in_list.status_code == 422
    assert {e["field"] for e in in_list.json()["errors"]} == {"[1].amount", "[2].event_time"}
    assert "missing" in {e["field"]: e["message"] for e in in_list.json()["errors"]}["[2].event_time"]
    assert empty.status_code == 422 and "empty" in empty.json()["message"]
    assert text.status_code == 422 and "string" in text.json()["message"]
    assert no_id.status_code == 422 and no_id.json()["errors"][0]["field"] == "event_id"
    assert one_in_list.status_code == 422  # a list of one is still a list: its fields are named by position
    assert [e["field"] for e in one_in_list.json()["errors"]] == ["[0].amount"]
    assert blank_id.status_code == 422 and blank_id.json()["errors"][0]["field"] == "event_id"
    assert "blank" in blank_id.json()["errors"][0]["message"]
    assert surrogate.status_code == 422, surrogate.text
    assert [e["field"] for e in surrogate.json()["errors"]] == ["merchant_category"]
    assert "not valid Unicode" in surrogate.json()["errors"][0]["message"]
    assert surrogate_id.status_code == 422, surrogate_id.text
    assert {e["field"] for e in surrogate_id.json()["errors"]} == {"[1].event_id", "[1].note\\ud800"}
    for response, words in zip(times, ("outside the times", "outside the times", "relative"), strict=True):
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == "event_time" and words in error["message"]
    for (method, path), response in methods.items():  # JSON errors, not Streamlit's page or plain text
        assert response.status_code == (404 if "nowhere" in path else 405), (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json") and response.json()["message"]
    assert methods["GET", "/api/score"].headers["Allow"] == "POST"
    assert "/api/score" in methods["GET", "/api/nowhere"].json()["message"]

    events, scores = stored(isolated_paths)  # the app has stopped and released the file
    sent = [first["event_id"], *[e["event_id"] for e in batch]]
    assert sorted(events["event_id"].tolist()) == sorted(str(i) for i in sent)  # once each, nothing from the 4xx
    assert sorted(scores["event_id"].tolist()) == sorted(str(i) for i in sent)
    row = scores.set_index("event_id").loc[str(first["event_id"])]
    assert row["score"] == pytest.approx(body["score"], abs=1e-12) and row["model_id"] == trained.model_id
    assert [r["feature"] for r in json.loads(row["reasons"])] == [r["feature"] for r in body["reasons"]]


def test_key_and_champion_paths(trained, isolated_paths, monkeypatch):
    monkeypatch.setenv("FRAUDCORE_API_KEY", "s3cret-key")
    event = as_json(raw_event(trained, 0))
    with running_app() as (base, _), requests.Session() as http:
        url = base + "/api/score"
        anonymous = http.post(url, json=event, timeout=10)
        anonymous_big = http.post(url, data=b" " * (4 * MAX_BODY_BYTES), headers=JSON, timeout=30)
        wrong = http.post(url, json=event, headers={"X-API-Key": "guess"}, timeout=10)
        wrong_bearer = http.post(url, json=event, headers={"Authorization": "Bearer guess"}, timeout=10)
        no_champion = http.post(url, json=event, headers={"X-API-Key": "s3cret-key"}, timeout=30)
        no_champion_info = http.get(base + "/api/models/champion", headers={"X-API-Key": "s3cret-key"}, timeout=10)
        health = http.get(base + "/api/health", timeout=10)
        install_champion(trained, isolated_paths)  # promoted while the app runs: the next call uses it
        keyed = http.post(url, json=event, headers={"X-API-Key": "s3cret-key"}, timeout=30)
        bearer = http.post(url, json=[as_json(raw_event(trained, 1))],  # an empty X-API-Key does not hide it
                           headers={"Authorization": "Bearer s3cret-key", "X-API-Key": ""}, timeout=30)
        champion_anonymous = http.get(base + "/api/models/champion", timeout=10)

    for response in (anonymous, anonymous_big, wrong, wrong_bearer, champion_anonymous):
        assert response.status_code == 401, response.text
        assert "X-API-Key" in response.json()["message"] and "Bearer" in response.headers["WWW-Authenticate"]
    assert "needs a key" in anonymous.json()["message"] and "not the configured one" in wrong.json()["message"]
    assert health.status_code == 200  # liveness stays open
    for response in (no_champion, no_champion_info):
        assert response.status_code == 503, response.text
        assert "promote" in response.json()["message"]
    assert keyed.status_code == 200 and keyed.json()["model_id"] == trained.model_id
    assert bearer.status_code == 200 and bearer.json()["results"][0]["event_id"] == 1
    events, scores = stored(isolated_paths)
    assert sorted(events["event_id"].tolist()) == ["0", "1"]  # the refused calls stored nothing
    assert len(scores) == 2


def test_a_resent_event_the_feed_stored_unexplained_gets_its_reasons(trained, scorer, isolated_paths):
    install_champion(trained, isolated_paths)
    low = next(as_json(raw_event(trained, i)) for i in range(200)
               if scorer.score_event(raw_event(trained, i), k=0).tier == "low")
    workbench = runtime.current()
    try:
        ingest(workbench, [low], source="feed")  # the feed explains alerts only
        kept = workbench.store().query("SELECT reasons FROM scores")["reasons"].tolist()
        results, model_id = score_and_store(workbench, [low])
        count = workbench.store().query("SELECT count(*) AS n FROM scores")["n"].item()
    finally:
        runtime.shutdown()
    assert [json.loads(r) for r in kept] == [[]]
    assert model_id == trained.model_id and results[0]["tier"] == "low"
    assert len(results[0]["reasons"]) == 3 and count == 1  # explained now, not stored twice


def test_write_behind_answers_before_the_commit_and_sync_after_it(trained, scorer, isolated_paths, monkeypatch):
    install_champion(trained, isolated_paths)
    first, second = (as_json(raw_event(trained, i)) for i in unrelated_events(trained, scorer.entities, 2))
    workbench = runtime.current()
    count = "SELECT count(*) AS n FROM scores WHERE event_id = ?"
    try:
        store = workbench.store()
        with store.exclusive():  # the store writer cannot commit meanwhile: an answer that waited would hang here
            results, _ = score_and_store(workbench, [first])
            assert results[0]["event_id"] == first["event_id"] and len(results[0]["reasons"]) == 3
            assert store.query(count, [str(first["event_id"])])["n"].item() == 0  # answered, not stored yet
            again, _ = score_and_store(workbench, [first])  # a re-sent pending event answers its pending score
            assert again[0]["score"] == results[0]["score"]
        assert workbench.writer().flush(30)
        assert store.query(count, [str(first["event_id"])])["n"].item() == 1  # durable once flushed
        monkeypatch.setenv("FRAUDCORE_API_WRITE", "sync")
        score_and_store(workbench, [second])
        assert store.query(count, [str(second["event_id"])])["n"].item() == 1  # stored before the answer
        monkeypatch.setenv("FRAUDCORE_API_WRITE", "later")
        with pytest.raises(ApiError) as caught:
            score_and_store(workbench, [second])
        assert caught.value.status == 500 and "async" in caught.value.message and "sync" in caught.value.message
    finally:
        runtime.shutdown()


# ---- the body parser on its own ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "words"), [
    (b"", 422, "empty"),
    (b"[1, 2", 422, "line 1, column 6"),
    (b'{"amount": NaN}', 422, "NaN is not valid JSON"),
    (b'{"amount": "\xff"}', 422, "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, 422, "nested too deeply"),
    (b"42", 422, "number"),
    (b"null", 422, "null"),
    (b'{"event_id": ' + b"9" * 5000 + b"}", 422, "more than 4,300 digits"),
])
def test_parse_events_refuses_with_where_and_why(body, status, words):
    with pytest.raises(ApiError) as caught:
        parse_events(body)
    assert caught.value.status == status
    assert words in caught.value.message and caught.value.errors[0]["field"] == "(body)"
    assert "sys." not in caught.value.message  # advice for the server is no use to the client


def test_parse_events_single_and_list():
    assert parse_events(b'{"event_id": 1}') == ([{"event_id": 1}], True)
    assert parse_events(b'[{"event_id": 1}, {"event_id": 2}]') == ([{"event_id": 1}, {"event_id": 2}], False)
    with pytest.raises(ApiError) as caught:
        parse_events(b"[{}, {}, {}]", max_events=2)
    assert caught.value.status == 413 and "3 events" in caught.value.message
