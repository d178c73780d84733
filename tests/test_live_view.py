"""live_view and live_charts: feed options checked field by field, advice per poller error, tiers per minute from a
real store (zeros filled, shadow and old scores left out), quarantine pages and reasons, and the feed and poller
started, restarted and stopped on a real workbench with every thread ended."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pandas as pd
import pytest

from fraudcore import live_view, runtime
from fraudcore.errors import FeedError, ModelArtifactError
from fraudcore.feed import FeedOptions
from fraudcore.live_charts import tier_minutes_chart
from fraudcore.simulate import world_for_rows, write_parquet
from fraudcore.store import Store, frames_batch
from fraudcore.store_inputs import INPUT_COLUMNS
from fraudcore.writer import StoreWriter
from tests.conftest import free_port

NOW = datetime(2025, 3, 1, 12, 30, 40)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "live.duckdb") as opened:
        yield opened


def write_scores(store: Store, rows: list[tuple[str, str, datetime, bool]]) -> None:
    """Events with one score each: (event id, tier, scored_at, shadow)."""
    ids = [r[0] for r in rows]
    events = pd.DataFrame({"event_id": ids, "event_time": [NOW] * len(ids), "amount": 10.0})
    scores = pd.DataFrame({"event_id": ids, "model_id": "m", "score": 0.5, "tier": [r[1] for r in rows],
                           "scored_at": [r[2] for r in rows], "shadow": [r[3] for r in rows]})
    store.write_batch(events, scores)


def test_feed_options_from_the_page_fields():
    options = live_view.feed_options(rate=0, error_rate=0.1, malformed_rate=0.05, total=0, seed=3)
    assert options == FeedOptions(rate=None, error_rate=0.1, malformed_rate=0.05, total=None, seed=3)
    assert live_view.feed_options(rate=25.0, total=300) == FeedOptions(rate=25.0, total=300)
    with pytest.raises(ValueError, match="rate must be between 0 and 50,000"):
        live_view.feed_options(rate=-1)
    with pytest.raises(ValueError, match=r"malformed rate must be a share between 0 and 0\.9"):
        live_view.feed_options(malformed_rate=1.5)
    with pytest.raises(ValueError, match="error rate must be a share"):
        live_view.feed_options(error_rate=float("nan"))
    with pytest.raises(ValueError, match=r"total must be 0 \(endless\) or a positive number"):
        live_view.feed_options(total=-5)


@pytest.mark.parametrize(("error", "advice"), [
    ("FeedError: the feed at http://127.0.0.1:1 did not answer (ConnectionError: Connection refused)",
     "cannot be reached"),
    ("FeedRejected: the feed at http://h:1 refused /events with 404: nope", "refused the poller's request"),
    ("FeedError: the feed at http://h:1 answered 503 to /events; retrying", "server error"),
    ("FeedError: the feed at http://h:1 answered /events with something that is not JSON", "not as a feed"),
    ("ModelArtifactError: no champion model is set", "champion model could not be used"),
    ("StoreBusyError: the workbench store x is held by process 12", "Another process holds"),
    ("FeedError: the store did not take a page (IOException: No space left on device); reading again from cursor 9",
     "The store refuses the poller's pages"),
    ("ValueError: something else", "counted the error and retries"),
])
def test_each_poller_error_comes_with_what_to_do(error, advice):
    assert advice in live_view.error_advice(error)


@pytest.mark.parametrize(("running", "failing", "stalled"), [(True, 3, True), (True, 2, False), (False, 9, False)])
def test_a_running_poller_whose_last_tries_all_failed_is_stalled(running, failing, stalled):
    status = live_view.LiveStatus(poller={"running": running, "failing": failing}, feed_url=None, feed_options=None)
    assert status.stalled is stalled and live_view.STALLED_AFTER == 3


def test_no_error_no_advice():
    assert live_view.error_advice(None) is None and live_view.error_advice("") is None


def test_tiers_per_minute_fill_empty_minutes_and_leave_out_shadow_and_old_scores(store):
    at = lambda minutes_ago, second=5: NOW.replace(second=second) - timedelta(minutes=minutes_ago)  # noqa: E731
    write_scores(store, [("a", "high", at(0), False), ("b", "low", at(0, 50), False), ("c", "low", at(0), False),
                         ("d", "medium", at(3), False), ("e", "high", at(3), True), ("f", "low", at(9), False)])
    counts = live_view.tier_minutes(store, minutes=5, now=NOW)
    assert list(counts.columns) == ["minute", "tier", "events"]
    assert len(counts) == 5 * 3 and counts["minute"].nunique() == 5
    assert counts["minute"].min() == pd.Timestamp("2025-03-01 12:26") and counts["minute"].max() == \
        pd.Timestamp("2025-03-01 12:30")
    got = {(m.strftime("%H:%M"), t): int(n) for m, t, n in counts.itertuples(index=False) if n}
    assert got == {("12:30", "high"): 1, ("12:30", "low"): 2, ("12:27", "medium"): 1}
    assert counts["events"].sum() == 4  # the shadow score and the 9-minute-old one are outside


def test_totals_count_events_live_tiers_and_quarantine(store):
    write_scores(store, [("a", "high", NOW, False), ("b", "low", NOW, False), ("c", "low", NOW, True)])
    store.quarantine([{"amount": "x"}], ["amount: expected a number"], source="feed-a")
    assert live_view.live_totals(store) == {"events": 3, "quarantined": 1, "high": 1, "medium": 0, "low": 1}


def test_quarantine_pages_newest_first_with_excerpts_reasons_and_sources(store):
    records = [{"n": i, "amount": f"{i} EUR"} for i in range(30)] + ["<<" + "x" * 400]
    reasons = ["amount: expected a number"] * 20 + ["event_time: required field is missing"] * 10 + \
        ["(event): expected an object of fields, got str"]
    store.quarantine(records[:25], reasons[:25], source="feed-a")
    store.quarantine(records[25:30], reasons[25:30], source="feed-b")
    store.quarantine(records[30:], reasons[30:], source="feed-b")  # the newest

    first, total = live_view.quarantine_page(store, page=1, size=10)
    assert total == 31 and live_view.quarantine_count(store) == 31 and len(first) == 10
    assert list(first.columns) == ["id", "received_at", "source", "reason", "payload"]
    assert first["id"].is_monotonic_decreasing and first["source"].iloc[0] == "feed-b"
    excerpt = first["payload"].iloc[0]
    assert len(excerpt) == live_view.EXCERPT_CHARS + 1 and excerpt.endswith("…") and excerpt.startswith("<<xxx")
    assert json.loads(first["payload"].iloc[1])["amount"].endswith(" EUR")  # short payloads whole
    last, _ = live_view.quarantine_page(store, page=4, size=10)
    assert len(last) == 1 and last["id"].iloc[0] < first["id"].min()
    assert live_view.quarantine_page(store, page=9, size=10)[0].empty

    only_b, total_b = live_view.quarantine_page(store, page=1, size=10, source="feed-b")
    assert total_b == 6 and set(only_b["source"]) == {"feed-b"}
    assert live_view.quarantine_sources(store) == ["feed-a", "feed-b"]

    by_field = live_view.quarantine_reasons(store)
    assert by_field[["field", "records"]].values.tolist() == [["amount", 20], ["event_time", 10], ["(event)", 1]]
    assert by_field["example"].iloc[0] == "amount: expected a number"
    assert live_view.quarantine_reasons(store, "feed-b")["records"].tolist() == [5, 1]


def test_tier_chart_stacks_tiers_in_their_colours_and_can_show_alerts_only(store):
    write_scores(store, [("a", "high", NOW, False), ("b", "low", NOW, False)])
    counts = live_view.tier_minutes(store, minutes=3, now=NOW)
    spec = tier_minutes_chart(counts).to_dict()
    assert spec["title"] == "Scored events per minute"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["high", "medium", "low"]
    assert spec["encoding"]["x"]["timeUnit"] == "utcyearmonthdatehoursminutes"  # one band per minute, in UTC
    alerts = tier_minutes_chart(counts, alerts_only=True).to_dict()
    data = alerts["datasets"][alerts["data"]["name"]]
    assert alerts["title"] == "Alerts per minute" and {row["tier"] for row in data} == {"high", "medium"}


# ---- the feed and the poller on a real workbench ----------------------------------------------------------------

@pytest.fixture
def workbench(champion_workbench, trained):
    """The champion workbench with the session model's events as the simulator demo data."""
    write_parquet(trained.frame, champion_workbench.paths.demo_dataset, world_for_rows(12_000, seed=5, days=10))
    return champion_workbench


