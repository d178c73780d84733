"""The TreeSHAP tables give the booster's own exact pred_contribs, and step aside where they cannot."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from fraudcore import explain as explain_module
from fraudcore import treeshap
from fraudcore.treeshap import TreeTables


def _reference(booster: xgb.Booster, A: np.ndarray, n_trees: int, types: list[str] | None = None) -> np.ndarray:
    dmatrix = xgb.DMatrix(A, feature_names=booster.feature_names, feature_types=types,
                          enable_categorical=types is not None)
    return booster.predict(dmatrix, pred_contribs=True, iteration_range=(0, n_trees))


def _booster(X: np.ndarray, y: np.ndarray, rounds: int = 20, types: list[str] | None = None, **params) -> xgb.Booster:
    dtrain = xgb.DMatrix(X, y, feature_types=types, enable_categorical=types is not None)
    return xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 1, "seed": 0, **params}, dtrain,
                     rounds)


def _records(scorer, trained, n: int) -> list[dict]:
    """The session model's inputs for the last ``n`` simulated events (online features over the simulated history)."""
    events = trained.frame.iloc[-n:].drop(columns=["is_fraud", "fraud_scenario"]).to_dict("records")
    history = scorer.frame_history(trained.frame)
    return [e | scorer.features(e, history) for e in events]


def _inputs(scorer, trained, n: int) -> np.ndarray:
    return scorer.model.matrix_.numpy(_records(scorer, trained, n))


def test_tables_equal_pred_contribs_on_the_session_model(scorer, trained) -> None:
    model = scorer.model
    n_trees = model.best_iteration_ + 1
    types = ["q"] * model.matrix_.n_numeric + ["c"] * len(model.matrix_.categorical)
    A = _inputs(scorer, trained, 200)
    A[::7, 3] = np.nan  # some missing values take the default branches
    tables = TreeTables.build(model.booster_, n_trees, types)
    assert tables is not None
    values, base = tables.contributions(A)
    want = _reference(model.booster_, A, n_trees, types)
    np.testing.assert_allclose(values, want[:, :-1], atol=1e-5)
    np.testing.assert_allclose(base, want[:, -1], atol=1e-5)
    margin = model.booster_.inplace_predict(A, iteration_range=(0, n_trees), predict_type="margin")
    np.testing.assert_allclose(base + values.sum(axis=1), margin, atol=1e-4)


def test_a_feature_split_several_times_on_one_path_is_merged_like_treeshap() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 2))
    y = ((np.sin(3 * X[:, 0]) + 0.3 * X[:, 1] + rng.normal(0, 0.3, 3000)) > 0.5).astype(int)
    booster = _booster(X, y, max_depth=7)  # with two features every deep path repeats one
    tables = TreeTables.build(booster, 20)
    assert tables is not None and int(tables.arrays["n_positions"].max()) <= 2
    assert int(tables.arrays["n_slots"].max()) > 2
    A = rng.normal(size=(300, 2))
    values, base = tables.contributions(A)
    want = _reference(booster, A, 20)
    np.testing.assert_allclose(values, want[:, :-1], atol=1e-5)
    np.testing.assert_allclose(base, want[:, -1], atol=1e-5)


def test_categorical_splits_unknown_and_missing_categories() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 12, size=4000).astype(float)
    amount = rng.gamma(2.0, 50.0, size=4000)
    y = (np.isin(codes, [1, 4, 7]) & (amount > 80) | (rng.random(4000) < 0.05)).astype(int)
    X = np.column_stack([amount, codes])
    types = ["q", "c"]
    booster = _booster(X, y, types=types, max_cat_to_onehot=1)
    tables = TreeTables.build(booster, 20, types)
    assert tables is not None and (tables.arrays["category_row"] >= 0).any()  # partition splits on the category
    assert tables.arrays["right_codes"].any()
    A = np.column_stack([rng.gamma(2.0, 50.0, size=300), rng.integers(-1, 16, size=300).astype(float)])
    A[A[:, 1] < 0, 1] = np.nan  # unknown categories arrive as missing; codes 12–15 were never seen in training
    values, _ = tables.contributions(A)
    np.testing.assert_allclose(values, _reference(booster, A, 20, types)[:, :-1], atol=1e-5)


