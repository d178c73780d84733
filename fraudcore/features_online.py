"""Online path of the point-in-time features: the batch definitions computed for one new event from its history.

History rows count only when they come before the event in (event_time, event_id) order; unknown labels count as 0.
A store needs to fetch only the rows newer than ``event_time - history_lookback(config)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.errors import DataContractError
from fraudcore.features import FeatureConfig, cached_plan, history_lookback, origin_us, to_us

__all__ = ["EntityWindows", "HistoryArrays", "event_time_us", "history_arrays", "history_lookback", "online_features",
           "online_features_arrays", "step_values", "times_us"]

NAN = float("nan")


def _missing(value: Any) -> bool:
    """True for None, NaN and pandas' missing markers."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def event_time_us(value: Any, config: FeatureConfig) -> int:
    """One event time as integer microseconds since the epoch (UTC for time-zone-aware values)."""
    if config.time_unit == "seconds":
        return math.floor(float(value) * 1e6 + 0.5) + origin_us(config)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.value // 1000


def times_us(values: pd.Series, config: FeatureConfig) -> np.ndarray:
    """A column of event times as integer microseconds since the epoch, exactly as the batch path keys them."""
    if config.time_unit == "seconds":
        seconds = pd.to_numeric(values).to_numpy(dtype=float)
        return np.floor(seconds * 1e6 + 0.5).astype(np.int64) + origin_us(config)
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.to_numpy().astype("datetime64[us]").astype(np.int64)