def wait_for(check, what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {tries} checks")


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "poller" or t.name.startswith("feed:")
            or "process_request_thread" in t.name]


def test_without_a_champion_nothing_starts(isolated_paths):
    wb = runtime.current()
    try:
        with pytest.raises(ModelArtifactError):
            live_view.start_live(wb, None, FeedOptions(total=10))
        assert wb.services == {} and live_view.live_status(wb).poller is None
        assert live_view.stop_live(wb) is False
    finally:
        runtime.shutdown()


def test_a_url_that_is_not_http_is_refused_before_anything_starts(workbench):
    with pytest.raises(FeedError, match=r"not an http\(s\) address"):
        live_view.start_live(workbench, "127.0.0.1:8765")
    assert workbench.services == {}


def test_the_embedded_feed_starts_from_the_demo_history_it_continues(workbench, trained):
    store = workbench.store()
    scorer = workbench.scorer()
    seeded = live_view.seed_history(workbench)
    times = trained.frame["event_time"]
    expected = trained.frame[times >= times.max() - scorer.lookback]
    assert seeded == len(expected) > 0 and store.stats()["events"] == seeded
    assert store.stats()["labelled_events"] == seeded  # the past comes with its labels, as in training
    assert live_view.seed_history(workbench) == 0  # only into an empty store
    live_view.start_live(workbench, None, FeedOptions(total=20))
    wait_for(lambda: store.stats()["events"] == seeded + 20, "20 live events stored")
    rows = store.query(f"SELECT {INPUT_COLUMNS} FROM scores ORDER BY event_id LIMIT 20")
    counts = [v for f in store.input_rows(rows) for k, v in f.items() if k == "customer_id__nb_tx_30d" and v]
    assert len(counts) == 20 and sorted(counts)[10] > 1  # live customers have a past: most counts exceed the event


