"""Comparison: models grouped by data, saved windows rebuilt and re-scored exactly, curves and metrics side by side."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudcore import comparison
from fraudcore.comparison import Window
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.evaluate import evaluate
from fraudcore.registry import load_metadata, update_tiers
from fraudcore.simulate import generate_to_file
from fraudcore.split import SplitPlan
from fraudcore.thresholds import choice_at
from fraudcore.training import TrainRequest, train


@dataclass(frozen=True)
class Registry:
    root: Path
    data: Path
    other: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    """Three models on one 20k-event file (time split x2, random split) and one on another file."""
    folder = tmp_path_factory.mktemp("comparison")
    data, other, root = folder / "demo.parquet", folder / "other.parquet", folder / "artifacts"
    generate_to_file(data, rows=20_000, seed=3)
    generate_to_file(other, rows=8_000, seed=9)
    train(data, TrainRequest(model_id="xgb", search_minutes=0), root=root)
    train(data, TrainRequest(model_id="lr", algo="logreg", search_minutes=0), root=root)
    train(data, TrainRequest(model_id="lr-random", algo="logreg", search_minutes=0,
                             split=SplitPlan(kind="random", seed=4)), root=root)
    train(other, TrainRequest(model_id="other-lr", algo="logreg", search_minutes=0), root=root)
    return Registry(root, data, other)


def test_models_are_grouped_by_the_data_they_learned_from(registry):
    groups = comparison.model_groups(registry.root)
    by_source = {Path(g.source).name: g for g in groups}
    assert set(by_source) == {"demo.parquet", "other.parquet"}
    demo = by_source["demo.parquet"]
    assert {m.model_id for m in demo.models} == {"xgb", "lr", "lr-random"}
    assert [m.model_id for m in by_source["other.parquet"].models] == ["other-lr"]
    assert demo.n_rows == 20_000 and "3 models" in demo.label and demo.fingerprint[:8] in demo.label
    assert groups[0].models[0].model_id == "other-lr"  # the group holding the newest model comes first


@pytest.mark.parametrize("model_id", ["xgb", "lr-random"])
def test_rebuilt_windows_reproduce_the_metrics_saved_at_training(registry, model_id):
    scored = comparison.score_windows(model_id, registry.root)
    meta = load_metadata(model_id, registry.root)
    for name in ("valid", "test"):
        w = scored.window(name)
        saved = meta.metrics[name]
        again = evaluate(w.y, w.score, meta.tiers.medium.threshold, amount=w.amount, event_time=w.times,
                         entity=w.entity, k=saved["k"], review_cost=saved["review_cost"])
        assert len(w.y) == meta.split[name]["rows"]
        assert again["average_precision"] == pytest.approx(saved["average_precision"], abs=1e-12)
        assert again["confusion"] == saved["confusion"]
        assert again["card_precision_at_k"] == pytest.approx(saved["card_precision_at_k"])


def test_a_changed_or_missing_file_is_reported_not_compared(registry, tmp_path):
    data = tmp_path / "moving.parquet"
    shutil.copy(registry.other, data)
    train(data, TrainRequest(model_id="moving", algo="logreg", search_minutes=0), root=registry.root)
    generate_to_file(data, rows=8_000, seed=10)
    with pytest.raises(FraudcoreError, match="changed since model 'moving' was trained"):
        comparison.score_windows("moving", registry.root)
    data.unlink()
    with pytest.raises(FraudcoreError, match="no longer there"):
        comparison.score_windows("moving", registry.root)
    shutil.rmtree(registry.root / "moving")


def test_window_counts_are_checked_against_the_metadata(registry):
    meta = load_metadata("lr", registry.root)
    split = {**meta.split, "test": {**meta.split["test"], "frauds": meta.split["test"]["frauds"] + 1}}
    from fraudcore.dataset import open_dataset
    from fraudcore.inputs import model_inputs

    inputs = model_inputs(open_dataset(registry.data, spec=meta.spec), "none")
    with pytest.raises(FraudcoreError, match=r"test window now holds .* the data changed"):
        comparison.window_rows(meta.model_copy(update={"split": split}), inputs)


def test_shared_test_window_is_the_events_every_model_tested_on(registry):
    scored = [comparison.score_windows(m, registry.root) for m in ("xgb", "lr", "lr-random")]
    common = comparison.common_test(scored)
    ids = [set(w.event_id) for w in common.values()]
    assert ids[0] == ids[1] == ids[2]
    expected = set(scored[0].test.event_id) & set(scored[2].test.event_id)
    assert ids[0] == expected and 0 < len(expected) < len(scored[0].test.event_id)
    same = comparison.common_test(scored[:2])  # same time split: the whole test window
    assert len(same["xgb"].y) == len(scored[0].test.y)


def test_disjoint_test_windows_cannot_be_compared():
    a = comparison.ModelWindows("a", *[Window(n, np.arange(4), np.array([0, 1, 0, 1]), np.ones(4) / 2)
                                       for n in ("valid", "test")])
    b = comparison.ModelWindows("b", *[Window(n, np.arange(4, 8), np.array([0, 1, 0, 1]), np.ones(4) / 2)
                                       for n in ("valid", "test")])
    with pytest.raises(FraudcoreError, match="share no events"):
        comparison.common_test([a, b])


def test_curves_and_metrics_table_on_the_shared_window(registry):
    scored = [comparison.score_windows(m, registry.root) for m in ("xgb", "lr")]
    common = comparison.common_test(scored)
    pr, roc = comparison.curve_frames(common)
    assert set(pr["model"]) == set(roc["model"]) == {"xgb", "lr"}
    assert pr["recall"].between(0, 1).all() and roc["fpr"].between(0, 1).all()
    xgb = common["xgb"]
    assert pr.loc[pr["model"] == "xgb", "ap"].iloc[0] == pytest.approx(average_precision_score(xgb.y, xgb.score))
    assert roc.loc[roc["model"] == "xgb", "auc"].iloc[0] == pytest.approx(roc_auc_score(xgb.y, xgb.score))

    metas = [load_metadata(m, registry.root) for m in ("xgb", "lr", "lr-random")]
    table = comparison.metrics_table(metas, common, champion="lr", review_cost=5.0).set_index("model")
    assert table.loc["lr", "champion"] and not table.loc["xgb", "champion"]
    assert table.loc["xgb", "window"] == "shared test" and table.loc["lr-random", "window"] == "own test (saved)"
    assert table.loc["lr-random", "average_precision"] == metas[2].metrics["test"]["average_precision"]
    assert table.loc["xgb", "average_precision"] == pytest.approx(average_precision_score(xgb.y, xgb.score))
    assert table.loc["xgb", "review_cut"] == metas[0].tiers.medium.threshold
    tiers = metas[2].tiers  # changed after training: the saved row keeps the cut its metrics were computed at
    moved = metas[2].model_copy(update={"tiers": tiers.model_copy(
        update={"medium": tiers.medium.model_copy(update={"threshold": 0.5})})})
    row = comparison.metrics_table([moved], common).iloc[0]
    assert row["review_cut"] == metas[2].metrics["test"]["threshold"] != 0.5


def test_saved_curves_are_read_from_the_metadata(registry):
    metas = [load_metadata(m, registry.root) for m in ("xgb", "lr")]
    pr, roc = comparison.saved_curve_frames(metas)
    assert list(pr.loc[pr["model"] == "lr", "recall"]) == metas[1].curves["test"]["pr"]["recall"]
    assert list(roc.loc[roc["model"] == "xgb", "tpr"]) == metas[0].curves["test"]["roc"]["tpr"]
    empty_pr, empty_roc = comparison.saved_curve_frames([])
    assert empty_pr.empty and list(empty_roc.columns) == ["model", "fpr", "tpr", "auc"]


def test_load_metadata_checks_the_artifact_without_loading_the_model(registry, tmp_path):
    meta = load_metadata("lr", registry.root)
    assert meta.algo == "logreg" and meta.model_id == "lr"
    copy = tmp_path / "artifacts"
    shutil.copytree(registry.root / "lr", copy / "lr")
    next(p for p in (copy / "lr").iterdir() if p.name not in ("metadata.json", "card.md")).write_bytes(b"{}")
    with pytest.raises(ModelArtifactError, match="sha256 mismatch"):
        load_metadata("lr", copy)


def test_choice_at_describes_a_hand_set_cut_and_is_logged_by_update_tiers(registry, tmp_path):
    scored = comparison.score_windows("xgb", registry.root)
    v = scored.valid
    cut = float(np.quantile(v.score, 0.99))
    choice = choice_at(v.y, v.score, cut, "precision", 0.9, event_time=v.times, amount=v.amount)
    alert = v.score >= cut
    assert choice.threshold == cut and choice.alerts == int(alert.sum())
    assert choice.precision == pytest.approx(v.y[alert].mean()) and choice.score == choice.precision
    nothing = choice_at(v.y, v.score, 1.0 + 1e-9, "recall", 0.5)
    assert nothing.alerts == 0 and nothing.recall == 0.0 and nothing.precision is None
    root = tmp_path / "artifacts"
    shutil.copytree(registry.root / "xgb", root / "xgb")
    meta = load_metadata("xgb", root)
    policy = meta.tiers.model_copy(update={"high": choice})
    updated = update_tiers("xgb", policy, who="ana", why="fewer blocks", root=root)
    assert updated.tiers.high.threshold == cut and updated.tier_log[-1].who == "ana"
