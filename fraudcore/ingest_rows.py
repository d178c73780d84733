"""The columns the live path computes for a batch of new events: model inputs, scores, tiers and exact reasons
(``ScoredColumns``), and the ``WriteBatch`` that stores them (events with their raw JSON, entity keys, score rows,
review cases). Per-event Python is kept to what needs it: one JSON text per raw event, reasons for alerts only;
``ScoredEvent`` objects are built when someone asks for them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fraudcore.errors import FraudcoreError
from fraudcore.features import feature_names
from fraudcore.json_text import dumps
from fraudcore.recent import RecentHistory
from fraudcore.scoring import EventValidationError, ScoredEvent, Scorer
from fraudcore.shadow import get_shadow
from fraudcore.store import Store
from fraudcore.store_write import CASE_TIERS, ScoreRows, WriteBatch

__all__ = ["SMALL_BATCH", "ScoredColumns", "ShadowScores", "score_columns", "shadow_scores", "write_batch"]

SMALL_BATCH = 32  # up to this many events, model inputs go record by record (an Arrow table costs more per column)


@dataclass
class ScoredColumns:
    """One model's scores for some events: their ids (as sent), scores, tiers, reasons by row and model inputs
    (name -> float array or list of texts, in the model's order)."""

    model_id: str
    ids: list[Any]
    scores: np.ndarray
    tiers: list[str]
    reasons: dict[int, list]
    inputs: dict[str, Any]

    def __len__(self) -> int:
        return len(self.ids)

    def event(self, row: int) -> ScoredEvent:
        """Row ``row`` as a ScoredEvent."""
        features = {name: _python(column[row]) for name, column in self.inputs.items()}
        return ScoredEvent(self.ids[row], float(self.scores[row]), self.tiers[row], self.model_id,
                           self.reasons.get(row, []), features)

    def events(self) -> list[ScoredEvent]:
        """Every row as a ScoredEvent."""
        columns = [c.tolist() if isinstance(c, np.ndarray) else c for c in self.inputs.values()]
        names = list(self.inputs)
        rows = zip(*columns, strict=True) if columns else ([] for _ in self.ids)
        return [ScoredEvent(i, s, t, self.model_id, self.reasons.get(j, []), dict(zip(names, row, strict=True)))
                for j, (i, s, t, row) in enumerate(zip(self.ids, self.scores.tolist(), self.tiers, rows, strict=True))]

    def score_rows(self, shadow: bool = False) -> ScoreRows:
        """The rows to store, with their inputs as columns (stored packed: ``fraudcore.store_inputs``)."""
        reasons = [json.dumps(self.reasons[j], default=_plain) if j in self.reasons else "[]"
                   for j in range(len(self))]
        columns = {"event_id": [str(i) for i in self.ids], "model_id": self.model_id, "score": self.scores,
                   "tier": self.tiers, "reasons": reasons, "shadow": shadow}
        return ScoreRows(columns, {n: np.ascontiguousarray(c) if isinstance(c, np.ndarray) else c
                                   for n, c in self.inputs.items()})


def score_columns(scorer: Scorer, events: list[dict], features: np.ndarray, k: int,
                  explain_tiers: Sequence[str]) -> ScoredColumns:
    """Model inputs (engineered ``features`` + the events' raw inputs), scores, tiers and exact top-``k`` reasons
    for the rows whose tier is in ``explain_tiers``."""
    names = feature_names(scorer.feature_config) if scorer.feature_config is not None else []
    where = {name: j for j, name in enumerate(names)}
    categorical = scorer.matrix.categorical
    inputs: dict[str, Any] = {}
    for c in scorer.feature_names:
        if c in where:
            inputs[c] = features[:, where[c]]
        elif c in categorical:
            inputs[c] = [ev.get(c) for ev in events]
        else:
            inputs[c] = np.array([np.nan if ev.get(c) is None else ev.get(c) for ev in events], dtype=float)
    ids = [ev.get(scorer.spec.event_id) for ev in events]
    if not events:
        return ScoredColumns(scorer.model_id, ids, np.empty(0), [], {}, inputs)
    A = None
    if len(events) <= SMALL_BATCH:  # per-record inputs: no per-column overhead; one matrix for scores and reasons
        A = scorer.matrix.numpy(_records(inputs, range(len(events))))
        scores, tiers = scorer.score_matrix(A)
    else:
        scores, tiers = scorer.score_records(pa.table({c: pa.array(v, from_pandas=True) if isinstance(v, np.ndarray)
                                                       else pa.array(v, pa.string()) for c, v in inputs.items()}))
    tiers = tiers.astype(str).tolist()
    explain = [j for j, t in enumerate(tiers) if t in explain_tiers] if k > 0 else []
    picked = None if A is None else A[explain]
    reasons = dict(zip(explain, scorer.reasons(_records(inputs, explain), k, picked), strict=True)) if explain else {}
    return ScoredColumns(scorer.model_id, ids, np.asarray(scores, dtype=float), tiers, reasons, inputs)


def write_batch(scorer: Scorer, events: list[dict], records: list[Any], times_us: np.ndarray,
                amounts: np.ndarray, parts: Sequence[ScoreRows]) -> WriteBatch:
    """The batch storing ``events`` (validated; ``records`` as sent) with their score rows and a review case for
    each live alert."""
    spec = scorer.spec
    batch = WriteBatch([str(ev[spec.event_id]) for ev in events], np.asarray(times_us, dtype="datetime64[us]"),
                       np.asarray(amounts, dtype=float),
                       [ev.get(spec.label) for ev in events] if spec.label else [None] * len(events),
                       _raw_json(scorer, events, records, times_us),
                       {e: [None if ev.get(e) is None else _text(ev[e]) for ev in events] for e in scorer.entities},
                       list(parts))
    amount_of = dict(zip(batch.event_id, batch.amount.tolist(), strict=True))
    for part in parts:
        if part.columns["shadow"]:
            continue
        for event_id, tier, score in zip(part.columns["event_id"], part.columns["tier"],
                                         part.columns["score"].tolist(), strict=True):
            if tier in CASE_TIERS:
                for name, value in (("event_id", event_id), ("tier", tier), ("risk", score),
                                    ("amount", _python(amount_of.get(event_id)))):
                    batch.cases[name].append(value)
    return batch


@dataclass
class ShadowScores:
    """The shadow challenger's score rows for a batch, or why not."""

    parts: list[ScoreRows] = field(default_factory=list)
    model_id: str | None = None
    error: str | None = None


def shadow_scores(workbench: Any, scorer: Scorer, store: Store, events: list[dict], features: np.ndarray,
            pending: list[tuple[RecentHistory, int]]) -> ShadowScores:
    """Score the new events with the shadow challenger, if one is set (its failure never stops the live path)."""
    try:
        record = get_shadow(workbench.paths.artifacts)
        if record is None or record.model_id == scorer.model_id:
            return ShadowScores()
        challenger = workbench.scorer(record.model_id)
        keep = []
        for j, event in enumerate(events):
            with contextlib.suppress(EventValidationError):  # an event its contract refuses gets no shadow score
                challenger.validate_event(event)
                keep.append(j)
        chosen = [events[j] for j in keep]
        if challenger.feature_config == scorer.feature_config:
            inputs = features[keep]
        elif challenger.feature_config is None:
            inputs = np.empty((len(keep), 0))
        else:
            history = workbench.history(challenger)
            history.sync(store)
            rows, amounts = history.batch_rows(chosen)
            inputs = history.features(store, rows, amounts)
            pending.append((history, history.hold(rows)))
        scored = score_columns(challenger, chosen, inputs, 0, ())
        return ShadowScores([scored.score_rows(shadow=True)] if len(scored) else [], challenger.model_id)
    except FraudcoreError as exc:
        return ShadowScores(error=f"shadow scoring skipped: {exc}")


def _records(inputs: dict[str, Any], rows: Sequence[int]) -> list[dict[str, Any]]:
    return [{name: column[j] for name, column in inputs.items()} for j in rows]


def _raw_json(scorer: Scorer, events: list[dict], records: list[Any], times_us: np.ndarray) -> list[str]:
    """Each event as kept in the store: its typed values, the time as ISO text with microseconds (as sent where the
    time is seconds), missing numbers (NaN, inf) as null."""
    spec = scorer.spec
    when = spec.event_time
    if spec.time_unit == "seconds":
        times = [r[when] for r in records]
    else:
        times = np.datetime_as_string(np.asarray(times_us, dtype="datetime64[us]"), unit="us").tolist()
    return [dumps({**event, when: moment}, default=_plain) for event, moment in zip(events, times, strict=True)]


def _text(value: Any) -> str:
    """An entity value as the store keys it (integral floats without '.0')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
