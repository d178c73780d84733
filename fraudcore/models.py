"""Three model families behind one protocol: gradient-boosted trees, logistic regression, isolation forest.

Gradient-boosted trees live here; logistic regression in ``models_logreg``, the isolation forest in
``models_anomaly``, the shared protocol and plumbing in ``models_base``. Every model learns its ``MatrixSpec`` in
``fit`` (``categorical`` names the categorical columns; by default text and category dtypes), scores DataFrames
with ``predict_proba`` and ``MatrixSpec.numpy`` rows with ``predict_numpy`` (the fast path; both give the same
scores), and saves to plain files, never pickle.
"""

from __future__ import annotations

import inspect
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import xgboost as xgb
from numpy.typing import ArrayLike

from fraudcore.bagging import average_boosters
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.matrix import MatrixSpec
from fraudcore.models_anomaly import AnomalyModel
from fraudcore.models_base import FraudModel, ModelBase, existing_file
from fraudcore.models_logreg import LogRegModel
from fraudcore.treepredict import TreePredictor

__all__ = ["ALGOS", "AnomalyModel", "FraudModel", "LogRegModel", "XGBoostModel", "check_device", "make_model",
           "model_class"]

ALGOS = ("xgboost", "logreg", "anomaly")
CHUNK_ROWS = 4096  # rows per batch when walking every isolation tree at once


