"""Threshold tuning and alert tiers: pick cuts on a validation window and record why, like TunedThresholdClassifierCV.

Tune on a window disjoint from (and later than) training; ``score >= threshold`` alerts. Every choice keeps its
objective, target and achieved value so it can be saved with the model and audited later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from fraudcore.errors import FraudcoreError
from fraudcore.evaluate import Sweep, sweep

Objective = Literal["f1", "precision", "recall", "alert_budget", "cost"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
TOLERANCE = 1e-12  # float slack when comparing an achieved rate with its target
ABOVE_ALL = float(np.nextafter(1.0, 2.0))  # a cut no score reaches (scores lie in [0, 1]): an empty tier
NO_ALERTS = -1  # row index meaning "a cut above every score" (the cost objective, an unreachable block target)


class ThresholdChoice(BaseModel):
    """One tuned cut: the objective and target it served and what it achieved on the tuning window."""

    model_config = ConfigDict(frozen=True)

    objective: Objective
    target: float | None = Field(
        description="precision or recall wanted, alerts per day allowed, or review cost per alert; None for f1"
    )
    threshold: float = Field(description="score >= threshold raises an alert")
    score: float = Field(
        description="achieved value of what the objective names: f1, precision, recall, alerts per day, or cost"
    )
    precision: float | None = Field(description="None only when the cut alerts on nothing")
    recall: float
    alerts: int
    alerts_per_day: float | None = None


class TierPolicy(BaseModel):
    """Three tiers: score >= high.threshold blocks, >= medium.threshold goes to review, anything lower is allowed."""

    model_config = ConfigDict(frozen=True)

    high: ThresholdChoice
    medium: ThresholdChoice
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> TierPolicy:
        """Reject a review cut above the block cut."""
        if self.high.threshold < self.medium.threshold:
            raise ValueError(
                f"high.threshold ({self.high.threshold}) must be >= medium.threshold ({self.medium.threshold}); "
                "raise the high cut or lower the medium one"
            )
        return self


class ThresholdChange(BaseModel):
    """One audited change of the tier policy: who made it, when (UTC), from what, to what, and why."""

    model_config = ConfigDict(frozen=True)

    who: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    when: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    old: TierPolicy | None = None
    new: TierPolicy
    why: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

    @field_validator("when")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Store every time in UTC."""
        return value.astimezone(UTC)


def tune_threshold(
    y_true: ArrayLike,
    score: ArrayLike,
    objective: Objective,
    target: float | None = None,
    *,
    event_time: ArrayLike | None = None,
    amount: ArrayLike | None = None,
    review_cost: float = 5.0,
) -> ThresholdChoice:
    """The cut that best serves ``objective`` on this (validation) window.

    f1: highest F1. precision: lowest cut whose precision >= target (the most recall it allows). recall: highest
    cut whose recall >= target. alert_budget: lowest cut whose mean alerts per day <= target (needs event_time).
    cost: lowest expected cost, (alerts x review cost) + missed fraud amount, where target is the review cost and
    defaults to ``review_cost`` (needs amount); alerting nothing is a candidate. Ties go to the higher cut.
    """
    target = _checked_target(objective, target, review_cost)
    _check_inputs(objective, event_time, amount)
    return _tune(_table(y_true, score, event_time, amount), objective, target)


def choice_at(
    y_true: ArrayLike,
    score: ArrayLike,
    threshold: float,
    objective: Objective,
    target: float | None = None,
    *,
    event_time: ArrayLike | None = None,
    amount: ArrayLike | None = None,
    review_cost: float = 5.0,
) -> ThresholdChoice:
    """What a cut chosen by hand achieves on this window, recorded under the objective and target it was meant for."""
    target = _checked_target(objective, target, review_cost)
    _check_inputs(objective, event_time, amount)
    table = _table(y_true, score, event_time, amount)
    return _choice(table, objective, target, _row_at(table, threshold), float(threshold))


