"""The poller against a real feed on loopback: exactly-once storage, resume from the stored cursor, errors counted
and retried, the app's controller, and the `poll` CLI (including a store held by another process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import duckdb
import pytest

from fraudcore import runtime
from fraudcore.feed import FeedOptions, start_feed
from fraudcore.poller import FeedRejected, Poller, start_poller
from fraudcore.simulate import cursor_after, world_for_rows
from fraudcore.store import Store
from tests.conftest import REPO, free_port


@pytest.fixture
def workbench(champion_workbench):
    return champion_workbench


def _feed(trained, options: FeedOptions, port: int = 0):
    """A feed continuing the session model's world just after its training events."""
    world = world_for_rows(12_000, seed=5, days=10)
    return start_feed(options, world=world, origin=cursor_after(trained.frame), port=port)


def _counts(store: Store) -> dict:
    return {"events": store.stats()["events"], "distinct": store.stats()["distinct_event_ids"],
            "quarantined": store.stats()["quarantined"], "scores": store.stats()["scores"]}


def test_poller_stores_every_valid_event_once_and_quarantines_the_rest(workbench, trained):
    feed = _feed(trained, FeedOptions(total=2500, malformed_rate=0.04, duplicate_rate=0.05, seed=2))
    try:
        poller = Poller(workbench, feed.url, batch=300, idle_s=0.3)
        status = poller.run(threading.Event(), until_idle=True)
        served = feed.stats()
    finally:
        feed.stop()
    store = workbench.store()
    counts = _counts(store)
    assert served["served_events"] == 2500 and served["malformed"] > 50
    assert counts == {"events": served["valid_events"], "distinct": served["valid_events"],
                      "quarantined": served["malformed"], "scores": served["valid_events"]}
    assert status["stored"] == served["valid_events"] and status["errors"] == 0
    assert status["events"] == 2500 + served["duplicates_sent"] and status["lag"] == 0
    assert store.cursor(feed.source.name) == status["cursor"] and status["feed"] == feed.source.name
    reasons = store.query("SELECT reason FROM quarantine")["reason"]
    assert all(reasons.str.len() > 10)


def test_a_page_the_store_did_not_take_is_read_again_and_nothing_is_lost(workbench, trained, monkeypatch):
    feed = _feed(trained, FeedOptions(total=2400, seed=4))
    calls, original = {"n": 0}, Store.commit

    def flaky(self, batches, *args, **kwargs):  # a short outage of the disk after a few pages
        calls["n"] += 1
        if 3 <= calls["n"] <= 6:
            raise duckdb.IOException("could not write the WAL (test)")
        return original(self, batches, *args, **kwargs)

    monkeypatch.setattr(Store, "commit", flaky)
    try:
        status = Poller(workbench, feed.url, batch=200, idle_s=0.3, backoff_s=0.01).run(threading.Event(),
                                                                                         until_idle=True)
    finally:
        feed.stop()
    assert status["errors"] >= 1 and "did not take a page" in status["last_error"]
    counts = _counts(workbench.store())
    assert counts == {"events": 2400, "distinct": 2400, "quarantined": 0, "scores": 2400}
    assert status["stored"] == 2400 and workbench.store().cursor(feed.source.name) == status["cursor"]


def test_a_new_poller_resumes_from_the_stored_cursor(workbench, trained):
    feed = _feed(trained, FeedOptions(total=1800))
    try:
        first = Poller(workbench, feed.url, batch=500).run(threading.Event(), max_events=700)
        assert first["events"] == 700 and workbench.store().stats()["events"] == 700
        second = Poller(workbench, feed.url, batch=500, idle_s=0.3).run(threading.Event(), until_idle=True)
    finally:
        feed.stop()
    assert second["events"] == 1100 and second["duplicates"] == 0
    assert _counts(workbench.store())["distinct"] == 1800


