"""Train / validation / test splits: time-ordered with label-delay gaps by default; dates; stratified random.

Time split layout (d = label delay): ``train | gap d | valid | gap d | test``. The gaps mimic production, where the
labels of the last d days before a model is trained are not known yet: validation sees the same handicap as the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, model_validator
from sklearn.model_selection import train_test_split

from fraudcore.errors import FraudcoreError

SplitKind = Literal["time", "random", "dates"]
RANDOM_LABEL = "stratified random split (NOT time-ordered: optimistic for fraud, where patterns drift over time)"


class SplitPlan(BaseModel):
    """How to split: kind, sizes (shares of rows), label delay, explicit dates, seed."""

    kind: SplitKind = "time"
    valid_size: float = 0.2
    test_size: float = 0.2
    delay_days: float = 0.0
    train_start: datetime | None = None
    train_end: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SplitPlan:
        if not (0 < self.valid_size < 1 and 0 < self.test_size < 1 and self.valid_size + self.test_size < 1):
            raise ValueError("valid_size and test_size must be shares in (0, 1) that add up to less than 1")
        if self.delay_days < 0:
            raise ValueError("delay_days must be 0 or more")
        dates = (self.train_start, self.train_end, self.test_start, self.test_end)
        if self.kind == "dates" and None in dates:
            raise ValueError("a dates split needs train_start, train_end, test_start and test_end")
        if self.kind == "dates" and not (dates[0] <= dates[1] < dates[2] <= dates[3]):
            raise ValueError("dates must satisfy train_start <= train_end < test_start <= test_end")
        if self.kind == "dates":  # train_end is a whole day (inclusive): the test starts after it and the delay
            earliest = pd.Timestamp(self.train_end).normalize() + pd.Timedelta(days=1 + self.delay_days)
            if pd.Timestamp(self.test_start) < earliest:
                raise ValueError(f"test_start must be on or after {earliest:%Y-%m-%d %H:%M}: train_end counts as the "
                                 f"whole day {self.train_end:%Y-%m-%d}" + (f", then the {self.delay_days:g}-day label "
                                 "delay" if self.delay_days else "") + ", and test rows must not overlap them")
        return self


@dataclass
class Split:
    """Row positions of each part, and a JSON description for metadata and every output."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    plan: SplitPlan
    label: str

    def describe(self, times: pd.Series | None, y: np.ndarray) -> dict:
        """Kind, human label, and rows / frauds / time range of each part."""
        parts = {}
        for name in ("train", "valid", "test"):
            idx = getattr(self, name)
            part = {"rows": len(idx), "frauds": int(np.asarray(y)[idx].sum())}
            if times is not None and len(idx):
                chunk = times.iloc[idx]
                part.update(start=str(chunk.min()), end=str(chunk.max()))
            parts[name] = part
        return {"kind": self.plan.kind, "label": self.label, "delay_days": self.plan.delay_days,
                "seed": self.plan.seed, **parts}


def _require_both_classes(y: np.ndarray, parts: dict[str, np.ndarray]) -> None:
    for name, idx in parts.items():
        if len(idx) == 0:
            raise FraudcoreError(f"the {name} window is empty: widen it or lower the label delay")
        if name != "train" and y[idx].sum() == 0:
            raise FraudcoreError(f"the {name} window has no fraud: make it longer (or use more data)")


def _cut(times: pd.Series, share_before: float) -> pd.Timestamp:
    """The time at which ``share_before`` of the rows (in time order) lie before."""
    position = min(int(len(times) * share_before), len(times) - 1)
    return times.sort_values(kind="stable").iloc[position]


