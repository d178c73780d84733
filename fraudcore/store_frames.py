"""DataFrames to a ``WriteBatch`` (``Store.write_batch``): events kept as raw JSON with their typed key columns, score
rows and the review cases to open; and the value helpers the store shares (ids as text, missing markers)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.matrix import category_text
from fraudcore.store_write import CASE_TIERS, ScoreRows, WriteBatch

if TYPE_CHECKING:
    from fraudcore.store import EventKeys

__all__ = ["frames_batch", "ids_of", "is_missing", "text_of"]


def frames_batch(events: pd.DataFrame, scores: pd.DataFrame | None, keys: EventKeys,
                 case_tiers: Sequence[str] = CASE_TIERS) -> WriteBatch:
    """A ``WriteBatch`` from DataFrames: events (any raw columns; the first row of an id wins, kept as raw JSON) and
    score rows (event_id, model_id, score; optionally tier, reasons, features, shadow, scored_at)."""
    for column in (keys.event_id, keys.event_time):
        if column not in events.columns:
            raise FraudcoreError(f"the events have no {column!r} column (they have {list(events.columns)[:12]}); "
                                 "the store needs an id and a time per event")
    n = len(events)
    raw = events.to_json(orient="records", lines=True, date_format="iso", date_unit="us").splitlines() if n else []
    ids, times = ids_of(events[keys.event_id]), _times(events[keys.event_time], keys)
    if any(i is None for i in ids) or np.isnat(times).any():
        raise FraudcoreError("some events have no id or no time; quarantine them before write_batch")
    seen: set[str] = set()
    keep = np.array([p for p, i in enumerate(ids) if not (i in seen or seen.add(i))], dtype=np.int64)
    amount = pd.to_numeric(events[keys.amount], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) \
        if keys.amount and keys.amount in events.columns else np.full(n, np.nan)
    label = pd.to_numeric(events[keys.label]).astype("Int64").array \
        if keys.label and keys.label in events.columns else pd.array([pd.NA] * n, dtype="Int64")
    kept = events.iloc[keep]
    batch = WriteBatch([ids[p] for p in keep], times[keep], amount[keep], [_int_or_none(v) for v in label[keep]],
                       [raw[p] for p in keep],
                       {e: ids_of(kept[e]) for e in keys.entities if e in kept.columns})
    if scores is not None and len(scores):
        columns, batch.scores = _score_rows(scores)
        amounts = dict(zip(batch.event_id, batch.amount.tolist(), strict=True))
        for event_id, tier, score, shadow in zip(columns["event_id"], columns["tier"], columns["score"].tolist(),
                                                 columns["shadow"].tolist(), strict=True):  # the frame's order
            if not shadow and tier in case_tiers and event_id not in batch.cases["event_id"]:
                for name, value in zip(("event_id", "tier", "risk", "amount"),
                                       (event_id, tier, float(score), amounts.get(event_id)), strict=True):
                    batch.cases[name].append(value)
    return batch


def _score_rows(scores: pd.DataFrame) -> tuple[dict[str, Any], list[ScoreRows]]:
    """Score rows from a frame: their columns, and the parts to insert, one per layout of their ``features`` (dicts
    or JSON objects of model inputs; values that are not numbers are categories), one for the rows without."""
    missing = {"event_id", "model_id", "score"} - set(scores.columns)
    if missing:
        raise FraudcoreError(f"the scores need columns event_id, model_id and score; missing {sorted(missing)}")

    def column(name: str, default: Any) -> list:
        return scores[name].to_numpy(dtype=object).tolist() if name in scores.columns else [default] * len(scores)

    shadow = scores["shadow"].fillna(False).astype(bool).to_numpy() if "shadow" in scores.columns else \
        np.zeros(len(scores), dtype=bool)
    columns = {"event_id": ids_of(scores["event_id"]), "model_id": [str(m) for m in column("model_id", None)],
               "score": pd.to_numeric(scores["score"]).to_numpy(dtype=float), "tier": column("tier", None),
               "reasons": [_json(r) for r in column("reasons", None)], "shadow": shadow}
    if "scored_at" in scores.columns:
        columns["scored_at"] = pd.to_datetime(scores["scored_at"]).to_numpy()
    groups: dict[tuple, list[int]] = {}
    rows = [json.loads(f) if isinstance(f, str) else f for f in column("features", None)]
    for j, inputs in enumerate(rows):
        if not isinstance(inputs, Mapping):
            groups.setdefault((), []).append(j)
            continue
        inputs = rows[j] = {name: None if is_missing(value) else value for name, value in inputs.items()}
        kinds = tuple((name, not (value is None or _is_number(value))) for name, value in inputs.items())
        groups.setdefault(kinds, []).append(j)
    parts = []
    for kinds, members in groups.items():
        picked = np.array(members, dtype=np.int64)
        part = {k: v[picked] if isinstance(v, np.ndarray) else [v[j] for j in members] for k, v in columns.items()}
        inputs = {name: [category_text(rows[j][name]) for j in members] if categorical else
                  np.array([_number(rows[j][name]) for j in members], dtype=float) for name, categorical in kinds}
        parts.append(ScoreRows(part, inputs if kinds else None))
    return columns, parts


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float | np.number)


def _number(value: Any) -> float:
    return math.nan if value is None or not math.isfinite(value) else float(value)



def _int_or_none(value: Any) -> int | None:
    return None if is_missing(value) else int(value)


def _json(value: Any) -> str | None:
    """JSON text for a reasons list or features dict (NaN and inf become null, numpy numbers plain)."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, dict):
        value = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in value.items()}
    return json.dumps(value, default=_plain_number)


def _plain_number(value: Any) -> Any:
    """numpy scalars as Python numbers (non-finite as null); anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and not np.isfinite(value) else value
    return str(value)


def ids_of(values: pd.Series) -> list[str | None]:
    """Ids and entity values as text; integral floats (ints that met a NaN) lose their '.0'; missing as None."""
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
        values = values.astype("Int64")
    return [None if is_missing(v) else str(v) for v in values.tolist()]


def _times(values: pd.Series, keys: EventKeys) -> np.ndarray:
    if keys.time_unit == "seconds":
        stamps = pd.Timestamp(keys.time_origin) + pd.to_timedelta(pd.to_numeric(values), unit="s")
    else:
        stamps = pd.to_datetime(values)
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.astype("datetime64[us]").to_numpy()


def text_of(value: Any) -> str:
    """An entity value as the store keys it: integral floats without '.0', numpy scalars as their Python value."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return text_of(value.item())
    return str(value)


def is_missing(value: Any) -> bool:
    """None, pandas' NA / NaT or a float NaN."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)