def derive_tiers(
    y_true: ArrayLike,
    score: ArrayLike,
    high: tuple[Objective, float | None] = ("precision", 0.9),
    medium: tuple[Objective, float | None] = ("alert_budget", 100),
    *,
    event_time: ArrayLike | None = None,
    amount: ArrayLike | None = None,
    review_cost: float = 5.0,
) -> TierPolicy:
    """Block and review cuts from two (objective, target) pairs; a review cut above the block cut is clamped to it.

    Budgets and rates count everything at or above a cut, so the medium alert budget includes the high tier.
    """
    targets = [(obj, _checked_target(obj, tgt, review_cost)) for obj, tgt in (high, medium)]
    for obj, _ in targets:
        _check_inputs(obj, event_time, amount)
    table = _table(y_true, score, event_time, amount)
    notes: list[str] = []
    try:
        hi = _tune(table, *targets[0])
    except FraudcoreError as exc:  # an unreachable block target leaves the high tier empty rather than failing
        hi = _choice(table, targets[0][0], targets[0][1], NO_ALERTS)
        notes.append(f"high tier left empty (nothing is blocked automatically): {exc}")
    mid = _tune(table, *targets[1])
    if mid.threshold > hi.threshold:
        notes.append(
            f"medium cut {mid.threshold:.6g} ({mid.objective} {mid.target}) came out above the high cut "
            f"{hi.threshold:.6g} ({hi.objective} {hi.target}); medium was clamped to the high cut, "
            "so nothing falls in the review tier on this window"
        )
        mid = _choice(table, mid.objective, mid.target, _row_at(table, hi.threshold), hi.threshold)
    return TierPolicy(high=hi, medium=mid, notes=notes)


def assign_tiers(score: ArrayLike, policy: TierPolicy) -> np.ndarray:
    """Tier per score: "high", "medium" or "low"; a score exactly on a cut belongs to the tier above it."""
    s = np.asarray(score, dtype=float)
    if np.isnan(s).any():
        raise FraudcoreError(f"score has {int(np.isnan(s).sum())} NaN values; score every event before tiering")
    return np.where(s >= policy.high.threshold, "high", np.where(s >= policy.medium.threshold, "medium", "low"))


def _table(y_true: ArrayLike, score: ArrayLike, event_time: ArrayLike | None, amount: ArrayLike | None) -> Sweep:
    """The threshold sweep, refusing a window with no fraud."""
    table = sweep(y_true, score, amount=amount, event_time=event_time)
    if table.n_fraud == 0:
        raise FraudcoreError("threshold tuning needs at least one fraud in the window; use a longer validation window")
    return table


def _tune(table: Sweep, objective: Objective, target: float | None) -> ThresholdChoice:
    """Pick the row that serves the objective and describe it."""
    if objective == "f1":
        row = int(np.argmax(table.f1))
    elif objective == "precision":
        row = _precision_row(table, target)
    elif objective == "recall":
        row = int(np.argmax(table.recall >= target - TOLERANCE))
    elif objective == "alert_budget":
        row = _budget_row(table, target)
    else:
        cost = table.cost(target)
        row = int(np.argmin(cost))
        row = NO_ALERTS if table.fraud_amount_total < cost[row] else row
    return _choice(table, objective, target, row)


def _precision_row(table: Sweep, target: float) -> int:
    """Lowest cut with precision >= target, or a FraudcoreError naming the best precision on offer."""
    ok = table.precision >= target - TOLERANCE
    if not ok.any():
        best = int(np.argmax(table.precision))
        raise FraudcoreError(
            f"target precision {target:g} is never reached on this window: the best is "
            f"{table.precision[best]:.4g} (cut {table.threshold[best]:.6g}); lower the target"
        )
    return int(np.flatnonzero(ok)[-1])


