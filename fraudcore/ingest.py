"""One path from raw records to stored, scored events, shared by the poller and ``POST /api/score``.

Validate every record against the model's contract; leave out events already stored; compute point-in-time features
from the workbench's in-memory recent history (an event sees stored events and the batch's events before it in
(time, id) order, as in training); score; explain the alerts exactly; then write events, scores with their features,
reasons, review cases, rejected records and the feed cursor in ONE store transaction (idempotent on event id).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.features import feature_names
from fraudcore.loading import qident
from fraudcore.recent import RecentHistory, Rows
from fraudcore.scoring import EventValidationError, ScoredEvent, Scorer
from fraudcore.shadow import get_shadow
from fraudcore.store import Store

__all__ = ["IngestResult", "check_records", "ingest"]

SMALL_BATCH = 64  # up to this many events, model inputs go record by record (a frame costs more per column)


@dataclass
class IngestResult:
    """What one ingest did: the valid records scored (input order), how many events were newly stored and how many
    were already known, the rejected records (index, record, reason), counts per tier and the scoring model."""

    scored: list[ScoredEvent] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, Any, str]] = field(default_factory=list)
    by_tier: dict[str, int] = field(default_factory=dict)
    model_id: str = ""
    shadow_model_id: str | None = None  # the challenger that also scored the new events
    shadow_error: str | None = None  # why the shadow challenger did not score them

    def summary(self) -> dict[str, Any]:
        """The counts as plain JSON (no per-event detail)."""
        return {"model_id": self.model_id, "scored": len(self.scored), "stored": self.stored,
                "duplicates": self.duplicates, "rejected": len(self.rejected), "by_tier": dict(self.by_tier)}


def check_records(scorer: Scorer, records: Sequence[Any]) -> tuple[list[tuple[int, dict]], list[tuple[int, list]]]:
    """Typed events (index, event) for the valid records and field errors (index, [{field, message}]) for the
    rest: the model's contract plus what storing needs (an event id, a label of 0/1 when one is sent)."""
    spec, valid, invalid = scorer.spec, [], []
    for i, record in enumerate(records):
        try:
            event = scorer.validate_event(record)
            errors = []
        except EventValidationError as exc:
            event, errors = None, list(exc.errors)
        if isinstance(record, Mapping):
            if spec.event_id and _missing(record.get(spec.event_id)) and not any(
                    e["field"] == spec.event_id for e in errors):
                errors.append({"field": spec.event_id, "message": "required: events are stored and deduplicated by "
                                                                  "id; send a unique id per event"})
            if spec.event_time and _missing(record.get(spec.event_time)) and not any(
                    e["field"] == spec.event_time for e in errors):
                errors.append({"field": spec.event_time, "message": "required: send when the event happened"})
            label = _label(record.get(spec.label)) if spec.label else None
            if label == "bad":
                errors.append({"field": spec.label, "message": f"expected 0 or 1 (or null when unknown), got "
                                                               f"{record.get(spec.label)!r}"})
            elif event is not None and spec.label in event:
                event[spec.label] = label
        if errors:
            invalid.append((i, errors))
        else:
            valid.append((i, event))
    return valid, invalid


def ingest(workbench: Any, records: Sequence[Any], *, source: str, cursor: tuple[str, str] | None = None,
           strict: bool = False, k: int = 3, explain_tiers: Sequence[str] = ("medium", "high"),
           model_id: str | None = None, shadow: bool = True) -> IngestResult:
    """Validate, deduplicate, feature, score, explain and store ``records`` in one transaction (see the module);
    with ``shadow``, the shadow challenger (fraudcore.shadow) scores the new events too, in the same transaction.

    ``strict`` (the API): any invalid record raises EventValidationError with fields like "[3].amount" and stores
    nothing. Otherwise (the poller) invalid records are quarantined with their reason in the same transaction."""
    scorer = workbench.scorer(model_id)
    store = workbench.store(scorer)
    valid, invalid = check_records(scorer, records)
    if strict and invalid:
        raise EventValidationError([{"field": f"[{i}].{e['field']}", "message": e["message"]}
                                    for i, errors in invalid for e in errors])
    rejected = [(i, records[i], "; ".join(f"{e['field']}: {e['message']}" for e in errors)) for i, errors in invalid]
    events = [event for _, event in valid]
    recent = workbench.history(scorer) if scorer.feature_config is not None else None
    with _lock(workbench):  # one ingest at a time per process: the recent history follows the store's writes
        first, fresh_rows, batch, features = _fresh(scorer, store, recent, events)
        fresh = [events[j] for j in fresh_rows]
        scored, inputs_json = _score(scorer, fresh, features, k, explain_tiers)
        challenger = _shadow(workbench, scorer, store, fresh, features) if shadow else _Shadow()
        before = store.generation
        stored = store.write_batch(_events_frame(scorer, fresh, [records[valid[j][0]] for j in fresh_rows]),
                                   _scores_frame(scored, inputs_json, challenger.scores), cursor=cursor,
                                   rejects=[(r, why) for _, r, why in rejected], source=source)
        for history, rows in ((recent, batch), challenger.pending):
            if history is not None:
                history.add(store, rows, before)
    by_row = dict(zip(fresh_rows, scored, strict=True))
    known = [j for j in range(len(events)) if first[j] == j and j not in by_row]
    by_row.update(_stored_scores(scorer, store, {j: events[j] for j in known}, k))
    result = [by_row[first[j]] for j in range(len(events))]
    tiers: dict[str, int] = {}
    for s in result:
        tiers[s.tier] = tiers.get(s.tier, 0) + 1
    return IngestResult(result, stored, len(events) - len(fresh), rejected, tiers, scorer.model_id,
                        challenger.model_id, challenger.error)