def test_errors_are_counted_and_retried_until_the_feed_comes_back(workbench, trained):
    port = free_port()
    poller = Poller(workbench, f"http://127.0.0.1:{port}", batch=200, idle_s=0.3, backoff_s=0.05,
                    max_backoff_s=0.2, timeout_s=2)
    stop, done = threading.Event(), {}
    thread = threading.Thread(target=lambda: done.update(poller.run(stop, until_idle=True)))
    thread.start()
    while poller.counts["errors"] < 3:  # nothing listens yet: connection refused, counted, retried
        thread.join(0.05)
    assert "did not answer" in poller.last_error and poller.status()["failing"] >= 3  # in a row
    feed = _feed(trained, FeedOptions(total=1000, error_rate=0.3, delay_ms=5, seed=9), port=port)
    try:
        thread.join(60)
    finally:
        stop.set()
        feed.stop()
    assert not thread.is_alive() and done["stored"] == 1000 == workbench.store().stats()["events"]
    assert done["errors"] >= 3 + feed.stats()["errors_sent"]
    assert done["failing"] == 0  # the feed answered again: no longer failing


def test_controller_runs_in_the_app_and_a_refusing_feed_stops_it(workbench, trained):
    feed = _feed(trained, FeedOptions(rate=400.0))
    try:
        controller = start_poller(workbench, feed.url, batch=100, idle_s=0.1)
        assert workbench.services["poller"] is controller
        while controller.status()["stored"] < 150:
            assert controller.running, controller.status()["last_error"]
            threading.Event().wait(0.05)
        status = controller.status()
        assert status["running"] and status["feed"] == feed.source.name and status["errors"] == 0
        workbench.close()  # the app's shutdown stops its services
        assert not controller.running
    finally:
        feed.stop()
    other = _feed(trained, FeedOptions(total=10))  # the same cursor space, but we ask from before its start
    try:
        store = runtime.current().store()
        store.write_batch(trained.frame.iloc[:0][["event_id", "event_time"]], cursor=(other.source.name, "0:0"))
        with pytest.raises(FeedRejected, match="400"):
            Poller(runtime.current(), other.url).run(threading.Event())
    finally:
        other.stop()


def test_cli_poll_prints_a_summary_and_says_when_the_store_is_held(workbench, trained, isolated_paths):
    feed = _feed(trained, FeedOptions(total=600, malformed_rate=0.05, seed=1))
    workbench.close()
    command = [sys.executable, "-m", "fraudcore", "poll", "--feed", feed.url, "--until-idle", "--idle-s", "0.3"]
    try:
        done = subprocess.run(command, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["events"] == 600 and summary["stored"] + summary["quarantined"] == 600
        assert summary["quarantined"] == feed.stats()["malformed"] and "poll:" in done.stderr
        with Store.open(isolated_paths / "data" / "workbench.duckdb"):  # this process now holds the file
            held = subprocess.run(command, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                                  timeout=120)
    finally:
        feed.stop()
    assert held.returncode == 2 and "held by" in held.stderr and "stop the app" in held.stderr


def test_the_session_reads_the_environment_once_with_the_same_outcome(monkeypatch, tmp_path):
    """Proxies (unless NO_PROXY covers the feed), the CA bundle and .netrc are taken from the environment when the
    poller starts, as requests would per request; later requests do not read it again (trust_env off)."""
    from fraudcore.poller import _session

    (tmp_path / ".netrc").write_text("machine feed.example login ana password s3cret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    remote = _session("http://feed.example/events")
    assert remote.proxies.get("http") == "http://proxy.example:3128" and remote.verify == str(tmp_path / "ca.pem")
    assert remote.auth == ("ana", "s3cret") and remote.trust_env is False
    local = _session("http://127.0.0.1:8765")
    assert "http" not in local.proxies and local.auth is None


def test_caught_up_the_poller_gathers_events_into_fewer_pages(workbench, trained):
    pages = {}
    for gather_s in (0.0, 0.25):
        workbench.scorer()  # the model is loaded before the feed's clock starts
        feed = _feed(trained, FeedOptions(rate=100, total=80, seed=6))  # 80 events over 0.8 s
        try:
            poller = Poller(workbench, feed.url, batch=100, gather_s=gather_s, name=f"gather-{gather_s}")
            status = poller.run(threading.Event(), max_events=80)
        finally:
            feed.stop()
        assert status["stored"] + status["duplicates"] == 80 and status["errors"] == 0
        pages[gather_s] = status["batches"]
    # caught up, each short page waits 0.25 s after the last request: ~0.8 s of events in a handful of pages
    assert pages[0.25] <= 6 < pages[0.0]
