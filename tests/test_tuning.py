"""Threshold what-if: tiers, confusion matrix, money and workload at two cuts; suggestions; hand-set policies."""

from __future__ import annotations

import numpy as np
import pytest

from fraudcore.comparison import Window
from fraudcore.errors import FraudcoreError
from fraudcore.thresholds import ThresholdChange, tune_threshold
from fraudcore.tuning import (
    available_objectives,
    policy_from_cuts,
    suggest_cut,
    suggest_tiers,
    sweep_frame,
    tier_log_frame,
    what_if,
)

Y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
SCORE = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05])
AMOUNT = np.array([100.0, 10.0, 50.0, 10.0, 10.0, 30.0, 10.0, 10.0])
TIMES = np.array(["2025-01-01"] * 4 + ["2025-01-02"] * 4, dtype="datetime64[ns]")  # two whole days


def window(times: bool = True, amount: bool = True) -> Window:
    return Window("valid", np.arange(8), Y, SCORE, amount=AMOUNT if amount else None, times=TIMES if times else None)


def test_cuts_give_tiers_confusion_money_and_workload():
    result = what_if(window(), high=0.75, medium=0.35, review_cost=5.0)
    tiers = result.tiers.set_index("tier")
    assert tiers["events"].to_dict() == {"high": 2, "medium": 2, "low": 4}
    assert tiers["frauds"].to_dict() == {"high": 1, "medium": 1, "low": 1}
    assert tiers.loc["high", "action"] == "block" and tiers.loc["low", "per_day"] == 2.0
    cells = result.confusion.set_index(["actual", "decision"])["events"].to_dict()
    assert cells == {("fraud", "alert"): 2, ("fraud", "no alert"): 1, ("legit", "alert"): 2, ("legit", "no alert"): 3}
    assert (result.alerts, result.alerts_per_day, result.precision) == (4, 2.0, 0.5)
    assert result.recall == pytest.approx(2 / 3)
    assert (result.fraud_amount, result.amount_caught, result.amount_at_risk) == (180.0, 150.0, 30.0)
    assert result.amount_caught_share == pytest.approx(150 / 180)
    assert result.review_spend == 20.0 and result.cost == 50.0


def test_lowering_the_review_cut_raises_alerts_and_catches_more():
    strict, loose = what_if(window(), 0.75, 0.75), what_if(window(), 0.75, 0.15)
    assert strict.alerts == 2 and loose.alerts == 6
    assert loose.recall == 1.0 and loose.amount_at_risk == 0.0 and loose.cost == 30.0
    assert strict.tiers.set_index("tier").loc["medium", "events"] == 0


def test_without_amounts_or_times_the_money_and_rates_are_none():
    result = what_if(window(times=False, amount=False), 0.75, 0.35)
    assert result.alerts_per_day is None and result.cost is None and result.amount_caught_share is None
    assert result.review_spend == 20.0
    assert available_objectives(window(times=False, amount=False)) == ["f1", "precision", "recall"]
    assert available_objectives(window()) == ["f1", "precision", "recall", "alert_budget", "cost"]


@pytest.mark.parametrize(("high", "medium"), [(0.3, 0.5), (1.2, 0.5), (0.5, -0.1)])
def test_cuts_out_of_order_or_range_are_refused(high, medium):
    with pytest.raises(FraudcoreError, match="cuts must satisfy"):
        what_if(window(), high, medium)


def test_suggestions_follow_the_objective():
    w = window()
    assert suggest_cut(w, "precision", 1.0).threshold == 0.9
    assert suggest_cut(w, "recall", 1.0).threshold == 0.2
    assert suggest_cut(w, "alert_budget", 1.0).alerts == 2  # one alert per day over two days
    f1, direct = suggest_cut(w, "f1", 0.7), tune_threshold(Y, SCORE, "f1")  # f1 ignores a stray target
    assert (f1.threshold, f1.score, f1.target) == (direct.threshold, direct.score, None)
    cost = suggest_cut(w, "cost", None, review_cost=5.0)
    assert cost.objective == "cost" and cost.target == 5.0
    assert cost.score == what_if(w, cost.threshold, cost.threshold, 5.0).cost


