"""End to end on generated data: train → artifact → reload → evaluate; the CLI's train/evaluate/models/promote."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraudcore.batch import score_file
from fraudcore.cli import main
from fraudcore.comparison import score_windows
from fraudcore.config import get_paths
from fraudcore.dataset import open_dataset
from fraudcore.errors import DataContractError, ModelArtifactError
from fraudcore.holdout import load_holdout
from fraudcore.inputs import model_inputs
from fraudcore.reference import load_reference
from fraudcore.registry import champion_id, load_metadata, load_model
from fraudcore.simulate import continue_from, generate, world_for_rows, write_parquet
from fraudcore.split import SplitPlan, make_split
from fraudcore.training import TrainRequest, evaluate_saved, train


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    world = world_for_rows(40_000, seed=11, days=20)
    frame = generate(rows=40_000, world=world)
    first = write_parquet(frame, folder / "train.parquet", world)
    later = continue_from(first, rows=15_000)
    write_parquet(later, folder / "later.parquet", world)
    return first, folder / "later.parquet"


@pytest.mark.parametrize("algo", ["xgboost", "logreg", "anomaly"])
def test_train_saves_a_loadable_model_that_learned(demo_files, algo):
    first, _ = demo_files
    meta = train(first, TrainRequest(model_id=f"t-{algo}", algo=algo, search_minutes=0))
    model, loaded = load_model(f"t-{algo}")
    assert loaded.model_id == meta.model_id and loaded.algo == algo
    assert list(model.matrix_.feature_names) == meta.features["names"]
    test = meta.metrics["test"]
    assert test["average_precision"] > 3 * test["fraud_rate"]  # far better than chance
    assert meta.tiers.high.threshold >= meta.tiers.medium.threshold
    assert meta.split["kind"] == "time" and meta.curves["test"]["pr"]["precision"]
    assert "customer_id__nb_tx_1d" in meta.features["names"]
    assert "fraud_scenario" not in meta.features["names"] and "is_fraud" not in meta.features["names"]
    assert (get_paths().artifacts / f"t-{algo}" / "card.md").read_text().startswith("#")
    assert (test["brier"] is None) == (algo == "anomaly")  # an anomaly score is no probability
    if algo == "anomaly":  # asked for reasons it cannot give, a batch run says so
        run = score_file(first, first.parent / "anomaly.parquet", f"t-{algo}", explain_all=True)
        assert run["rows_explained"] == 0 and "no reasons" in run["reasons_note"]


def test_no_test_window_row_reaches_training(demo_files):
    first, _ = demo_files
    opened = open_dataset(first)
    inputs = model_inputs(opened)
    split = make_split(SplitPlan(delay_days=2), inputs.times, inputs.y)
    ids = inputs.frame["event_id"].to_numpy()
    assert not set(ids[split.train]) & set(ids[split.test])
    assert inputs.times.iloc[split.train].max() < inputs.times.iloc[split.test].min() - pd.Timedelta(days=2)


def test_evaluate_saved_on_later_data_and_cli_round(demo_files, capsys):
    first, later = demo_files
    assert main(["train", "--data", str(first), "--model-id", "cli-xgb", "--search-trials", "1",
                 "--delay-days", "1", "--medium", "f1", "--refit"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model_id"] == "cli-xgb"
    for key in ("average_precision", "roc_auc", "card_precision_at_k"):
        assert 0 <= result["metrics"]["test"][key] <= 1
    assert result["tiers"]["medium"]["objective"] == "f1"
    search = load_model("cli-xgb")[1].search
    assert search["trials_requested"] == 1  # --search-trials reached the search
    assert load_model("cli-xgb")[1].split["final_fit"]["rows"] == "train + valid"  # --refit reached the training

    scored = evaluate_saved("cli-xgb", later)
    assert scored["metrics"]["test"]["n"] == 15_000
    assert scored["metrics"]["test"]["average_precision"] > 0.2
    assert scored["warnings"] == []  # later data: nothing the model was fitted or tuned on
    own = evaluate_saved("cli-xgb", first)
    assert "data the model was trained on" in own["warnings"][0]
    pd.read_parquet(first).iloc[:20_000].to_parquet(first.parent / "early.parquet")  # not the file, same period
    early = evaluate_saved("cli-xgb", first.parent / "early.parquet")
    assert "20,000 of 20,000 rows fall inside the period the model was trained and validated on" in \
        early["warnings"][0]
    frame = pd.read_parquet(later)
    frame.drop(columns=["fraud_scenario"]).to_parquet(later.parent / "no_leak.parquet")  # excluded: not needed
    assert evaluate_saved("cli-xgb", later.parent / "no_leak.parquet")["metrics"] == scored["metrics"]
    frame.drop(columns=["is_fraud"]).to_parquet(later.parent / "no_label.parquet")
    with pytest.raises(DataContractError, match="has no 'is_fraud' column: evaluating needs the label"):
        evaluate_saved("cli-xgb", later.parent / "no_label.parquet")

    assert main(["models"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert "cli-xgb" in {row["model_id"] for row in listed}
    assert main(["promote", "cli-xgb", "--why", "test"]) == 0
    assert champion_id() == "cli-xgb"


def test_training_refuses_invalid_data(tmp_path):
    frame = generate(rows=5_000, seed=2)
    frame.loc[3, "is_fraud"] = 7
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(Exception, match="label must be 0/1"):
        train(tmp_path / "bad.parquet", TrainRequest(model_id="bad", search_minutes=0))
    assert not (get_paths().artifacts / "bad").exists()


def test_ulb_shaped_data_uses_columns_as_features(tmp_path):
    rng = np.random.default_rng(0)
    n = 6000
    y = (rng.random(n) < 0.03).astype(int)
    frame = pd.DataFrame({"Time": np.sort(rng.uniform(0, 172_800, n)), "V1": rng.normal(size=n) + 2 * y,
                          "V2": rng.normal(size=n), "Amount": rng.gamma(2, 40, n), "Class": y})
    frame.to_parquet(tmp_path / "ulb_like.parquet")
    meta = train(tmp_path / "ulb_like.parquet", TrainRequest(model_id="ulb-like", search_minutes=0))
    assert meta.features["config"] is None
    assert meta.features["names"] == ["Amount", "V1", "V2"]
    assert meta.metrics["test"]["average_precision"] > 0.3


def test_refit_trains_on_train_and_validation_with_the_tiers_tuned_before(demo_files):
    first, _ = demo_files
    kept = train(first, TrainRequest(model_id="kept", search_minutes=0))  # the default: no refit
    refit = train(first, TrainRequest(model_id="refit", search_minutes=0, refit=True))
    final = refit.split["final_fit"]
    assert final["rows"] == "train + valid" and final["n_rows"] == refit.split["train"]["rows"] + \
        refit.split["valid"]["rows"]
    assert kept.split["final_fit"]["rows"] == "train" and load_holdout(load_metadata("kept")) is None
    # same configuration and seed: the tiers and validation metrics are the kept model's, tuned out of sample
    assert refit.tiers.medium.threshold == kept.tiers.medium.threshold
    assert refit.tiers.high.threshold == kept.tiers.high.threshold
    assert refit.metrics["valid"]["average_precision"] == kept.metrics["valid"]["average_precision"]
    assert final["test_average_precision_before"] == round(kept.metrics["test"]["average_precision"], 6)
    assert refit.metrics["test"]["average_precision"] != kept.metrics["test"]["average_precision"]
    # the saved validation scores are the kept model's, and Compare re-tunes from them
    windows, kept_windows = score_windows("refit"), score_windows("kept")
    assert windows.refitted and not kept_windows.refitted
    np.testing.assert_array_equal(load_holdout(load_metadata("refit")), kept_windows.valid.score)
    np.testing.assert_array_equal(windows.valid.score, kept_windows.valid.score)
    assert "trained again on train + validation" in (get_paths().artifacts / "refit" / "card.md").read_text()
    assert load_reference("refit").score.n == refit.split["test"]["rows"]  # the drift reference: out of sample only


def test_a_taken_model_id_is_refused_before_any_work(demo_files):
    (get_paths().artifacts / "taken").mkdir(parents=True)
    calls = []
    with pytest.raises(ModelArtifactError, match="'taken' already exists"):
        train(demo_files[0], TrainRequest(model_id="taken", search_minutes=0), progress=lambda f, m: calls.append(m))
    assert calls == []  # refused up front, not after the features, the search and the refit


def test_a_fractional_label_delay_trains_with_entity_features(tmp_path):
    generate(rows=6_000, seed=4).to_parquet(tmp_path / "d.parquet")
    meta = train(tmp_path / "d.parquet", TrainRequest(model_id="half-day", search_minutes=0,
                                                      split=SplitPlan(delay_days=0.5)))
    assert meta.features["config"]["label_delay"] == "12h"  # was '0.5d', which the window parser refused
    assert any("risk" in name for name in meta.features["names"])  # the label-based features use the delay