_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock(workbench: Any) -> threading.RLock:
    with _LOCKS_GUARD:
        if workbench not in _LOCKS:
            _LOCKS[workbench] = threading.RLock()
        return _LOCKS[workbench]


@dataclass
class _Shadow:
    """The shadow challenger's score rows for a batch, the recent history to extend after the write, or why not."""

    scores: pd.DataFrame | None = None
    pending: tuple[RecentHistory | None, Rows | None] = (None, None)
    model_id: str | None = None
    error: str | None = None


def _shadow(workbench: Any, scorer: Scorer, store: Store, events: list[dict], features: np.ndarray) -> _Shadow:
    """Score the new events with the shadow challenger, if one is set (its failure never stops the live path)."""
    try:
        record = get_shadow(workbench.paths.artifacts)
        if record is None or record.model_id == scorer.model_id:
            return _Shadow()
        challenger = workbench.scorer(record.model_id)
        keep = []
        for j, event in enumerate(events):
            with contextlib.suppress(EventValidationError):  # an event its contract refuses gets no shadow score
                challenger.validate_event(event)
                keep.append(j)
        chosen, pending = [events[j] for j in keep], (None, None)
        if challenger.feature_config == scorer.feature_config:
            inputs = features[keep]
        elif challenger.feature_config is None:
            inputs = np.empty((len(keep), 0))
        else:
            history = workbench.history(challenger)
            history.sync(store)
            rows, amounts = history.batch_rows(chosen)
            inputs, pending = history.features(store, rows, amounts), (history, rows)
        scored, inputs_json = _score(challenger, chosen, inputs, 0, ())
        frame = _scores_frame(scored, inputs_json)
        return _Shadow(None if frame is None else frame.assign(shadow=True), pending, challenger.model_id)
    except FraudcoreError as exc:
        return _Shadow(error=f"shadow scoring skipped: {exc}")


def _fresh(scorer: Scorer, store: Store, recent: RecentHistory | None,
           events: list[dict]) -> tuple[list[int], list[int], Rows | None, np.ndarray]:
    """For each event the position of the first event with its id; the positions of the events to store (first of
    their id, not stored yet); those events as recent-history rows; and their features."""
    id_column = scorer.spec.event_id
    seen: dict[str, int] = {}
    first = [seen.setdefault(str(ev[id_column]), j) for j, ev in enumerate(events)]
    if recent is None:
        stored = store.known_ids(list(seen))
        rows = [j for j in range(len(events)) if first[j] == j and str(events[j][id_column]) not in stored]
        return first, rows, None, np.empty((len(rows), 0))
    recent.sync(store)
    batch, amounts = recent.batch_rows(events)
    unique = np.array([first[j] == j for j in range(len(events))], dtype=bool)
    keep = np.flatnonzero(unique & ~recent.known(store, batch)) if len(events) else np.empty(0, dtype=np.int64)
    fresh = batch.take(keep)
    return first, keep.tolist(), fresh, recent.features(store, fresh, amounts[keep])


def _score(scorer: Scorer, events: list[dict], features: np.ndarray, k: int,
           explain_tiers: Sequence[str]) -> tuple[list[ScoredEvent], list[str]]:
    """Scores, tiers, exact reasons for the tiers asked and the model inputs of each event, with the inputs as JSON."""
    if not events:
        return [], []
    names = feature_names(scorer.feature_config) if scorer.feature_config is not None else []
    if len(events) <= SMALL_BATCH:  # per-record inputs and JSON: no per-column frame or query overhead
        rows = features.tolist()
        where = {name: j for j, name in enumerate(names)}
        inputs = [{c: row[where[c]] if c in where else ev.get(c) for c in scorer.feature_names}
                  for ev, row in zip(events, rows, strict=True)]
        scores, tiers = scorer.score_records(inputs)
        inputs_json = _json_rows(scorer.feature_names, inputs)
    else:
        engineered = dict(zip(names, features.T, strict=True))
        X = pd.DataFrame({c: engineered[c] if c in engineered else _column(c, events, scorer)
                          for c in scorer.feature_names})
        scores, tiers = scorer.score_records(X)
        values = [X[c].tolist() for c in scorer.feature_names]
        inputs = [dict(zip(scorer.feature_names, row, strict=True)) for row in zip(*values, strict=True)]
        inputs_json = _json_frame(X)
    tiers = tiers.astype(str).tolist()
    explain = [j for j, t in enumerate(tiers) if t in explain_tiers] if k > 0 else []
    reasons: dict[int, list] = dict(zip(explain, scorer.reasons([inputs[j] for j in explain], k), strict=True))
    id_column = scorer.spec.event_id
    scored = [ScoredEvent(event_id=ev[id_column], score=float(s), tier=t, model_id=scorer.model_id,
                          reasons=reasons.get(j, []), features=inputs[j])
              for j, (ev, s, t) in enumerate(zip(events, scores.tolist(), tiers, strict=True))]
    return scored, inputs_json


