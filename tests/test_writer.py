"""The store writer: group commits, a failing batch fails alone (and the batches chained after it), checkpoints
between commits instead of DuckDB's automatic ones, stop commits what is queued, recent histories kept in step."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore.errors import FraudcoreError
from fraudcore.features import FeatureConfig
from fraudcore.recent import RecentHistory
from fraudcore.store import EventKeys, Store, frames_batch
from fraudcore.store_write import ScoreRows, WriteBatch
from fraudcore.writer import StoreWriter

KEYS = EventKeys(entities=("customer_id", "terminal_id"))
T0 = datetime(2024, 1, 1)


def _events(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n)
    return pd.DataFrame({"event_id": ids, "event_time": [T0 + timedelta(minutes=int(i)) for i in ids],
                         "amount": np.round(np.linspace(1, 90, n), 2), "customer_id": ids % 7,
                         "terminal_id": [f"T{i % 5}" for i in ids]})


def _batch(n: int, start: int = 0, cursor: str | None = None, bad_score: bool = False) -> WriteBatch:
    """Events with a score each (every 4th high, so a case); ``bad_score``: scores DuckDB cannot convert, so the
    transaction fails after the events were inserted."""
    events = _events(n, start)
    scores = pd.DataFrame({"event_id": events["event_id"], "model_id": "m", "score": np.linspace(0, 1, n),
                           "tier": ["high" if i % 4 == 0 else "low" for i in range(n)]})
    batch = frames_batch(events, None if bad_score else scores, KEYS)
    if bad_score:
        batch.scores.append(ScoreRows({"event_id": [str(i) for i in events["event_id"]], "model_id": "m",
                                       "score": ["x"] * n, "tier": "low", "reasons": "[]", "shadow": False}))
    batch.cursor = ("feed", cursor) if cursor else None
    return batch


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "w.duckdb", keys=KEYS) as opened:
        yield opened


def test_batches_queued_together_commit_in_one_transaction(store: Store) -> None:
    writer = StoreWriter(store).start()
    try:
        with store.exclusive():  # the writer waits for the store: what is submitted meanwhile queues up
            tickets = [writer.submit(_batch(50, start=k * 50, cursor=str(k))) for k in range(6)]
        assert [t.wait(30) for t in tickets] == [50] * 6
        status = writer.status()
    finally:
        writer.stop()
    assert status["batches"] == 6 and status["events"] == 300 and status["errors"] == 0
    assert status["groups"] < 6 and status["largest_group"] >= 2  # grouped
    stats = store.stats()
    assert stats["events"] == stats["scores"] == 300 and store.cursor("feed") == "5"
    assert stats["cases"] == 6 * 13  # every 4th score is high: a case each
    assert all(t.committed_at is not None for t in tickets)


def test_a_failing_batch_fails_alone_and_what_was_chained_after_it(store: Store) -> None:
    writer = StoreWriter(store).start()
    try:
        with store.exclusive():
            good = writer.submit(_batch(20, start=0, cursor="a"))
            bad = writer.submit(_batch(20, start=100, cursor="b", bad_score=True))
            chained = writer.submit(_batch(20, start=200, cursor="c"), after=bad)
            other = writer.submit(_batch(20, start=300))
        assert good.wait(30) == 20 and other.wait(30) == 20
        for ticket in (bad, chained):
            with pytest.raises(FraudcoreError, match="store write failed"):
                ticket.wait(30)
        assert "earlier batch" in str(chained.error)
        assert writer.status()["errors"] == 1 and "Conversion" in writer.status()["last_error"]
    finally:
        writer.stop()
    ids = set(store.query("SELECT event_id FROM events")["event_id"].astype(int))
    assert ids == set(range(20)) | set(range(300, 320))  # nothing of the failed batch, nor of the one after it
    assert store.cursor("feed") == "a"


def test_a_chain_of_committed_tickets_does_not_keep_earlier_batches_alive(store: Store) -> None:
    """A feed chains each page's ticket to the one before; once committed, a ticket lets go of its predecessor,
    so a long-running poller does not hold every batch it ever wrote (memory, and the garbage collector's work)."""
    import gc
    import weakref

    writer = StoreWriter(store).start()
    try:
        first = writer.submit(_batch(5, start=0, cursor="0"))
        watched, previous = weakref.ref(first.batch), first
        for k in range(1, 6):
            previous = writer.submit(_batch(5, start=k * 5, cursor=str(k)), after=previous)
        assert previous.wait(30) == 5
        del first
        gc.collect()
    finally:
        writer.stop()
    assert previous.after is None and watched() is None
    assert store.cursor("feed") == "5" and store.stats()["events"] == 30


def test_checkpoints_run_between_commits_not_inside_them(store: Store) -> None:
    setting = "SELECT current_setting('checkpoint_threshold') AS v"
    before = store.query(setting)["v"][0]
    writer = StoreWriter(store, idle_s=0.05).start()
    try:
        assert store.query(setting)["v"][0] != before  # DuckDB's own checkpoints are off while the writer runs
        writer.submit(_batch(500)).wait(30)
        assert store.wal_bytes() > 0
        deadline = datetime.now() + timedelta(seconds=20)
        while writer.status()["checkpoints"] == 0 and datetime.now() < deadline:
            writer.flush(0.05)
        assert writer.status()["checkpoints"] >= 1 and store.wal_bytes() < 10_000  # idle: moved into the file
    finally:
        writer.stop()
    assert store.query(setting)["v"][0] == before


def test_stop_commits_what_is_queued_and_refuses_more(store: Store) -> None:
    writer = StoreWriter(store).start()
    with store.exclusive():
        tickets = [writer.submit(_batch(10, start=k * 10)) for k in range(5)]
        stopping = threading.Thread(target=writer.stop)
        stopping.start()
    stopping.join(30)
    assert all(t.done.is_set() and t.error is None for t in tickets) and store.stats()["events"] == 50
    with pytest.raises(FraudcoreError, match="has stopped"):
        writer.submit(_batch(1, start=999))
    assert writer.flush(1)


def test_trusted_commit_that_meets_a_stored_event_looks_them_up_and_stores_nothing_twice(store: Store) -> None:
    store.write_batch(_events(5, start=3))  # stored by someone else meanwhile
    writer = StoreWriter(store).start()
    try:
        assert writer.submit(_batch(10)).wait(30) == 5
    finally:
        writer.stop()
    assert store.stats()["events"] == store.stats()["distinct_event_ids"] == 10
    assert store.stats()["scores"] == 5  # scores only for the events this batch stored


def test_a_history_holding_the_rows_stays_in_step_and_a_foreign_write_reloads_it(store: Store) -> None:
    config = FeatureConfig(event_id="event_id", event_time="event_time", amount="amount", label=None,
                           entities=("customer_id", "terminal_id"), windows=("1d",), risk_windows=(), label_delay="1d")
    recent = RecentHistory(config)
    store.write_batch(_events(30))
    recent.sync(store)
    events = _events(10, start=30).to_dict("records")
    for event in events:
        event["event_time"] = pd.Timestamp(event["event_time"])
    rows, _ = recent.batch_rows(events)
    token = recent.hold(rows)
    assert recent.known(store, rows).all()  # pending ids count as known before the commit
    writer = StoreWriter(store).start()
    try:
        writer.submit(_batch(10, start=30), holders=[recent], pending=[(recent, token)]).wait(30)
        assert store.in_step(recent.generation) and len(recent) == 40  # no reload needed
        store.set_labels(pd.DataFrame({"event_id": [0], "label": [1]}))  # a write the history did not make
        assert not store.in_step(recent.generation)
        recent.sync(store)
        assert store.in_step(recent.generation) and len(recent) == 40
    finally:
        writer.stop()


def test_lingering_batches_share_a_commit_and_a_batch_without_linger_ends_the_wait(store: Store) -> None:
    writer = StoreWriter(store).start()
    try:
        first = writer.submit(_batch(3, start=0), linger_s=30.0)
        second = writer.submit(_batch(3, start=3), linger_s=30.0)
        assert not first.done.wait(0.3)  # held for company, within its linger
        urgent = writer.submit(_batch(3, start=6))  # no linger: the group commits now, together
        assert [t.wait(10) for t in (first, second, urgent)] == [3, 3, 3]
        assert writer.status()["groups"] == 1 and writer.status()["largest_group"] == 3
        timed = writer.status()["commit_ms"]
        assert timed["commits"] == 1 and 0 < timed["p50"] == timed["max"]
        late = writer.submit(_batch(2, start=9), linger_s=0.2)  # alone: committed once its linger ran out
        assert late.wait(10) == 2
        assert writer.commit_times()["commits"] == 2 and writer.commit_times(last=1)["commits"] == 1
        assert writer.commit_times(last=0) is None  # none asked for: not every commit
        held = writer.submit(_batch(2, start=11), linger_s=30.0)
    finally:
        writer.stop()  # stopping commits a lingering batch at once
    assert held.done.is_set() and held.stored == 2
    assert store.stats()["events"] == 13
