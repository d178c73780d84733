"""Review cases: queue order and filters, actions and their rules, derived state, labels, drill-down, export."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore.cli import main
from fraudcore.review import (
    ReviewError,
    assign,
    claim,
    decide,
    derive_states,
    next_state,
    open_cases,
    release,
    reopen,
    state_mismatches,
)
from fraudcore.review_detail import audit_trail, case_detail, entity_history
from fraudcore.review_export import REVIEW_COLUMNS, export_labels
from fraudcore.review_queue import UNASSIGNED, QueueFilter, queue, queue_count
from fraudcore.review_similar import feature_distances, similar_cases
from fraudcore.store import EventKeys, Store

KEYS = EventKeys(entities=("customer_id", "terminal_id"))
T0 = datetime(2024, 3, 1)


def batch(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and live scores from rows of (id, minute, amount, customer, terminal, tier, score[, features])."""
    events = pd.DataFrame({"event_id": [r["id"] for r in rows],
                           "event_time": [T0 + timedelta(minutes=r["minute"]) for r in rows],
                           "amount": [r["amount"] for r in rows], "customer_id": [r["customer"] for r in rows],
                           "terminal_id": [r["terminal"] for r in rows], "channel": "web"})
    scores = pd.DataFrame({"event_id": events["event_id"], "model_id": "m1", "score": [r["score"] for r in rows],
                           "tier": [r["tier"] for r in rows],
                           "reasons": [[{"feature": "amount", "value": r["amount"], "contribution": 0.4,
                                         "text": f"amount {r['amount']} is high"}] for r in rows],
                           "features": [r.get("features", {"amount": r["amount"], "n_tx_1d": 1.0}) for r in rows]})
    return events, scores


def row(i: int, tier: str, score: float, amount: float, customer: int = 1, terminal: str = "T1",
        minute: int | None = None, **extra: object) -> dict:
    return {"id": f"e{i}", "minute": i if minute is None else minute, "amount": amount, "customer": customer,
            "terminal": terminal, "tier": tier, "score": score, **extra}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "review.duckdb", keys=KEYS) as opened:
        yield opened


@pytest.fixture
def cases(store: Store) -> dict[str, int]:
    """Four cases in two batches (e5 is low: no case); returns event id -> case id."""
    store.write_batch(*batch([row(1, "high", 0.9, 10.0, customer=1, terminal="T1"),
                              row(2, "high", 0.5, 100.0, customer=2, terminal="T1"),
                              row(3, "medium", 0.6, 1000.0, customer=1, terminal="T2"),
                              row(5, "low", 0.1, 5000.0, customer=1, terminal="T2")]))
    store.write_batch(*batch([row(4, "medium", 0.6, 1000.0, customer=3, terminal="T3", minute=0)]))
    found = store.query("SELECT event_id, case_id FROM cases")
    return dict(zip(found["event_id"], found["case_id"].astype(int), strict=True))


def labels(store: Store) -> dict[str, object]:
    found = store.query("SELECT event_id, label FROM events ORDER BY event_id")
    return {e: (None if pd.isna(v) else int(v)) for e, v in zip(found["event_id"], found["label"], strict=True)}


# ---- queue ----------------------------------------------------------------------------------------------------

def test_queue_orders_by_tier_then_risk_times_amount_then_age(store: Store, cases: dict[str, int]) -> None:
    page = queue(store)
    assert page["event_id"].tolist() == ["e2", "e1", "e3", "e4"]  # e3 and e4 tie on 600: the older case first
    assert page["exposure"].tolist() == pytest.approx([50.0, 9.0, 600.0, 600.0])
    assert set(page.columns) >= {"case_id", "tier", "risk", "amount", "age", "status", "assignee", "event_time",
                                 "customer_id", "terminal_id"}
    assert page["customer_id"].tolist() == ["2", "1", "1", "3"] and page["terminal_id"].tolist()[0] == "T1"
    assert (page["age"] >= pd.Timedelta(0)).all()
    assert queue_count(store) == 4
    assert queue(store, limit=2, offset=1)["event_id"].tolist() == ["e1", "e3"]
    with pytest.raises(ReviewError, match="limit >= 1"):
        queue(store, limit=0)