def _column(name: str, events: list[dict], scorer: Scorer) -> np.ndarray | list:
    """A raw model input of every event: floats for numeric inputs, the values as sent for categories."""
    values = [ev.get(name) for ev in events]
    return values if name in scorer.matrix.categorical else np.array(values, dtype=float)


_JSON = threading.local()


def _json_frame(frame: pd.DataFrame) -> list[str]:
    """Each row as a JSON object (exact numbers, NaN and missing as null), formatted by DuckDB in one pass."""
    if not hasattr(_JSON, "con"):
        _JSON.con = duckdb.connect()
    con = _JSON.con
    con.register("__rows", frame)
    try:
        fields = ", ".join(f"{qident(c)} := {qident(c)}" for c in frame.columns)
        return [text for (text,) in con.execute(f"SELECT to_json(struct_pack({fields})) FROM __rows").fetchall()]
    finally:
        con.unregister("__rows")


def _json_rows(names: list[str], rows: list[dict]) -> list[str]:
    """Each row as a JSON object in ``names`` order, exactly as json.dumps writes it (NaN and inf as null)."""
    template = "{" + ", ".join(json.dumps(n).replace("%", "%%") + ": %s" for n in names) + "}"
    columns = []
    for name in names:
        values = [row[name] for row in rows]
        try:
            texts = list(map(float.__repr__, values))  # numbers: the repr json.dumps writes
            if not all(map(math.isfinite, values)):
                texts = [t if math.isfinite(v) else "null" for t, v in zip(texts, values, strict=True)]
        except TypeError:  # text, missing values, anything not a float
            texts = [json.dumps(None if _missing(v) or (isinstance(v, float) and not math.isfinite(v)) else v,
                                default=_plain) for v in values]
        columns.append(texts)
    return [template % row for row in zip(*columns, strict=True)]


def _events_frame(scorer: Scorer, events: list[dict], raw: list[Any]) -> pd.DataFrame:
    """The events to store: typed values, values kept as sent (ints stay ints), the raw time where it is seconds."""
    spec = scorer.spec
    if not events:
        return pd.DataFrame({spec.event_id: pd.Series(dtype=object), spec.event_time: pd.Series(dtype=object)})
    frame = pd.DataFrame(events, dtype=object)
    if spec.time_unit == "seconds":
        frame[spec.event_time] = [r[spec.event_time] for r in raw]
    else:
        frame[spec.event_time] = pd.to_datetime(frame[spec.event_time].tolist())
    return frame


def _scores_frame(scored: list[ScoredEvent], inputs_json: list[str],
                  shadow: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Score rows to store (the live model's, then any shadow rows)."""
    frame = None if not scored else pd.DataFrame({
        "event_id": [s.event_id for s in scored], "model_id": [s.model_id for s in scored],
        "score": [s.score for s in scored], "tier": [s.tier for s in scored],
        "reasons": [json.dumps(s.reasons, default=_plain) for s in scored], "features": inputs_json, "shadow": False})
    if shadow is None or frame is None:
        return frame
    return pd.concat([frame, shadow], ignore_index=True)


def _stored_scores(scorer: Scorer, store: Store, events: dict[int, dict], k: int) -> dict[int, ScoredEvent]:
    """The stored live score of events already stored (scored now, not stored, where none was kept)."""
    if not events:
        return {}
    id_column = scorer.spec.event_id
    ids = [str(ev[id_column]) for ev in events.values()]
    wanted = f"IN ({', '.join('?' * len(ids))})" if len(ids) <= SMALL_BATCH else "= ANY(?)"  # few: index lookups
    found = store.query("SELECT event_id, model_id, score, tier, reasons, features FROM scores "
                        f"WHERE event_id {wanted} AND NOT coalesce(shadow, false) "
                        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY scored_at DESC) = 1",
                        ids if len(ids) <= SMALL_BATCH else [ids])
    rows = {r.event_id: r for r in found.itertuples(index=False)}
    out = {}
    for j, ev in events.items():
        row = rows.get(str(ev[id_column]))
        if row is None:
            out[j] = scorer.score_event(ev, store, k)
        else:
            out[j] = ScoredEvent(ev[id_column], float(row.score), str(row.tier), str(row.model_id),
                                 json.loads(row.reasons) if row.reasons else [],
                                 json.loads(row.features) if row.features else {})
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label(value: Any) -> int | str | None:
    """A sent label as 0/1, None when unknown, or 'bad'."""
    if _missing(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    return "bad"
