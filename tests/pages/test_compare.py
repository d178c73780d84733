"""Compare & thresholds page: overlaid curves, metrics, cuts that move the numbers, saved tiers, a promoted champion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import comparison, runtime, tuning
from fraudcore.config import get_paths
from fraudcore.registry import champion_id, load_metadata
from fraudcore.simulate import generate_to_file
from fraudcore.training import TrainRequest, train
from tests.conftest import REPO
from tests.pages.conftest import open_page

PAGE = str(REPO / "pages" / "compare.py")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """Two small models (trees and logistic regression) on one 20k-event demo file: (artifacts, data)."""
    folder = tmp_path_factory.mktemp("compare")
    data, root = folder / "demo_transactions.parquet", folder / "artifacts"
    generate_to_file(data, rows=20_000, seed=3)
    train(data, TrainRequest(model_id="trees", search_minutes=0), root=root)
    train(data, TrainRequest(model_id="linear", algo="logreg", search_minutes=0), root=root)
    return root, data


@pytest.fixture
def registry(models) -> Path:
    """This test's own copy of the two models (tests change tiers and the champion)."""
    artifacts = get_paths().ensure().artifacts
    shutil.copytree(models[0], artifacts, dirs_exist_ok=True)
    return artifacts


def page(analyst: str | None = "ana") -> AppTest:
    return open_page(PAGE, analyst, timeout=120)


def tune_trees(at: AppTest) -> AppTest:
    """Run the page with the older model ("trees"; the newest model is picked first) in the tuning section."""
    at.run()
    assert at.selectbox(key="tune_model").value == "linear"  # newest first
    return at.selectbox(key="tune_model").set_value("trees").run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_without_models_the_page_points_to_train():
    at = page().run()
    assert not at.exception
    assert "No models yet" in at.info[0].value


def test_curves_and_metrics_of_models_on_the_same_data(registry):
    at = page().run()
    assert not at.exception
    fingerprint = load_metadata("trees").dataset["fingerprint"]
    assert at.selectbox(key="compare_group").options == [
        f"demo_transactions.parquet · 20,000 rows · data {fingerprint[:8]} · 2 models"]
    assert sorted(at.multiselect[0].value) == ["linear", "trees"]
    assert any("test window the models share" in c.value and "4,000 events" in c.value for c in at.caption)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 5  # PR, ROC, confusion matrix, tiers, precision/recall by cut
    table = at.dataframe[0].value.set_index("model")
    for model_id in ("trees", "linear"):
        saved = load_metadata(model_id).metrics["test"]
        assert table.loc[model_id, "average_precision"] == pytest.approx(saved["average_precision"])
        assert table.loc[model_id, "window"] == "shared test"
    assert not table["champion"].any()

    at.multiselect[0].unselect("linear").run()
    assert list(at.dataframe[0].value["model"]) == ["trees"]


def test_moving_the_cuts_moves_the_confusion_matrix_alerts_and_cost(registry):
    at = tune_trees(page())
    saved = load_metadata("trees").tiers
    assert at.slider(key="tune_cuts_trees").value == pytest.approx((saved.medium.threshold, saved.high.threshold))
    before = metrics(at)
    at.slider(key="tune_cuts_trees").set_value((0.05, 0.6)).run()
    assert not at.exception
    after = metrics(at)
    expected = tuning.what_if(comparison.score_windows("trees").valid, high=0.6, medium=0.05, review_cost=5.0)
    assert after["Alerts per day"] == f"{expected.alerts_per_day:,.1f}" != before["Alerts per day"]
    assert after["Recall"] == f"{expected.recall:.1%}"
    assert after["Cost"] == f"{expected.cost:,.0f}" and after["Amount at risk"] == f"{expected.amount_at_risk:,.0f}"
    assert after["Fraud amount caught"] == f"{expected.amount_caught:,.0f}"
    assert next(m for m in at.metric if m.label == "Alerts per day").delta  # compared with the saved tiers
    tiers = at.dataframe[1].value.set_index("tier")
    assert tiers["events"].to_dict() == expected.tiers.set_index("tier")["events"].to_dict()

    at.segmented_control(key="tune_window").set_value("test").run()
    on_test = tuning.what_if(comparison.score_windows("trees").test, high=0.6, medium=0.05, review_cost=5.0)
    assert metrics(at)["Alerts per day"] == f"{on_test.alerts_per_day:,.1f}"


