"""Splits: time order with label-delay gaps, explicit dates, stratified random labelled as such."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fraudcore.errors import FraudcoreError
from fraudcore.split import SplitPlan, make_split


@pytest.fixture
def events():
    rng = np.random.default_rng(0)
    times = pd.Series(pd.date_range("2024-01-01", periods=60 * 24, freq="h")).sample(frac=1, random_state=1)
    y = (rng.random(len(times)) < 0.05).astype(int)
    return times.reset_index(drop=True), y


def test_time_split_keeps_order_and_leaves_delay_gaps(events):
    times, y = events
    split = make_split(SplitPlan(delay_days=3), times, y)
    t = times.to_numpy()
    assert t[split.train].max() + np.timedelta64(3, "D") <= t[split.valid].min()
    assert t[split.valid].max() + np.timedelta64(3, "D") <= t[split.test].min()
    assert len(split.test) == pytest.approx(0.2 * len(t), abs=2)
    assert not set(split.train) & set(split.test) and not set(split.valid) & set(split.test)
    info = split.describe(times, y)
    assert info["kind"] == "time" and "3-day label delay" in info["label"]
    assert info["train"]["rows"] + info["valid"]["rows"] + info["test"]["rows"] < len(t)  # gaps dropped


def test_time_split_without_delay_uses_every_row(events):
    times, y = events
    split = make_split(SplitPlan(), times, y)
    assert len(split.train) + len(split.valid) + len(split.test) == len(times)
    assert times.iloc[split.train].max() < times.iloc[split.valid].min() < times.iloc[split.test].min()


def test_date_split_inclusive_whole_days(events):
    times, y = events
    plan = SplitPlan(kind="dates", train_start=datetime(2024, 1, 10), train_end=datetime(2024, 1, 16),
                     test_start=datetime(2024, 1, 24), test_end=datetime(2024, 1, 30), valid_size=0.25)
    split = make_split(plan, times, y)
    train_part = times.iloc[np.concatenate([split.train, split.valid])]
    assert train_part.min() == pd.Timestamp("2024-01-10") and train_part.max() == pd.Timestamp("2024-01-16 23:00")
    test_part = times.iloc[split.test]
    assert test_part.min() == pd.Timestamp("2024-01-24") and test_part.max() == pd.Timestamp("2024-01-30 23:00")
    assert times.iloc[split.train].max() < times.iloc[split.valid].min()
    assert len(split.valid) == pytest.approx(0.25 * 7 * 24, abs=1)
    assert "7-day gap" in split.label
    delayed = make_split(plan.model_copy(update={"delay_days": 2}), times, y)
    assert "no gap before it" in delayed.label and "7-day gap (the 2-day label delay)" in delayed.label


def test_date_split_test_cannot_overlap_the_whole_train_end_day_or_the_delay():
    day = dict(kind="dates", train_start=datetime(2024, 1, 10), train_end=datetime(2024, 1, 16),
               test_end=datetime(2024, 1, 30))
    with pytest.raises(ValidationError, match="on or after 2024-01-17 00:00: train_end counts as the whole day"):
        SplitPlan(**day, test_start=datetime(2024, 1, 16, 12))
    with pytest.raises(ValidationError, match=r"on or after 2024-01-20 00:00.*3-day label delay"):
        SplitPlan(**day, test_start=datetime(2024, 1, 18), delay_days=3)
    assert SplitPlan(**day, test_start=datetime(2024, 1, 20), delay_days=3).test_start == datetime(2024, 1, 20)


def test_random_split_is_stratified_and_labelled(events):
    _, y = events
    split = make_split(SplitPlan(kind="random", seed=3), None, y)
    rates = [y[idx].mean() for idx in (split.train, split.valid, split.test)]
    assert max(rates) - min(rates) < 0.01
    assert "NOT time-ordered" in split.label
    again = make_split(SplitPlan(kind="random", seed=3), None, y)
    assert np.array_equal(split.test, again.test)
    delayed = make_split(SplitPlan(kind="random", seed=3, delay_days=7), None, y)
    assert np.array_equal(split.test, delayed.test)  # rows drawn at random: no gap, and the label says so
    assert "no 7-day gap" in delayed.label and "features only" in delayed.label


def test_bad_plans_and_windows_without_fraud(events):
    times, y = events
    with pytest.raises(ValidationError, match="add up"):
        SplitPlan(valid_size=0.5, test_size=0.5)
    with pytest.raises(ValidationError, match="dates split needs"):
        SplitPlan(kind="dates")
    with pytest.raises(FraudcoreError, match="needs an event time"):
        make_split(SplitPlan(), None, y)
    no_recent_fraud = y.copy()
    no_recent_fraud[times.to_numpy() >= np.datetime64("2024-02-15")] = 0
    with pytest.raises(FraudcoreError, match="test window has no fraud"):
        make_split(SplitPlan(), times, no_recent_fraud)
