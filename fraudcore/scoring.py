"""Score events with a saved model: one at a time (online features, numpy fast path, exact reasons) or as a frame.

A ``Scorer`` holds everything expensive once (model, matrix codes, the explainer's cached state and a single-threaded
copy of the booster for one-row calls); per event it only validates, fetches bounded history, computes the same
point-in-time features as training, scores one numpy row, tiers it and explains it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fraudcore.errors import DataContractError, FraudcoreError, ModelArtifactError
from fraudcore.explain import explain_records, record_reasons
from fraudcore.features import MAX_AMOUNT, FeatureConfig, history_lookback
from fraudcore.features_online import HistoryArrays, history_arrays, online_features, online_features_arrays
from fraudcore.registry import ModelMetadata, champion_id, load_model, required_columns
from fraudcore.thresholds import assign_tiers

__all__ = ["EventValidationError", "FrameHistory", "HistorySource", "ScoredEvent", "Scorer"]

EXPLAINABLE = ("xgboost", "logreg")
MAX_NUMBER = 3.0e38  # models read float32: larger magnitudes would become infinite


class HistorySource(Protocol):
    """Where the online path gets bounded history (the DuckDB store, or ``FrameHistory`` in memory)."""

    def history(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> pd.DataFrame:
        """Past events sharing any of these entity values with event time in [since, until] (naive UTC), with the
        raw columns and the label (null when not yet known)."""
        ...


class EventValidationError(DataContractError):
    """An event broke the model's field contract; ``errors`` lists every bad field as {"field", "message"}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = list(errors)
        fields = ", ".join(dict.fromkeys(e["field"] for e in self.errors))
        super().__init__(f"the event has {len(self.errors)} invalid field(s) ({fields}); fix them and resend",
                         [f"{e['field']}: {e['message']}" for e in self.errors])


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
        stamps = _typed_times(frame[event_time], time_unit, time_origin)
        order = np.argsort(stamps.to_numpy(), kind="stable")[: int(stamps.notna().sum())]  # by time; NaT dropped
        frame = frame.iloc[order].reset_index(drop=True)
        # numpy-backed text: per-event column access on arrow strings costs more than the features themselves
        self.frame = frame.astype({c: object for c in frame.columns if pd.api.types.is_string_dtype(frame[c])})
        self._us = stamps.to_numpy()[order].astype("datetime64[us]").astype(np.int64)
        self._index: dict[str, dict[Any, np.ndarray]] = {}
        self._arrays: dict[FeatureConfig, HistoryArrays | None] = {}

    def history(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> pd.DataFrame:
        """Rows whose entity columns match any given value, with event time in [since, until]."""
        return self.frame.iloc[self.rows(entities, since, until)]

    def rows(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> np.ndarray:
        """Positions in ``frame`` (ascending) of the rows ``history`` returns."""
        lo, hi = _us(since), _us(until)
        picked = []
        for column, value in entities.items():
            if column in self.frame.columns and not _missing(value):
                rows = self._positions(column, value)  # ascending, so in time order
                t = self._us[rows]
                picked.append(rows[np.searchsorted(t, lo, "left"):np.searchsorted(t, hi, "right")])
        return np.unique(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)

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
        if key not in index and isinstance(key, str) and key.strip().lstrip("-").isdigit():
            key = int(key)
        elif key not in index and isinstance(key, int):
            key = str(key)
        return index.get(key, np.empty(0, dtype=np.int64))


@dataclass
class ScoredEvent:
    """One scored event: its id, score, tier, the model that scored it, top reasons and the computed inputs."""

    event_id: Any
    score: float
    tier: str
    model_id: str
    reasons: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (numpy scalars unwrapped, NaN as None)."""
        return {"event_id": _plain(self.event_id), "score": self.score, "tier": self.tier, "model_id": self.model_id,
                "reasons": [{k: _plain(v) for k, v in r.items()} for r in self.reasons],
                "features": {k: _plain(v) for k, v in self.features.items()}}


class Scorer:
    """A loaded model ready to score: frames (``score_inputs``) or raw events with online features."""

    def __init__(self, model: Any, metadata: ModelMetadata) -> None:
        self.model, self.metadata, self.model_id = model, metadata, metadata.model_id
        config = metadata.features.get("config")
        self.feature_config: FeatureConfig | None = FeatureConfig.from_dict(config) if config else None
        self.tiers = metadata.tiers
        self.spec = metadata.spec
        self.matrix = model.matrix_
        self.feature_names = list(self.matrix.feature_names)
        self._event_model = _single_threaded(model)
        self.explainable = metadata.algo in EXPLAINABLE
        cfg = self.feature_config
        self.lookback = history_lookback(cfg) if cfg else None
        self.entities = list(dict.fromkeys([*cfg.entities, *cfg.risk_entities])) if cfg else []
        self._required = [c for c in required_columns(metadata) if c != self.spec.event_id]
        self._empty_history = pd.DataFrame({c: pd.Series(dtype=object) for c in (cfg.columns if cfg else [])})

    @classmethod
    def load(cls, model_id: str | None = None, root: Path | str | None = None) -> Scorer:
        """The scorer of ``model_id`` (None: the champion) from the registry at ``root``."""
        if model_id is None:
            model_id = champion_id(root)
            if model_id is None:
                raise ModelArtifactError("no champion model is set, so there is nothing to score with: promote one "
                                         "(python -m fraudcore promote MODEL_ID) or pass a model id")
        return cls(*load_model(model_id, root))

    # ---- frames -------------------------------------------------------------------------------------------------

    def score_inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """Columns score, tier and model_id for each row of ``X`` (which holds the model's input columns)."""
        score = self.model.predict_numpy(self.matrix.numpy(X))
        return pd.DataFrame({"score": score, "tier": assign_tiers(score, self.tiers), "model_id": self.model_id},
                            index=X.index)

    def frame_history(self, frame: pd.DataFrame) -> FrameHistory:
        """A ``FrameHistory`` over raw events laid out like this model's training data (keeping the columns the
        features read)."""
        return FrameHistory(frame, self.spec.event_time or "event_time", time_unit=self.spec.time_unit,
                            time_origin=self.spec.time_origin,
                            columns=self.feature_config.columns if self.feature_config else None)

    # ---- one event ----------------------------------------------------------------------------------------------

    def validate_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event with typed values (time as a naive UTC Timestamp, numbers as float, categories as text), or an
        EventValidationError listing every bad field."""
        if not isinstance(event, Mapping):
            raise EventValidationError([{"field": "(event)", "message": f"expected an object of fields, got "
                                                                         f"{type(event).__name__}"}])
        spec, out, errors = self.spec, dict(event), []
        for name in self._required:
            if name not in event:
                errors.append({"field": name, "message": f"required field is missing ({_role(spec, name)})"})
        checks = [(spec.event_time, self._time), (spec.event_id, _identifier), (spec.amount, _amount)]
        checks += [(c, _numeric) for c in spec.numeric] + [(c, _category) for c in spec.categorical]
        checks += [(c, _identifier) for c in self.entities]
        for name, check in checks:
            if name is None or name not in event:
                continue
            try:
                out[name] = check(event[name])
            except (TypeError, ValueError, OverflowError) as exc:
                errors.append({"field": name, "message": str(exc)})
        if spec.event_time and spec.event_time in event and out.get(spec.event_time) is None and \
                spec.event_time in self._required:
            errors.append({"field": spec.event_time, "message": "event time is empty; send when the event happened"})
        if errors:
            raise EventValidationError(errors)
        return out

    def features(self, event: Mapping[str, Any], history: HistorySource | None = None) -> dict[str, float]:
        """The point-in-time features of a validated event from its bounded history (none: a first-seen event)."""
        cfg = self.feature_config
        if cfg is None:
            return {}
        t0 = event[cfg.event_time]
        if isinstance(history, FrameHistory) and self.spec.time_unit == "timestamp":
            fast = self._features_in_memory(event, history)
            if fast is not None:
                return fast
        frame = self._empty_history
        if history is not None:
            keys = {e: event.get(e) for e in self.entities if not _missing(event.get(e))}
            frame = history.history(keys, (t0 - self.lookback).to_pydatetime(), t0.to_pydatetime())
        frame, event = self._aligned(frame, event)
        return online_features(event, frame, cfg)

    def score_event(self, event: Mapping[str, Any], history: HistorySource | None = None, k: int = 3) -> ScoredEvent:
        """Validate, compute online features, score (numpy fast path), tier and explain one event (top ``k``)."""
        return self.score_events([event], history, k)[0]

    def score_events(self, events: Sequence[Mapping[str, Any]], history: HistorySource | None = None,
                     k: int = 3) -> list[ScoredEvent]:
        """Score several events in one model call; each sees only ``history`` (not the other events sent with it)."""
        k = _check_k(k)
        valid = self._validate_all(events)
        records = [{**ev, **self.features(ev, history)} for ev in valid]
        A = self.matrix.numpy(records)  # one matrix for the score and the reasons
        scores = self._event_model.predict_numpy(A)
        tiers = assign_tiers(scores, self.tiers)
        reasons = self._reasons(records, k, A) if k > 0 else [[] for _ in records]
        return [ScoredEvent(event_id=ev.get(self.spec.event_id) if self.spec.event_id else None,
                            score=float(s), tier=str(t), model_id=self.model_id, reasons=r,
                            features={n: rec[n] for n in self.feature_names})
                for ev, rec, s, t, r in zip(valid, records, scores, tiers, reasons, strict=True)]

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Scores and tiers of records holding the model's inputs (numpy fast path, one thread)."""
        scores = self._event_model.predict_numpy(self.matrix.numpy(records))
        return scores, assign_tiers(scores, self.tiers)

    def reasons(self, records: Sequence[Mapping[str, Any]], k: int = 3) -> list[list[dict[str, Any]]]:
        """Exact top-``k`` reasons per record of model inputs (empty lists for a model without contributions)."""
        return self._reasons(records, k)

    def _reasons(self, records: Sequence[Mapping[str, Any]], k: int, A: np.ndarray | None = None,
                 ) -> list[list[dict[str, Any]]]:
        if not self.explainable or not records:
            return [[] for _ in records]
        values, base, inputs = explain_records(self.model, list(records), A)  # one explainer per model, any size
        return [[dict(vars(r)) for r in row] for row in record_reasons(values, base, inputs, self.feature_names,
                                                                       self.matrix.categorical, k,
                                                                       self.feature_config)]

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _features_in_memory(self, event: dict[str, Any], history: FrameHistory) -> dict[str, float] | None:
        """``features`` from a FrameHistory's numpy columns, with the same rows and alignment as the frame path
        (None where that path must run instead)."""
        cfg = self.feature_config
        full = history.arrays(cfg)
        if full is None or any(c not in event for c in cfg.columns if c != cfg.label):
            return None
        t0 = event[cfg.event_time]
        keys = {e: event.get(e) for e in self.entities if not _missing(event.get(e))}
        rows = history.rows(keys, (t0 - self.lookback).to_pydatetime(), t0.to_pydatetime())
        if not len(rows):
            part = history_arrays(self._empty_history, cfg)
        else:
            dtypes = history.frame.dtypes
            event = {**event, **{e: _like_kind(dtypes[e], full.entities[e][rows[0]], event[e]) for e in self.entities}}
            part = HistoryArrays(full.times[rows], full.ids[rows], full.amounts[rows], full.labels[rows],
                                 {e: column[rows] for e, column in full.entities.items()})
            event = {**event, cfg.event_id: _comparable_id(event.get(cfg.event_id), part.ids)}
        if _missing(event.get(cfg.event_id)):  # no id: the event comes after every history row at its time
            part = HistoryArrays(part.times, np.zeros(len(rows), dtype=np.int64), part.amounts, part.labels,
                                 part.entities)
            event = {**event, cfg.event_id: 1}
        return online_features_arrays(event, part, cfg)

    def _validate_all(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if len(events) == 1:
            return [self.validate_event(events[0])]
        valid, errors = [], []
        for i, event in enumerate(events):
            try:
                valid.append(self.validate_event(event))
            except EventValidationError as exc:
                errors += [{"field": f"[{i}].{e['field']}", "message": e["message"]} for e in exc.errors]
        if errors:
            raise EventValidationError(errors)
        return valid

    def _time(self, value: Any) -> pd.Timestamp | None:
        if _missing(value):
            return None
        return _typed_time(value, self.spec.time_unit, self.spec.time_origin)

    def _aligned(self, frame: pd.DataFrame, event: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
        """History on the typed timeline with a label column, and an event whose entity values match its dtypes."""
        cfg = self.feature_config
        if not len(frame):
            frame = self._empty_history
        else:
            if self.spec.time_unit == "seconds":
                frame = frame.assign(**{cfg.event_time: _typed_times(frame[cfg.event_time], "seconds",
                                                                     self.spec.time_origin)})
            if cfg.label and cfg.label not in frame.columns:
                frame = frame.assign(**{cfg.label: np.nan})
            event = {**event, **{e: _like(frame[e], event[e]) for e in self.entities if e in frame.columns}}
        if _missing(event.get(cfg.event_id)):  # no id: the event comes after every history row at its time
            frame = frame.assign(**{cfg.event_id: 0}) if len(frame) else frame
            event = {**event, cfg.event_id: 1}
        return frame, event


# ---- field checks: each returns the typed value or raises ValueError with a message for the caller --------------

def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float:
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


def _amount(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.nan  # unknown amount: the features and the model treat it as missing, as in training
    amount = _number(value)
    if not math.isfinite(amount):
        raise ValueError(f"amount must be finite, got {amount}")
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount:g} (refunds and reversals are not scored)")
    if amount > MAX_AMOUNT:
        raise ValueError(f"amount {amount:g} is too large; amounts up to {MAX_AMOUNT:g} can be scored")
    return amount


def _numeric(value: Any) -> float:
    if _missing(value):
        return math.nan
    number = _number(value)
    if math.isinf(number):
        raise ValueError(f"expected a finite number (or null when unknown), got {number}")
    if abs(number) > MAX_NUMBER:
        raise ValueError(f"{number:g} is too large for the model (float32); send a value within ±{MAX_NUMBER:g}")
    return number


def _category(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    raise ValueError(f"expected text (a category), got {type(value).__name__} {value!r}")


def _identifier(value: Any) -> str | int | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    raise ValueError(f"expected an id (text or integer), got {type(value).__name__} {value!r}")


def _typed_time(value: Any, time_unit: str, origin: datetime) -> pd.Timestamp:
    """One raw event time as a naive UTC Timestamp, the way the typed view reads it."""
    if time_unit == "seconds":
        seconds = _number(value)
        if not math.isfinite(seconds):
            raise ValueError(f"expected seconds since {origin:%Y-%m-%d}, got {seconds}")
        return pd.Timestamp(origin) + pd.Timedelta(microseconds=math.floor(seconds * 1e6 + 0.5))
    if isinstance(value, bool | int | float | np.number):
        raise ValueError(f"expected a timestamp such as '2025-01-06T00:05:13', got the number {value!r}")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read {str(value)[:40]!r} as a time ({exc}); send ISO 8601 text such as "
                         "'2025-01-06T00:05:13'") from None
    if stamp is pd.NaT:
        raise ValueError("event time is empty; send when the event happened")
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _typed_times(values: pd.Series, time_unit: str, origin: datetime) -> pd.Series:
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


def _like(column: pd.Series, value: Any) -> Any:
    """An entity value in the history column's kind (a digit string for an integer column becomes an int)."""
    return _like_kind(column.dtype, column.iloc[0] if len(column) else None, value)


def _like_kind(dtype: Any, first: Any, value: Any) -> Any:
    """``_like`` given the column's dtype and its first value."""
    if isinstance(value, str) and pd.api.types.is_integer_dtype(dtype):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(value, int) and dtype == np.dtype(object) and isinstance(first, str):
        return str(value)
    return value


def _comparable_id(value: Any, ids: np.ndarray) -> Any:
    """The event id in the history ids' kind ("123" against integer ids is 123); None when the two cannot be ordered
    (text against integers), which places the event after every same-time history row, as a missing id does."""
    if _missing(value) or not len(ids):
        return value
    value = _like_kind(ids.dtype, ids[0], value)
    numeric_ids = np.issubdtype(ids.dtype, np.number)
    return value if isinstance(value, str) != numeric_ids else None


def _role(spec: Any, column: str) -> str:
    return spec.role_of(column) or "feature input"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def _single_threaded(model: Any) -> Any:
    """A shallow copy of ``model`` whose booster predicts on one thread (one-row calls pay ~20 ms to wake a pool)."""
    if not hasattr(model, "booster_"):
        return model
    clone = copy.copy(model)
    clone.booster_ = model.booster_.copy()
    clone.booster_.set_param({"nthread": 1})
    if hasattr(clone, "n_jobs"):
        clone.n_jobs = 1
    return clone


def _check_k(k: int) -> int:
    if k < 0:
        raise FraudcoreError(f"k (reasons per event) must be >= 0; got {k}")
    return k
