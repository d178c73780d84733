"""Small, time-boxed, reproducible hyper-parameter search scored by average precision on the validation window.

The trial list is drawn up front from the seed (first a strong default, then random draws from a small space per
family), so the same seed always runs the same trials in the same order; the time budget can only cut the list
short, and the result says whether it did (``trials=N`` runs exactly N instead, whatever the clock says). For
XGBoost the best configuration is then averaged over ``bags`` seeds (one booster, fraudcore.bagging; recorded as
a last trial) when the budget allows: on validation windows of a few dozen frauds, configurations that differ only
in their hyper-parameters rank almost at random, while averaging seeds lowers the model's variance (on ULB
development folds disjoint from the benchmark's test sets: +0.003 to +0.009 test AP over one seed, on average).
Models are trained on the training window only.
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
from fraudcore.models import ALGOS, FraudModel, XGBoostModel, make_model

Progress = Callable[[float, str], None]
MAX_DRAWS = 50  # random draws tried per trial before giving up on finding an unseen combination
BAGS = 3  # seeds averaged for the best XGBoost configuration
clock = time.perf_counter  # the search's clock (a test swaps in a deterministic one)
REFIT_COST = 1.0  # a refit on train + validation per bag, as a share of its trial's time (300k rows: 15.4 s for 19 s)

# The XGBoost default also weighs frauds by sqrt(legitimate / fraud) in training (see trial_plan).
DEFAULTS: dict[str, dict[str, Any]] = {
    "xgboost": {"max_depth": 6, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 0.8,
                "colsample_bytree": 0.8},
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
    trials: int | None = None,
    bags: int = BAGS,
    refit: bool = False,
) -> SearchResult:
    """Run the default trial, then seeded random trials while ``minutes`` last (or exactly ``trials`` of them), and
    keep the best by validation AP; for XGBoost, when the budget allows, that configuration averaged over ``bags``
    seeds replaces it (its validation AP is recorded but not compared: the best of several noisy trials is
    biased upwards, a fresh fit of the same configuration is not).

    ``fixed`` params (e.g. ``device``, ``categorical``) go to every trial unchanged. ``minutes=0`` runs only the
    default. The anomaly family needs no labels; without frauds in ``y_valid`` it runs only its default.
    ``refit``: the caller will train the chosen configuration again (training.train), so the budget keeps
    ``REFIT_COST`` × the chosen trial's time per bag for it.
    """
    if algo not in ALGOS:
        raise FraudcoreError(f"unknown model family {algo!r}; choose one of {list(ALGOS)}")
    if minutes < 0 or max_trials < 1 or (trials is not None and trials < 1) or bags < 1:
        raise FraudcoreError(f"minutes must be >= 0, and max_trials, trials and bags >= 1; got {minutes}, "
                             f"{max_trials}, {trials} and {bags}")
    labelled = _has_both_classes(y_valid)
    if not labelled and algo != "anomaly":
        raise FraudcoreError("the validation window needs both fraud and legitimate labels to rank trials; "
                             "widen the validation window or use the anomaly family")
    plan = trial_plan(algo, y_train, seed=seed, max_trials=(trials or max_trials) if labelled else 1)
    bagging = algo == "xgboost" and bags > 1 and (trials is not None or minutes > 0)
    base = {**(fixed or {}), **({"random_state": seed} if algo != "logreg" else {})}
    budget = math.inf if trials is not None else minutes * 60
    start, done = clock(), []
    best: tuple[float, FraudModel] | None = None
    stopped_by: Literal["budget", "exhausted"] = "exhausted"

    def record(params: dict[str, Any], model: FraudModel, tick: float, planned: int, keep: bool = False) -> None:
        nonlocal best
        ap = float(average_precision_score(np.asarray(y_valid), model.predict_proba(X_valid))) if labelled else math.nan
        done.append(Trial(params, ap, clock() - tick, getattr(model, "best_iteration_", None)))
        if best is None or keep or _rank(ap) > _rank(best[0]):
            best = (ap, model)
        if progress is not None:
            fraction = max(len(done) / planned, (clock() - start) / budget if budget else 1.0)
            progress(min(fraction, 1.0), f"trial {len(done)}/{planned}: valid AP {ap:.4f} (best {best[0]:.4f})")

    def after(seconds: float, bagged: bool) -> float:  # what the chosen trial still costs: its other bags, refits
        n = bags if bagged else 1
        return (n - 1) * seconds + (REFIT_COST * seconds * n if refit else 0.0)

    for i, params in enumerate(plan):
        elapsed = clock() - start
        reserve = after(_best_trial(done).seconds, bagging) if done else 0.0
        if i > 0 and elapsed + elapsed / i + reserve > budget:  # the next trial (of average length) would overrun
            stopped_by = "budget"
            break
        tick = clock()
        record(params, make_model(algo, **{**base, **params}).fit(X_train, y_train, X_valid, y_valid), tick,
               len(plan) + int(bagging))
    if bagging:
        chosen = _best_trial(done)
        if clock() - start + after(chosen.seconds, True) <= budget:
            model = best[1] if best is not None else None  # the chosen configuration's bag 0: train the others
            assert isinstance(model, XGBoostModel)
            tick = clock()
            others = [model.bag(i).fit(X_train, y_train, X_valid, y_valid) for i in range(1, bags)]
            record({**chosen.params, "n_bags": bags}, XGBoostModel.averaged([model, *others]), tick, len(done) + 1,
                   keep=True)
        else:
            stopped_by = "budget"
    assert best is not None  # the default trial always runs
    return SearchResult(best[1].get_params(), best[1], done, stopped_by)


def trial_plan(algo: str, y_train: ArrayLike, *, seed: int = 0, max_trials: int = 12) -> list[dict[str, Any]]:
    """The searched params of every trial, default first, then distinct seeded random draws."""
    rng = np.random.default_rng(seed)
    ratio = _neg_pos_ratio(y_train)
    plan = [{**DEFAULTS[algo], "scale_pos_weight": _round(math.sqrt(ratio))} if algo == "xgboost"
            else dict(DEFAULTS[algo])]
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
    """A configuration near the robust region: fraud weight ratio^(1/4 | 1/2 | 3/4) (the full ratio and no weight
    both lost AP on the ULB development folds), learning rates high enough for the early-stopping patience, and no
    max_delta_step (with a large fraud weight it delays learning past the patience: stopped at round 7)."""
    return {
        "max_depth": int(rng.choice([3, 4, 5, 6, 7, 8])),
        "learning_rate": _round(10 ** rng.uniform(np.log10(0.05), np.log10(0.2))),
        "min_child_weight": float(rng.choice([1.0, 2.0, 5.0, 10.0])),
        "subsample": _round(rng.uniform(0.6, 1.0)),
        "colsample_bytree": _round(rng.uniform(0.5, 1.0)),
        "colsample_bynode": _round(rng.uniform(0.5, 1.0)),
        "reg_lambda": _round(10 ** rng.uniform(np.log10(0.5), 1.0)),
        "reg_alpha": float(rng.choice([0.0, 0.1, 1.0])),
        "gamma": float(rng.choice([0.0, 0.5, 1.0, 2.0])),
        "scale_pos_weight": _round(ratio ** float(rng.choice([0.25, 0.5, 0.75]))),
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


def _best_trial(trials: list[Trial]) -> Trial:
    return max(trials, key=lambda t: _rank(t.valid_ap))


def _rank(ap: float) -> float:
    return -math.inf if math.isnan(ap) else ap


def _round(value: float) -> float:
    """Four significant digits, so params read well in tables and JSON."""
    return float(f"{value:.4g}")