def test_objectives_suggest_cuts_on_the_validation_window(registry):
    at = tune_trees(page())
    at.selectbox(key="tune_medium_objective_trees").set_value("recall").run()
    at.number_input(key="tune_medium_target_trees_recall").set_value(0.5)
    at.selectbox(key="tune_high_objective_trees").set_value("f1")
    button(at, "Suggest cuts from the objectives").click().run()
    assert not at.exception
    valid = comparison.score_windows("trees").valid
    want = tuning.suggest_tiers(valid, ("f1", None), ("recall", 0.5))
    assert at.slider(key="tune_cuts_trees").value == pytest.approx((want.medium.threshold, want.high.threshold))
    assert any("Cuts set from the objectives" in i.value for i in at.info)


def test_saving_tiers_is_logged_and_promoting_makes_a_champion(registry):
    before = runtime.current().scorer("trees").tiers  # kept by the workbench until the page says it changed
    at = tune_trees(page())
    at.slider(key="tune_cuts_trees").set_value((0.05, 0.6)).run()
    at.text_input(key="tune_why").input("review team doubled")
    button(at, "Save tiers").click().run()
    assert not at.exception
    assert any("Saved tiers of **trees**" in s.value for s in at.success)
    meta = load_metadata("trees")
    assert (meta.tiers.high.threshold, meta.tiers.medium.threshold) == (0.6, 0.05)
    change = meta.tier_log[-1]
    assert (change.who, change.why, change.old) == ("ana", "review team doubled", before)
    assert runtime.current().scorer("trees").tiers.medium.threshold == 0.05 != before.medium.threshold
    log = at.dataframe[-1].value
    assert list(log["who"]) == ["ana"] and log["new medium"].iloc[0] == 0.05
    assert metrics(at)["Alerts per day"] and not next(m for m in at.metric if m.label == "Alerts per day").delta

    at.text_input(key="promote_why").input("best AP on the shared window")
    button(at, "Promote trees to champion").click().run()
    assert not at.exception
    assert champion_id() == "trees"
    assert any("**trees** is now the champion" in s.value for s in at.success)
    assert any("**Champion:** trees" in m.value for m in at.markdown)
    assert button(at, "Promote trees to champion").disabled
    assert at.dataframe[0].value.set_index("model").loc["trees", "champion"]


def test_changes_need_a_name_and_a_reason(registry):
    at = tune_trees(page(analyst=None))
    button(at, "Save tiers").click().run()
    assert any("type your name first" in e.value for e in at.error)
    at.text_input(key="compare_who").input("bo").run()
    button(at, "Save tiers").click().run()
    assert any("needs who and why" in e.value for e in at.error)
    assert load_metadata("trees").tier_log == []


def test_a_model_whose_data_is_gone_falls_back_to_its_saved_metrics(registry, models, tmp_path):
    moved = tmp_path / "away.parquet"
    shutil.move(models[1], moved)
    try:
        at = page().run()
        assert not at.exception
        assert any("no longer there" in w.value for w in at.warning)
        assert any("as saved at training" in c.value for c in at.caption)
        table = at.dataframe[0].value.set_index("model")
        assert set(table["window"]) == {"own test (saved)"}
        assert "needs a model re-scored" in at.info[0].value
    finally:
        shutil.move(moved, models[1])


def test_a_refitted_model_is_tuned_on_the_scores_saved_before_its_refit(registry, models):
    train(models[1], TrainRequest(model_id="refitted", search_minutes=0, refit=True), root=registry)
    at = page().run()
    assert at.selectbox(key="tune_model").value == "refitted"  # the newest model
    assert not at.exception
    assert any("trained again on train + validation" in c.value for c in at.caption)
    at.selectbox(key="tune_medium_objective_refitted").set_value("recall").run()
    at.number_input(key="tune_medium_target_refitted_recall").set_value(0.5)
    at.selectbox(key="tune_high_objective_refitted").set_value("f1")
    button(at, "Suggest cuts from the objectives").click().run()
    assert not at.exception
    kept = load_metadata("refitted").tiers  # tuned at training on the out-of-sample scores
    valid = comparison.score_windows("refitted").valid
    want = tuning.suggest_tiers(valid, ("f1", None), ("recall", 0.5))
    assert at.slider(key="tune_cuts_refitted").value == pytest.approx((want.medium.threshold, want.high.threshold))
    same = tuning.suggest_tiers(valid, (kept.high.objective, kept.high.target),
                                (kept.medium.objective, kept.medium.target))
    assert (same.high.threshold, same.medium.threshold) == (kept.high.threshold, kept.medium.threshold)
