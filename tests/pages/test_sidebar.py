"""The shared sidebar: active dataset, champion with its headline metric, the analyst's name kept for the session,
and the feed lag while a poller (against a real feed on loopback) runs."""

from __future__ import annotations

import shutil
import threading

import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import runtime
from fraudcore.config import get_paths
from fraudcore.feed import FeedOptions, start_feed
from fraudcore.poller import start_poller
from fraudcore.registry import load_model, promote
from fraudcore.simulate import cursor_after, generate_to_file, world_for_rows
from tests.conftest import REPO

APP = str(REPO / "app.py")



@pytest.fixture
def champion(trained):
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test", why="sidebar")
    trained.frame.to_parquet(paths.demo_dataset, index=False)
    return trained


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def lines(at: AppTest) -> list[str]:
    return [m.value for m in at.sidebar.markdown]


def test_empty_workbench_says_what_is_missing():
    at = app().run()
    assert not at.exception
    assert lines(at) == ["**Dataset** · none yet", "**Champion** · none yet"]
    assert "Train a model and promote it" in at.sidebar.caption[0].value


def test_champion_with_its_headline_metric_and_the_demo_dataset(champion):
    at = app().run()
    assert not at.exception
    assert lines(at)[:2] == ["**Dataset** · `demo_transactions.parquet`", "**Champion** · `score-xgb`"]
    test = load_model("score-xgb", get_paths().artifacts)[1].metrics["test"]
    assert at.sidebar.caption[0].value == f"xgboost · AP {test['average_precision']:.3f} on {test['n']:,} test events"


def test_analyst_name_is_typed_once_and_kept_across_pages(champion):
    at = app().run()
    at.sidebar.text_input(key="analyst").input("Ana Silva").run()
    assert at.session_state["analyst"] == "Ana Silva"
    at.switch_page("pages/score.py").run()
    assert not at.exception
    assert at.title[0].value == "Score"
    assert at.sidebar.text_input(key="analyst").value == "Ana Silva" and at.session_state["analyst"] == "Ana Silva"
    at.switch_page("pages/home.py").run()
    assert at.sidebar.text_input(key="analyst").value == "Ana Silva"


def test_dataset_chosen_on_the_data_page_becomes_the_active_one(champion, tmp_path):
    other = tmp_path / "october.parquet"
    generate_to_file(other, rows=2_000, seed=4)
    at = app().run()
    at.switch_page("pages/data.py").run()
    at.radio(key="data_source").set_value("Path on the server").run()
    at.main.text_input[0].input(str(other)).run()
    assert not at.exception and at.session_state["dataset_path"] == str(other)
    at.run()
    assert lines(at)[0] == "**Dataset** · `october.parquet`"
    other.unlink()  # gone: the sidebar falls back to the demo dataset
    at.run()
    assert lines(at)[0] == "**Dataset** · `demo_transactions.parquet`"


def test_a_broken_champion_is_shown_with_its_error_and_the_app_stays_up(champion):
    model_file = next(p for p in (get_paths().artifacts / "score-xgb").iterdir() if p.name.startswith("model"))
    model_file.write_bytes(model_file.read_bytes() + b" ")
    at = app().run()
    assert not at.exception
    assert "**Champion** · `score-xgb`" in lines(at)
    assert "cannot be loaded" in at.sidebar.error[0].value and "sha256 mismatch" in at.sidebar.error[0].value


def test_feed_lag_is_shown_while_a_poller_runs(champion):
    at = app().run()
    assert not any(line.startswith("**Feed lag**") for line in lines(at))  # no poller: no line
    feed = start_feed(FeedOptions(total=300), world=world_for_rows(12_000, seed=5, days=10),
                      origin=cursor_after(champion.frame))
    try:
        controller = start_poller(runtime.current(), feed.url, batch=100, idle_s=0.1)
        for _ in range(600):  # at most 60 s
            status = controller.status()
            if status["stored"] == 300 and status["lag"] == 0:
                break
            assert controller.running, status["last_error"]
            threading.Event().wait(0.1)
        at.run()
        assert not at.exception
        assert "**Feed lag** · up to date" in lines(at)
        controller.stop()
        at.run()
        assert "**Feed lag** · stopped" in lines(at)
    finally:
        feed.stop()
        runtime.shutdown()