def test_queue_filters(store: Store, cases: dict[str, int]) -> None:
    def ids(**filters: object) -> list[str]:
        f = QueueFilter(**filters)
        page = queue(store, f)
        assert queue_count(store, f) == len(page)
        return page["event_id"].tolist()

    claim(store, cases["e3"], "ana")
    decide(store, cases["e1"], "bo", "legitimate")
    assert ids() == ["e2", "e3", "e4"]  # the closed case leaves the default (active) queue
    assert ids(statuses=["closed"]) == ["e1"]
    assert ids(statuses=()) == ["e2", "e1", "e3", "e4"]
    assert ids(tiers=["medium"]) == ["e3", "e4"]
    assert ids(assignee="ana") == ["e3"]
    assert ids(assignee=UNASSIGNED) == ["e2", "e4"]
    assert ids(entities={"customer_id": 1}, statuses=()) == ["e1", "e3"]
    assert ids(entities={"customer_id": 1, "terminal_id": "T2"}) == ["e3"]
    assert ids(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3)) == ["e2", "e3"]
    assert ids(since=T0 + timedelta(minutes=3)) == ["e3"] and ids(until=T0 + timedelta(minutes=1)) == ["e4"]
    with pytest.raises(ReviewError, match=r"'card_id'.*customer_id"):
        queue(store, QueueFilter(entities={"card_id": 4}))
    with pytest.raises(ReviewError, match="unknown case status"):
        QueueFilter(statuses=["done"])


def test_open_cases_for_wider_tiers(store: Store, cases: dict[str, int]) -> None:
    assert open_cases(store, ["low"]) == 1
    assert open_cases(store, ["low", "medium", "high"]) == 0  # every such event has its case already
    assert queue(store, QueueFilter(tiers=["low"]))["event_id"].tolist() == ["e5"]
    with pytest.raises(ReviewError, match="at least one tier"):
        open_cases(store, [])


# ---- actions --------------------------------------------------------------------------------------------------

def test_claim_release_assign_decide_rules(store: Store, cases: dict[str, int]) -> None:
    c = cases["e2"]
    state = claim(store, c, "ana")
    assert (state.status, state.assignee) == ("open", "ana")
    with pytest.raises(ReviewError, match=f"case {c} is already claimed by ana; pick another case"):
        claim(store, c, "bo")
    with pytest.raises(ReviewError, match="already claimed by you"):
        claim(store, c, "ana")
    with pytest.raises(ReviewError, match="held by ana, not bo; only ana can release it"):
        release(store, c, "bo")
    with pytest.raises(ReviewError, match="only ana can decide it"):
        decide(store, c, "bo", "legitimate")
    assert release(store, c, "ana").assignee is None
    with pytest.raises(ReviewError, match="not claimed by anyone"):
        release(store, c, "ana")
    assert assign(store, c, to="bo", by="lead").assignee == "bo"
    with pytest.raises(ReviewError, match="already assigned to bo"):
        assign(store, c, to="bo", by="lead")
    with pytest.raises(ReviewError, match="needs a note"):
        decide(store, c, "bo", "needs_info")
    assert (decide(store, c, "bo", "needs_info", "ask the bank").status, labels(store)["e2"]) == ("pending", None)
    state = decide(store, c, "bo", "confirmed_fraud", "customer denies it")
    assert (state.status, state.assignee, labels(store)["e2"]) == ("closed", "bo", 1)
    for action in (lambda: claim(store, c, "ana"), lambda: decide(store, c, "bo", "legitimate"),
                   lambda: assign(store, c, to="ana", by="lead")):
        with pytest.raises(ReviewError, match=f"case {c} is already closed; reopen it"):
            action()
    with pytest.raises(ReviewError, match="needs a note"):
        reopen(store, c, "lead", "")
    state = reopen(store, c, "lead", "chargeback reversed")
    assert (state.status, state.assignee) == ("open", None)
    assert store.query("SELECT status FROM cases WHERE case_id = ?", [c])["status"].iloc[0] == "open"
    assert labels(store)["e2"] is None  # the withdrawn disposition's label is cleared
    with pytest.raises(ReviewError, match="only a closed case can be reopened"):
        reopen(store, c, "lead", "again")
    decide(store, c, "ana", "legitimate")  # an unheld case: the decider becomes its holder
    assert labels(store)["e2"] == 0
    with pytest.raises(ReviewError, match="no case 999"):
        claim(store, 999, "ana")
    with pytest.raises(ReviewError, match="unknown disposition 'fraud'"):
        decide(store, c, "ana", "fraud")
    with pytest.raises(ReviewError, match="analyst's name"):
        claim(store, cases["e1"], "  ")


