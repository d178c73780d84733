"""The DuckDB store: migrations, idempotent one-transaction batches, quarantine, history, labels, stats, ownership."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore.errors import FraudcoreError, StoreBusyError
from fraudcore.store import SCHEMA_VERSION, EventKeys, Store, store_stats
from fraudcore.store_inputs import INPUT_COLUMNS

KEYS = EventKeys(entities=("customer_id", "terminal_id"))
T0 = datetime(2024, 1, 1)
REPO = Path(__file__).resolve().parents[1]


def make_events(n: int, start: int = 0, customers: int = 50, terminals: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed + start)
    ids = np.arange(start, start + n)
    return pd.DataFrame({
        "event_id": ids,
        "event_time": [T0 + timedelta(minutes=int(i)) for i in ids],
        "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
        "customer_id": ids % customers,
        "terminal_id": [f"T{i % terminals:03d}" for i in ids],
        "channel": rng.choice(["web", "pos"], n),
    })


def make_scores(events: pd.DataFrame, model_id: str = "m1") -> pd.DataFrame:
    n = len(events)
    return pd.DataFrame({"event_id": events["event_id"], "model_id": model_id,
                         "score": np.linspace(0, 1, n) if n else [],
                         "tier": ["high" if i % 10 == 0 else "low" for i in range(n)],
                         "reasons": [[{"feature": "amount", "contribution": 0.1}]] * n})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "wb.duckdb"


def test_open_creates_folder_and_migrates_once(db: Path) -> None:
    with Store.open(db, keys=KEYS) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.write_batch(make_events(5)) == 5
    with Store.open(db, keys=KEYS) as store:
        versions = store._db().execute("SELECT count(*) FROM schema_version").fetchone()[0]
        assert versions == SCHEMA_VERSION  # not re-applied
        assert store.stats()["events"] == 5


def test_default_path_follows_env(isolated_paths: Path) -> None:
    with Store.open() as store:
        assert store.path == isolated_paths / "data" / "workbench.duckdb"
    assert store.path.exists()


def test_write_batch_is_idempotent_on_event_id(db: Path) -> None:
    events = make_events(100)
    with Store.open(db, keys=KEYS) as store:
        assert store.write_batch(events, make_scores(events), ("feed", "c1")) == 100
        assert store.write_batch(events, make_scores(events), ("feed", "c1")) == 0
        overlap = make_events(100, start=50)
        assert store.write_batch(overlap, make_scores(overlap), ("feed", "c2")) == 50
        twice = pd.concat([make_events(3, start=500)] * 2)  # duplicates inside one batch
        assert store.write_batch(twice) == 3
        stats = store.stats()
    assert stats["events"] == stats["distinct_event_ids"] == 153
    assert stats["scores"] == 150  # scores only for newly stored events
    assert stats["feeds"]["feed"]["cursor"] == "c2"


def test_failed_batch_leaves_nothing_and_keeps_cursor(db: Path) -> None:
    with Store.open(db, keys=KEYS) as store:
        store.write_batch(make_events(10), cursor=("feed", "good"))
        events = make_events(10, start=10)
        scores = make_scores(events).astype({"score": object})
        scores.loc[5, "score"] = "not a number"  # fails after the events were inserted
        with pytest.raises(Exception):  # noqa: B017 - DuckDB's conversion error
            store.write_batch(events, scores, cursor=("feed", "bad"))
        assert store.cursor("feed") == "good"
        stats = store.stats()
        assert (stats["events"], stats["scores"]) == (10, 0)
        assert store.history({"customer_id": 12}, T0, T0 + timedelta(days=1)).empty
        assert store.write_batch(events, make_scores(events)) == 10  # the retry stores it


def test_quarantine_keeps_raw_payload(db: Path) -> None:
    records = [{"event_id": "x1", "amount": "lots", "nested": {"a": [1, 2]}}, {"garbage": None}]
    with Store.open(db) as store:
        assert store.quarantine(records, ["amount is not a number", "no event id"], "feed") == 2
        rows = store._db().execute("SELECT payload, reason, source FROM quarantine ORDER BY quarantine_id").fetchall()
        assert store.stats()["quarantined"] == 2
        with pytest.raises(FraudcoreError, match="one each"):
            store.quarantine(records, ["only one"], "feed")
    assert [pd.io.json.ujson_loads(p) for p, _, _ in rows] == records
    assert rows[0][1:] == ("amount is not a number", "feed")


def test_history_returns_matching_rows_in_window_ordered(db: Path) -> None:
    events = make_events(2000)
    since, until = T0 + timedelta(minutes=300), T0 + timedelta(minutes=900)
    with Store.open(db, keys=KEYS) as store:
        store.write_batch(events.sample(frac=1, random_state=1))  # stored out of order
        got = store.history({"customer_id": 7, "terminal_id": "T011"}, since, until)
        none = store.history({"customer_id": None}, since, until)
    in_window = events["event_time"].between(since, until)
    expected = events[in_window & ((events["customer_id"] == 7) | (events["terminal_id"] == "T011"))]
    assert list(got["event_id"]) == list(expected["event_id"])
    assert got["event_time"].is_monotonic_increasing
    assert list(got["amount"]) == list(expected["amount"])
    assert list(got["channel"]) == list(expected["channel"])
    assert got["label"].isna().all()
    assert none.empty and "label" in none.columns


def test_set_labels_and_history_sees_them(db: Path) -> None:
    with Store.open(db, keys=KEYS) as store:
        store.write_batch(make_events(20))
        labels = pd.DataFrame({"event_id": [0, 1, 2, 999], "label": [1, 0, 1, 1]})
        assert store.set_labels(labels) == 3  # 999 is unknown
        assert store.set_labels(labels) == 0  # unchanged
        got = store.history({"customer_id": 0}, T0, T0 + timedelta(days=1))
        assert store.stats()["labelled_events"] == 3
    assert got.loc[got["event_id"] == 0, "label"].tolist() == [1]


def test_stats_numbers(db: Path) -> None:
    events = make_events(30)
    with Store.open(db, keys=KEYS) as store:
        store.write_batch(events, make_scores(events), ("live", "30"))
        store.quarantine([{"a": 1}], ["bad"], "live")
    stats = store_stats(db)
    assert stats["schema_version"] == SCHEMA_VERSION
    assert (stats["events"], stats["quarantined"], stats["scores"]) == (30, 1, 30)
    assert stats["scores_by_tier"] == {"high": 3, "low": 27}
    assert stats["feeds"]["live"]["cursor"] == "30"
    assert (stats["cases"], stats["decisions"]) == (3, 0)  # one case per high event
    assert stats["cases_by_tier_status"] == {"high/open": 3}


def test_cases_shadow_features_and_rejects_share_the_batch_transaction(db: Path) -> None:
    events = make_events(10)
    live = make_scores(events).assign(features=[{"amount": float(a), "n_7d": np.int64(2), "gap": float("nan")}
                                                for a in events["amount"]])
    shadow = make_scores(events, "challenger").assign(tier="high", shadow=True)
    bad = [{"event_id": None, "amount": "x"}, {"event_id": 5, "amount": "y"}]
    reasons = ["event_id: missing", "amount: not a number"]
    with Store.open(db, keys=KEYS) as store:
        rejects = list(zip(bad, reasons, strict=True))
        stored = store.write_batch(events, pd.concat([live, shadow]), ("live", "10"), rejects=rejects, source="live")
        again = store.write_batch(events, pd.concat([live, shadow]), ("live", "10"), rejects=rejects, source="live")
        cases = store.query("SELECT event_id, tier, risk, amount FROM cases ORDER BY event_id")
        kept = store.query("SELECT reason, payload FROM quarantine ORDER BY quarantine_id")
        feats = store.input_rows(store.query(f"SELECT {INPUT_COLUMNS} FROM scores WHERE NOT shadow "
                                             "AND event_id = '3'"))
        with pytest.raises(RuntimeError), store.transaction() as con:  # a failing block leaves nothing behind
            con.execute("INSERT INTO decisions (case_id, analyst, \"at\", action) VALUES (1, 'a', now(), 'claim')")
            raise RuntimeError("boom")
        assert store.stats()["decisions"] == 0
    assert (stored, again) == (10, 0)
    assert cases["event_id"].tolist() == ["0"]  # only the live high score opens a case; the shadow's do not
    assert cases["amount"].tolist() == [events["amount"][0]]
    assert kept["reason"].tolist() == reasons  # kept once although the batch came twice
    assert feats == [{"amount": events["amount"][3], "n_7d": 2.0, "gap": None}]


def test_store_stats_on_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FraudcoreError, match="no workbench store"):
        store_stats(tmp_path / "nope.duckdb")


def test_second_process_gets_store_busy(db: Path) -> None:
    script = textwrap.dedent(f"""
        from fraudcore.errors import StoreBusyError
        from fraudcore.store import Store, store_stats
        for opener in (lambda: Store.open({str(db)!r}), lambda: store_stats({str(db)!r})):
            try:
                opener()
            except StoreBusyError as exc:
                print("BUSY:", exc)
    """)
    with Store.open(db):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BUSY:")]
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:
        assert str(db) in line
        assert "stop the app" in line and "FRAUDCORE_DB" in line
    assert StoreBusyError.__name__  # the class the child caught


def test_threads_share_one_store(db: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Store.open(db, keys=KEYS) as store:
        with ThreadPoolExecutor(4) as pool:
            stored = list(pool.map(lambda k: store.write_batch(make_events(250, start=k * 250)), range(8)))
        assert sum(stored) == store.stats()["events"] == 2000


def test_write_throughput_and_history_latency(db: Path) -> None:
    total, batch = 200_000, 1000
    frames = [make_events(batch, start=s, customers=5000, terminals=2000) for s in range(0, total, batch)]
    with Store.open(db, keys=KEYS) as store:
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            store.write_batch(frame, make_scores(frame), ("bench", str(i)))
        elapsed = time.perf_counter() - started
        until = T0 + timedelta(minutes=total)
        since = until - timedelta(days=37)
        started = time.perf_counter()
        for c in range(50):
            got = store.history({"customer_id": c, "terminal_id": f"T{c:03d}"}, since, until)
        latency = (time.perf_counter() - started) / 50
        assert store.stats()["events"] == total
    print(f"\nstore write: {total / elapsed:,.0f} events/s (batches of {batch}, with scores and cursor); "
          f"history: {latency * 1000:.1f} ms per lookup ({len(got)} rows)")
    assert len(got) > 0
