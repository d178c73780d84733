"""Seed averaging: k boosters become one ordinary booster whose margin and exact SHAP are the bags' averages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from scipy.special import logit

from fraudcore.bagging import average_boosters
from fraudcore.errors import FraudcoreError
from fraudcore.explain import explain
from fraudcore.models import XGBoostModel, model_class
from tests.test_models import synthetic

SMALL = {"n_estimators": 80, "max_depth": 4, "early_stopping_rounds": 15, "n_jobs": 1}


@pytest.fixture(scope="module")
def windows() -> tuple:
    (X, y), (Xv, yv), (Xt, _) = synthetic(4000, 21), synthetic(1500, 22), synthetic(800, 23)
    return X, y, Xv, yv, Xt


@pytest.fixture(scope="module")
def models(windows: tuple) -> dict:
    X, y, Xv, yv, _ = windows
    singles = [XGBoostModel(**SMALL, random_state=s).fit(X, y, Xv, yv) for s in (5, 6, 7)]
    return {"singles": singles, "bagged": XGBoostModel(**SMALL, random_state=5, n_bags=3).fit(X, y, Xv, yv)}


def test_bagged_model_scores_the_mean_margin_of_its_seeds(models: dict, windows: tuple) -> None:
    singles, bagged = models["singles"], models["bagged"]
    Xt = windows[4]
    margins = np.mean([logit(m.predict_proba(Xt)) for m in singles], axis=0)
    np.testing.assert_allclose(logit(bagged.predict_proba(Xt)), margins, atol=1e-5)
    assert bagged.best_iteration_ == sum(m.best_iteration_ + 1 for m in singles) - 1
    assert bagged.booster_.num_boosted_rounds() == bagged.best_iteration_ + 1  # patience trees are dropped
    assert not np.allclose(singles[0].predict_proba(Xt), singles[1].predict_proba(Xt))  # different bags


def test_averaging_fitted_bags_is_what_fit_trains(models: dict, windows: tuple) -> None:
    singles, bagged = models["singles"], models["bagged"]
    again = XGBoostModel.averaged(singles)
    assert again.get_params() == bagged.get_params() and again.best_iteration_ == bagged.best_iteration_
    np.testing.assert_array_equal(again.predict_proba(windows[4]), bagged.predict_proba(windows[4]))
    with pytest.raises(FraudcoreError, match="seeds random_state, random_state"):
        XGBoostModel.averaged([singles[0], singles[2]])


def test_exact_shap_of_the_bagged_model_is_the_mean_of_the_seeds(models: dict, windows: tuple) -> None:
    Xt = windows[4].iloc[:300]
    bagged = explain(models["bagged"], Xt)
    each = [explain(m, Xt) for m in models["singles"]]
    np.testing.assert_allclose(bagged.values, np.mean([e.values for e in each], axis=0), atol=1e-4)
    np.testing.assert_allclose(bagged.base_values, np.mean([e.base_values for e in each], axis=0), atol=1e-4)
    np.testing.assert_allclose(bagged.margin, logit(models["bagged"].predict_proba(Xt)), atol=1e-4)


def test_bagged_model_saves_as_one_booster_and_loads_identically(models: dict, windows: tuple,
                                                                 tmp_path: Path) -> None:
    bagged = models["bagged"]
    assert bagged.save(tmp_path) == ["model.ubj"]
    params = json.loads(json.dumps(bagged.get_params()))
    loaded = XGBoostModel.load(tmp_path, params, bagged.matrix_)
    assert params["n_bags"] == 3 and loaded.best_iteration_ == bagged.best_iteration_
    np.testing.assert_array_equal(loaded.predict_proba(windows[4]), bagged.predict_proba(windows[4]))


def test_artifacts_saved_before_the_new_params_still_load(models: dict, windows: tuple, tmp_path: Path) -> None:
    single = models["singles"][0]
    single.save(tmp_path)
    new = {"colsample_bynode", "gamma", "reg_alpha", "max_delta_step", "n_bags"}
    old_params = {k: v for k, v in single.get_params().items() if k not in new}
    loaded = model_class("xgboost").load(tmp_path, old_params, single.matrix_)
    assert loaded.n_bags == 1 and loaded.gamma == 0.0 and loaded.max_delta_step == 0.0
    np.testing.assert_array_equal(loaded.predict_proba(windows[4]), single.predict_proba(windows[4]))


def test_new_params_reach_the_booster(windows: tuple) -> None:
    X, y, Xv, yv, _ = windows
    model = XGBoostModel(**SMALL, gamma=1.5, reg_alpha=0.3, colsample_bynode=0.5, max_delta_step=1.0).fit(X, y, Xv, yv)
    config = json.loads(model.booster_.save_config())["learner"]["gradient_booster"]
    train = config["tree_train_param"]
    assert float(train["gamma"]) == 1.5 and float(train["alpha"]) == pytest.approx(0.3)
    assert float(train["colsample_bynode"]) == 0.5 and float(train["max_delta_step"]) == 1.0


def test_averaging_refuses_what_it_cannot_average(windows: tuple) -> None:
    X, y, Xv, yv, _ = windows
    a = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(X[["x1", "x2"]], label=y), 5)
    b = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(Xv[["x1", "x2"]], label=yv), 5)
    with pytest.raises(FraudcoreError, match="same base score"):
        average_boosters([a, b], [5, 5])
    with pytest.raises(FraudcoreError, match="one round count per booster"):
        average_boosters([a], [5, 5])
    with pytest.raises(FraudcoreError, match="n_bags must be a whole number"):
        XGBoostModel(**SMALL, n_bags=0).fit(X, y, Xv, yv)