def test_refused_actions_write_nothing(store: Store, cases: dict[str, int]) -> None:
    claim(store, cases["e1"], "ana")
    before = store.query("SELECT count(*) AS n FROM decisions")["n"].iloc[0]
    for refused in (lambda: claim(store, cases["e1"], "bo"), lambda: release(store, cases["e1"], "bo"),
                    lambda: decide(store, cases["e1"], "bo", "confirmed_fraud")):
        with pytest.raises(ReviewError):
            refused()
    assert store.query("SELECT count(*) AS n FROM decisions")["n"].iloc[0] == before
    assert labels(store)["e1"] is None
    assert store.query("SELECT assignee FROM cases WHERE case_id = ?", [cases["e1"]])["assignee"].iloc[0] == "ana"


def test_a_failure_mid_action_leaves_no_trace(store: Store, cases: dict[str, int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = store.transaction

    class FailingLabels:
        def __init__(self, con: object) -> None:
            self.con = con

        def execute(self, sql: str, params: object = None) -> object:
            if sql.startswith("UPDATE events"):
                raise RuntimeError("disk full")
            return self.con.execute(sql, params)

    @contextmanager
    def failing(events_changed: bool = False) -> Iterator[FailingLabels]:
        with real(events_changed) as con:
            yield FailingLabels(con)

    monkeypatch.setattr(store, "transaction", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        decide(store, cases["e1"], "ana", "confirmed_fraud")
    monkeypatch.setattr(store, "transaction", real)
    assert store.query("SELECT count(*) AS n FROM decisions")["n"].iloc[0] == 0  # the decision row rolled back too
    assert store.query("SELECT status FROM cases WHERE case_id = ?", [cases["e1"]])["status"].iloc[0] == "open"
    assert labels(store)["e1"] is None


def test_claim_race_has_one_winner(store: Store, cases: dict[str, int]) -> None:
    start, outcomes = threading.Barrier(4), []

    def try_claim(analyst: str) -> None:
        start.wait()
        try:
            outcomes.append(("won", claim(store, cases["e4"], analyst).assignee))
        except ReviewError as exc:
            outcomes.append(("lost", str(exc)))

    threads = [threading.Thread(target=try_claim, args=(name,)) for name in ("ana", "bo", "cy", "di")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    winners = [who for kind, who in outcomes if kind == "won"]
    assert len(outcomes) == 4 and len(winners) == 1
    assert all(f"already claimed by {winners[0]}" in why for kind, why in outcomes if kind == "lost")
    assert store.query("SELECT count(*) AS n FROM decisions")["n"].iloc[0] == 1


def test_derived_state_matches_stored_and_catches_drift(store: Store, cases: dict[str, int]) -> None:
    e1, e2, e3, e4 = (cases[e] for e in ("e1", "e2", "e3", "e4"))
    claim(store, e1, "ana")
    release(store, e1, "ana")
    assign(store, e1, to="bo", by="lead")
    decide(store, e1, "bo", "needs_info", "waiting on merchant")
    claim(store, e2, "cy")
    decide(store, e2, "cy", "legitimate")
    reopen(store, e2, "lead", "new evidence")
    claim(store, e2, "di")
    decide(store, e3, "ana", "confirmed_fraud")
    derived = derive_states(store).set_index("case_id")
    assert derived.loc[e1].tolist() == ["pending", "bo"]
    assert derived.loc[e2].tolist() == ["open", "di"]
    assert derived.loc[e3].tolist() == ["closed", "ana"]
    assert derived.loc[e4, "status"] == "open" and pd.isna(derived.loc[e4, "assignee"])
    assert state_mismatches(store).empty
    assert derive_states(store, [e3])["status"].tolist() == ["closed"]
    with store.transaction() as con:  # a write that bypassed the decision log
        con.execute("UPDATE cases SET status = 'closed' WHERE case_id = ?", [e4])
    drift = state_mismatches(store)
    assert drift["case_id"].tolist() == [e4] and drift["status_derived"].tolist() == ["open"]
    assert next_state(1, "open", None, "claim", "ana") == ("open", "ana")


def test_audit_trail_in_order(store: Store, cases: dict[str, int]) -> None:
    c = cases["e3"]
    claim(store, c, "ana", note="mine")
    assign(store, c, to="bo", by="ana", note="bo knows this merchant")
    decide(store, c, "bo", "confirmed_fraud", "card reported stolen")
    trail = audit_trail(store, c)
    assert trail["what"].tolist() == ["claimed", "assigned to bo", "decided: confirmed fraud"]
    assert trail["analyst"].tolist() == ["ana", "ana", "bo"]
    assert trail["note"].tolist() == ["mine", "bo knows this merchant", "card reported stolen"]
    assert trail["at"].is_monotonic_increasing and trail["decision_id"].is_monotonic_increasing


# ---- drill-down -----------------------------------------------------------------------------------------------

def test_entity_history_with_scores_and_dispositions(store: Store, cases: dict[str, int]) -> None:
    decide(store, cases["e1"], "ana", "confirmed_fraud", "stolen card")
    store.write_batch(*batch([row(9, "low", 0.05, 7.0, customer=1, terminal="T9", minute=30)]))  # after e3
    history = entity_history(store, "e3")
    assert set(history) == {"customer_id=1", "terminal_id=T2"}
    customer = history["customer_id=1"]
    assert customer["event_id"].tolist() == ["e3", "e1"]  # up to the case's event (not the later e9), newest first
    assert customer["this_event"].tolist() == [True, False]
    first = customer.set_index("event_id").loc["e1"]
    assert (first["score"], first["tier"], first["disposition"], first["decided_by"], first["label"]) == \
        (pytest.approx(0.9), "high", "confirmed_fraud", "ana", 1)
    assert pd.isna(customer.set_index("event_id").loc["e3", "disposition"])
    assert history["terminal_id=T2"]["event_id"].tolist() == ["e3"]  # e5 (same terminal) comes later
    assert entity_history(store, "e9", limit=2)["customer_id=1"]["event_id"].tolist() == ["e9", "e5"]
    low = entity_history(store, "e5")["customer_id=1"].set_index("event_id")
    assert low.loc["e5", "tier"] == "low" and pd.isna(low.loc["e5", "case_id"])  # scored, no case


def test_case_detail_has_event_score_reasons_history_and_trail(store: Store, cases: dict[str, int]) -> None:
    c = cases["e3"]
    claim(store, c, "ana")
    detail = case_detail(store, c)
    assert detail.case["case_id"] == c and detail.case["status"] == "open" and detail.case["assignee"] == "ana"
    assert detail.case["disposition"] is None
    assert detail.event["customer_id"] == 1 and detail.event["channel"] == "web"
    assert detail.score["model_id"] == "m1" and detail.score["tier"] == "medium"
    assert detail.score["reasons"][0]["text"] == "amount 1000.0 is high"
    assert detail.score["features"] == {"amount": 1000.0, "n_tx_1d": 1.0}
    assert list(detail.history) == ["customer_id=1", "terminal_id=T2"]
    assert detail.audit["what"].tolist() == ["claimed"]
    assert detail.similar.summary == "no decided cases with model inputs to compare with yet"
    decide(store, c, "ana", "needs_info", "ask the customer")
    decide(store, c, "ana", "legitimate")  # no note this time: the case shows none, not the earlier one
    closed = case_detail(store, c, similar_k=0)
    assert (closed.case["disposition"], closed.case["disposition_text"], closed.case["label"]) == \
        ("legitimate", "legitimate", 0)
    assert closed.case["decision_note"] is None and closed.case["decided_by"] == "ana"
    assert closed.similar is None
    with pytest.raises(ReviewError, match="no case 12345"):
        case_detail(store, 12345)


def test_similar_cases_count_how_neighbours_were_decided(store: Store) -> None:
    rng = np.random.default_rng(7)
    near = [row(i, "high", 0.8, 500.0, features={"amount": 500 + rng.normal(0, 5), "n_tx_1d": 9 + rng.normal(0, .3),
                                                 "channel": "web"}) for i in range(10)]
    far = [row(10 + i, "medium", 0.3, 20.0, features={"amount": 20 + rng.normal(0, 5), "n_tx_1d": 1.0,
                                                      "channel": "pos"}) for i in range(10)]
    target = row(99, "high", 0.85, 505.0, minute=200, features={"amount": 505.0, "n_tx_1d": 9.0, "channel": "web"})
    bare = row(98, "high", 0.85, 505.0, minute=201, features=None)
    store.write_batch(*batch([*near, *far, target, bare]))
    ids = dict(zip(*store.query("SELECT event_id, case_id FROM cases").to_dict("list").values(), strict=True))
    for i in range(10):
        decide(store, ids[f"e{i}"], "ana", "confirmed_fraud" if i < 8 else "legitimate")
        decide(store, ids[f"e{10 + i}"], "bo", "legitimate")
    found = similar_cases(store, ids["e99"], k=10)
    assert found.summary == "8 of 10 similar cases were confirmed fraud"
    assert (found.confirmed_fraud, found.compared) == (8, 20)
    assert set(found.neighbours["event_id"]) == {f"e{i}" for i in range(10)}
    assert found.neighbours["distance"].is_monotonic_increasing
    assert found.features == ["amount", "n_tx_1d", "channel"]
    assert similar_cases(store, ids["e99"], k=1).summary.endswith("similar case was confirmed fraud")
    assert similar_cases(store, ids["e99"], k=10, pool=5).compared == 5  # only the latest decided cases
    assert "kept no model inputs" in similar_cases(store, ids["e98"]).summary


def test_feature_distances_standardise_numbers_and_count_category_mismatches() -> None:
    rows = [{"a": 0.0, "b": 10.0, "c": "x"}, {"a": 2.0, "b": 10.0, "c": "y"}, {"a": None, "b": 10.0, "c": "x"}]
    distance, used = feature_distances({"a": 2.0, "b": 10.0, "c": "x"}, rows)
    assert used == ["a", "b", "c"]
    # a: mean 1, std 1 -> z(query) = 1; rows at -1, 1 and missing (0); b is constant (std taken as 1); c mismatch +1
    assert distance == pytest.approx([2.0, 1.0, 1.0])


# ---- export ---------------------------------------------------------------------------------------------------

def test_export_labels_latest_disposition_wins(store: Store, cases: dict[str, int], tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match="no case has been decided"):
        export_labels(store, tmp_path / "labels.parquet")
    decide(store, cases["e1"], "ana", "legitimate")
    reopen(store, cases["e1"], "lead", "chargeback arrived")
    decide(store, cases["e1"], "bo", "confirmed_fraud", "chargeback")
    decide(store, cases["e2"], "ana", "legitimate")
    decide(store, cases["e3"], "ana", "confirmed_fraud")
    reopen(store, cases["e3"], "lead", "wrong customer")  # withdrawn: no label exported
    decide(store, cases["e4"], "cy", "needs_info", "call the customer")  # not final: no label
    out = tmp_path / "out" / "labels.parquet"
    summary = export_labels(store, out)
    assert summary["rows"] == 2 and summary["confirmed_fraud"] == 1 and summary["legitimate"] == 1
    frame = pd.read_parquet(out).set_index("event_id")
    assert sorted(frame.index) == ["e1", "e2"]
    assert frame.loc["e1", "label"] == 1 and frame.loc["e2", "label"] == 0
    assert (frame.loc["e1", "review_analyst"], frame.loc["e1", "review_disposition"]) == ("bo", "confirmed_fraud")
    assert set(REVIEW_COLUMNS) <= set(frame.columns)
    assert {"event_time", "amount", "customer_id", "terminal_id", "channel", "n_tx_1d"} <= set(frame.columns)
    assert frame.loc["e2", "customer_id"] == 2 and frame.loc["e1", "n_tx_1d"] == 1.0
    assert pd.api.types.is_datetime64_any_dtype(frame["event_time"])
    assert pd.api.types.is_datetime64_any_dtype(frame["review_decided_at"])
    assert [p.name for p in out.parent.iterdir()] == ["labels.parquet"]  # no temporary file left
    with pytest.raises(ReviewError, match=r"\*.parquet"):
        export_labels(store, tmp_path / "labels.csv")


def test_export_keeps_fields_whose_kind_differs_between_events(store: Store, tmp_path: Path) -> None:
    first, first_scores = batch([row(1, "high", 0.9, 10.0)])
    second, second_scores = batch([row(2, "high", 0.9, 10.0)])
    store.write_batch(first.assign(channel=7), first_scores)  # a number in one event, text in the other
    store.write_batch(second, second_scores)
    decide(store, 1, "ana", "legitimate")
    decide(store, 2, "ana", "confirmed_fraud")
    export_labels(store, tmp_path / "mixed.parquet")
    assert sorted(pd.read_parquet(tmp_path / "mixed.parquet")["channel"]) == ["7", "web"]


def test_cli_review_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.duckdb"
    with Store.open(db, keys=KEYS) as store:
        store.write_batch(*batch([row(1, "high", 0.9, 10.0)]))
        decide(store, 1, "ana", "confirmed_fraud", "stolen")
    out = tmp_path / "labels.parquet"
    assert main(["review", "export", "--db", str(db), "--out", str(out), "--label-column", "is_fraud"]) == 0
    assert '"rows": 1' in capsys.readouterr().out
    assert pd.read_parquet(out)["is_fraud"].tolist() == [1]
    assert main(["review", "export", "--db", str(tmp_path / "absent.duckdb"), "--out", str(out)]) == 2
    assert "no workbench store" in capsys.readouterr().err


def test_label_changes_move_the_store_generation_so_live_history_reloads(store: Store, cases: dict[str, int]) -> None:
    """The live recent history reloads when ``Store.generation`` moves: a disposition that sets or clears a label
    must move it (or live risk features would miss analyst labels); a claim, which changes no event, need not."""
    case = cases["e1"]
    before = store.generation
    claim(store, case, "ana")
    assert store.generation == before
    decide(store, case, "ana", "confirmed_fraud")
    assert store.generation == before + 1 and labels(store)["e1"] == 1
    reopen(store, case, "ana", "wrong card")
    assert store.generation == before + 2 and labels(store)["e1"] is None