def test_a_policy_for_hand_set_cuts_records_what_they_achieve():
    policy = policy_from_cuts(window(), ("precision", 0.9, 0.75), ("alert_budget", 3.0, 0.35), note="set by ana")
    assert (policy.high.threshold, policy.medium.threshold) == (0.75, 0.35)
    assert policy.high.objective == "precision" and policy.high.target == 0.9 and policy.high.score == 0.5
    assert policy.medium.alerts == 4 and policy.medium.score == 2.0  # alerts per day achieved
    assert policy.notes == ["set by ana"]
    with pytest.raises(FraudcoreError, match="cuts must satisfy"):
        policy_from_cuts(window(), ("f1", None, 0.2), ("f1", None, 0.5))
    with pytest.raises(FraudcoreError, match="needs amount"):
        policy_from_cuts(window(amount=False), ("cost", 5.0, 0.8), ("f1", None, 0.5))


def test_sweep_frame_traces_precision_recall_and_alerts_per_day():
    frame = sweep_frame(window())
    assert list(frame.columns) == ["threshold", "precision", "recall", "alerts_per_day"]
    assert frame["threshold"].is_monotonic_decreasing and frame["recall"].is_monotonic_increasing
    assert frame["alerts_per_day"].iloc[-1] == 4.0
    assert sweep_frame(window(times=False))["alerts_per_day"].isna().all()


def test_suggested_tiers_clamp_review_to_block_and_leave_an_unreachable_block_empty():
    w = window()
    both = suggest_tiers(w, ("precision", 1.0), ("recall", 1.0))
    assert (both.high.threshold, both.medium.threshold) == (0.9, 0.2) and both.notes == []
    clamped = suggest_tiers(w, ("recall", 1.0), ("precision", 1.0))
    assert clamped.medium.threshold == clamped.high.threshold == 0.2 and "clamped" in clamped.notes[0]
    empty = suggest_tiers(w, ("alert_budget", 0.1), ("cost", 123.0), review_cost=5.0)
    assert empty.high.alerts == 0 and "left empty" in empty.notes[0]
    assert empty.medium.target == 5.0  # cost's target is the review cost given, not the stray number


def test_tier_log_lists_changes_newest_first():
    first = policy_from_cuts(window(), ("f1", None, 0.75), ("f1", None, 0.35))
    second = policy_from_cuts(window(), ("f1", None, 0.8), ("f1", None, 0.2))
    log = [ThresholdChange(who="ana", old=None, new=first, why="start"),
           ThresholdChange(who="bo", old=first, new=second, why="more reviewers")]
    frame = tier_log_frame(log)
    assert list(frame["who"]) == ["bo", "ana"]
    assert frame.iloc[0][["old medium", "new medium"]].tolist() == [0.35, 0.2]
    assert frame.iloc[1]["old high"] is None or frame.iloc[1].isna()["old high"]
    assert tier_log_frame([]).empty


def test_empty_tiers_cut_above_every_score_are_valid_cuts():
    from fraudcore.thresholds import ABOVE_ALL

    result = what_if(window(), high=ABOVE_ALL, medium=ABOVE_ALL)  # both tiers empty: nothing alerted
    assert result.alerts == 0 and ABOVE_ALL > 1.0


def test_a_slider_at_1_is_the_empty_tier_and_reads_so():
    from fraudcore.thresholds import ABOVE_ALL
    from fraudcore.tuning import cut_text, slider_cut

    assert slider_cut(1.0) == ABOVE_ALL and slider_cut(0.25) == 0.25  # saving 1 keeps the tier empty
    assert cut_text(ABOVE_ALL) == "nothing (empty tier)" and cut_text(0.01234) == "at score ≥ 0.0123"


def test_empty_tiers_can_be_saved_as_a_policy():
    from fraudcore.thresholds import ABOVE_ALL
    from fraudcore.tuning import policy_from_cuts

    policy = policy_from_cuts(window(), ("precision", 0.9, ABOVE_ALL), ("f1", None, 0.35))
    assert policy.high.threshold == ABOVE_ALL and policy.high.alerts == 0 and policy.medium.threshold == 0.35
