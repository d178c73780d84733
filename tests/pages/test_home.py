"""Home page and the first run: a fresh workbench generates the demo data and trains a champion once, in the
background, with progress; failures say what to do; the page links to the others."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import first_run, runtime
from fraudcore.config import get_paths
from fraudcore.jobs import Job
from fraudcore.registry import champion_id, list_models
from tests.conftest import REPO

APP = str(REPO / "app.py")



@pytest.fixture(autouse=True)
def small_first_run(monkeypatch):
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "8000")
    monkeypatch.delenv(first_run.ENV_FIRST_RUN)  # the suite switches automatic first runs off; these tests need them
    yield
    job = runtime.current().jobs.latest(first_run.KEY)
    assert job is None or job.wait(120), "a first-run job was still running after the test"


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def wait_for_first_run() -> Job:
    job = runtime.current().jobs.latest(first_run.KEY)
    assert job is not None and job.wait(120), "the first run did not finish within 120 s"
    return job


def test_fresh_workbench_sets_itself_up_once_with_progress():
    paths = get_paths()
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Fraud Workbench" and "five fraud patterns" in at.markdown[0].value
    assert "First run: generating the demo dataset and training a default champion" in at.info[0].value
    assert len(at.main.get("progress")) == 1 and len(at.sidebar.get("progress")) == 1  # Home and the sidebar
    job = wait_for_first_run()
    assert job.status == "done", job.detail

    at.run()
    assert not at.exception
    model_id = champion_id(paths.artifacts)
    assert model_id is not None and model_id.startswith("champion-xgb-")
    assert f"champion `{model_id}` trained on it" in at.success[0].value
    assert len(pd.read_parquet(paths.demo_dataset)) == 8_000
    assert f"**Champion** · `{model_id}`" in [m.value for m in at.sidebar.markdown]
    assert at.sidebar.caption[0].value.startswith("xgboost · AP ")
    assert not at.get("progress")
    [model] = list_models(paths.artifacts)
    assert model["created_by"] == "first-run"

    at.run()  # the same process: nothing new is submitted
    assert runtime.current().jobs.latest(first_run.KEY) is job
    runtime.shutdown()  # a new process (fresh workbench): the files on disk say it is done
    again = app().run()
    assert not again.exception
    assert runtime.current().jobs.latest(first_run.KEY) is None
    assert f"Ready: demo dataset `demo_transactions.parquet`, champion `{model_id}`" in again.success[0].value
    assert [m["model_id"] for m in list_models(paths.artifacts)] == [model_id]


def test_a_failed_first_run_says_what_to_do_and_can_be_retried(monkeypatch):
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "lots")
    at = app().run()
    job = wait_for_first_run()
    assert job.status == "failed"
    at.run()
    assert not at.exception
    error = at.main.error[0].value
    assert "FRAUDCORE_DEMO_ROWS is 'lots'" in error and "What to do" in error and "python -m fraudcore" in error
    assert "The first run failed" in at.sidebar.error[0].value
    at.run()
    assert runtime.current().jobs.latest(first_run.KEY) is job  # not retried by itself

    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "8000")
    next(b for b in at.button if b.label == "Try again").click().run()
    retry = wait_for_first_run()
    assert retry is not job and retry.status == "done", retry.detail
    at.run()
    assert "trained on it" in at.success[0].value


def test_without_automatic_start_home_offers_the_setup(monkeypatch):
    monkeypatch.setenv(first_run.ENV_FIRST_RUN, "off")
    at = app().run()
    assert not at.exception
    assert runtime.current().jobs.latest(first_run.KEY) is None
    assert "Still to do: the demo dataset and a champion model" in at.info[0].value
    next(b for b in at.button if b.label == "Set up the workbench").click().run()
    assert wait_for_first_run().status == "done"
    at.run()
    assert get_paths().demo_dataset.is_file() and champion_id() is not None


def test_models_without_a_champion_are_not_retrained(trained):
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    trained.frame.to_parquet(paths.demo_dataset, index=False)
    at = app().run()
    assert not at.exception
    assert runtime.current().jobs.latest(first_run.KEY) is None
    assert "no model is promoted" in at.warning[0].value
    assert "**Champion** · none yet" in [m.value for m in at.sidebar.markdown]


def test_home_links_to_the_pages_that_exist():
    at = app().run()
    wait_for_first_run()
    at.run()
    links = [link.label.split(" — ")[0] for link in at.get("page_link")]
    expected = {"data": "Data & EDA", "train": "Train", "compare": "Compare & thresholds", "score": "Score",
                "live": "Live", "review": "Review queue", "monitor": "Monitor"}
    assert links == [title for name, title in expected.items() if (REPO / "pages" / f"{name}.py").is_file()]
    assert "Score" in links and "Data & EDA" in links
    assert [m.label for m in at.metric] == ["Data folder", "Artifacts folder", "Workbench database"]