def _budget_row(table: Sweep, target: float) -> int:
    """Lowest cut with mean alerts per day <= target, or a FraudcoreError when even the top cut is over budget."""
    per_day = table.alerts_per_day
    ok = per_day <= target + TOLERANCE
    if not ok[0]:
        raise FraudcoreError(
            f"alert budget {target:g} per day is never met on this window: even the highest cut "
            f"({table.threshold[0]:.6g}) alerts on {per_day[0]:.4g} events per day because they share the top "
            "score; raise the budget"
        )
    return int(np.flatnonzero(ok)[-1])


def _above_every_score(table: Sweep) -> float:
    """A cut no score reaches: above this window's top score and above 1, the most any model scores (a cut just
    above the window's top would still block a later event that scores higher)."""
    return float(max(np.nextafter(table.threshold[0], np.inf), ABOVE_ALL))


def _row_at(table: Sweep, threshold: float) -> int:
    """Row whose counts hold for ``threshold``: the lowest cut at or above it, or NO_ALERTS when none is."""
    at_or_above = np.flatnonzero(table.threshold >= threshold)
    return int(at_or_above[-1]) if at_or_above.size else NO_ALERTS


def _choice(
    table: Sweep, objective: Objective, target: float | None, row: int, threshold: float | None = None
) -> ThresholdChoice:
    """Describe row ``row`` of the sweep (NO_ALERTS: a cut just above the top score) as a ThresholdChoice."""
    if row == NO_ALERTS:
        cut = _above_every_score(table) if threshold is None else threshold
        per_day = None if table.n_days is None else 0.0
        achieved = {"f1": 0.0, "recall": 0.0, "alert_budget": 0.0, "cost": table.fraud_amount_total}
        return ThresholdChoice(
            objective=objective,
            target=target,
            threshold=cut,
            score=achieved.get(objective, 0.0),
            precision=None,
            recall=0.0,
            alerts=0,
            alerts_per_day=per_day,
        )
    per_day = table.alerts_per_day
    achieved = {
        "f1": table.f1,
        "precision": table.precision,
        "recall": table.recall,
        "alert_budget": per_day,
        "cost": table.cost(target) if objective == "cost" else None,
    }[objective]
    return ThresholdChoice(
        objective=objective,
        target=target,
        threshold=float(table.threshold[row]) if threshold is None else float(threshold),
        score=float(achieved[row]),
        precision=float(table.precision[row]),
        recall=float(table.recall[row]),
        alerts=int(table.alerts[row]),
        alerts_per_day=None if per_day is None else float(per_day[row]),
    )


def _checked_target(objective: str, target: float | None, review_cost: float) -> float | None:
    """The target the objective will use, or a FraudcoreError saying what it needs."""
    if objective not in OBJECTIVES:
        raise FraudcoreError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if objective == "f1":
        if target is not None:
            raise FraudcoreError(f"objective 'f1' takes no target; got {target}")
        return None
    if objective == "cost":
        target = review_cost if target is None else target
        if not np.isfinite(target) or target < 0:
            raise FraudcoreError(f"objective 'cost' needs a review cost >= 0 per alert; got {target}")
        return float(target)
    if target is None:
        example = {"precision": 0.9, "recall": 0.8, "alert_budget": 100}[objective]
        raise FraudcoreError(f"objective {objective!r} needs a target, e.g. ({objective!r}, {example})")
    if objective in ("precision", "recall") and not 0 < target <= 1:
        raise FraudcoreError(f"objective {objective!r} needs a target in (0, 1]; got {target}")
    if objective == "alert_budget" and not target > 0:
        raise FraudcoreError(f"objective 'alert_budget' needs a positive number of alerts per day; got {target}")
    return float(target)


def _check_inputs(objective: str, event_time: ArrayLike | None, amount: ArrayLike | None) -> None:
    """Refuse an objective whose inputs were not passed, naming the missing one."""
    if objective == "alert_budget" and event_time is None:
        raise FraudcoreError("objective 'alert_budget' needs event_time to count alerts per day; pass event_time=")
    if objective == "cost" and amount is None:
        raise FraudcoreError("objective 'cost' needs amount to price missed frauds; pass amount=")
