"""Train page helpers: model ids suggested and checked, headline figures read from the saved metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fraudcore.config import get_paths
from fraudcore.errors import ModelArtifactError
from fraudcore.registry import check_new_model_id, load_metadata
from fraudcore.train_setup import (
    headline_metrics,
    objectives_for,
    start_training,
    suggest_model_id,
)


def test_suggested_ids_name_the_family_and_utc_time():
    assert suggest_model_id("logreg", datetime(2025, 1, 10, 17, 57, 32, tzinfo=UTC)) == "logreg-20250110-175732"
    assert suggest_model_id("xgboost").startswith("xgboost-20")


def test_new_ids_must_be_valid_and_unused():
    assert check_new_model_id("  my-model_1.2 ") == "my-model_1.2"
    for bad in ("../up", "has space", "", "-dash-first"):
        with pytest.raises(ModelArtifactError, match="is not allowed"):
            check_new_model_id(bad)
    (get_paths().ensure().artifacts / "taken").mkdir()
    with pytest.raises(ModelArtifactError, match="already exists"):
        check_new_model_id("taken")


def test_headline_figures_come_from_the_saved_test_metrics(trained):
    meta = load_metadata(trained.model_id, trained.root)
    test = meta.metrics["test"]
    figures = {h.label: h for h in headline_metrics(meta)}
    assert figures["Average precision"].value == f"{test['average_precision']:.3f}"
    assert figures["ROC AUC"].value == f"{test['roc_auc']:.3f}"
    assert figures["Precision@100/day"].value == f"{test['precision_at_k']:.1%}"
    assert figures["Card precision@100/day"].value == f"{test['card_precision_at_k']:.1%}"
    assert figures["Alerts per day"].value == f"{test['alerts_per_day']:,.1f}"
    assert f"{test['threshold']:.4g}" in figures["Recall at review cut"].help
    valid = {h.label: h.value for h in headline_metrics(meta, "valid")}
    assert valid["Average precision"] == f"{meta.metrics['valid']['average_precision']:.3f}"
    empty = meta.model_copy(update={"metrics": {"test": {"k": 50, "card_precision_at_k": None}}})
    values = {h.label: h.value for h in headline_metrics(empty)}
    assert values["Average precision"] == "—" and "Card precision@50/day" not in values


def test_training_runs_as_one_background_job_per_model_id(tmp_path):
    from fraudcore.jobs import Jobs
    from fraudcore.simulate import generate_to_file
    from fraudcore.spec import DatasetSpec
    from fraudcore.training import TrainRequest

    data = generate_to_file(tmp_path / "events.parquet", rows=8_000, seed=3)["path"]
    jobs = Jobs()
    spec = DatasetSpec(event_id="event_id", event_time="event_time", label="is_fraud", amount="amount",
                       categorical=["channel"])  # the analyst's roles: no entities, so no velocity features
    request = TrainRequest(model_id="bg", algo="logreg", search_minutes=0)
    job = start_training(jobs, data, spec, request, tmp_path / "artifacts")
    assert start_training(jobs, data, spec, request, tmp_path / "artifacts") is job  # same id: the same job
    assert job.wait(120) and job.status == "done", job.error
    assert job.result.model_id == "bg" and job.fraction == 1.0 and job.message == "saved bg"
    assert load_metadata("bg", tmp_path / "artifacts").feature_names == ["amount", "channel"]


def test_objectives_follow_the_columns_the_data_has():
    from fraudcore.spec import DatasetSpec

    assert objectives_for(DatasetSpec(event_time="t", amount="a", label="y")) == [
        "f1", "precision", "recall", "alert_budget", "cost"]
    assert objectives_for(DatasetSpec(label="y")) == ["f1", "precision", "recall"]
