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
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.errors import DataContractError, FraudcoreError, ModelArtifactError
from fraudcore.event_fields import MAX_NUMBER  # noqa: F401  (re-exported for batch)
from fraudcore.event_fields import amount as _amount
from fraudcore.event_fields import category as _category
from fraudcore.event_fields import comparable_id as _comparable_id
from fraudcore.event_fields import identifier as _identifier
from fraudcore.event_fields import like as _like
from fraudcore.event_fields import like_kind as _like_kind
from fraudcore.event_fields import missing as _missing
from fraudcore.event_fields import numeric as _numeric
from fraudcore.event_fields import typed_time as _typed_time
from fraudcore.explain import explain_records, record_reasons
from fraudcore.features import (
    MAX_AMOUNT,  # noqa: F401  (re-exported for batch)
    FeatureConfig,
    cached_plan,
    history_lookback,
    to_us,
)
from fraudcore.features_online import EntityWindows, event_time_us, online_features, step_values
from fraudcore.history import FrameHistory, HistorySource, typed_times
from fraudcore.recent_features import micro_units
from fraudcore.reference import load_reference
from fraudcore.registry import ModelMetadata, champion_id, load_model, required_columns
from fraudcore.thresholds import assign_tiers

__all__ = ["EventValidationError", "FrameHistory", "HistorySource", "ScoredEvent", "Scorer"]

EXPLAINABLE = ("xgboost", "logreg")
NAN = float("nan")


