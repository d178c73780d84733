"""Three model families: they learn, score DataFrames and matrices alike, and survive save → load without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import average_precision_score

from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.models import ALGOS, AnomalyModel, LogRegModel, XGBoostModel, make_model, model_class

CHANNELS = ["web", "pos", "atm", "moto", "app"]
FAST = {"xgboost": {"n_jobs": 1}, "logreg": {}, "anomaly": {"n_jobs": 1}}  # one thread: no spinning on busy CI


def synthetic(n: int, seed: int, *, anomalous_fraud: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Events with two informative numerics, a noise column, a risky channel and a many-level country (~5 % fraud)."""
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    channel = rng.choice(CHANNELS, size=n, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    country = rng.choice([f"c{i:02d}" for i in range(30)], size=n)
    logit = -4.2 + 1.4 * x1 - 0.8 * x2 + np.where(channel == "moto", 1.8, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    amount = np.round(rng.lognormal(3.0, 0.8, size=n), 2)
    if anomalous_fraud:
        amount = np.where(y == 1, amount * 40, amount)
        x1 = np.where(y == 1, x1 + 5.0, x1)
    frame = pd.DataFrame({"amount": amount, "x1": x1, "x2": x2, "noise": noise, "channel": channel,
                          "country": country})
    frame.loc[frame.index % 37 == 0, "x2"] = np.nan
    return frame, y


@pytest.fixture(scope="module")
def windows() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {"train": synthetic(5000, 1), "valid": synthetic(2000, 2), "test": synthetic(2000, 3)}


@pytest.fixture(scope="module")
def fitted(windows: dict) -> dict[str, object]:
    (X, y), (Xv, yv) = windows["train"], windows["valid"]
    return {algo: make_model(algo, **FAST[algo]).fit(X, y, Xv, yv) for algo in ALGOS}


def _reload(model: object, folder: Path) -> tuple[object, list[str]]:
    files = model.save(folder)
    return model_class(model.algo).load(folder, json.loads(json.dumps(model.get_params())), model.matrix_), files


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_gives_the_same_scores_without_pickle(algo: str, fitted: dict, windows: dict,
                                                        tmp_path: Path) -> None:
    model = fitted[algo]
    X = windows["test"][0]
    loaded, files = _reload(model, tmp_path)
    assert files and all((tmp_path / f).is_file() for f in files)
    assert all(not (tmp_path / f).read_bytes().startswith(b"\x80") for f in files)
    before, after = model.predict_proba(X), loaded.predict_proba(X)
    if algo == "xgboost":
        np.testing.assert_array_equal(after, before)
    else:
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-9)


@pytest.mark.parametrize("algo", ALGOS)
def test_numpy_fast_path_matches_the_dataframe_path(algo: str, fitted: dict, windows: dict) -> None:
    model = fitted[algo]
    X = windows["test"][0]
    scores = model.predict_proba(X)
    np.testing.assert_array_equal(model.predict_numpy(model.matrix_.numpy(X)), scores)
    single = model.predict_numpy(model.matrix_.numpy(X, dtype=np.float32))
    if algo == "logreg":  # float32 rounds the inputs; the trees compare in float32 anyway
        np.testing.assert_allclose(single, scores, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(single, scores)
    one = X.iloc[[7]].astype(object).where(X.iloc[[7]].notna(), None).to_dict("records")[0]
    assert model.predict_numpy(model.matrix_.numpy(one))[0] == scores[7]
    assert scores.ndim == 1 and scores.min() >= 0 and scores.max() <= 1


@pytest.mark.parametrize("algo", ALGOS)
def test_unseen_categories_score_as_missing(algo: str, fitted: dict, windows: dict) -> None:
    model = fitted[algo]
    X = windows["test"][0].head(200)
    unseen = model.predict_proba(X.assign(channel="never-seen", country="zz"))
    missing = model.predict_proba(X.assign(channel=None, country=None))
    assert np.isfinite(unseen).all()
    np.testing.assert_array_equal(unseen, missing)
    assert not np.array_equal(unseen, model.predict_proba(X))


@pytest.mark.parametrize("algo", ["xgboost", "logreg"])
def test_supervised_models_learn(algo: str, fitted: dict, windows: dict) -> None:
    X, y = windows["test"]
    ap = average_precision_score(y, fitted[algo].predict_proba(X))
    assert ap > 3 * y.mean()


def test_anomaly_model_finds_anomalous_fraud_without_labels() -> None:
    X, y = synthetic(4000, 4, anomalous_fraud=True)
    Xt, yt = synthetic(2000, 5, anomalous_fraud=True)
    model = AnomalyModel(n_estimators=100, n_jobs=1).fit(X, None)
    assert average_precision_score(yt, model.predict_proba(Xt)) > 3 * yt.mean()
    with_labels = AnomalyModel(n_estimators=100, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(with_labels.predict_proba(Xt), model.predict_proba(Xt))


def test_anomaly_score_is_sklearn_isolation_forest_score(fitted: dict, windows: dict, tmp_path: Path) -> None:
    model = fitted["anomaly"]
    A = model.matrix_.numpy(windows["test"][0])
    loaded, _ = _reload(model, tmp_path)
    expected = -model.forest_.score_samples(model._impute(A))
    np.testing.assert_allclose(loaded.predict_numpy(A), expected, rtol=0, atol=1e-9)


def test_logreg_numpy_equals_the_sklearn_pipeline(fitted: dict, windows: dict, tmp_path: Path) -> None:
    model = fitted["logreg"]
    A = model.matrix_.numpy(windows["test"][0])
    loaded, _ = _reload(model, tmp_path)
    expected = model.pipeline_.predict_proba(A)[:, 1]
    np.testing.assert_allclose(loaded.predict_numpy(A), expected, rtol=0, atol=1e-9)


def test_logreg_class_weight_changes_the_model(windows: dict) -> None:
    (X, y), Xt = windows["train"], windows["test"][0]
    plain = LogRegModel().fit(X, y).predict_proba(Xt)
    balanced = LogRegModel(class_weight="balanced").fit(X, y).predict_proba(Xt)
    assert balanced.mean() > 3 * plain.mean()


def test_xgboost_is_deterministic_and_early_stopped(fitted: dict, windows: dict, tmp_path: Path) -> None:
    (X, y), (Xv, yv), Xt = windows["train"], windows["valid"], windows["test"][0]
    model = fitted["xgboost"]
    again = XGBoostModel(**FAST["xgboost"]).fit(X, y, Xv, yv)
    np.testing.assert_array_equal(again.predict_proba(Xt), model.predict_proba(Xt))
    assert 0 <= model.best_iteration_ < model.n_estimators - model.early_stopping_rounds
    loaded, _ = _reload(model, tmp_path)
    assert loaded.best_iteration_ == model.best_iteration_
    data = xgb.DMatrix(model.matrix_.frame(Xt.head(5)), enable_categorical=True)
    contribs = model.booster_.predict(data, pred_contribs=True, iteration_range=(0, model.best_iteration_ + 1))
    margin = model.booster_.predict(data, output_margin=True, iteration_range=(0, model.best_iteration_ + 1))
    np.testing.assert_allclose(contribs.sum(axis=1), margin, rtol=1e-5, atol=1e-5)


def test_xgboost_needs_a_validation_window(windows: dict) -> None:
    X, y = windows["train"]
    with pytest.raises(FraudcoreError, match="X_valid"):
        XGBoostModel(n_jobs=1).fit(X, y)


def test_xgboost_uses_native_categories(fitted: dict) -> None:
    booster = fitted["xgboost"].booster_
    assert booster.feature_types == ["float"] * 4 + ["c", "c"]
    assert booster.feature_names == fitted["xgboost"].matrix_.feature_names


@pytest.mark.parametrize("algo", ALGOS)
def test_params_are_json_and_rebuild_the_model(algo: str) -> None:
    model = make_model(algo, categorical=["channel"])
    params = json.loads(json.dumps(model.get_params()))
    assert params["categorical"] == ["channel"]
    assert make_model(algo, **params).get_params() == model.get_params()


def test_make_model_rejects_unknown_names() -> None:
    with pytest.raises(FraudcoreError, match="unknown model family"):
        make_model("forest")
    with pytest.raises(FraudcoreError, match="max_leaves"):
        make_model("logreg", max_leaves=3)


def test_load_reports_a_missing_file(fitted: dict, tmp_path: Path) -> None:
    model = fitted["logreg"]
    with pytest.raises(ModelArtifactError, match=r"model\.json"):
        LogRegModel.load(tmp_path, model.get_params(), model.matrix_)


def test_unfitted_model_says_so(windows: dict) -> None:
    with pytest.raises(FraudcoreError, match="not fitted"):
        LogRegModel().predict_proba(windows["test"][0])


def test_xgboost_without_early_stopping_trains_exactly_n_estimators_without_a_validation_window():
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    y = (X["a"] + rng.normal(scale=0.5, size=2000) > 1.5).astype(int).to_numpy()
    model = make_model("xgboost", n_estimators=17, early_stopping_rounds=0, n_jobs=1).fit(X, y)
    assert model.best_iteration_ == 16 and model.booster_.num_boosted_rounds() == 17
    with pytest.raises(FraudcoreError, match="X_valid"):
        make_model("xgboost", n_estimators=5, n_jobs=1).fit(X, y)


def test_device_is_checked_before_training_instead_of_a_silent_cpu_fallback(tmp_path) -> None:
    from fraudcore import models as models_module
    from fraudcore.errors import FraudcoreError
    from fraudcore.training import TrainRequest, train

    models_module.check_device("cpu")  # always fine
    with pytest.raises(FraudcoreError, match="unknown device 'tpu'"):
        models_module.check_device("tpu")
    problem = models_module._gpu_problem("cuda")
    if problem is None:  # a machine with a usable GPU: asking for it is fine
        models_module.check_device("cuda")
        return
    with pytest.raises(FraudcoreError, match="device='cuda' was asked for but"):
        models_module.check_device("cuda")
    missing = tmp_path / "never-read.parquet"  # the device is checked before the data is even opened
    with pytest.raises(FraudcoreError, match="train with device='cpu'"):
        train(missing, TrainRequest(model_id="gpu", device="cuda"), root=tmp_path / "artifacts")


def test_refit_trains_each_bag_for_its_kept_rounds_on_the_new_rows(windows: dict, tmp_path: Path) -> None:
    (X, y), (Xv, yv), Xt = windows["train"], windows["valid"], windows["test"][0]
    both, y_both = pd.concat([X, Xv], ignore_index=True), np.r_[y, yv]
    bagged = XGBoostModel(n_bags=2, n_jobs=1).fit(X, y, Xv, yv)
    rounds = bagged.bag_rounds_
    again = bagged.refit(both, y_both)
    assert again.get_params() == bagged.get_params() and again.bag_rounds_ == rounds
    assert again.booster_.num_boosted_rounds() == sum(rounds) == again.best_iteration_ + 1
    by_hand = [XGBoostModel(**{**bagged.bag(i).get_params(), "n_estimators": n, "early_stopping_rounds": 0})
               .fit(both, y_both) for i, n in enumerate(rounds)]
    expected = np.mean([m.booster_.predict(xgb.DMatrix(m.matrix_.frame(Xt), enable_categorical=True),
                                           output_margin=True) for m in by_hand], axis=0)
    margin = again.booster_.predict(xgb.DMatrix(again.matrix_.frame(Xt), enable_categorical=True),
                                    output_margin=True)
    np.testing.assert_allclose(margin, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(again.predict_proba(Xt), bagged.predict_proba(Xt))  # it learned from the new rows
    loaded, _ = _reload(again, tmp_path)  # trained without early stopping: the kept rounds survive the file
    assert loaded.best_iteration_ == again.best_iteration_
    np.testing.assert_array_equal(loaded.predict_proba(Xt), again.predict_proba(Xt))
    with pytest.raises(FraudcoreError, match="does not keep each bag's rounds"):  # not one bag of all the trees
        loaded.refit(both, y_both)


def test_refit_of_a_single_booster_keeps_its_tree_count(fitted: dict, windows: dict) -> None:
    (X, y), (Xv, yv) = windows["train"], windows["valid"]
    model = fitted["xgboost"]
    again = model.refit(pd.concat([X, Xv], ignore_index=True), np.r_[y, yv])
    assert again.booster_.num_boosted_rounds() == model.best_iteration_ + 1 == again.best_iteration_ + 1


@pytest.mark.parametrize("algo", ["logreg", "anomaly"])
def test_refit_of_other_families_is_a_fresh_fit_of_the_same_configuration(algo: str, fitted: dict,
                                                                          windows: dict) -> None:
    (X, y), (Xv, yv), Xt = windows["train"], windows["valid"], windows["test"][0]
    both, y_both = pd.concat([X, Xv], ignore_index=True), np.r_[y, yv]
    again = fitted[algo].refit(both, y_both)
    assert again.get_params() == fitted[algo].get_params()
    np.testing.assert_allclose(again.predict_proba(Xt), make_model(algo, **FAST[algo]).fit(both, y_both)
                               .predict_proba(Xt))
