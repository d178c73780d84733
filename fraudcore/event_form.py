"""A form for one event, built from a model's schema: fields by role, defaults from a sample row, the event back.

``EventSource`` reads a dataset once (the columns the model needs, plus the label) and gives both sample rows and
the in-memory history that makes one event's velocity features meaningful. ``form_fields`` turns the model's
required columns and the spec's roles into typed fields; ``event_from_form`` turns the widget values back into the
raw event ``Scorer.score_event`` validates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation, explain
from fraudcore.loading import load_dataset
from fraudcore.registry import check_input_schema, required_columns
from fraudcore.scoring import EventValidationError, FrameHistory, ScoredEvent, Scorer

__all__ = ["TIER_COLOURS", "EventSource", "FormField", "event_from_form", "explain_event", "form_fields",
           "sample_candidates"]

Kind = Literal["number", "category", "time", "id"]
TIER_COLOURS = {"high": "red", "medium": "orange", "low": "green"}  # st.badge colours
LATER_SHARE = 0.8  # samples come from the later part of the file, where entities have history


@dataclass(frozen=True)
class FormField:
    """One input of the event form: its column, widget kind, role (help text), default and known categories."""

    name: str
    kind: Kind
    role: str
    default: Any = None
    options: tuple[str, ...] = ()
    integer: bool = False  # an id stored as integers in the data: digits typed in are sent as an integer


def _roles(scorer: Scorer) -> dict[str, tuple[Kind, str]]:
    """Each required column's widget kind and role description, in form order."""
    spec = scorer.spec
    out: dict[str, tuple[Kind, str]] = {}
    if spec.event_id:
        out[spec.event_id] = ("id", "event id (history rows with this id are skipped)")
    if spec.event_time:
        out[spec.event_time] = ("number", f"event time in seconds from {spec.time_origin:%Y-%m-%d %H:%M}") \
            if spec.time_unit == "seconds" else ("time", "event time, YYYY-MM-DD HH:MM:SS (UTC)")
    if spec.amount:
        out[spec.amount] = ("number", "amount")
    for column in scorer.entities:
        out.setdefault(column, ("id", "entity: its history gives the velocity features"))
    for column in spec.categorical:
        out.setdefault(column, ("category", "category"))
    for column in spec.numeric:
        out.setdefault(column, ("number", "number"))
    return out


def form_fields(scorer: Scorer, sample: Mapping[str, Any] | None = None) -> list[FormField]:
    """Fields for every column the model needs (roles from its spec), prefilled from ``sample`` when given."""
    sample = sample or {}
    roles = _roles(scorer)
    wanted = [c for c in dict.fromkeys([*roles, *required_columns(scorer.metadata)]) if c != scorer.spec.label]
    fields = []
    for name in wanted:
        kind, role = roles.get(name, ("number", "model input"))
        value = None if _missing(sample.get(name)) else sample.get(name)
        options: tuple[str, ...] = ()
        if kind == "category":
            seen = tuple(scorer.matrix.categorical.get(name, ()))
            options = seen if value is None or str(value) in seen else (*seen, str(value))
            if not options:
                kind = "id"  # no known categories: free text
        fields.append(FormField(name=name, kind=kind, role=role, default=_default(kind, value), options=options,
                                integer=isinstance(value, int | np.integer) and not isinstance(value, bool)))
    return fields


def _default(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "number":
        return _as_float(value)
    if kind == "time":
        return str(pd.Timestamp(value)) if isinstance(value, pd.Timestamp | np.datetime64) else str(value)
    return str(value)


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def event_from_form(fields: Sequence[FormField], values: Mapping[str, Any]) -> dict[str, Any]:
    """The raw event from the widgets' values: empty text is missing, integer ids become integers (an
    EventValidationError names each one that is not a whole number)."""
    event: dict[str, Any] = {}
    errors = []
    for f in fields:
        value = values.get(f.name)
        if isinstance(value, str):
            value = value.strip() or None
        if f.kind == "id" and f.integer and isinstance(value, str):
            if not value.lstrip("-").isdigit():
                errors.append({"field": f.name, "message": f"this dataset's {f.name} values are whole numbers; "
                                                           f"got {value[:40]!r}"})
                continue
            value = int(value)
        event[f.name] = value
    if errors:
        raise EventValidationError(errors)
    return event


class EventSource:
    """A dataset read once for one model: sample rows for the form and the history for online features."""

    def __init__(self, path: str | Path, scorer: Scorer) -> None:
        self.path = Path(path)
        data = load_dataset(self.path)
        try:
            check_input_schema(scorer.metadata, data.columns)
            label = scorer.spec.label
            keep = [c for c in data.columns if c in {*required_columns(scorer.metadata), label}]
            frame = data.frame(columns=keep)
        finally:
            data.con.close()
        self.label = label if label in frame.columns else None
        self.frame = frame
        self.history: FrameHistory = scorer.frame_history(frame)

    def __len__(self) -> int:
        return len(self.frame)

    def sample(self, seed: int) -> tuple[dict[str, Any], Any]:
        """A row from the later part of the file (seeded) as a raw event without its label, and that label."""
        start = int(len(self.frame) * (1 - LATER_SHARE)) if len(self.frame) > 10 else 0
        row = int(np.random.default_rng(seed).integers(start, len(self.frame)))
        event = self.frame.iloc[row].to_dict()
        label = event.pop(self.label) if self.label else None
        return event, None if _missing(label) else label


def sample_candidates(active: Path | None, scorer: Scorer) -> list[Path]:
    """Files to take sample rows and history from: the active dataset, then the model's training data (existing)."""
    source = scorer.metadata.dataset.get("source")
    found: Iterable[Path | None] = (active, Path(source) if isinstance(source, str) and source else None)
    return [p for p in dict.fromkeys(found) if p is not None and p.is_file()]


def explain_event(scorer: Scorer, scored: ScoredEvent) -> Explanation:
    """The exact contributions behind one scored event (for its waterfall); an error for models without them."""
    if not scorer.explainable:
        raise FraudcoreError(f"model {scorer.model_id} ({scorer.metadata.algo}) has no per-feature contributions; "
                             "pick an xgboost or logreg model to see a waterfall")
    return explain(scorer.model, [scored.features])


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))
