"""The feed server: exact continuation of the simulated world, stable cursors across restarts, faults, stats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from fraudcore.config import DEMO_ROWS
from fraudcore.feed import FeedOptions, feed_origin, parse_cursor, start_feed
from fraudcore.simulate import Cursor, continue_from, generate, world_for_rows, write_parquet
from tests.conftest import REPO, free_port

WORLD = world_for_rows(20_000, seed=11, days=10)
ORIGIN = Cursor(2, 17)


def _pages(url: str, n: int, limit: int = 700, after: str | None = None) -> tuple[list, str]:
    """Follow ``next`` until ``n`` events (or an empty page); returns the events and the last cursor."""
    events, session = [], requests.Session()
    while len(events) < n:
        params = {"limit": min(limit, n - len(events)), **({"after": after} if after else {})}
        page = session.get(f"{url}/events", params=params, timeout=10).json()
        if not page["events"]:
            break
        events += page["events"]
        after = page["next"]
    return events, after


def _expected(n: int) -> list[dict]:
    frame = continue_from((WORLD, ORIGIN), rows=n).drop(columns=["fraud_scenario", "is_fraud"])
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))


def test_pages_continue_the_world_exactly_and_a_restart_serves_the_same_events():
    feed = start_feed(world=WORLD, origin=ORIGIN)
    try:
        events, cursor = _pages(feed.url, 5000)
        assert events == _expected(5000)
        assert parse_cursor(cursor) > ORIGIN and feed.stats()["served_events"] == 5000
        middle = _pages(feed.url, 10, after="3:5")[0]
        feed.restart()
        again, _ = _pages(feed.url, 5000)
        assert again == events and _pages(feed.url, 10, after="3:5")[0] == middle
        assert feed.stats()["served_events"] == 5000  # the restart kept the counters: nothing new was served
    finally:
        feed.stop()
    other = start_feed(world=WORLD, origin=ORIGIN)  # a new server over the same world: same cursor, same events
    try:
        assert _pages(other.url, 10, after="3:5")[0] == middle
    finally:
        other.stop()


def test_malformed_duplicates_and_total_are_counted_in_stats():
    options = FeedOptions(malformed_rate=0.1, duplicate_rate=0.05, total=3000, seed=4)
    feed = start_feed(options, world=WORLD, origin=ORIGIN)
    try:
        events, cursor = _pages(feed.url, 10_000)
        stats = requests.get(f"{feed.url}/stats", timeout=5).json()
        last = requests.get(f"{feed.url}/events", params={"after": cursor}, timeout=5).json()
    finally:
        feed.stop()
    clean = _expected(3000)
    assert last["events"] == [] and last["available"] == 0  # the total is reached
    assert stats["served_events"] == 3000 and len(events) == 3000 + stats["duplicates_sent"] > 3000
    distinct = list(dict.fromkeys(json.dumps(e, sort_keys=True) for e in events))
    assert len(distinct) == 3000
    broken = [json.loads(d) for d in distinct if json.loads(d) not in clean]
    assert len(broken) == stats["malformed"] and 200 < stats["malformed"] < 400
    assert stats["valid_events"] == 3000 - stats["malformed"]
    kinds = {type(b).__name__ for b in broken}
    assert kinds == {"dict", "str"}
    feed = start_feed(options, world=WORLD, origin=ORIGIN)  # the same seed breaks the same records the same way
    try:
        again = _pages(feed.url, 10_000)[0]
    finally:
        feed.stop()
    assert list(dict.fromkeys(json.dumps(e, sort_keys=True) for e in again)) == distinct


def test_errors_rate_bad_cursors_and_routes():
    feed = start_feed(FeedOptions(error_rate=1.0), world=WORLD, origin=ORIGIN)
    try:
        assert requests.get(f"{feed.url}/events", timeout=5).status_code in (500, 503)
        assert requests.get(f"{feed.url}/health", timeout=5).json()["feed"].startswith("sim-")
        assert feed.stats()["errors_sent"] == 1
    finally:
        feed.stop()
    feed = start_feed(FeedOptions(rate=5.0), world=WORLD, origin=ORIGIN)
    try:
        page = requests.get(f"{feed.url}/events", params={"limit": 1000}, timeout=5).json()
        assert len(page["events"]) < 1000 and page["available"] is not None
        bad = requests.get(f"{feed.url}/events", params={"after": "yesterday"}, timeout=5)
        assert bad.status_code == 400 and "day:index" in bad.json()["error"]
        early = requests.get(f"{feed.url}/events", params={"after": "1:0"}, timeout=5)
        assert early.status_code == 400 and "before this feed's start" in early.json()["error"]
        assert requests.get(f"{feed.url}/nothing", timeout=5).status_code == 404
    finally:
        feed.stop()


def test_origin_follows_the_demo_file_or_the_default_world(tmp_path: Path):
    frame = generate(rows=3000, world=WORLD)
    demo = write_parquet(frame, tmp_path / "demo.parquet", WORLD)
    world, cursor = feed_origin(demo)
    last = int(frame["event_id"].iloc[-1])
    assert world == WORLD and cursor == Cursor(last // 10_000_000, last % 10_000_000 + 1)
    world, cursor = feed_origin(tmp_path / "absent.parquet", seed=7)
    first = continue_from((world, cursor), rows=1)
    assert int(first["event_id"][0]) == int(generate(rows=DEMO_ROWS + 1, seed=7)["event_id"].iloc[-1])


def test_cli_feed_serve_answers_and_stops_at_total():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fraudcore", "feed", "serve", "--port", str(port), "--seed", "3",
                             "--total", "50", "--malformed-rate", "0.1"], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced = json.loads(proc.stdout.readline())
        assert announced["url"] == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = requests.get(f"{announced['url']}/events", params={"limit": 100}, timeout=5).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the feed did not answer"
                time.sleep(0.2)
        assert len(page["events"]) == 50 and page["available"] == 0
        assert requests.get(f"{announced['url']}/stats", timeout=5).json()["served_events"] == 50
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0


@pytest.mark.parametrize("text", ["", "3", "a:b", "-1:2", "3:4:5"])
def test_parse_cursor_says_the_form(text):
    with pytest.raises(ValueError, match="day:index"):
        parse_cursor(text)


def test_events_are_records_a_scorer_reads(scorer):
    feed = start_feed(FeedOptions(labels=True), world=WORLD, origin=ORIGIN)
    try:
        events = _pages(feed.url, 50)[0]
    finally:
        feed.stop()
    assert all(scorer.validate_event(e)["event_time"] == pd.Timestamp(e["event_time"]) for e in events)
    assert {"is_fraud"} <= set(events[0]) and "fraud_scenario" not in events[0]


def test_long_poll_holds_an_empty_answer_until_the_next_event():
    feed = start_feed(FeedOptions(rate=2.0), world=WORLD, origin=ORIGIN)  # one event every half second
    try:
        held = requests.get(f"{feed.url}/events", params={"limit": 10, "wait_ms": 3000}, timeout=10).json()
        assert len(held["events"]) >= 1
        quick = requests.get(f"{feed.url}/events", params={"limit": 10, "after": held["next"]}, timeout=10).json()
        assert quick["events"] == [] and quick["next"] == held["next"]
    finally:
        feed.stop()


def test_ensure_feed_starts_one_embedded_feed_per_workbench():
    from fraudcore import runtime
    from fraudcore.feed import ensure_feed

    write_parquet(generate(rows=500, world=WORLD), runtime.current().paths.data / "demo_transactions.parquet", WORLD)
    workbench = runtime.current()
    try:
        feed = ensure_feed(workbench, FeedOptions(total=5))
        assert ensure_feed(workbench) is feed and workbench.services["feed"] is feed
        assert feed.url.startswith("http://127.0.0.1:") and feed.source.world == WORLD
        assert len(requests.get(f"{feed.url}/events", timeout=5).json()["events"]) == 5
    finally:
        runtime.shutdown()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{feed.url}/health", timeout=5)  # the workbench's shutdown stopped it


def test_the_serve_command_starts_at_a_given_cursor_and_reports_its_rate_clock():
    """``feed serve --origin`` starts at that cursor of the seed's world (an external feed a benchmark or a test can
    place exactly), and /stats carries the monotonic time its rate started."""
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "fraudcore", "feed", "serve", "--port", "0", "--seed", "7",
                             "--origin", "40:17", "--rate", "200", "--total", "50"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        started = json.loads(proc.stdout.readline())
        assert started["origin"] == "40:17"
        with urllib.request.urlopen(started["url"] + "/events?limit=5&wait_ms=500", timeout=10) as answer:
            page = json.loads(answer.read())
        with urllib.request.urlopen(started["url"] + "/stats", timeout=10) as answer:
            stats = json.loads(answer.read())
        assert page["events"] and parse_cursor(page["next"]) > Cursor(40, 17)
        assert 0 < time.monotonic() - stats["rate_clock"] < 60  # the same clock as this process's
    finally:
        proc.terminate()
        proc.wait(timeout=30)