def split_by_time(times: pd.Series, y: np.ndarray, plan: SplitPlan) -> Split:
    """Train, then validation, then test in time; each later part starts the label delay after the previous ends."""
    times = pd.Series(pd.to_datetime(times)).reset_index(drop=True)
    gap = timedelta(days=plan.delay_days)
    test_start = _cut(times, 1 - plan.test_size)
    valid_start = _cut(times, 1 - plan.test_size - plan.valid_size)
    t = times.to_numpy()
    test = np.flatnonzero(t >= np.datetime64(test_start))
    valid = np.flatnonzero((t >= np.datetime64(valid_start)) & (t < np.datetime64(test_start - gap)))
    train = np.flatnonzero(t < np.datetime64(valid_start - gap))
    _require_both_classes(np.asarray(y), {"train": train, "valid": valid, "test": test})
    label = (f"time-ordered split (train | {plan.delay_days:g}-day label delay | valid | delay | test)"
             if plan.delay_days else "time-ordered split (train | valid | test, no label-delay gap)")
    return Split(train, valid, test, plan, label)


def split_by_dates(times: pd.Series, y: np.ndarray, plan: SplitPlan) -> Split:
    """Explicit train and test date ranges (ends inclusive, whole days); validation is the train range's tail, with
    no gap before it (the label delay separates the train range from the test, as in the handbook's protocol)."""
    times = pd.Series(pd.to_datetime(times)).reset_index(drop=True)
    t = times.to_numpy()
    day = np.timedelta64(1, "D")

    def between(start: datetime, end: datetime) -> np.ndarray:
        return (t >= np.datetime64(start)) & (t < np.datetime64(pd.Timestamp(end).normalize()) + day)

    in_train = np.flatnonzero(between(plan.train_start, plan.train_end))
    test = np.flatnonzero(between(plan.test_start, plan.test_end))
    if len(in_train) == 0:
        raise FraudcoreError(f"no rows between train_start {plan.train_start} and train_end {plan.train_end}")
    valid_start = _cut(times.iloc[in_train], 1 - plan.valid_size)
    is_valid = t[in_train] >= np.datetime64(valid_start)
    train, valid = in_train[~is_valid], in_train[is_valid]
    _require_both_classes(np.asarray(y), {"train": train, "valid": valid, "test": test})
    gap_days = (pd.Timestamp(plan.test_start) - pd.Timestamp(plan.train_end).normalize()).days - 1
    label = (f"date split: train {plan.train_start:%Y-%m-%d}..{plan.train_end:%Y-%m-%d} "
             f"(last {plan.valid_size:.0%} of its rows = validation, no gap before it), {gap_days}-day gap"
             f"{f' (the {plan.delay_days:g}-day label delay)' if plan.delay_days else ''}, "
             f"test {plan.test_start:%Y-%m-%d}..{plan.test_end:%Y-%m-%d}")
    return Split(train, valid, test, plan, label)


def split_random(y: np.ndarray, plan: SplitPlan) -> Split:
    """Stratified random split; labelled as such, because it overstates performance on time-ordered data."""
    rows = np.arange(len(y))
    y = np.asarray(y)
    rest, test = train_test_split(rows, test_size=plan.test_size, stratify=y, random_state=plan.seed)
    valid_share = plan.valid_size / (1 - plan.test_size)
    train, valid = train_test_split(rest, test_size=valid_share, stratify=y[rest], random_state=plan.seed)
    parts = {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
    _require_both_classes(y, parts)
    label = RANDOM_LABEL if not plan.delay_days else \
        f"{RANDOM_LABEL}; no {plan.delay_days:g}-day gap (rows are drawn at random), the delay applies to features only"
    return Split(parts["train"], parts["valid"], parts["test"], plan, label)


def make_split(plan: SplitPlan, times: pd.Series | None, y: np.ndarray) -> Split:
    """Split rows per the plan; time-based kinds need event times."""
    if plan.kind == "random":
        return split_random(y, plan)
    if times is None:
        raise FraudcoreError(f"a {plan.kind} split needs an event time column; set one, or use --split random")
    return split_by_dates(times, y, plan) if plan.kind == "dates" else split_by_time(times, y, plan)
