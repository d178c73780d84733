"""Live page in the whole app: the embedded feed and the poller started and stopped from the page with a tiny event
count (metrics, tiers per minute, clean stop with threads ended), malformed records browsed in the quarantine with
their reasons and pages, an unreachable feed shown with what to do, and the guidance when there is no champion."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import runtime
from fraudcore.config import get_paths
from fraudcore.registry import promote
from fraudcore.simulate import world_for_rows, write_parquet
from tests.conftest import REPO, free_port

APP = str(REPO / "app.py")



@pytest.fixture(autouse=True)
def released_workbench():
    yield
    runtime.shutdown()  # stops the poller and the feed, releases the DuckDB file


@pytest.fixture
def champion(trained):
    """The session model promoted in this test's artifacts; its events are the demo data (with the simulator's
    world), so the embedded feed continues the world the model was trained on."""
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test", why="the Live page needs a champion")
    write_parquet(trained.frame, paths.demo_dataset, world_for_rows(12_000, seed=5, days=10))
    return trained


def live_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/live.py").run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def start_embedded(at: AppTest, total: int, malformed: float = 0.0) -> AppTest:
    at.number_input(key="live_rate").set_value(0.0)
    at.number_input(key="live_total").set_value(total)
    at.slider(key="live_malformed_rate").set_value(malformed)
    at.button(key="live_start").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["Polling started."], [e.value for e in at.error]
    return at


def run_until(at: AppTest, done, what: str, tries: int = 150) -> AppTest:
    """Rerun the page (as its 2 s fragment would) until ``done(at)``; fails naming ``what`` after ``tries``."""
    for _ in range(tries):
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.1)
    raise AssertionError(f"{what} not shown after {tries} reruns; metrics {metrics(at)}")


def chart_data(at: AppTest) -> pd.DataFrame:
    chart = at.get("vega_lite_chart")[0]
    data = chart.proto.datasets[0].data.data if chart.proto.datasets else chart.proto.data.data
    return pa.ipc.open_stream(data).read_all().to_pandas()


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "poller" or t.name.startswith("feed:")
            or "process_request_thread" in t.name]


def test_start_the_embedded_feed_watch_it_and_stop_cleanly(champion):
    at = live_page()
    assert at.title[0].value == "Live"
    assert "The poller is not running" in at.info[0].value
    assert "starts on a free loopback port (127.0.0.1)" in at.main.caption[1].value

    start_embedded(at, total=300)
    services = runtime.current().services
    assert services["feed"].url.startswith("http://127.0.0.1:")
    at = run_until(at, lambda a: metrics(a).get("Lag") == "0" and int(metrics(a)["Stored"]) == 300,
                   "all 300 events stored")
    shown = metrics(at)
    assert shown["Quarantined"] == "0" and shown["Errors"] == "0" and shown["Duplicates"] == "0"
    assert ":green-badge[Running]" in next(m.value for m in at.markdown if "feed `sim-" in m.value)
    by_tier = next(m.value for m in at.markdown if m.value.startswith("**This run by tier**"))
    assert "300 records" in by_tier
    assert "The embedded feed has sent all 300 events" in at.info[0].value
    assert at.button(key="live_start").label == "Restart with these settings"

    counts = chart_data(at)
    assert set(counts["tier"]) >= {"high", "medium", "low"} and counts["events"].sum() == 300
    assert counts["minute"].nunique() == 15  # the last 15 minutes, empty ones as zeros
    status = services["poller"].status()
    assert {t: int(counts.loc[counts["tier"] == t, "events"].sum()) for t in status["by_tier"]} == status["by_tier"]
    for tier, n in status["by_tier"].items():
        assert f"{tier}] {n:,}" in by_tier
    held = f"The store holds {len(champion.frame) + 300:,} events"  # the demo history the feed continues + 300 live
    assert held in next(c.value for c in at.main.caption if c.value.startswith("The store"))
    assert "No quarantined records" in at.main.caption[-1].value

    at.toggle(key="live_alerts_only").set_value(True).run()
    assert set(chart_data(at)["tier"]) <= {"high", "medium"}

    threads = live_threads()
    assert any(t.name == "poller" for t in threads) and any(t.name.startswith("feed:") for t in threads)
    at.button(key="live_stop").click().run()
    assert not at.exception
    assert at.success[0].value.startswith("Stopped.")
    assert ":gray-badge[Stopped]" in next(m.value for m in at.markdown if "feed `sim-" in m.value)
    assert metrics(at)["Stored"] == "300"  # the last run's counts stay readable
    for thread in threads:
        thread.join(10)
    assert live_threads() == []
    assert "feed" not in runtime.current().services

    at.button(key="live_stop").click().run()  # stopping again is harmless
    assert at.success[0].value == "Nothing was running."


def test_malformed_records_are_browsable_in_the_quarantine_with_reasons(champion):
    at = start_embedded(live_page(), total=400, malformed=0.15)
    at = run_until(at, lambda a: int(metrics(a).get("Stored", 0)) + int(metrics(a).get("Quarantined", 0)) == 400,
                   "all 400 records stored or quarantined")
    quarantined = int(metrics(at)["Quarantined"])
    assert quarantined > 30 and metrics(at)["Errors"] == "0"
    at = run_until(at, lambda a: len(a.dataframe) == 2, "the quarantine browser")

    reasons, rows = at.dataframe[0].value, at.dataframe[1].value
    assert reasons["records"].sum() == quarantined
    assert set(reasons["field"]) <= {"amount", "event_time", "customer_id", "(event)"} and len(reasons) >= 3
    assert list(rows.columns) == ["id", "received_at", "source", "reason", "payload"]
    assert len(rows) == 25 and rows["id"].is_monotonic_decreasing
    assert rows["source"].str.startswith("sim-").all() and (rows["reason"].str.len() > 10).all()
    assert (rows["payload"].str.len() <= 161).all()
    pairs = list(zip(rows["reason"], rows["payload"]))
    assert all("EUR" in p for r, p in pairs if r.startswith("amount: expected a number"))
    assert all(p.startswith("<<truncated record") for r, p in pairs if r.startswith("(event)"))
    assert {r.split(":")[0] for r, _ in pairs} >= {"amount", "(event)"}
    assert f"of {quarantined:,}, newest first" in at.main.caption[-1].value

    pages = -(-quarantined // 25)
    at.number_input(key="live_q_page").set_value(pages).run()
    last = at.dataframe[1].value
    assert len(last) == quarantined - 25 * (pages - 1) and last["id"].max() < rows["id"].min()
    at.selectbox(key="live_q_source").set_value(rows["source"].iloc[0]).run()
    assert at.dataframe[0].value["records"].sum() == quarantined


def test_an_unreachable_feed_is_counted_with_what_to_do_and_a_bad_url_is_refused(champion):
    at = live_page()
    at.radio(key="live_source").set_value("Another feed URL").run()
    assert at.button(key="live_start").disabled  # no URL yet
    at.text_input(key="live_url").input("ftp://example.org/feed").run()
    at.button(key="live_start").click().run()
    assert "is not an http(s) address" in at.error[0].value and "poller" not in runtime.current().services

    at.text_input(key="live_url").input(f"http://127.0.0.1:{free_port()}").run()
    at.button(key="live_start").click().run()
    # a warning while the tries fail, an error once three in a row have (on a slow machine the first rerun that
    # shows anything may already be stalled): the last error and what to do either way
    at = run_until(at, lambda a: len(a.main.warning) + len(a.main.error) > 0, "the last error")
    shown = (at.main.warning or at.main.error)[0].value
    assert "did not answer" in shown and "**What to do:** The feed cannot be reached" in shown
    assert int(metrics(at)["Errors"]) >= 1 and metrics(at)["Stored"] == "0"
    at = run_until(at, lambda a: len(a.main.error) > 0, "the stalled state")  # three failed tries in a row
    assert at.main.error[0].value.startswith("**Stalled:** the last ") and "nothing new is stored" in \
        at.main.error[0].value and "Stalled" in at.main.markdown[0].value
    at.button(key="live_stop").click().run()
    assert at.success[0].value.startswith("Stopped.") and not runtime.current().services["poller"].running


def test_without_a_champion_the_page_says_where_to_get_one(trained):
    at = live_page()
    assert "there is none yet" in at.main.warning[0].value
    assert [link.label for link in at.get("page_link")] == ["Train a model", "Home — first run"]
    assert at.button(key="live_start").disabled
    assert "The poller is not running" in at.info[0].value
    assert json.loads(at.get("vega_lite_chart")[0].proto.spec)["title"] == "Scored events per minute"