class EventValidationError(DataContractError):
    """An event broke the model's field contract; ``errors`` lists every bad field as {"field", "message"}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = list(errors)
        fields = ", ".join(dict.fromkeys(e["field"] for e in self.errors))
        super().__init__(f"the event has {len(self.errors)} invalid field(s) ({fields}); fix them and resend",
                         [f"{e['field']}: {e['message']}" for e in self.errors])


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
        if hasattr(model, "compile"):
            model.compile()  # numpy rows skip XGBoost's per-call overhead (same values, checked when built)
        self._event_model = _single_threaded(model)
        self.explainable = metadata.algo in EXPLAINABLE
        cfg = self.feature_config
        self.lookback = history_lookback(cfg) if cfg else None
        self._lookback_us = to_us(self.lookback) if cfg else 0
        self._feature_order = [f.name for f in cached_plan(cfg)] if cfg else []
        self.entities = list(dict.fromkeys([*cfg.entities, *cfg.risk_entities])) if cfg else []
        self._required = [c for c in required_columns(metadata) if c != self.spec.event_id]
        # Training saw an amount on every event: a missing one has no learned answer (set by ``load``, see
        # ``_amount_always_present``), so it is refused rather than scored along an arbitrary branch.
        self.amount_required = False
        self._empty_history = pd.DataFrame({c: pd.Series(dtype=object) for c in (cfg.columns if cfg else [])})

    @classmethod
    def load(cls, model_id: str | None = None, root: Path | str | None = None) -> Scorer:
        """The scorer of ``model_id`` (None: the champion) from the registry at ``root``."""
        if model_id is None:
            model_id = champion_id(root)
            if model_id is None:
                raise ModelArtifactError("no champion model is set, so there is nothing to score with: promote one "
                                         "(python -m fraudcore promote MODEL_ID) or pass a model id")
        scorer = cls(*load_model(model_id, root))
        scorer.amount_required = _amount_always_present(scorer, root)
        return scorer

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
        if self.amount_required and spec.amount in event and _missing(out.get(spec.amount)) and \
                not any(e["field"] == spec.amount for e in errors):
            errors.append({"field": spec.amount, "message": AMOUNT_MISSING})
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
        return self.score_matrix(self.matrix.numpy(records))

    def score_matrix(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and tiers of model-matrix rows (``matrix.numpy``), one thread for a few rows."""
        scores = self._event_model.predict_numpy(A)
        return scores, assign_tiers(scores, self.tiers)

    def reasons(self, records: Sequence[Mapping[str, Any]], k: int = 3,
                A: np.ndarray | None = None) -> list[list[dict[str, Any]]]:
        """Exact top-``k`` reasons per record of model inputs (empty lists for a model without contributions);
        ``A``: their model matrix when the caller already built it."""
        return self._reasons(records, k, A)

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
        """``features`` from a FrameHistory's numpy columns: each entity's rows come from the history's index (in
        time order), kept where they equal the value as the frame path compares them (None where that path must
        run instead)."""
        cfg = self.feature_config
        full = history.arrays(cfg)
        if full is None or any(c not in event for c in cfg.columns if c != cfg.label):
            return None
        t0 = event_time_us(event[cfg.event_time], cfg)
        event_id = _comparable_id(event.get(cfg.event_id), full.ids)
        amount = NAN if not cfg.amount or _missing(event[cfg.amount]) else float(event[cfg.amount])
        own_units, own_known = (0, 0) if math.isnan(amount) else (math.floor(amount * 1e6 + 0.5), 1)
        since = t0 - self._lookback_us

        def windows(entity: str) -> EntityWindows | None:
            value = event.get(entity)
            if _missing(value):
                return None
            column = full.entities[entity]  # as the frame path compares: the value in the column's kind, then ==
            value = _like_kind(history.dtypes[entity], column[0], value)
            rows = history.entity_rows(entity, value, since, t0)
            rows = rows[column[rows] == value] if len(rows) else rows
            times = full.times[rows]
            if _missing(event_id):  # no id: the event comes after every history row at its time
                rows = rows[times <= t0]
            else:  # rows tied with the event in time count when their id is smaller
                tied = np.flatnonzero(times == t0)
                if len(tied):
                    keep = times < t0
                    keep[tied] = full.ids[rows[tied]] < event_id
                    rows = rows[keep]
            units, known = micro_units(full.amounts[rows])
            return EntityWindows(full.times[rows], units, known, full.labels[rows], t0, own_units, own_known)

        return dict(zip(self._feature_order, step_values(cfg, t0, amount, windows), strict=True))

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
                frame = frame.assign(**{cfg.event_time: typed_times(frame[cfg.event_time], "seconds",
                                                                     self.spec.time_origin)})
            if cfg.label and cfg.label not in frame.columns:
                frame = frame.assign(**{cfg.label: np.nan})
            event = {**event, **{e: _like(frame[e], event[e]) for e in self.entities if e in frame.columns}}
            if cfg.event_id in frame.columns:  # "123" against integer ids is 123; text against integers: no id
                event = {**event, cfg.event_id: _comparable_id(event.get(cfg.event_id),
                                                               frame[cfg.event_id].to_numpy())}
        if _missing(event.get(cfg.event_id)):  # no id: the event comes after every history row at its time
            frame = frame.assign(**{cfg.event_id: 0}) if len(frame) else frame
            event = {**event, cfg.event_id: 1}
        return frame, event


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
    if getattr(model, "compiled_", None) is not None:
        clone.compiled_ = copy.copy(model.compiled_)
        clone.compiled_.threads = 1
    return clone


def _check_k(k: int) -> int:
    if k < 0:
        raise FraudcoreError(f"k (reasons per event) must be >= 0; got {k}")
    return k


AMOUNT_MISSING = ("missing: this model was trained on events that all had an amount, so it has no learned answer "
                  "for a missing one; send the amount (or retrain on data where amounts can be missing)")


def _amount_always_present(scorer: Scorer, root: Path | str | None) -> bool:
    """Whether the model's training reference shows its amount input never missing (False without a reference)."""
    amount = scorer.spec.amount
    if not amount or amount not in scorer.feature_names:
        return False
    try:
        reference = load_reference(scorer.model_id, root)
    except ModelArtifactError:
        return False
    found = reference.features.get(amount)
    return found is not None and found.missing_share == 0
