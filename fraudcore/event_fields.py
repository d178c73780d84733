"""Checks of one raw event's fields against a model's contract: each returns the typed value (time as a naive UTC
Timestamp, numbers as float, categories as text, ids as text or int) or raises ValueError with a message for the
caller; and the small conversions that keep an event's values comparable with stored history."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.features import MAX_AMOUNT

__all__ = ["MAX_NUMBER", "amount", "category", "comparable_id", "identifier", "like", "like_kind", "missing",
           "number", "numeric", "typed_time"]

MAX_NUMBER = 3.0e38  # models read float32: larger magnitudes would become infinite
_EARLIEST, _LATEST = pd.Timestamp.min.ceil("s"), pd.Timestamp.max.floor("s")  # nanoseconds in 64 bits (1677–2262)
_RELATIVE = frozenset({"now", "today", "tomorrow", "yesterday"})  # words pandas reads as the clock's time


def missing(value: Any) -> bool:
    """None, NA, NaT or a float NaN."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def number(value: Any) -> float:
    """A number from an int, float or numeric text (booleans refused)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got the text {value[:40]!r}") from None
    raise ValueError(f"expected a number, got {type(value).__name__}")


def amount(value: Any) -> float:
    """An amount: NaN when unknown, else a finite number in [0, MAX_AMOUNT]."""
    if value is None or value is pd.NA:
        return math.nan  # unknown amount: the features and the model treat it as missing, as in training
    value = number(value)
    if not math.isfinite(value):
        raise ValueError(f"amount must be finite, got {value}")
    if value < 0:
        raise ValueError(f"amount must be >= 0, got {value:g} (refunds and reversals are not scored)")
    if value > MAX_AMOUNT:
        raise ValueError(f"amount {value:g} is too large; amounts up to {MAX_AMOUNT:g} can be scored")
    return value


def numeric(value: Any) -> float:
    """A numeric input: NaN when unknown, else a finite number the model can read as float32."""
    if missing(value):
        return math.nan
    value = number(value)
    if math.isinf(value):
        raise ValueError(f"expected a finite number (or null when unknown), got {value}")
    if abs(value) > MAX_NUMBER:
        raise ValueError(f"{value:g} is too large for the model (float32); send a value within ±{MAX_NUMBER:g}")
    return value


def category(value: Any) -> str | None:
    """A category as text (integers become their digits); None when unknown."""
    if missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    raise ValueError(f"expected text (a category), got {type(value).__name__} {value!r}")


def identifier(value: Any) -> str | int | None:
    """An id as text or int (integral floats become ints); None when unknown."""
    if missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    raise ValueError(f"expected an id (text or integer), got {type(value).__name__} {value!r}")


def typed_time(value: Any, time_unit: str, origin: datetime) -> pd.Timestamp:
    """One raw event time as a naive UTC Timestamp, the way the typed view reads it."""
    if time_unit == "seconds":
        seconds = number(value)
        if not math.isfinite(seconds):
            raise ValueError(f"expected seconds since {origin:%Y-%m-%d}, got {seconds}")
        try:
            stamp = pd.Timestamp(origin) + pd.Timedelta(microseconds=math.floor(seconds * 1e6 + 0.5))
        except (OverflowError, ValueError):
            raise ValueError(f"{seconds:g} seconds since {origin:%Y-%m-%d} is outside the times that can be scored "
                             f"({_EARLIEST:%Y-%m-%d} to {_LATEST:%Y-%m-%d})") from None
        return _in_range(stamp)
    if isinstance(value, bool | int | float | np.number):
        raise ValueError(f"expected a timestamp such as '2025-01-06T00:05:13', got the number {value!r}")
    if isinstance(value, str) and value.strip().lower() in _RELATIVE:
        raise ValueError(f"{value.strip()!r} is a time relative to the server's clock; send when the event "
                         "happened as ISO 8601 text such as '2025-01-06T00:05:13'")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot read {str(value)[:40]!r} as a time ({exc}); send ISO 8601 text such as "
                         "'2025-01-06T00:05:13'") from None
    if stamp is pd.NaT:
        raise ValueError("event time is empty; send when the event happened")
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    return _in_range(stamp)


def _in_range(stamp: pd.Timestamp) -> pd.Timestamp:
    """``stamp`` if history and features can place it (nanoseconds since 1970 in 64 bits), else ValueError."""
    if not _EARLIEST <= stamp <= _LATEST:
        raise ValueError(f"{stamp} is outside the times that can be scored ({_EARLIEST:%Y-%m-%d} to "
                         f"{_LATEST:%Y-%m-%d}); check the year")
    return stamp


def like(column: pd.Series, value: Any) -> Any:
    """An entity value in the history column's kind (a digit string for an integer column becomes an int)."""
    return like_kind(column.dtype, column.iloc[0] if len(column) else None, value)


def like_kind(dtype: Any, first: Any, value: Any) -> Any:
    """``_like`` given the column's dtype and its first value."""
    if isinstance(value, str) and pd.api.types.is_integer_dtype(dtype):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(value, int) and dtype == np.dtype(object) and isinstance(first, str):
        return str(value)
    return value


def comparable_id(value: Any, ids: np.ndarray) -> Any:
    """The event id in the history ids' kind ("123" against integer ids is 123); None when the two cannot be ordered
    (text against integers), which places the event after every same-time history row, as a missing id does."""
    if missing(value) or not len(ids):
        return value
    value = like_kind(ids.dtype, ids[0], value)
    numeric_ids = np.issubdtype(ids.dtype, np.number)
    return value if isinstance(value, str) != numeric_ids else None
