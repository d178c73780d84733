"""Faults end to end on loopback: a misbehaving feed that restarts mid-way, and a poller process killed with SIGKILL
again and again. Afterwards every valid event is stored exactly once, every malformed record is in quarantine with its
reason, and the counts add up to what the feed says it served."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from fraudcore import runtime
from fraudcore.feed import FeedOptions, start_feed
from fraudcore.poller import Poller
from fraudcore.simulate import continue_from, cursor_after, world_for_rows
from fraudcore.store import Store
from tests.conftest import REPO


@pytest.fixture
def champion(champion_workbench, trained):
    """The session model copied into this test's artifacts folder and promoted."""
    return trained


def _start(trained, options: FeedOptions):
    world = world_for_rows(12_000, seed=5, days=10)
    origin = cursor_after(trained.frame)
    return start_feed(options, world=world, origin=origin), (world, origin)


def _payload_event_id(payload: str) -> int:
    """The event a quarantined payload came from (each malformed record names it)."""
    value = json.loads(payload) if payload.startswith(("{", "[", '"')) else payload
    if isinstance(value, dict):
        return int(value["event_id"])
    return int(str(value).rsplit(" ", 1)[-1])


def _assert_exactly_once(store: Store, start: tuple, total: int, stats: dict) -> None:
    """Stored ids and quarantined ids split the served events exactly; counts match the feed's /stats."""
    expected = set(continue_from(start, rows=total)["event_id"].tolist())
    stored = store.query("SELECT event_id FROM events")["event_id"].astype("int64").tolist()
    quarantined = store.query("SELECT reason, payload FROM quarantine")
    bad = [_payload_event_id(p) for p in quarantined["payload"]]
    assert len(stored) == len(set(stored)) == stats["valid_events"]  # nothing stored twice
    assert len(bad) == len(set(bad)) == stats["malformed"] > 0  # every malformed record kept once
    assert set(stored) | set(bad) == expected and not set(stored) & set(bad)  # nothing lost
    assert stats["served_events"] == total == len(stored) + len(bad)
    assert (quarantined["reason"].str.len() > 10).all()
    scores = store.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM scores WHERE NOT shadow")
    assert int(scores["n"][0]) == int(scores["d"][0]) == len(stored)


def test_50k_events_through_errors_delays_malformed_duplicates_and_a_restart(champion):
    total = 50_000
    options = FeedOptions(total=total, error_rate=0.05, delay_ms=2, malformed_rate=0.01, duplicate_rate=0.02, seed=3)
    feed, start = _start(champion, options)
    workbench = runtime.current()
    poller = Poller(workbench, feed.url, batch=1000, idle_s=0.5, backoff_s=0.02, max_backoff_s=0.3)
    stop, done = threading.Event(), {}
    thread = threading.Thread(target=lambda: done.update(poller.run(stop, until_idle=True)), daemon=True)
    thread.start()
    try:
        while poller.counts["stored"] < total // 2 and thread.is_alive():
            thread.join(0.05)
        feed.stop()  # the server goes away mid-way (dropping the poller's keep-alive connection) ...
        deadline = time.monotonic() + 60
        while "did not answer" not in (poller.last_error or "") and time.monotonic() < deadline:
            thread.join(0.05)
        feed.serve()  # ... and comes back on the same port
        thread.join(180)
        assert not thread.is_alive(), "the poller did not finish"
    finally:
        stop.set()
        feed.stop()
    stats = feed.stats()
    assert stats["errors_sent"] > 0 and stats["duplicates_sent"] > 0
    assert done["errors"] >= stats["errors_sent"] + 1  # every 5xx and the outage were counted, none was fatal
    assert done["duplicates"] > 0 and done["quarantined"] >= stats["malformed"]
    _assert_exactly_once(workbench.store(), start, total, stats)


def test_poller_process_killed_with_sigkill_again_and_again_loses_and_duplicates_nothing(champion, isolated_paths):
    total = 6000
    feed, start = _start(champion, FeedOptions(total=total, rate=1500, malformed_rate=0.02, duplicate_rate=0.02,
                                               seed=5))
    command = [sys.executable, "-m", "fraudcore", "poll", "--feed", feed.url, "--batch", "200", "--until-idle",
               "--idle-s", "0.5"]
    rng, kills = random.Random(11), 0
    try:
        while kills < 5:
            proc = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            first = proc.stderr.readline()  # the first progress line: it has ingested a page
            if not first.startswith("poll:"):
                proc.kill()
                pytest.fail(f"the poller did not start polling: {first}{proc.stderr.read()[-2000:]}")
            time.sleep(rng.uniform(0.0, 0.8))
            if proc.poll() is not None:
                break  # it finished before we could kill it
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills += 1
        final = subprocess.run(command, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    finally:
        feed.stop()
    assert kills >= 5 and final.returncode == 0, final.stderr[-2000:]
    with Store.open(isolated_paths / "data" / "workbench.duckdb", read_only=True) as store:
        _assert_exactly_once(store, start, total, feed.stats())