def test_a_batch_split_across_threads_equals_row_by_row(scorer, trained) -> None:
    model = scorer.model
    tables = explain_module._explainer(model).tables
    assert tables is not None  # the default model is covered: explanations use the tables
    rng = np.random.default_rng(3)
    A = _inputs(scorer, trained, treeshap.PARALLEL_ROWS + 37)
    A[rng.random(A.shape) < 0.2] = np.nan
    batch, _ = tables.contributions(A)
    one_by_one = np.vstack([tables.contributions(A[i:i + 1])[0] for i in range(len(A))])
    np.testing.assert_array_equal(batch, one_by_one)


def test_boosters_outside_the_tables_fall_back_to_pred_contribs(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 3))
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "nthread": 1}, xgb.DMatrix(X, X[:, 0] > 0), 3)
    assert TreeTables.build(multi, 3) is None
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    binary = _booster(X, y, rounds=5)
    assert TreeTables.build(binary, 6) is None  # more trees than the booster has
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 1)
    assert TreeTables.build(binary, 5) is None  # a path with more distinct features than the tables allow
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 10)
    monkeypatch.setattr(treeshap, "CHECK_TOLERANCE", -1.0)  # a check that can never pass: the tables are refused
    assert TreeTables.build(binary, 5) is None


def test_explain_uses_pred_contribs_when_the_tables_are_refused(scorer, trained,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = scorer.model
    events = _records(scorer, trained, 50)
    with_tables = explain_module.explain(model, events)
    monkeypatch.setattr(explain_module.TreeTables, "build", classmethod(lambda cls, *a, **k: None))
    explain_module._EXPLAINERS.pop(model, None)
    try:
        fallback = explain_module._explainer(model)
        assert fallback.tables is None
        without = explain_module.explain(model, events)
    finally:
        explain_module._EXPLAINERS.pop(model, None)
    np.testing.assert_allclose(without.values, with_tables.values, atol=1e-5)
    np.testing.assert_allclose(without.base_values, with_tables.base_values, atol=1e-5)


def test_a_few_rows_walk_the_trees_and_give_the_three_pass_values_bit_for_bit(scorer, trained) -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 12, size=3000).astype(float)
    X = np.column_stack([rng.gamma(2.0, 50.0, size=3000), codes, rng.normal(size=3000)])
    y = ((np.isin(codes, [1, 4, 7]) & (X[:, 0] > 80)) | (X[:, 2] > 1.5)).astype(int)
    categorical = _booster(X, y, types=["q", "c", "q"], max_cat_to_onehot=1, max_depth=7)
    model = scorer.model
    session_types = ["q"] * model.matrix_.n_numeric + ["c"] * len(model.matrix_.categorical)
    cases = [(TreeTables.build(model.booster_, model.best_iteration_ + 1, session_types), _inputs(scorer, trained, 40)),
             (TreeTables.build(categorical, 20, ["q", "c", "q"]), X[:40].copy())]
    for tables, A in cases:
        assert tables is not None and len(tables.arrays["walk"]) == len(tables.arrays["feature"])
        A[::3, 0] = np.nan  # default sides
        for start in range(0, len(A), treeshap.WALK_ROWS):
            rows = np.ascontiguousarray(A[start:start + treeshap.WALK_ROWS])
            passes = np.zeros((len(rows), tables.n_features))
            tables._chunk(rows, passes)
            walked, _ = tables.contributions(rows)  # at most WALK_ROWS rows: the walk
            assert np.array_equal(walked, passes)


def test_trees_the_walk_cannot_hold_take_the_three_passes(scorer, trained, monkeypatch) -> None:
    model = scorer.model
    types = ["q"] * model.matrix_.n_numeric + ["c"] * len(model.matrix_.categorical)
    A = _inputs(scorer, trained, 4)
    walked = TreeTables.build(model.booster_, model.best_iteration_ + 1, types)
    monkeypatch.setattr(treeshap, "WALK_MAX_DEPTH", 3)  # paths deeper than the walk's stack would allow
    passes = TreeTables.build(model.booster_, model.best_iteration_ + 1, types)
    assert len(walked.arrays["walk"]) and not len(passes.arrays["walk"])
    assert np.array_equal(passes.contributions(A)[0], walked.contributions(A)[0])
