"""Threshold what-if for one scored window: the tiers, confusion matrix, money and workload that two cuts give.

``score >= high`` blocks, ``score >= medium`` goes to review, anything lower is allowed; both block and review raise an
alert (they are what the analysts see). Cost = alerts x review cost + amount at risk (the amount of missed frauds),
as in ``fraudcore.evaluate``. Cuts are suggested on the validation window (``suggest_cut``) and saved as a
``TierPolicy`` that records the objective each cut was meant for and what it achieves there (``policy_from_cuts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudcore.comparison import Window
from fraudcore.errors import FraudcoreError
from fraudcore.evaluate import curves
from fraudcore.thresholds import (
    ABOVE_ALL,
    Objective,
    ThresholdChange,
    ThresholdChoice,
    TierPolicy,
    choice_at,
    derive_tiers,
    tune_threshold,
)

TIERS = ("high", "medium", "low")
TIER_ACTIONS = {"high": "block", "medium": "review", "low": "allow"}
OBJECTIVE_LABELS = {
    "f1": "F1 (balance precision and recall)",
    "precision": "Precision at least",
    "recall": "Recall at least",
    "alert_budget": "Alert budget per day",
    "cost": "Lowest cost (review cost + amount at risk)",
}


@dataclass(frozen=True)
class WhatIf:
    """What the cuts give on a window: alert counts and rates, money, and per-tier and confusion tables."""

    high: float
    medium: float
    events: int
    frauds: int
    alerts: int
    alerts_per_day: float | None
    precision: float | None
    recall: float
    fraud_amount: float | None
    amount_caught: float | None
    amount_at_risk: float | None
    review_spend: float
    cost: float | None
    tiers: pd.DataFrame  # tier, action, events, frauds, legit, fraud_amount, per_day
    confusion: pd.DataFrame  # actual, decision, events

    @property
    def amount_caught_share(self) -> float | None:
        """Share of the fraud amount that raised an alert."""
        return self.amount_caught / self.fraud_amount if self.fraud_amount else None


def slider_cut(value: float) -> float:
    """A cut from a 0-1 slider: 1 is the empty tier (ABOVE_ALL), so saving it keeps the tier empty rather than
    catching scores of exactly 1."""
    return ABOVE_ALL if value >= 1.0 else float(value)


def cut_text(cut: float) -> str:
    """How a cut reads: 'at score ≥ 0.0123', or 'nothing' for an empty tier."""
    return "nothing (empty tier)" if cut > 1.0 else f"at score ≥ {cut:.4f}"


def check_cuts(high: float, medium: float) -> None:
    """Refuse cuts in the wrong order or outside the score range (a cut just above 1 is an empty tier)."""
    if not (0.0 <= medium <= high <= ABOVE_ALL):
        raise FraudcoreError(f"cuts must satisfy 0 <= medium ({medium}) <= high ({high}) <= 1 (just above 1: an empty "
                             "tier); move them into order")


def what_if(window: Window, high: float, medium: float, review_cost: float = 5.0) -> WhatIf:
    """Tiers, alerts, confusion matrix, fraud amount caught and cost on ``window`` at these cuts."""
    check_cuts(high, medium)
    if not np.isfinite(review_cost) or review_cost < 0:
        raise FraudcoreError(f"review cost must be a number >= 0 per alert; got {review_cost}")
    y, s = window.y.astype(bool), window.score
    tier = np.where(s >= high, "high", np.where(s >= medium, "medium", "low"))
    alert = s >= medium
    tp, fp = int((alert & y).sum()), int((alert & ~y).sum())
    fn, tn = int((~alert & y).sum()), int((~alert & ~y).sum())
    days = window.n_days
    amount = window.amount
    fraud_amount = None if amount is None else float(amount[y].sum())
    caught = None if amount is None else float(amount[alert & y].sum())
    at_risk = None if amount is None else fraud_amount - caught
    spend = (tp + fp) * float(review_cost)
    rows = []
    for name in TIERS:
        mask = tier == name
        rows.append({"tier": name, "action": TIER_ACTIONS[name], "events": int(mask.sum()),
                     "frauds": int((mask & y).sum()), "legit": int((mask & ~y).sum()),
                     "fraud_amount": None if amount is None else float(amount[mask & y].sum()),
                     "per_day": None if days is None else mask.sum() / days})
    confusion = pd.DataFrame({"actual": ["fraud", "fraud", "legit", "legit"],
                              "decision": ["alert", "no alert", "alert", "no alert"], "events": [tp, fn, fp, tn]})
    return WhatIf(high=high, medium=medium, events=int(y.size), frauds=int(y.sum()), alerts=tp + fp,
                  alerts_per_day=None if days is None else (tp + fp) / days,
                  precision=tp / (tp + fp) if tp + fp else None, recall=tp / int(y.sum()) if y.any() else 0.0,
                  fraud_amount=fraud_amount, amount_caught=caught, amount_at_risk=at_risk, review_spend=spend,
                  cost=None if at_risk is None else spend + at_risk, tiers=pd.DataFrame(rows), confusion=confusion)


def available_objectives(window: Window) -> list[str]:
    """Objectives this window can serve: alert budgets need event times, cost needs amounts."""
    return [o for o in OBJECTIVE_LABELS
            if not (o == "alert_budget" and window.times is None) and not (o == "cost" and window.amount is None)]


def suggest_cut(window: Window, objective: Objective, target: float | None,
                review_cost: float = 5.0) -> ThresholdChoice:
    """The cut that best serves the objective on ``window`` (use the validation window); cost's target is the
    review cost."""
    return tune_threshold(window.y, window.score, objective, None if objective in ("f1", "cost") else target,
                          event_time=window.times, amount=window.amount, review_cost=review_cost)


def suggest_tiers(window: Window, high: tuple[Objective, float | None], medium: tuple[Objective, float | None],
                  review_cost: float = 5.0) -> TierPolicy:
    """Both cuts from their objectives on ``window`` (the validation window), as ``derive_tiers`` does at training:
    an unreachable block target leaves the high tier empty and a review cut above the block cut is clamped to it."""
    def pair(objective: Objective, target: float | None) -> tuple[Objective, float | None]:
        return objective, None if objective == "f1" else review_cost if objective == "cost" else target

    return derive_tiers(window.y, window.score, high=pair(*high), medium=pair(*medium), event_time=window.times,
                        amount=window.amount, review_cost=review_cost)


def policy_from_cuts(window: Window, high: tuple[Objective, float | None, float],
                     medium: tuple[Objective, float | None, float], review_cost: float = 5.0,
                     note: str | None = None) -> TierPolicy:
    """A TierPolicy for cuts set by hand: each (objective, target, cut) described by what it achieves on
    ``window`` (the validation window, where tiers are tuned)."""
    check_cuts(high[2], medium[2])
    choices = [choice_at(window.y, window.score, cut, objective, None if objective == "f1" else target,
                         event_time=window.times, amount=window.amount, review_cost=review_cost)
               for objective, target, cut in (high, medium)]
    return TierPolicy(high=choices[0], medium=choices[1], notes=[note] if note else [])


def sweep_frame(window: Window) -> pd.DataFrame:
    """Precision, recall and alerts per day (NaN without times) at up to 200 cuts across the score range."""
    found = curves(window.y, window.score)["sweep"]
    days = window.n_days
    per_day = np.asarray(found["alerts"], dtype=float) / days if days else np.nan
    return pd.DataFrame({"threshold": found["threshold"], "precision": found["precision"],
                         "recall": found["recall"], "alerts_per_day": per_day})


def tier_log_frame(log: list[ThresholdChange]) -> pd.DataFrame:
    """The audited tier changes, newest first: when, who, why, and the high / medium cuts before and after."""
    rows = [{"when": c.when, "who": c.who, "why": c.why,
             "old high": None if c.old is None else c.old.high.threshold,
             "old medium": None if c.old is None else c.old.medium.threshold,
             "new high": c.new.high.threshold, "new medium": c.new.medium.threshold} for c in reversed(log)]
    return pd.DataFrame(rows, columns=["when", "who", "why", "old high", "old medium", "new high", "new medium"])
