"""The compiled predictor gives the booster's own inplace_predict values bit for bit, or steps aside."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from fraudcore import treepredict
from fraudcore.models import XGBoostModel
from fraudcore.treepredict import TreePredictor


def _booster(X: np.ndarray, y: np.ndarray, rounds: int = 20, types: list[str] | None = None, **params) -> xgb.Booster:
    dtrain = xgb.DMatrix(X, y, feature_types=types, enable_categorical=types is not None)
    return xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 1, "seed": 0, **params}, dtrain,
                     rounds)


def _want(booster: xgb.Booster, A: np.ndarray, n_trees: int) -> np.ndarray:
    return booster.inplace_predict(A, iteration_range=(0, n_trees)).astype(np.float64)


def _mixed(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = ((np.nan_to_num(X[:, 0]) + np.sin(3 * np.nan_to_num(X[:, 1])) + rng.normal(0, 0.5, n)) > 1).astype(int)
    return X, y


def test_the_session_model_scores_bit_for_bit_like_xgboost(scorer, trained) -> None:
    model = scorer.model
    n_trees = model.best_iteration_ + 1
    events = trained.frame.iloc[-300:].drop(columns=["is_fraud", "fraud_scenario"]).to_dict("records")
    history = scorer.frame_history(trained.frame)
    A = model.matrix_.numpy([e | scorer.features(e, history) for e in events])
    A[::5, 2] = np.nan  # missing values take the default branches
    predictor = TreePredictor.build(model.booster_, n_trees)
    assert predictor is not None and predictor.depth == 6
    got = predictor.predict(A)
    assert got.dtype == np.float64
    assert np.array_equal(got, _want(model.booster_, A, n_trees))
    assert model.compiled_ is not None  # the scorer compiled its model: predict_numpy runs the compiled path
    assert np.array_equal(model.predict_numpy(A), got)


def test_shallow_trees_and_stumps_are_padded_without_changing_the_answer() -> None:
    X, y = _mixed(3000, 1)
    booster = _booster(X, y, rounds=15, max_depth=4, min_child_weight=40)  # leaves at many depths
    predictor = TreePredictor.build(booster, 15)
    assert predictor is not None
    depths = {treepredict._depth(t) for t in json.loads(booster.save_raw("json"))["learner"][
        "gradient_booster"]["model"]["trees"]}
    assert len(depths) > 1 or min(depths) < 4  # some tree is shallower than the layout
    A, _ = _mixed(2000, 2)
    assert np.array_equal(predictor.predict(A), _want(booster, A, 15))
    stump = _booster(X, y, rounds=3, min_child_weight=1e9)  # no split can be made: every tree is one leaf
    predictor = TreePredictor.build(stump, 3)
    assert predictor is not None and predictor.depth == 0
    assert np.array_equal(predictor.predict(A), _want(stump, A, 3))


@pytest.mark.parametrize("onehot", [1, 64], ids=["partition", "one-hot"])
def test_categorical_splits_with_unseen_negative_and_missing_codes(onehot: int) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 12, size=4000).astype(float)
    amount = rng.gamma(2.0, 50.0, size=4000)
    y = (np.isin(codes, [1, 4, 7]) & (amount > 80) | (rng.random(4000) < 0.05)).astype(int)
    types = ["q", "c"]
    booster = _booster(np.column_stack([amount, codes]), y, types=types, max_cat_to_onehot=onehot)
    predictor = TreePredictor.build(booster, 20)
    assert predictor is not None and predictor.arrays["right_codes"].any()
    A = np.column_stack([rng.gamma(2.0, 50.0, size=600), rng.integers(-2, 20, size=600).astype(float)])
    A[::9, 1] = np.nan
    A[::11, 0] = np.nan
    assert np.array_equal(predictor.predict(A), _want(booster, A, 20))


def test_a_prefix_of_the_trees_and_threads_give_the_same_values(monkeypatch) -> None:
    X, y = _mixed(3000, 4)
    booster = _booster(X, y, rounds=30)
    A, _ = _mixed(3000, 5)
    monkeypatch.setattr(treepredict, "PARALLEL_ROWS", 100)
    one = TreePredictor.build(booster, 12, threads=1)
    two = TreePredictor.build(booster, 12, threads=2)
    assert one is not None and two is not None
    want = _want(booster, A, 12)
    assert np.array_equal(one.predict(A), want)
    assert np.array_equal(two.predict(A), want)
    assert not np.array_equal(want, _want(booster, A, 30))  # the prefix matters


def test_boosters_outside_the_layout_are_refused(monkeypatch) -> None:
    X, y = _mixed(2000, 6)
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
                      xgb.DMatrix(X, np.arange(len(y)) % 3), 3)
    forest = _booster(X, y, rounds=3, num_parallel_tree=2)
    dart = _booster(X, y, rounds=3, booster="dart", rate_drop=0.5)
    regression = xgb.train({"objective": "reg:squarederror", "nthread": 1}, xgb.DMatrix(X, y), 3)
    for booster in (multi, forest, dart, regression):
        assert TreePredictor.build(booster, 3) is None
    plain = _booster(X, y, rounds=3)
    assert TreePredictor.build(plain, 4) is None  # more trees than it has
    monkeypatch.setattr(treepredict, "MAX_DEPTH", 2)
    assert TreePredictor.build(plain, 3) is None


def test_a_predictor_that_disagrees_with_the_booster_is_never_used(monkeypatch) -> None:
    X, y = _mixed(2000, 7)
    model = XGBoostModel(n_estimators=10, early_stopping_rounds=0, n_jobs=1).fit(
        __import__("pandas").DataFrame(X, columns=list("abcd")), y)
    A, _ = _mixed(500, 8)
    want = model.predict_numpy(A)
    monkeypatch.setattr(treepredict, "_base_margins", lambda base: [np.float32(0.123)])
    assert model.compile() is False and model.compiled_ is None
    assert np.array_equal(model.predict_numpy(A), want)  # XGBoost's own predictor still answers
    monkeypatch.undo()
    assert model.compile() is True
    assert np.array_equal(model.predict_numpy(A), want)


def test_margins_past_the_sigmoid_cap_score_as_xgboost_does() -> None:
    X, y = _mixed(3000, 9)
    model = json.loads(_booster(np.nan_to_num(X), y, rounds=8, max_depth=1, base_score=0.5).save_raw("json"))
    for i, tree in enumerate(model["learner"]["gradient_booster"]["model"]["trees"]):
        # stump i: feature i % 4 below 0 adds -12 to the margin; eight of them reach -96, past XGBoost's cap at
        # -88.7 on exp's argument (its answer there is a float32 subnormal, not 0)
        tree["split_indices"][0], tree["split_conditions"], tree["default_left"] = i % 4, [0.0, -12.0, 0.0], [0, 0, 0]
    booster = xgb.Booster(model_file=bytearray(json.dumps(model).encode()))
    A = np.array([[-1.0] * 4, [1.0] * 4, [-1.0, -1.0, -1.0, 1.0]])
    predictor = TreePredictor.build(booster, 8)
    assert predictor is not None
    want = _want(booster, A, 8)
    assert want[0] > 0 and np.array_equal(predictor.predict(A), want)
