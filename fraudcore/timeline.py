"""The split on a timeline: event volume per period, with train / validation / test and label-delay gaps as bands.

The Train page draws this before training, so the analyst sees which dates each part covers and what a label delay
costs in data. The split itself comes from ``fraudcore.split.make_split`` on the same times and labels training uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from fraudcore.dataset import OpenedDataset
from fraudcore.errors import DataContractError, FraudcoreError
from fraudcore.loading import qident, typed_spec
from fraudcore.split import SplitPlan, make_split

PARTS = ("train", "validation", "test")
GAP = "label-delay gap"
UNUSED = "not used"
MIXED = "train / validation / test mixed at random"
BAND_ORDER = (*PARTS, GAP, UNUSED, MIXED)


@dataclass(frozen=True)
class SplitPreview:
    """Volume per period, the coloured bands, the split's human label and its per-part description."""

    volume: pd.DataFrame  # period, events, frauds
    bands: pd.DataFrame  # band, start, end, rows, frauds
    label: str
    parts: pd.DataFrame  # part, rows, frauds, fraud_rate, start, end


def event_times(opened: OpenedDataset) -> pd.DataFrame:
    """Event time and label of every row, in (time, id) order as training sees them."""
    spec = opened.spec
    if not spec.event_time:
        raise DataContractError("the dataset has no event time column: set one on the Data page to split by time")
    if not spec.label:
        raise DataContractError("the dataset has no label column: set one on the Data page (1 = fraud, 0 = legit)")
    tspec = typed_spec(spec)
    view = opened.data.typed_view(spec)
    t, y, eid = qident(tspec.event_time), qident(tspec.label), qident(tspec.event_id)
    frame = opened.data.con.execute(f"SELECT {t} AS time, {y} AS label FROM {view} ORDER BY {t}, {eid}").df()
    if frame["time"].isna().any() or frame["label"].isna().any():
        raise DataContractError(f"{spec.event_time} or {spec.label} has empty or unreadable values; fix them on the "
                                "Data page (validation lists the rows)")
    return frame


def period_for(span: pd.Timedelta) -> str:
    """Bar width for a time span: hours up to a week, days up to half a year, weeks beyond."""
    if span <= pd.Timedelta(days=7):
        return "h"
    return "D" if span <= pd.Timedelta(days=183) else "W"


def default_dates(frame: pd.DataFrame, test_share: float = 0.25) -> tuple[date, date, date, date]:
    """Train and test date ranges for a dates split: the last ``test_share`` of calendar days (at least one) test."""
    first, last = pd.Timestamp(frame["time"].min()).date(), pd.Timestamp(frame["time"].max()).date()
    test_days = max(1, round(((last - first).days + 1) * test_share))
    train_end = max(first, last - timedelta(days=test_days))
    return first, train_end, train_end + timedelta(days=1), last


def split_preview(frame: pd.DataFrame, plan: SplitPlan) -> SplitPreview:
    """Where the plan's parts fall on the timeline of ``frame`` (columns time, label); FraudcoreError if it can't."""
    times = pd.Series(pd.to_datetime(frame["time"])).reset_index(drop=True)
    y = frame["label"].to_numpy(dtype=np.int8)
    if times.empty:
        raise FraudcoreError("the dataset has no rows to split")
    split = make_split(plan, times, y)
    freq = period_for(times.iloc[-1] - times.iloc[0])
    volume = (pd.DataFrame({"period": times.dt.floor(freq), "frauds": y})
              .groupby("period", sort=True).agg(events=("frauds", "size"), frauds=("frauds", "sum")).reset_index())
    idx = {"train": split.train, "validation": split.valid, "test": split.test}
    parts = pd.DataFrame([_part_row(name, rows, times, y) for name, rows in idx.items()])
    bands = _bands(plan, times, y, idx)
    return SplitPreview(volume, bands, split.label, parts)


def _part_row(name: str, rows: np.ndarray, times: pd.Series, y: np.ndarray) -> dict:
    chunk = times.iloc[rows]
    frauds = int(y[rows].sum())
    return {"part": name, "rows": len(rows), "frauds": frauds, "fraud_rate": frauds / len(rows) if len(rows) else None,
            "start": chunk.min(), "end": chunk.max()}


def _band(name: str, start: pd.Timestamp, end: pd.Timestamp, mask: np.ndarray, y: np.ndarray) -> dict:
    return {"band": name, "start": start, "end": end, "rows": int(mask.sum()), "frauds": int(y[mask].sum())}


def _bands(plan: SplitPlan, times: pd.Series, y: np.ndarray, idx: dict[str, np.ndarray]) -> pd.DataFrame:
    """Contiguous bands in time order; rows between parts (gaps, unused days) get bands of their own."""
    t = times.to_numpy()
    if plan.kind == "random":
        return pd.DataFrame([_band(MIXED, times.min(), times.max(), np.ones(len(t), bool), y)])
    rows = []
    spans = [(name, times.iloc[idx[name]].min(), times.iloc[idx[name]].max()) for name in PARTS]
    spans.sort(key=lambda s: s[1])
    previous_end: pd.Timestamp | None = None
    for name, start, end in spans:
        if previous_end is not None and start > previous_end:
            between = (t > np.datetime64(previous_end)) & (t < np.datetime64(start))
            if between.any() or plan.delay_days:
                gap = GAP if plan.kind == "time" else UNUSED
                rows.append(_band(gap, previous_end, start, between, y))
        mask = np.zeros(len(t), bool)
        mask[idx[name]] = True
        rows.append(_band(name, start, end, mask, y))
        previous_end = end
    first, last = spans[0][1], spans[-1][2]
    for lo, hi, mask in ((times.min(), first, t < np.datetime64(first)), (last, times.max(), t > np.datetime64(last))):
        if mask.any():
            rows.append(_band(UNUSED, lo, hi, mask, y))
    return pd.DataFrame(rows).sort_values("start", kind="stable").reset_index(drop=True)
