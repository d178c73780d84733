"""What every model family shares: the ``FraudModel`` protocol and the plumbing of params, matrix and scoring."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar, Protocol, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.matrix import MatrixSpec

__all__ = ["FraudModel", "existing_file"]


class FraudModel(Protocol):
    """What every family offers: fit, score a DataFrame or a matrix, report params, save and load."""

    algo: ClassVar[str]
    matrix_: MatrixSpec

    def fit(self, X: pd.DataFrame, y: ArrayLike, X_valid: pd.DataFrame | None = None,
            y_valid: ArrayLike | None = None) -> Self: ...
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...
    def predict_numpy(self, A: np.ndarray) -> np.ndarray: ...
    def refit(self, X: pd.DataFrame, y: ArrayLike) -> Self: ...
    def get_params(self) -> dict: ...
    def save(self, folder: Path) -> list[str]: ...
    @classmethod
    def load(cls, folder: Path, params: dict, matrix: MatrixSpec) -> Self: ...


class ModelBase:
    """Shared plumbing: constructor params by introspection, matrix learning, DataFrame scoring via the matrix."""

    algo: ClassVar[str]
    matrix_: MatrixSpec
    categorical: list[str] | None

    def get_params(self) -> dict:
        """Constructor params as a JSON-able dict."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Fraud score in [0, 1] for each row of ``X``."""
        return self.predict_numpy(self._fitted_matrix().numpy(X))

    def refit(self, X: pd.DataFrame, y: ArrayLike) -> Self:
        """A new model of this configuration trained on ``X``/``y`` (e.g. train + validation once the
        configuration is chosen) without a validation window."""
        return type(self)(**self.get_params()).fit(X, y)

    @classmethod
    def _restored(cls, params: dict, matrix: MatrixSpec) -> Self:
        model = cls(**params)
        model.matrix_ = matrix
        return model

    def _learn_matrix(self, X: pd.DataFrame) -> MatrixSpec:
        self.matrix_ = MatrixSpec.infer(X, categorical=self.categorical)
        return self.matrix_

    def _fitted_matrix(self) -> MatrixSpec:
        if not hasattr(self, "matrix_"):
            raise FraudcoreError(f"this {self.algo} model is not fitted yet; call fit (or load) first")
        return self.matrix_

    def _check_width(self, A: np.ndarray) -> np.ndarray:
        A = np.asarray(A, dtype=float)
        width = len(self._fitted_matrix().feature_names)
        if A.ndim != 2 or A.shape[1] != width:
            raise FraudcoreError(f"expected a 2-D matrix with {width} columns (MatrixSpec.numpy); got {A.shape}")
        return A


def existing_file(folder: Path, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise ModelArtifactError(f"{path} is missing; the model folder is incomplete, retrain or restore it")
    return path
