"""Threshold objectives on windows where the right cut is known by hand; tiers, clamping and audit records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fraudcore.errors import FraudcoreError
from fraudcore.thresholds import (
    ThresholdChange,
    ThresholdChoice,
    TierPolicy,
    assign_tiers,
    derive_tiers,
    tune_threshold,
)

# Ten events, scores 1.0 down to 0.1. Cumulative from the top (cut: tp/fp, precision, recall, F1 = 2tp/(2tp+fp+fn)):
# 1.0: 1/0 1.000 .2 .333 | 0.9: 2/0 1.000 .4 .571 | 0.8: 2/1 .667 .4 .500 | 0.7: 3/1 .750 .6 .667
# 0.6: 4/1 .800 .8 .800  | 0.5: 4/2 .667 .8 .727  | 0.4: 4/3 .571 .8 .667 | 0.3: 5/3 .625 1. .769
# 0.2: 5/4 .556 1. .714  | 0.1: 5/5 .500 1. .667
SCORE = np.round(np.arange(1.0, 0.05, -0.1), 1)
Y = np.array([1, 1, 0, 1, 1, 0, 0, 1, 0, 0])
# Five events a day over two days, interleaved so every cut splits its alerts across both days.
TIMES = pd.to_datetime(["2024-05-01", "2024-05-02"] * 5)  # two whole days (dates without a time of day)
# Fraud amounts 100, 3, 2, 50, 1 (legit amounts never enter the cost).
AMOUNT = np.array([100.0, 3.0, 9.0, 2.0, 50.0, 9.0, 9.0, 1.0, 9.0, 9.0])


def _tune(objective: str, target: float | None = None, **kw: object) -> ThresholdChoice:
    return tune_threshold(Y, SCORE, objective, target, event_time=TIMES, amount=AMOUNT, **kw)


def test_f1_picks_the_max_f1_cut() -> None:
    choice = _tune("f1")
    assert choice.threshold == 0.6 and choice.score == pytest.approx(0.8)
    assert (choice.precision, choice.recall, choice.alerts) == (pytest.approx(0.8), pytest.approx(0.8), 5)
    assert choice.alerts_per_day == 2.5 and choice.target is None


@pytest.mark.parametrize(
    ("target", "cut", "recall"),
    [
        (0.75, 0.6, 0.8),  # 1.0, 0.9, 0.7, 0.6 qualify; the lowest gives the most recall
        (0.8, 0.6, 0.8),  # 0.7 (0.75) fails but the lower 0.6 (0.80) qualifies again
        (0.9, 0.9, 0.4),
        (1.0, 0.9, 0.4),
        (0.5, 0.1, 1.0),
    ],
)
def test_precision_takes_the_lowest_cut_meeting_the_target(target: float, cut: float, recall: float) -> None:
    choice = _tune("precision", target)
    assert choice.threshold == cut and choice.recall == pytest.approx(recall)
    assert choice.score == choice.precision and choice.score >= target


@pytest.mark.parametrize(("target", "cut"), [(0.2, 1.0), (0.6, 0.7), (0.7, 0.6), (0.9, 0.3), (1.0, 0.3)])
def test_recall_takes_the_highest_cut_meeting_the_target(target: float, cut: float) -> None:
    choice = _tune("recall", target)
    assert choice.threshold == cut and choice.score == choice.recall >= target


@pytest.mark.parametrize(("budget", "cut"), [(0.5, 1.0), (2.0, 0.7), (2.4, 0.7), (2.5, 0.6), (5.0, 0.1)])
def test_alert_budget_takes_the_lowest_cut_within_budget(budget: float, cut: float) -> None:
    choice = _tune("alert_budget", budget)  # two days: a budget of b per day allows 2b alerts
    assert choice.threshold == cut
    assert choice.score == choice.alerts_per_day == choice.alerts / 2 <= budget


def test_cost_takes_the_cheapest_cut() -> None:
    # cost = 5 x alerts + missed fraud: 1.0: 5+56=61, 0.9: 10+53=63, 0.8: 68, 0.7: 20+51=71, 0.6: 25+1=26,
    # 0.5: 31, 0.4: 36, 0.3: 40+0=40, 0.2: 45, 0.1: 50; alerting nothing costs 156.
    choice = _tune("cost")
    assert choice.threshold == 0.6 and choice.score == pytest.approx(26.0) and choice.target == 5.0
    # At 20 per review: 1.0: 20+56=76, 0.9: 93, 0.6: 100+1=101, nothing: 156 -> 1.0.
    assert _tune("cost", 20.0).threshold == 1.0
    assert _tune("cost", review_cost=20.0).target == 20.0


def test_cost_may_choose_to_alert_nothing() -> None:
    # One fraud of 1.0 at the top: reviewing it costs 5, missing it costs 1.
    choice = tune_threshold([1, 0], [0.9, 0.1], "cost", amount=[1.0, 5.0])
    assert choice.threshold > 0.9 and choice.alerts == 0 and choice.precision is None
    assert choice.score == 1.0 and choice.recall == 0.0


def test_unreachable_precision_says_how_close_it_came() -> None:
    # Best precision is 2/3 (cut 0.7): the top event is legitimate.
    with pytest.raises(FraudcoreError, match=r"precision 0.999 is never reached.*best is 0.6667"):
        tune_threshold([0, 1, 1, 0], [0.9, 0.8, 0.7, 0.1], "precision", 0.999)


def test_unreachable_budget_names_the_tie_at_the_top() -> None:
    times = pd.to_datetime(["2024-05-01"] * 10)  # one whole day (a date without a time of day)
    with pytest.raises(FraudcoreError, match=r"alert budget 3 per day is never met.*10 events per day"):
        tune_threshold(Y, np.full(10, 0.5), "alert_budget", 3, event_time=times)


@pytest.mark.parametrize(
    ("objective", "target", "kwargs", "message"),
    [
        ("alert_budget", 10, {"amount": AMOUNT}, "needs event_time"),
        ("cost", None, {"event_time": TIMES}, "needs amount"),
        ("precision", None, {}, "needs a target"),
        ("precision", 1.5, {}, r"target in \(0, 1\]"),
        ("recall", 0.0, {}, r"target in \(0, 1\]"),
        ("alert_budget", -1, {"event_time": TIMES}, "positive number"),
        ("f1", 0.5, {}, "takes no target"),
        ("accuracy", None, {}, "unknown objective"),
    ],
)
def test_missing_inputs_and_bad_targets_raise(objective: str, target: float | None, kwargs: dict, message: str) -> None:
    with pytest.raises(FraudcoreError, match=message):
        tune_threshold(Y, SCORE, objective, target, **kwargs)


def test_tuning_needs_a_fraud() -> None:
    with pytest.raises(FraudcoreError, match="at least one fraud"):
        tune_threshold([0, 0, 0], [0.1, 0.2, 0.3], "f1")


def test_choice_round_trips_through_json() -> None:
    choice = _tune("alert_budget", 2.0)
    assert ThresholdChoice.model_validate_json(choice.model_dump_json()) == choice


def test_derive_tiers_orders_high_above_medium() -> None:
    policy = derive_tiers(Y, SCORE, high=("precision", 0.9), medium=("alert_budget", 2.5), event_time=TIMES)
    assert (policy.high.threshold, policy.medium.threshold) == (0.9, 0.6)
    assert policy.notes == []
    assert policy.medium.objective == "alert_budget" and policy.medium.target == 2.5


def test_derive_tiers_clamps_a_medium_cut_above_high() -> None:
    # High by recall 0.9 -> 0.3; medium by precision 0.9 -> 0.9, above it: clamp medium to 0.3.
    policy = derive_tiers(Y, SCORE, high=("recall", 0.9), medium=("precision", 0.9))
    assert policy.high.threshold == policy.medium.threshold == 0.3
    assert len(policy.notes) == 1 and "clamped" in policy.notes[0] and "0.9" in policy.notes[0]
    # The clamped choice reports what the new cut achieves: precision 5/8 at 0.3.
    assert policy.medium.score == pytest.approx(0.625) and policy.medium.recall == 1.0


def test_tier_policy_rejects_medium_above_high() -> None:
    high, medium = _tune("recall", 0.9), _tune("precision", 0.9)  # 0.3 and 0.9
    with pytest.raises(ValidationError, match=r"must be >= medium\.threshold"):
        TierPolicy(high=high, medium=medium)


def test_assign_tiers_puts_scores_on_a_cut_in_the_tier_above() -> None:
    policy = TierPolicy(high=_tune("precision", 0.9), medium=_tune("recall", 1.0))  # 0.9 and 0.3
    tiers = assign_tiers([0.9, np.nextafter(0.9, 0), 0.3, np.nextafter(0.3, 0), 1.0, 0.0], policy)
    assert tiers.tolist() == ["high", "medium", "medium", "low", "high", "low"]
    with pytest.raises(FraudcoreError, match="NaN"):
        assign_tiers([0.5, np.nan], policy)


def test_threshold_change_is_stored_in_utc_and_needs_who_and_why() -> None:
    policy = derive_tiers(Y, SCORE, high=("precision", 0.9), medium=("recall", 1.0))
    plus_two = timezone(timedelta(hours=2))
    change = ThresholdChange(who="ana", when=datetime(2024, 5, 3, 12, 0, tzinfo=plus_two), new=policy, why="launch")
    assert change.when == datetime(2024, 5, 3, 10, 0, tzinfo=UTC) and change.when.utcoffset() == timedelta(0)
    assert ThresholdChange.model_validate_json(change.model_dump_json()) == change
    assert ThresholdChange(who="ana", new=policy, why="x").when.tzinfo is not None
    with pytest.raises(ValidationError):
        ThresholdChange(who="ana", when=datetime(2024, 5, 3, 12, 0), new=policy, why="naive time")
    with pytest.raises(ValidationError):
        ThresholdChange(who="  ", new=policy, why="blank analyst")


def test_unreachable_high_target_leaves_the_high_tier_empty():
    y = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    policy = derive_tiers(y, score, high=("precision", 0.99), medium=("recall", 1.0))
    assert policy.high.alerts == 0 and policy.high.threshold > score.max()
    assert "high tier left empty" in policy.notes[0] and "precision 0.99" in policy.notes[0]
    assert policy.medium.threshold == pytest.approx(0.3)
    assert set(assign_tiers(score, policy)) == {"medium", "low"}
    assert set(assign_tiers([0.95, 0.999, 1.0], policy)) == {"medium"}  # later events scoring higher: not blocked