def test_start_restart_with_other_options_and_stop_cleanly(workbench):
    store = workbench.store()
    seeded = live_view.seed_history(workbench)
    live_view.start_live(workbench, None, FeedOptions(total=250))
    first = live_view.live_status(workbench)
    assert first.running and first.feed_url.startswith("http://127.0.0.1:") and first.feed_options.total == 250
    wait_for(lambda: store.stats()["events"] == seeded + 250, "250 events stored")
    wait_for(lambda: live_view.live_status(workbench).total_reached, "the total reached")

    live_view.start_live(workbench, None, FeedOptions(total=400, malformed_rate=0.2, seed=1))
    second = live_view.live_status(workbench)
    assert second.feed_options.malformed_rate == 0.2 and second.poller["url"] == second.feed_url
    wait_for(lambda: (s := live_view.live_status(workbench).poller)["stored"] + s["quarantined"] == 150,
             "the next 150 records")
    assert second.poller["duplicates"] == 0  # resumed from the stored cursor
    totals = live_view.live_totals(store)
    assert totals["events"] - seeded + totals["quarantined"] == 400 and totals["quarantined"] > 10

    threads = live_threads()
    assert {t.name for t in threads} >= {"poller", f"feed:{second.feed_url.rsplit(':', 1)[1]}"}
    assert live_view.stop_live(workbench) is True
    for thread in threads:
        thread.join(10)
    assert live_threads() == []
    stopped = live_view.live_status(workbench)
    assert not stopped.running and stopped.feed_url is None and stopped.poller["stored"] + \
        stopped.poller["quarantined"] == 150
    assert live_view.stop_live(workbench) is False  # idempotent


def test_another_url_stops_the_embedded_feed(workbench):
    live_view.start_live(workbench, None, FeedOptions(total=50))
    embedded = live_view.live_status(workbench).feed_url
    live_view.start_live(workbench, embedded + "/")  # the embedded feed's own URL keeps it
    assert live_view.live_status(workbench).feed_url == embedded
    elsewhere = f"http://127.0.0.1:{free_port()}"
    live_view.start_live(workbench, elsewhere)
    status = live_view.live_status(workbench)
    assert status.feed_url is None and "feed" not in workbench.services and status.poller["url"] == elsewhere
    wait_for(lambda: live_view.live_status(workbench).poller["errors"] > 0, "an error counted")
    assert "cannot be reached" in live_view.error_advice(live_view.live_status(workbench).poller["last_error"])
    assert live_view.stop_live(workbench) is True


def test_a_paced_feed_also_reports_its_total_reached(workbench):
    live_view.start_live(workbench, None, FeedOptions(total=30, rate=100))
    assert not live_view.live_status(workbench).total_reached
    wait_for(lambda: live_view.live_status(workbench).total_reached, "the paced total reached")
    status = live_view.live_status(workbench)
    assert status.feed_read == 30 and status.poller["stored"] == 30
    live_view.stop_live(workbench)


def test_the_store_writer_line_says_how_long_commits_take_and_what_waits(store):
    assert live_view.storage_line(None) is None
    writer = StoreWriter(store).start()
    try:
        assert live_view.storage_line(writer.status()) is None  # nothing committed yet
        events = pd.DataFrame({"event_id": [1, 2], "event_time": [datetime(2025, 1, 1), datetime(2025, 1, 2)],
                               "amount": [5.0, 7.0]})
        writer.submit(frames_batch(events, None, store.keys)).wait(10)
        line = live_view.storage_line(writer.status())
    finally:
        writer.stop()
    assert line.startswith("Store writes · 1 commits, latest 1: median ") and "longest" in line
    assert "0 batches waiting" in line and "WAL" in line
