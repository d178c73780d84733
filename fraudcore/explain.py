"""Per-feature contributions in log-odds, one value object for one event or a batch, and plain-language reasons.

XGBoost: exact TreeSHAP (never the approximate Saabas ``approx_contribs``) on the same matrix ``predict_numpy``
scores, from per-leaf tables (fraudcore.treeshap: 5–15× faster than the booster's own ``pred_contribs``, checked
against it when built), or from ``pred_contribs`` for a booster the tables do not cover. Logistic regression: exact
linear terms mapped back to the original columns. For both, ``base_values + values.sum(axis=1)`` equals the model's
margin (logit of ``predict_proba``).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.special import expit

from fraudcore.errors import FraudcoreError
from fraudcore.matrix import MatrixSpec
from fraudcore.treeshap import TreeTables

__all__ = ["Explanation", "Reason", "explain", "explain_records", "reason_text", "reasons_frame",
           "record_reasons", "top_reasons"]

Rows = pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]
SINGLE_THREAD_ROWS = 64  # up to this many rows are explained on one thread (see _TreeExplainer)
SMALL_FRAME_ROWS = 16  # up to this many frame rows are read as records (same matrix, a fraction of the time)


@dataclass(frozen=True, eq=False)
class Explanation:
    """Contributions ``values`` (n, f) and ``base_values`` (n,) in log-odds, with the inputs they explain."""

    values: np.ndarray
    base_values: np.ndarray
    data: pd.DataFrame
    feature_names: list[str]

    def __post_init__(self) -> None:
        n, f = len(self.data), len(self.feature_names)
        if self.values.shape != (n, f) or self.base_values.shape != (n,):
            raise FraudcoreError(f"an explanation needs values ({n}, {f}) and base_values ({n},) for {n} rows "
                                 f"of {f} features; got {self.values.shape} and {self.base_values.shape}")

    def __len__(self) -> int:
        return len(self.base_values)

    def __getitem__(self, rows: int | slice | np.ndarray | Sequence[int]) -> Explanation:
        """The selected rows as an Explanation (an integer gives a one-row Explanation)."""
        if isinstance(rows, int | np.integer):
            i = int(rows) + len(self) if rows < 0 else int(rows)
            if not 0 <= i < len(self):
                raise IndexError(f"row {rows} is out of range for an explanation of {len(self)} rows")
            rows = slice(i, i + 1)
        picked = rows if isinstance(rows, slice) else np.asarray(rows)
        return Explanation(self.values[picked], self.base_values[picked], self.data.iloc[picked],
                           self.feature_names)

    @property
    def margin(self) -> np.ndarray:
        """The model's log-odds: base plus the sum of contributions."""
        return self.base_values + self.values.sum(axis=1)

    @property
    def probability(self) -> np.ndarray:
        """The model's fraud probability, sigmoid(margin)."""
        return expit(self.margin)


