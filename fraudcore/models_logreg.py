"""Logistic regression: scaled numerics and one-hot categoricals; the transparent baseline, saved as plain JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fraudcore.errors import ModelArtifactError
from fraudcore.matrix import MatrixSpec
from fraudcore.models_base import ModelBase, existing_file


class LogRegModel(ModelBase):
    """Logistic regression on median-imputed standardised numerics and one-hot categoricals (unknown → zeros)."""

    algo: ClassVar[str] = "logreg"

    def __init__(self, C: float = 1.0, class_weight: str | None = None, max_iter: int = 2000,
                 categorical: list[str] | None = None) -> None:
        self.C, self.class_weight, self.max_iter, self.categorical = C, class_weight, max_iter, categorical

    def fit(self, X: pd.DataFrame, y: ArrayLike, X_valid: pd.DataFrame | None = None,
            y_valid: ArrayLike | None = None) -> Self:
        """Fit the scikit-learn pipeline on ``X``/``y`` and keep its coefficients as plain arrays."""
        spec = self._learn_matrix(X)
        k = spec.n_numeric
        numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
        onehot = OneHotEncoder(categories=[np.arange(len(v), dtype=float) for v in spec.categorical.values()],
                               handle_unknown="ignore", sparse_output=False)
        columns = ColumnTransformer([("num", numeric, list(range(k))),
                                     ("cat", onehot, list(range(k, len(spec.feature_names))))])
        clf = LogisticRegression(C=self.C, class_weight=self.class_weight, solver="lbfgs", max_iter=self.max_iter)
        self.pipeline_: Pipeline = make_pipeline(columns, clf).fit(spec.numpy(X), np.asarray(y))
        imputer, scaler = columns.named_transformers_["num"].steps[0][1], columns.named_transformers_["num"][-1]
        self.state_ = {"median": imputer.statistics_.tolist(), "mean": scaler.mean_.tolist(),
                       "scale": scaler.scale_.tolist(), "coef": clf.coef_[0].tolist(),
                       "intercept": float(clf.intercept_[0]), "onehot_mean": self._onehot_mean(columns, spec, X)}
        return self

    @staticmethod
    def _onehot_mean(columns: ColumnTransformer, spec: MatrixSpec, X: pd.DataFrame) -> list[float]:
        """Training share of every one-hot column (the linear explanation's base point for categoricals)."""
        if not spec.categorical:
            return []
        return columns.named_transformers_["cat"].transform(spec.numpy(X)[:, spec.n_numeric:]).mean(0).tolist()

    def predict_numpy(self, A: np.ndarray) -> np.ndarray:
        """sigmoid(Xw + b) computed in numpy from the saved coefficients."""
        A, s, k = self._check_width(A), self.state_, self._fitted_matrix().n_numeric
        coef = np.asarray(s["coef"])
        numeric = np.where(np.isnan(A[:, :k]), np.asarray(s["median"]), A[:, :k])
        margin = ((numeric - np.asarray(s["mean"])) / np.asarray(s["scale"])) @ coef[:k] + s["intercept"]
        start = k
        for j, levels in enumerate(self.matrix_.categorical.values(), start=k):
            code = A[:, j]
            known = ~np.isnan(code) & (code >= 0) & (code < len(levels))
            margin[known] += coef[start + code[known].astype(np.int64)]
            start += len(levels)
        return expit(margin)

    def save(self, folder: Path) -> list[str]:
        """Write coefficients, intercept, medians, means and scales as ``model.json``."""
        self._fitted_matrix()
        (Path(folder) / "model.json").write_text(json.dumps({"format": "fraudcore-logreg-1", **self.state_}))
        return ["model.json"]

    @classmethod
    def load(cls, folder: Path, params: dict, matrix: MatrixSpec) -> Self:
        """Rebuild from ``model.json`` with the saved params and matrix."""
        model = cls._restored(params, matrix)
        state = json.loads(existing_file(folder, "model.json").read_text())
        width = matrix.n_numeric + sum(len(v) for v in matrix.categorical.values())
        if state.pop("format", None) != "fraudcore-logreg-1" or len(state["coef"]) != width:
            raise ModelArtifactError(f"model.json in {folder} does not fit the matrix ({width} coefficients expected)")
        model.state_ = state
        return model
