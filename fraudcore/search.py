"""Small, time-boxed, reproducible hyper-parameter search scored by average precision on the validation window.

The trial list is drawn up front from the seed (first a strong default, then random draws from a small space per
family), so the same seed always runs the same trials in the same order; the time budget can only cut the list
short, and the result says whether it did. Models are trained on the training window only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score

from fraudcore.errors import FraudcoreError
from fraudcore.models import ALGOS, FraudModel, make_model

Progress = Callable[[float, str], None]
MAX_DRAWS = 50  # random draws tried per trial before giving up on finding an unseen combination

DEFAULTS: dict[str, dict[str, Any]] = {
    "xgboost": {"max_depth": 6, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.8,
                "colsample_bytree": 0.8, "scale_pos_weight": 1.0},
    "logreg": {"C": 1.0, "class_weight": None},
    "anomaly": {"n_estimators": 200, "max_samples": "auto"},
}


@dataclass
class Trial:
    """One trained candidate: the searched params, validation AP (NaN when unmeasurable), time, trees kept."""

    params: dict
    valid_ap: float
    seconds: float
    best_iteration: int | None


@dataclass
class SearchResult:
    """The best model of the search with its full params, every trial run, and why the search stopped."""

    best_params: dict
    best_model: FraudModel
    trials: list[Trial] = field(default_factory=list)
    stopped_by: Literal["budget", "exhausted"] = "exhausted"


def search(
    algo: str,
    X_train: pd.DataFrame,
    y_train: ArrayLike,
    X_valid: pd.DataFrame,
    y_valid: ArrayLike | None,
    *,
    minutes: float = 1.0,
    seed: int = 0,
    max_trials: int = 12,
    progress: Progress | None = None,
    fixed: dict[str, Any] | None = None,
) -> SearchResult:
    """Run the default trial, then seeded random trials while ``minutes`` last; keep the best by validation AP.

    ``fixed`` params (e.g. ``device``, ``categorical``) go to every trial unchanged. ``minutes=0`` runs only the
    default. The anomaly family needs no labels; without frauds in ``y_valid`` it runs only its default.
    """
    if algo not in ALGOS:
        raise FraudcoreError(f"unknown model family {algo!r}; choose one of {list(ALGOS)}")
    if minutes < 0 or max_trials < 1:
        raise FraudcoreError(f"minutes must be >= 0 and max_trials >= 1; got {minutes} and {max_trials}")
    labelled = _has_both_classes(y_valid)
    if not labelled and algo != "anomaly":
        raise FraudcoreError("the validation window needs both fraud and legitimate labels to rank trials; "
                             "widen the validation window or use the anomaly family")
    plan = trial_plan(algo, y_train, seed=seed, max_trials=max_trials if labelled else 1)
    base = {**(fixed or {}), **({"random_state": seed} if algo != "logreg" else {})}
    start, trials = time.perf_counter(), []
    best: tuple[float, FraudModel] | None = None
    stopped_by: Literal["budget", "exhausted"] = "exhausted"
    for i, params in enumerate(plan):
        elapsed = time.perf_counter() - start
        if i > 0 and elapsed + elapsed / i > minutes * 60:  # the next trial (of average length) would overrun
            stopped_by = "budget"
            break
        tick = time.perf_counter()
        model = make_model(algo, **{**base, **params}).fit(X_train, y_train, X_valid, y_valid)
        ap = float(average_precision_score(np.asarray(y_valid), model.predict_proba(X_valid))) if labelled else math.nan
        trials.append(Trial(params, ap, time.perf_counter() - tick, getattr(model, "best_iteration_", None)))
        if best is None or _rank(ap) > _rank(best[0]):
            best = (ap, model)
        if progress is not None:
            done = max((i + 1) / len(plan), (time.perf_counter() - start) / (minutes * 60) if minutes else 1.0)
            progress(min(done, 1.0), f"trial {i + 1}/{len(plan)}: valid AP {ap:.4f} (best {best[0]:.4f})")
    assert best is not None  # the default trial always runs
    return SearchResult(best[1].get_params(), best[1], trials, stopped_by)


def trial_plan(algo: str, y_train: ArrayLike, *, seed: int = 0, max_trials: int = 12) -> list[dict[str, Any]]:
    """The searched params of every trial, default first, then distinct seeded random draws."""
    rng = np.random.default_rng(seed)
    plan = [dict(DEFAULTS[algo])]
    ratio = _neg_pos_ratio(y_train)
    draw = {"xgboost": lambda: _draw_xgboost(rng, ratio), "logreg": lambda: _draw_logreg(rng),
            "anomaly": lambda: _draw_anomaly(rng)}[algo]
    while len(plan) < max_trials:
        for _ in range(MAX_DRAWS):
            candidate = draw()
            if candidate not in plan:
                plan.append(candidate)
                break
        else:
            break
    return plan


def _draw_xgboost(rng: np.random.Generator, ratio: float) -> dict[str, Any]:
    return {
        "max_depth": int(rng.choice([3, 4, 5, 6, 8, 10])),
        "learning_rate": _round(10 ** rng.uniform(np.log10(0.02), np.log10(0.3))),
        "min_child_weight": float(rng.choice([1.0, 3.0, 5.0, 10.0, 20.0])),
        "subsample": _round(rng.uniform(0.6, 1.0)),
        "colsample_bytree": _round(rng.uniform(0.5, 1.0)),
        "scale_pos_weight": float(rng.choice([1.0, _round(math.sqrt(ratio)), _round(ratio)])),
    }


def _draw_logreg(rng: np.random.Generator) -> dict[str, Any]:
    return {"C": _round(10 ** rng.uniform(-3, 2)), "class_weight": [None, "balanced"][int(rng.integers(2))]}


def _draw_anomaly(rng: np.random.Generator) -> dict[str, Any]:
    sizes: list[int | str] = [64, 128, 256, 512, 1024, "auto"]
    return {"n_estimators": int(rng.choice([100, 200, 300])), "max_samples": sizes[int(rng.integers(len(sizes)))]}


def _neg_pos_ratio(y: ArrayLike) -> float:
    """Legitimate events per fraud in training (1 when there is no fraud)."""
    y = np.asarray(y).ravel()
    pos = int((y == 1).sum())
    return max((y.size - pos) / pos, 1.0) if pos else 1.0


def _has_both_classes(y: ArrayLike | None) -> bool:
    if y is None:
        return False
    values = pd.Series(np.asarray(y).ravel())
    return not values.isna().any() and values.nunique() == 2


def _rank(ap: float) -> float:
    return -math.inf if math.isnan(ap) else ap


def _round(value: float) -> float:
    """Four significant digits, so params read well in tables and JSON."""
    return float(f"{value:.4g}")