class _TreeExplainer:
    """A booster's TreeSHAP tables (or the booster, its best iteration range and a one-thread copy where the tables do
    not cover it), kept per model so each call only computes.

    On the ``pred_contribs`` path a few rows run on the one-thread copy: on a busy machine, waking a thread pool for
    one event costs ten times the TreeSHAP work itself. Batches use the model's booster and its threads.
    """

    def __init__(self, model: Any) -> None:
        self.source = (model.booster_, model.best_iteration_, model.matrix_)
        self.booster, self.spec = model.booster_, model.matrix_
        self.dtypes = {c: pd.CategoricalDtype(levels) for c, levels in self.spec.categorical.items()}
        self.iteration_range = (0, model.best_iteration_ + 1)
        self.types = ["q"] * self.spec.n_numeric + ["c"] * len(self.spec.categorical)
        self.nthread = int(getattr(model, "n_jobs", 0) or 0)
        self.tables = TreeTables.build(self.booster, model.best_iteration_ + 1, self.types)
        self.single = None
        if self.tables is None:
            self.single = model.booster_.copy()
            self.single.set_param({"nthread": 1})

    def contributions(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.tables is not None:
            return self.tables.contributions(A)
        few = len(A) <= SINGLE_THREAD_ROWS
        dmatrix = xgb.DMatrix(A, feature_names=self.spec.feature_names, feature_types=self.types,
                              enable_categorical=True, nthread=1 if few else self.nthread)
        booster = self.single if few else self.booster
        out = booster.predict(dmatrix, pred_contribs=True, iteration_range=self.iteration_range)
        out = np.asarray(out, dtype=np.float64)
        return out[:, :-1], out[:, -1]


class _LinearExplainer:
    """Coefficients folded back onto the original columns; the reference is the mean of the training design."""

    def __init__(self, model: Any) -> None:
        state, spec = model.state_, model.matrix_
        self.source, self.spec, k = (state, spec), spec, spec.n_numeric
        self.dtypes = {c: pd.CategoricalDtype(levels) for c, levels in spec.categorical.items()}
        coef = np.asarray(state["coef"], dtype=np.float64)
        self.median, self.mean = np.asarray(state["median"], float), np.asarray(state["mean"], float)
        self.scale, self.coef_numeric = np.asarray(state["scale"], float), coef[:k]
        sizes = [len(levels) for levels in spec.categorical.values()]
        # Training share of each one-hot column when the model saved it, else equal shares per level.
        shares = state.get("onehot_mean") or np.concatenate([np.full(s, 1.0 / s) for s in sizes] or [np.empty(0)])
        shares = np.asarray(shares, dtype=np.float64)
        bounds = np.cumsum(sizes)[:-1]
        self.cat_coef = np.split(coef[k:], bounds) if sizes else []
        self.cat_ref = [float(w @ p) for w, p in zip(self.cat_coef, np.split(shares, bounds) if sizes else [],
                                                     strict=True)]
        self.base = float(state["intercept"]) + float(sum(self.cat_ref))

    def contributions(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.spec.n_numeric
        values = np.empty_like(A, dtype=np.float64)
        numeric = np.where(np.isnan(A[:, :k]), self.median, A[:, :k])
        values[:, :k] = (numeric - self.mean) / self.scale * self.coef_numeric
        for j, (w, ref) in enumerate(zip(self.cat_coef, self.cat_ref, strict=True), start=k):
            code = A[:, j]
            known = ~np.isnan(code) & (code >= 0) & (code < len(w))
            values[:, j] = np.where(known, w[np.where(known, code, 0).astype(np.int64)], 0.0) - ref
        return values, np.full(len(A), self.base)


_EXPLAINERS: weakref.WeakKeyDictionary[Any, _TreeExplainer | _LinearExplainer] = weakref.WeakKeyDictionary()


def _explainer(model: Any) -> _TreeExplainer | _LinearExplainer:
    """The cached explainer of ``model``, rebuilt only when the model was refitted or reloaded."""
    algo = getattr(model, "algo", None)
    if algo not in ("xgboost", "logreg"):
        raise FraudcoreError(
            f"explanations are available for xgboost and logreg models; this is a {algo or type(model).__name__} "
            "model (an isolation forest's score has no additive per-feature contributions). Explain a supervised "
            "model trained on the same features, or rank anomaly alerts by score"
        )
    if not hasattr(model, "matrix_"):
        raise FraudcoreError(f"this {algo} model is not fitted yet; call fit (or load) before explaining it")
    cached = _EXPLAINERS.get(model)
    current = (model.booster_, model.best_iteration_, model.matrix_) if algo == "xgboost" else \
        (model.state_, model.matrix_)
    if cached is None or any(a is not b for a, b in zip(cached.source, current, strict=True)):
        cached = _TreeExplainer(model) if algo == "xgboost" else _LinearExplainer(model)
        _EXPLAINERS[model] = cached
    return cached


def _inputs(spec: MatrixSpec, dtypes: dict[str, pd.CategoricalDtype], A: np.ndarray,
            index: pd.Index) -> pd.DataFrame:
    """The matrix as the model's inputs: numerics as float64, categoricals as their labels (unknown → NaN)."""
    k = spec.n_numeric
    numeric = pd.DataFrame(A[:, :k], columns=spec.numeric, index=index)
    if not spec.categorical:
        return numeric
    categorical = {}
    for j, (column, dtype) in enumerate(dtypes.items(), start=k):
        codes = np.where(np.isnan(A[:, j]), -1, A[:, j]).astype(np.int64)
        categorical[column] = pd.Categorical.from_codes(codes, dtype=dtype)
    return pd.concat([numeric, pd.DataFrame(categorical, index=index)], axis=1)


def _matrix(spec: MatrixSpec, X: Rows) -> np.ndarray:
    """``MatrixSpec.numpy`` of ``X``; a few frame rows go through records, which is much cheaper per row."""
    if isinstance(X, pd.DataFrame) and len(X) <= SMALL_FRAME_ROWS:
        names = [str(c) for c in X.columns]
        return spec.numpy([dict(zip(names, values, strict=True)) for values in X.to_numpy(dtype=object)])
    return spec.numpy(X)


def explain(model: Any, X: Rows) -> Explanation:
    """Contributions of every feature to the model's log-odds for each row of ``X`` (a frame, a record or records)."""
    explainer = _explainer(model)
    spec = explainer.spec
    A = _matrix(spec, X)
    if len(A):
        values, base = explainer.contributions(A)
    else:
        values, base = np.zeros((0, len(spec.feature_names))), np.zeros(0)
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(A))
    return Explanation(values, base, _inputs(spec, explainer.dtypes, A, index), list(spec.feature_names))


def explain_records(model: Any, records: Sequence[Mapping[str, Any]], matrix: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """``explain`` of records without building a DataFrame: contributions, base values and each row's inputs as a
    dict (numbers as floats, categories as their label, None when unknown), the values ``Explanation.data`` holds.
    ``matrix``: the records' ``MatrixSpec.numpy`` when the caller has it already."""
    explainer = _explainer(model)
    spec = explainer.spec
    A = spec.numpy(list(records)) if matrix is None else matrix
    if len(A):
        values, base = explainer.contributions(A)
    else:
        values, base = np.zeros((0, len(spec.feature_names))), np.zeros(0)
    k, levels = spec.n_numeric, [list(v) for v in spec.categorical.values()]
    inputs = []
    for row in A:
        data = dict(zip(spec.numeric, row[:k].tolist(), strict=True))
        for column, names, code in zip(spec.categorical, levels, row[k:].tolist(), strict=True):
            data[column] = None if code != code or code < 0 else names[int(code)]
        inputs.append(data)
    return values, base, inputs


# Reasons live in fraudcore.reasons; re-exported here so callers can take explanations and reasons from one place.
from fraudcore.reasons import Reason, reason_text, reasons_frame, record_reasons, top_reasons  # noqa: E402
