"""Isolation forest trained without labels (for teams with few labels), saved as plain arrays and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.ensemble import IsolationForest

from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.matrix import MatrixSpec
from fraudcore.models_base import ModelBase, existing_file

CHUNK_ROWS = 4096  # rows per batch when walking every isolation tree at once


class AnomalyModel(ModelBase):
    """Isolation forest trained without labels; score = 2^(-E[h]/c(n)) in [0, 1], higher is more anomalous."""

    algo: ClassVar[str] = "anomaly"

    def __init__(self, n_estimators: int = 200, max_samples: int | float | str = "auto", random_state: int = 0,
                 n_jobs: int = 2, categorical: list[str] | None = None) -> None:
        self.n_estimators, self.max_samples, self.random_state = n_estimators, max_samples, random_state
        self.n_jobs, self.categorical = n_jobs, categorical

    def fit(self, X: pd.DataFrame, y: ArrayLike | None = None, X_valid: pd.DataFrame | None = None,
            y_valid: ArrayLike | None = None) -> Self:
        """Fit the forest on ``X`` alone (labels are ignored) and export its trees to arrays."""
        spec = self._learn_matrix(X)
        A = spec.numpy(X)
        self.median_ = pd.DataFrame(A[:, : spec.n_numeric]).median().fillna(0.0).to_numpy(dtype=np.float64)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                       random_state=self.random_state, n_jobs=self.n_jobs).fit(self._impute(A))
        self.trees_ = _export_forest(self.forest_)
        self._walk_ = _walk_arrays(self.trees_)
        return self

    def predict_numpy(self, A: np.ndarray) -> np.ndarray:
        """Anomaly score of ``MatrixSpec.numpy`` rows, walking the exported trees in numpy."""
        X = self._impute(self._check_width(A)).astype(np.float32)
        t = self.trees_
        left, right, leaf_depth = self._walk_
        scores = np.empty(len(X))
        for lo in range(0, len(X), CHUNK_ROWS):
            chunk = X[lo : lo + CHUNK_ROWS]
            base = (np.arange(len(chunk)) * chunk.shape[1])[:, None]
            node = np.broadcast_to(t["root"], (len(chunk), len(t["root"])))
            for _ in range(int(t["max_depth"])):
                go_left = chunk.ravel()[base + t["feature"][node]] <= t["threshold"][node]
                node = np.where(go_left, left[node], right[node])
            scores[lo : lo + CHUNK_ROWS] = leaf_depth[node].sum(axis=1)
        denominator = len(t["root"]) * _average_path_length(np.array([float(t["max_samples"])]))[0]
        return 2.0 ** (-np.divide(scores, denominator, out=np.ones_like(scores), where=denominator != 0))

    def save(self, folder: Path) -> list[str]:
        """Write the trees' arrays and the imputation medians as ``model.npz`` (no object arrays)."""
        self._fitted_matrix()
        np.savez(Path(folder) / "model.npz", median=self.median_, **self.trees_)
        return ["model.npz"]

    @classmethod
    def load(cls, folder: Path, params: dict, matrix: MatrixSpec) -> Self:
        """Rebuild from ``model.npz`` with the saved params and matrix."""
        model = cls._restored(params, matrix)
        with np.load(existing_file(folder, "model.npz"), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        model.median_ = arrays.pop("median")
        if model.median_.shape != (matrix.n_numeric,):
            raise ModelArtifactError(f"model.npz in {folder} has {model.median_.size} medians; expected "
                                     f"{matrix.n_numeric} numeric features")
        model.trees_ = arrays
        model._walk_ = _walk_arrays(arrays)
        return model

    def _impute(self, A: np.ndarray) -> np.ndarray:
        k = self._fitted_matrix().n_numeric
        X = np.array(A, dtype=np.float64)
        X[:, :k] = np.where(np.isnan(X[:, :k]), self.median_, X[:, :k])
        X[:, k:] = np.nan_to_num(X[:, k:], nan=-1.0)
        return X


def _export_forest(forest: IsolationForest) -> dict[str, np.ndarray]:
    """Every tree's nodes in flat arrays (children offset to flat indices, -1 at leaves), plus forest constants."""
    if any(len(f) != forest.n_features_in_ for f in forest.estimators_features_):
        raise FraudcoreError("feature subsampling is not supported by the exported isolation forest")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("left", "right", "feature", "threshold", "n_samples",
                                                             "depth", "root")}
    offset = 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left < 0
        parts["left"].append(np.where(leaf, -1, tree.children_left + offset).astype(np.int64))
        parts["right"].append(np.where(leaf, -1, tree.children_right + offset).astype(np.int64))
        parts["feature"].append(np.where(leaf, 0, tree.feature).astype(np.int64))
        parts["threshold"].append(tree.threshold.astype(np.float64))
        parts["n_samples"].append(tree.n_node_samples.astype(np.float64))
        parts["depth"].append(tree.compute_node_depths().astype(np.float64))
        parts["root"].append(np.array([offset], dtype=np.int64))
        offset += tree.node_count
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["max_depth"] = np.asarray(max(e.tree_.max_depth for e in forest.estimators_), dtype=np.int64)
    out["max_samples"] = np.asarray(forest.max_samples_, dtype=np.int64)
    return out


def _walk_arrays(t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Children with leaves pointing at themselves, and each leaf's path length h(x) = depth + c(n) - 1."""
    here = np.arange(len(t["left"]))
    left, right = (np.where(t["left"] < 0, here, t[side]) for side in ("left", "right"))
    return left, right, t["depth"] + _average_path_length(t["n_samples"]) - 1.0


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): mean path length of an unsuccessful search in a binary search tree of n points (0 for n <= 1)."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    c = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, c))
