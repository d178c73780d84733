"""Train page: the split on a timeline, training in the background with progress, results with metrics and card."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import runtime
from fraudcore.config import get_paths
from fraudcore.dataset import open_dataset
from fraudcore.errors import FraudcoreError
from fraudcore.registry import load_metadata
from fraudcore.simulate import generate_to_file
from fraudcore.training import TrainRequest, train
from tests.conftest import REPO

PAGE = str(REPO / "pages" / "train.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120)


@pytest.fixture
def demo_ready():
    paths = get_paths().ensure()
    generate_to_file(paths.demo_dataset, rows=20_000, seed=3)
    return paths.demo_dataset


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_without_data_the_page_says_where_to_get_some():
    at = page().run()
    assert not at.exception
    assert "No dataset yet" in at.info[0].value


def test_training_from_the_page_shows_metrics_curves_and_card(demo_ready):
    at = page()
    at.session_state["analyst"] = "ana"
    at.run()
    assert not at.exception
    assert "time-ordered split" in " ".join(c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 1  # the split timeline
    assert at.text_input(key="train_model_id").value.startswith("xgboost-")
    at.number_input(key="train_minutes").set_value(0.0)
    at.selectbox(key="train_algo").set_value("logreg").run()
    assert at.text_input(key="train_model_id").value.startswith("logreg-")  # the suggestion follows the family
    at.text_input(key="train_model_id").input("first-model")
    assert at.checkbox(key="train_refit").value is False  # opt-in
    at.checkbox(key="train_refit").check()
    button(at, "Train").click().run()
    assert not at.exception
    job = runtime.current().jobs.latest("train:first-model")
    assert job is not None and job.wait(120) and job.status == "done", job.error
    at.run()
    assert not at.exception
    assert any("Trained **first-model**" in s.value for s in at.success)
    meta = load_metadata("first-model")
    assert meta.algo == "logreg" and meta.created_by == "ana" and meta.search["minutes"] == 0
    assert meta.split["final_fit"]["rows"] == "train + valid"  # the checkbox reached the training
    shown = metrics(at)
    assert shown["Average precision"] == f"{meta.metrics['test']['average_precision']:.3f}"
    assert shown["ROC AUC"] == f"{meta.metrics['test']['roc_auc']:.3f}"
    assert "Precision@100/day" in shown and "Alerts per day" in shown
    assert len(at.get("vega_lite_chart")) == 3  # timeline, PR, ROC
    assert any(m.value.startswith("# Model card: first-model") for m in at.markdown)
    assert at.selectbox(key="train_show").value == "first-model"
    assert at.text_input(key="train_model_id").value != "first-model"  # a fresh id for the next model


def test_progress_is_shown_while_training_and_failures_say_why(demo_ready):
    gate = threading.Event()
    paths = get_paths()

    def slow(progress):
        progress(0.4, "computing features")
        gate.wait(60)
        return train(paths.demo_dataset, TrainRequest(model_id="gated", algo="logreg", search_minutes=0),
                     root=paths.artifacts)

    job = runtime.current().jobs.submit("train gated", slow, key="train:gated")
    at = page()
    at.session_state["train_job"] = job.job_id
    at.run()
    assert not at.exception
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.value == 40 and "computing features" in bars[0].proto.text
    assert button(at, "Train").disabled  # one training at a time per session
    gate.set()
    assert job.wait(120) and job.status == "done"
    at.run()
    assert not at.get("progress") and any("Trained **gated**" in s.value for s in at.success)

    def broken(progress):
        raise FraudcoreError("the validation window has no fraud: make it longer (or use more data)")

    failed = runtime.current().jobs.submit("train broken", broken, key="train:broken")
    assert failed.wait(10)
    at.session_state["train_job"] = failed.job_id
    at.run()
    assert any("broken** failed: the validation window has no fraud" in e.value for e in at.error)


def test_taken_ids_and_impossible_splits_are_refused(demo_ready):
    train(demo_ready, TrainRequest(model_id="taken", algo="logreg", search_minutes=0))
    at = page().run()
    at.text_input(key="train_model_id").input("taken")
    button(at, "Train").click().run()
    assert any("already exists" in e.value for e in at.error)
    at.number_input(key="train_delay_days").set_value(3.0).run()  # the demo spans five days: no room left
    assert any("window is empty" in e.value for e in at.error)
    assert button(at, "Train").disabled
    at.segmented_control(key="train_split_kind").set_value("random").run()
    assert any("overstate" in w.value for w in at.warning)
    assert "NOT time-ordered" in " ".join(c.value for c in at.caption)
    assert not button(at, "Train").disabled


def test_dates_split_draws_the_chosen_ranges(demo_ready):
    at = page().run()
    at.segmented_control(key="train_split_kind").set_value("dates").run()
    assert not at.exception
    # the demo spans 6-10 January: the last quarter of its days (one) tests by default
    assert [str(d) for d in at.date_input(key="train_dates").value] == ["2025-01-06", "2025-01-09"]
    assert [str(d) for d in at.date_input(key="test_dates").value] == ["2025-01-10", "2025-01-10"]
    assert "date split: train 2025-01-06..2025-01-09" in " ".join(c.value for c in at.caption)
    at.date_input(key="train_dates").set_value((date(2025, 1, 6), date(2025, 1, 7)))
    at.date_input(key="test_dates").set_value((date(2025, 1, 10), date(2025, 1, 10))).run()
    caption = " ".join(c.value for c in at.caption)
    assert "train 2025-01-06..2025-01-07" in caption and "2-day gap" in caption
    parts = at.dataframe[0].value.set_index("part")
    assert parts.loc["test", "start"].date() == date(2025, 1, 10)


def test_without_an_event_time_only_a_random_split_is_offered(demo_ready):
    at = page()
    spec = open_dataset(demo_ready).spec
    at.session_state["dataset_path"] = str(demo_ready)
    at.session_state["dataset_spec"] = spec.with_role("event_time", "ignored")  # as the Data page would store it
    at.run()
    assert not at.exception
    assert "column roles from the Data & EDA page" in at.caption[0].value
    assert "no event time column" in at.info[0].value
    assert at.segmented_control(key="train_split_kind").options == ["Random (optimistic)"]
    assert not at.get("vega_lite_chart") and not button(at, "Train").disabled
    objectives = at.selectbox(key="train_medium_objective").options
    assert "Alert budget per day" not in objectives and objectives[0].startswith("F1")