class XGBoostModel(ModelBase):
    """Gradient-boosted trees (hist, native categoricals), early-stopped on average precision in validation.

    ``n_bags > 1`` trains that many boosters (seeds ``random_state + i``, each early-stopped) and keeps their
    average as one booster (fraudcore.bagging). ``device="cuda"`` trains on the GPU; the trained booster then
    predicts on the CPU, like a loaded one.
    """

    algo: ClassVar[str] = "xgboost"

    def __init__(self, n_estimators: int = 600, learning_rate: float = 0.1, max_depth: int = 6,
                 min_child_weight: float = 1.0, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 scale_pos_weight: float = 1.0, reg_lambda: float = 1.0, early_stopping_rounds: int = 50,
                 device: str = "cpu", n_jobs: int = 2, random_state: int = 0,
                 categorical: list[str] | None = None, colsample_bynode: float = 1.0, gamma: float = 0.0,
                 reg_alpha: float = 0.0, max_delta_step: float = 0.0, n_bags: int = 1) -> None:
        self.n_estimators, self.learning_rate, self.max_depth = n_estimators, learning_rate, max_depth
        self.min_child_weight, self.subsample, self.colsample_bytree = min_child_weight, subsample, colsample_bytree
        self.scale_pos_weight, self.reg_lambda = scale_pos_weight, reg_lambda
        self.early_stopping_rounds, self.device, self.n_jobs = early_stopping_rounds, device, n_jobs
        self.random_state, self.categorical = random_state, categorical
        self.colsample_bynode, self.gamma, self.reg_alpha = colsample_bynode, gamma, reg_alpha
        self.max_delta_step, self.n_bags = max_delta_step, n_bags

    def fit(self, X: pd.DataFrame, y: ArrayLike, X_valid: pd.DataFrame | None = None,
            y_valid: ArrayLike | None = None) -> Self:
        """Train on ``X``/``y``, stopping when validation AP stops improving (``early_stopping_rounds=0``: exactly
        ``n_estimators`` rounds and no validation window, e.g. to refit a chosen configuration on more data)."""
        if not isinstance(self.n_bags, int) or self.n_bags < 1:
            raise FraudcoreError(f"n_bags must be a whole number >= 1; got {self.n_bags!r}")
        if self.n_bags > 1:
            return self._average([self.bag(i).fit(X, y, X_valid, y_valid) for i in range(self.n_bags)])
        stopping = bool(self.early_stopping_rounds)
        check_device(self.device)
        if stopping and (X_valid is None or y_valid is None):
            raise FraudcoreError("xgboost needs X_valid and y_valid for early stopping; pass the validation window")
        spec = self._learn_matrix(X)
        dtrain = xgb.DMatrix(spec.frame(X), label=np.asarray(y), enable_categorical=True, nthread=self.n_jobs)
        evals = []
        if stopping:
            evals = [(xgb.DMatrix(spec.frame(X_valid), label=np.asarray(y_valid), enable_categorical=True,
                                  nthread=self.n_jobs), "valid")]
        self.booster_ = xgb.train(self._train_params(), dtrain, num_boost_round=self.n_estimators, evals=evals,
                                  early_stopping_rounds=self.early_stopping_rounds if stopping else None,
                                  verbose_eval=False)
        self.booster_.set_param({"device": "cpu"})  # score where the data lives, as a loaded model does
        self.best_iteration_ = int(self.booster_.best_iteration) if stopping else self.n_estimators - 1
        self.booster_.set_attr(best_iteration=str(self.best_iteration_))  # kept in the file: load reads it back
        return self

    def refit(self, X: pd.DataFrame, y: ArrayLike) -> XGBoostModel:
        """This configuration trained again on ``X``/``y`` (e.g. train + validation) without a validation window:
        each bag (seed) for the rounds early stopping kept for it, averaged as before; the same number of trees."""
        rounds = getattr(self, "bag_rounds_", None)
        if rounds is None and self.n_bags > 1:  # a loaded average: its file does not say where each bag ends
            raise FraudcoreError(f"this model averages {self.n_bags} bags and was loaded from its file, which does "
                                 "not keep each bag's rounds; train it again (train --refit) instead of refitting")
        rounds = rounds or [self.best_iteration_ + 1]
        fits = [XGBoostModel(**{**self.bag(i).get_params(), "n_estimators": n, "early_stopping_rounds": 0}).fit(X, y)
                for i, n in enumerate(rounds)]
        return XGBoostModel(**self.get_params())._average(fits)

    def bag(self, i: int) -> XGBoostModel:
        """The unfitted single-seed model that is bag ``i`` of this one (seed ``random_state + i``)."""
        return XGBoostModel(**{**self.get_params(), "random_state": self.random_state + i, "n_bags": 1})

    @classmethod
    def averaged(cls, bags: list[XGBoostModel]) -> XGBoostModel:
        """The ``n_bags=len(bags)`` model from fitted bags 0, 1, … of it: what its ``fit`` would train."""
        model = cls(**{**bags[0].get_params(), "n_bags": len(bags)})
        if [b.get_params() for b in bags] != [model.bag(i).get_params() for i in range(len(bags))]:
            raise FraudcoreError("bags must share their params and have seeds random_state, random_state + 1, …")
        return model._average(bags)

    def _average(self, bags: list[XGBoostModel]) -> Self:
        rounds = [bag.best_iteration_ + 1 for bag in bags]
        self.matrix_, self.bag_rounds_ = bags[0].matrix_, rounds
        self.booster_ = bags[0].booster_ if len(bags) == 1 else average_boosters([b.booster_ for b in bags], rounds)
        self.booster_.set_param({"device": "cpu", "nthread": self.n_jobs})
        self.best_iteration_ = sum(rounds) - 1
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Fraud probability for each row of ``X`` (categoricals carried as pandas categories)."""
        return self._predict(self._fitted_matrix().frame(X))

    def predict_numpy(self, A: np.ndarray) -> np.ndarray:
        """Fraud probability for ``MatrixSpec.numpy`` rows (category codes, NaN for unknown)."""
        A = self._check_width(A)
        compiled = getattr(self, "compiled_", None)
        return compiled.predict(A) if compiled is not None else self._predict(A)

    def compile(self) -> bool:
        """Predict numpy rows with the compiled predictor (fraudcore.treepredict: the same float32 values, checked
        bit for bit when built; no per-call overhead); False, keeping XGBoost's predictor, where it does not apply."""
        self.compiled_ = TreePredictor.build(self.booster_, self.best_iteration_ + 1, threads=self.n_jobs)
        return self.compiled_ is not None

    def save(self, folder: Path) -> list[str]:
        """Write the booster as XGBoost's own UBJSON (``model.ubj``)."""
        self._fitted_matrix()
        self.booster_.save_model(Path(folder) / "model.ubj")
        return ["model.ubj"]

    @classmethod
    def load(cls, folder: Path, params: dict, matrix: MatrixSpec) -> Self:
        """Rebuild from ``model.ubj`` with the saved params and matrix."""
        model = cls._restored(params, matrix)
        model.booster_ = xgb.Booster(params={"nthread": model.n_jobs}, model_file=existing_file(folder, "model.ubj"))
        model.best_iteration_ = int(model.booster_.best_iteration)
        if model.booster_.feature_names != matrix.feature_names:
            raise ModelArtifactError(
                f"model.ubj expects features {model.booster_.feature_names} but the metadata lists "
                f"{matrix.feature_names}; the artifact folder is inconsistent, retrain or restore it"
            )
        return model

    def _train_params(self) -> dict[str, Any]:
        return {
            "objective": "binary:logistic", "eval_metric": "aucpr", "tree_method": "hist", "device": self.device,
            "nthread": self.n_jobs, "seed": self.random_state, "eta": self.learning_rate,
            "max_depth": self.max_depth, "min_child_weight": self.min_child_weight, "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree, "scale_pos_weight": self.scale_pos_weight,
            "lambda": self.reg_lambda, "colsample_bynode": self.colsample_bynode, "gamma": self.gamma,
            "alpha": self.reg_alpha, "max_delta_step": self.max_delta_step,
        }

    def _predict(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        scores = self.booster_.inplace_predict(data, iteration_range=(0, self.best_iteration_ + 1))
        return np.asarray(scores, dtype=np.float64)


def check_device(device: str) -> None:
    """Raise a clear error unless XGBoost can train on ``device`` ("cpu", "cuda" or "cuda:N") in this process."""
    if device == "cpu":
        return
    if device != "cuda" and not device.startswith("cuda:"):
        raise FraudcoreError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N' (an NVIDIA GPU)")
    problem = _gpu_problem(device)
    if problem:
        raise FraudcoreError(f"device={device!r} was asked for but {problem}; train with device='cpu', or on a "
                             "machine with an NVIDIA GPU and the CUDA build of xgboost (the manylinux wheel)")


@lru_cache(maxsize=8)
def _gpu_problem(device: str) -> str | None:
    """Why XGBoost cannot train on ``device`` (None when it can): a one-round probe, since XGBoost itself only warns
    and trains on the CPU when it finds no GPU."""
    if not xgb.build_info().get("USE_CUDA"):
        return f"this xgboost {xgb.__version__} was built without CUDA (e.g. the xgboost-cpu package)"
    probe = xgb.DMatrix(np.zeros((2, 1)), label=np.array([0.0, 1.0]))
    try:
        with xgb.config_context(verbosity=0):
            booster = xgb.train({"device": device, "tree_method": "hist", "objective": "binary:logistic"}, probe, 1)
    except xgb.core.XGBoostError as exc:
        return f"XGBoost could not use it ({str(exc).splitlines()[0]})"
    if json.loads(booster.save_config())["learner"]["generic_param"]["device"] == "cpu":
        return "XGBoost finds no visible GPU here (it would silently train on the CPU)"
    return None


def model_class(algo: str) -> type[FraudModel]:
    """The class implementing ``algo`` (one of ALGOS)."""
    classes = {cls.algo: cls for cls in (XGBoostModel, LogRegModel, AnomalyModel)}
    if algo not in classes:
        raise FraudcoreError(f"unknown model family {algo!r}; choose one of {list(ALGOS)}")
    return classes[algo]  # type: ignore[return-value]


def make_model(algo: str, **params: Any) -> FraudModel:
    """A fresh, unfitted model of family ``algo`` with ``params``."""
    cls = model_class(algo)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise FraudcoreError(f"{algo} does not take parameters {unknown}; it takes {allowed}")
    return cls(**params)
