"""In-memory event history for the online features: ``FrameHistory`` over a DataFrame of raw events, and the
``HistorySource`` protocol it shares with the DuckDB store."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fraudcore.errors import DataContractError
from fraudcore.event_fields import missing as _missing
from fraudcore.features import FeatureConfig
from fraudcore.features_online import HistoryArrays, history_arrays

__all__ = ["FrameHistory", "HistorySource", "typed_times"]


class HistorySource(Protocol):
    """Where the online path gets bounded history (the DuckDB store, or ``FrameHistory`` in memory)."""

    def history(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> pd.DataFrame:
        """Past events sharing any of these entity values with event time in [since, until] (naive UTC), with the
        raw columns and the label (null when not yet known)."""
        ...


class FrameHistory:
    """An in-memory ``HistorySource`` over a DataFrame of raw events (tests, batch files, demos).

    The frame may hold the scored event itself when events carry ids (the features skip it, like later events); an
    event without an id is taken as the newest, so give it only the rows before it.
    """

    def __init__(self, frame: pd.DataFrame, event_time: str = "event_time", *, time_unit: str = "timestamp",
                 time_origin: datetime = datetime(1970, 1, 1), columns: Sequence[str] | None = None) -> None:
        if event_time not in frame.columns:
            raise DataContractError(f"the history frame has no time column {event_time!r} (it has "
                                    f"{list(frame.columns)[:12]}); name its event time column")
        if columns is not None:  # keep only what the features read: cheaper rows per lookup
            frame = frame[[c for c in dict.fromkeys([event_time, *columns]) if c in frame.columns]]
        stamps = typed_times(frame[event_time], time_unit, time_origin)
        order = np.argsort(stamps.to_numpy(), kind="stable")[: int(stamps.notna().sum())]  # by time; NaT dropped
        frame = frame.iloc[order].reset_index(drop=True)
        # numpy-backed text: per-event column access on arrow strings costs more than the features themselves
        self.frame = frame.astype({c: object for c in frame.columns if pd.api.types.is_string_dtype(frame[c])})
        self.dtypes = self.frame.dtypes.to_dict()  # read per event by the scorer's in-memory path
        self._us = stamps.to_numpy()[order].astype("datetime64[us]").astype(np.int64)
        self._index: dict[str, dict[Any, np.ndarray]] = {}
        self._arrays: dict[FeatureConfig, HistoryArrays | None] = {}

    def history(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> pd.DataFrame:
        """Rows whose entity columns match any given value, with event time in [since, until]."""
        return self.frame.iloc[self.rows(entities, since, until)]

    def rows(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> np.ndarray:
        """Positions in ``frame`` (ascending) of the rows ``history`` returns."""
        lo, hi = _us(since), _us(until)
        picked = [self.entity_rows(column, value, lo, hi) for column, value in entities.items()
                  if column in self.frame.columns and not _missing(value)]
        return np.unique(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)

    def entity_rows(self, column: str, value: Any, since_us: int, until_us: int) -> np.ndarray:
        """Positions (ascending, so in time order) of the rows holding ``value`` in ``column`` with event time in
        [since_us, until_us] (integer microseconds since the epoch)."""
        rows = self._positions(column, value)
        t = self._us[rows]
        return rows[np.searchsorted(t, since_us, "left"):np.searchsorted(t, until_us, "right")]

    def arrays(self, config: FeatureConfig) -> HistoryArrays | None:
        """The whole frame as the online features' numpy columns (built once per config), or None where the
        general path must run: a time column that is not already datetimes, or a column the features need is
        absent."""
        if config not in self._arrays:
            needed = [c for c in config.columns if c != config.label]
            fits = config.time_unit == "timestamp" and all(c in self.frame.columns for c in needed) and \
                pd.api.types.is_datetime64_any_dtype(self.frame[config.event_time])
            full = self.frame if not config.label or config.label in self.frame.columns else \
                self.frame.assign(**{config.label: np.nan})
            self._arrays[config] = history_arrays(full, config) if fits and len(full) else None
        return self._arrays[config]

    def _positions(self, column: str, value: Any) -> np.ndarray:
        """Rows holding ``value`` in ``column`` (a digit string finds an integer id and vice versa)."""
        if column not in self._index:
            groups = self.frame.groupby(column, sort=False, dropna=True).indices
            self._index[column] = {_key(k): v for k, v in groups.items()}
        index, key = self._index[column], _key(value)
        if key not in index and isinstance(key, str):
            with contextlib.suppress(ValueError):  # as like_kind reads text against integers: int("+7") is 7
                key = int(key)
        elif key not in index and isinstance(key, int):
            key = str(key)
        return index.get(key, np.empty(0, dtype=np.int64))


def typed_times(values: pd.Series, time_unit: str, origin: datetime) -> pd.Series:
    """A raw time column on the typed timeline (naive UTC datetimes; NaT where unreadable)."""
    if time_unit == "seconds":
        us = np.floor(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float) * 1e6 + 0.5)
        return pd.Series(pd.Timestamp(origin) + pd.to_timedelta(us, unit="us"), index=values.index)
    stamps = pd.to_datetime(values, errors="coerce")
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None) if stamps.dt.tz is not None else stamps


def _us(moment: datetime) -> int:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    return stamp.value // 1000


def _key(value: Any) -> Any:
    """A lookup key that treats 7, 7.0 and numpy 7 alike."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value