def _floats(values: pd.Series) -> np.ndarray:
    """A column as floats, missing values as NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def amount_ratio(amount: float, mean: float) -> float:
    """The event's amount over the entity's recent mean amount (NaN when either is unknown or the mean is 0)."""
    return NAN if math.isnan(amount) or math.isnan(mean) or mean == 0 else amount / mean


def calendar(t0: int) -> dict[str, float]:
    """Hour, day of week (Monday = 0), weekend (Sat/Sun) and night (hour <= 6) of the event time."""
    moment = datetime(1970, 1, 1) + timedelta(microseconds=t0)
    return {"hour": float(moment.hour), "dow": float(moment.weekday()),
            "weekend": float(moment.weekday() >= 5), "night": float(moment.hour <= 6)}


def _check_columns(event: Mapping[str, Any], history: pd.DataFrame, config: FeatureConfig) -> None:
    """Raise when the event or a non-empty history lacks a column the features read."""
    needed = [c for c in config.columns if c != config.label]
    missing_event = [c for c in needed if c not in event]
    missing_history = [c for c in config.columns if c not in history.columns] if len(history) else []
    if missing_event or missing_history:
        raise DataContractError(f"online features need {config.columns}; the event lacks {missing_event} and the "
                                f"history lacks {missing_history}")


@dataclass(frozen=True)
class HistoryArrays:
    """History as numpy columns: times (int64 µs), ids, amounts and labels (floats; unknown labels as 0) and the
    entity columns the features compare with the event."""

    times: np.ndarray
    ids: np.ndarray
    amounts: np.ndarray
    labels: np.ndarray
    entities: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class _Step:
    """One feature of the plan with its windows already in microseconds."""

    name: str
    family: str
    entity: str | None
    window_us: int


@lru_cache(maxsize=64)
def _steps(config: FeatureConfig) -> tuple[_Step, ...]:
    """The feature plan of ``config`` ready for the online loop (built once per config)."""
    longest = to_us(config.windows[-1]) if config.windows else 0
    return tuple(_Step(f.name, f.family, f.entity,
                       longest if f.family == "secs_since_prev" else to_us(f.window) if f.window else 0)
                 for f in cached_plan(config))


def history_arrays(history: pd.DataFrame, config: FeatureConfig) -> HistoryArrays:
    """The columns of a history frame that the online features read, as numpy arrays."""
    n = len(history)
    if not n:
        empty = np.empty(0)
        return HistoryArrays(np.empty(0, dtype=np.int64), empty, empty, empty, {})
    entities = dict.fromkeys([*config.entities, *(config.risk_entities or ())])
    return HistoryArrays(
        times=times_us(history[config.event_time], config),
        ids=history[config.event_id].to_numpy(),
        amounts=_floats(history[config.amount]) if config.amount else np.full(n, NAN),
        labels=np.nan_to_num(_floats(history[config.label])) if config.label else np.zeros(n),
        entities={e: history[e].to_numpy() for e in entities},
    )


def online_features(event: Mapping[str, Any], history: pd.DataFrame, config: FeatureConfig) -> dict[str, float]:
    """The features of one event, from the history rows that precede it in (time, id) order."""
    _check_columns(event, history, config)
    return online_features_arrays(event, history_arrays(history, config), config)


def online_features_arrays(event: Mapping[str, Any], history: HistoryArrays,
                           config: FeatureConfig) -> dict[str, float]:
    """``online_features`` on history already held as numpy columns (the scorer's per-event fast path)."""
    t0, id0 = event_time_us(event[config.event_time], config), event[config.event_id]
    amount = NAN if not config.amount or _missing(event[config.amount]) else float(event[config.amount])
    times = history.times
    before = (times < t0) | ((times == t0) & (history.ids < id0)) if len(times) else np.empty(0, dtype=bool)
    own_units, own_known = (0, 0) if math.isnan(amount) else (math.floor(amount * 1e6 + 0.5), 1)

    def windows(entity: str) -> EntityWindows | None:
        value = event[entity]
        if _missing(value):
            return None
        rows = np.flatnonzero(before & (history.entities[entity] == value)) if len(times) else \
            np.empty(0, dtype=np.int64)
        amounts = history.amounts[rows]
        known = ~np.isnan(amounts)
        units = np.where(known, np.floor(np.where(known, amounts, 0.0) * 1e6 + 0.5), 0).astype(np.int64)
        return EntityWindows(times[rows], units, known, history.labels[rows], t0, own_units, own_known)

    return dict(zip([f.name for f in _steps(config)], step_values(config, t0, amount, windows), strict=True))


def step_values(config: FeatureConfig, t0: int, amount: float,
                windows: Callable[[str], EntityWindows | None]) -> list[float]:
    """One event's features in plan order, given ``windows(entity)``: that entity's earlier events (None when the
    event has no value for it). Shared by the in-memory scorer and the live path's one-event batches."""
    cache: dict[str, EntityWindows | None] = {}
    cal, delay, out = calendar(t0), to_us(config.label_delay), []
    for f in _steps(config):
        if f.entity is None:
            out.append(cal[f.family])
            continue
        if f.entity not in cache:
            cache[f.entity] = windows(f.entity)
        w = cache[f.entity]
        if w is None:
            out.append(NAN)
        elif f.family == "nb_tx":
            out.append(w.count(f.window_us))
        elif f.family == "avg_amount":
            out.append(w.mean(f.window_us))
        elif f.family == "amount_ratio":
            out.append(amount_ratio(amount, w.mean(f.window_us)))
        elif f.family == "secs_since_prev":
            out.append(w.since_previous(f.window_us))
        else:
            count, share = w.delayed(delay, f.window_us)
            out.append(count if f.family == "nb_tx_delay" else share)
    return out


class EntityWindows:
    """One entity's events before the scored one (at ``t0``), sorted by time with running sums of amounts in
    micro-units (as the batch path sums them), known amounts and labels (unknown as 0); ``own_*`` is the scored
    event's amount. Windows are (t0 − w, t0] with the event itself counted; delayed windows (t0 − d − w, t0 − d]
    (tests/test_features.py checks every feature against the batch path)."""

    def __init__(self, times: np.ndarray, units: np.ndarray, known: np.ndarray, labels: np.ndarray, t0: int,
                 own_units: int, own_known: int) -> None:
        if len(times) > 1 and np.any(times[1:] < times[:-1]):
            order = np.argsort(times, kind="stable")
            times, units, known, labels = times[order], units[order], known[order], labels[order]
        zero = np.zeros(1, dtype=np.int64)
        self.times, self.t0, self.n = times, t0, len(times)
        self.units = np.concatenate([zero, np.cumsum(units, dtype=np.int64)])
        self.known = np.concatenate([zero, np.cumsum(known, dtype=np.int64)])
        self.labels = np.concatenate([[0.0], np.cumsum(labels, dtype=float)])
        self.own_units, self.own_known = own_units, own_known

    def _after(self, bound: int) -> int:
        """How many of the rows have a time <= ``bound``."""
        return int(np.searchsorted(self.times, bound, side="right"))

    def count(self, window_us: int) -> float:
        return float(self.n - self._after(self.t0 - window_us) + 1)

    def mean(self, window_us: int) -> float:
        start = self._after(self.t0 - window_us)
        known = int(self.known[-1] - self.known[start]) + self.own_known
        units = int(self.units[-1] - self.units[start]) + self.own_units
        return float(units) / 1e6 / known if known else NAN

    def since_previous(self, span_us: int) -> float:
        if not self.n or self.times[-1] <= self.t0 - span_us:
            return NAN
        return (self.t0 - int(self.times[-1])) / 1e6

    def delayed(self, delay_us: int, window_us: int) -> tuple[float, float]:
        lo, hi = self._after(self.t0 - delay_us - window_us), self._after(self.t0 - delay_us)
        count = max(hi - lo, 0)
        return float(count), (float(self.labels[hi] - self.labels[lo]) / count if count else 0.0)
