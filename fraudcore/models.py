"""Three model families behind one protocol: gradient-boosted trees, logistic regression, isolation forest.

Every model learns its ``MatrixSpec`` in ``fit`` (``categorical`` names the categorical columns; by default text
and category dtypes), scores DataFrames with ``predict_proba`` and ``MatrixSpec.numpy`` rows with
``predict_numpy`` (the fast path; both give the same scores), and saves to plain files, never pickle.
"""

from __future__ import annotations

import inspect
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import pandas as pd
import xgboost as xgb
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fraudcore.bagging import average_boosters
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.matrix import MatrixSpec
from fraudcore.treepredict import TreePredictor

ALGOS = ("xgboost", "logreg", "anomaly")
CHUNK_ROWS = 4096  # rows per batch when walking every isolation tree at once


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


class _Model:
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


class XGBoostModel(_Model):
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
        rounds = getattr(self, "bag_rounds_", None) or [self.best_iteration_ + 1]
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
        model.booster_ = xgb.Booster(params={"nthread": model.n_jobs}, model_file=_existing(folder, "model.ubj"))
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


class LogRegModel(_Model):
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
        state = json.loads(_existing(folder, "model.json").read_text())
        width = matrix.n_numeric + sum(len(v) for v in matrix.categorical.values())
        if state.pop("format", None) != "fraudcore-logreg-1" or len(state["coef"]) != width:
            raise ModelArtifactError(f"model.json in {folder} does not fit the matrix ({width} coefficients expected)")
        model.state_ = state
        return model


class AnomalyModel(_Model):
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
        with np.load(_existing(folder, "model.npz"), allow_pickle=False) as data:
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


def _existing(folder: Path, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise ModelArtifactError(f"{path} is missing; the model folder is incomplete, retrain or restore it")
    return path


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
