"""One path from raw records to stored, scored events, shared by the poller and ``POST /api/score``.

``prepare`` does the CPU work: validate every record against the model's contract; leave out events already stored
or pending; compute point-in-time features from the workbench's in-memory recent history (an event sees stored and
pending events and the batch's events before it in (time, id) order, as in training); score; explain the alerts
exactly; and hold the new events in the recent history as pending. ``submit`` hands the batch to the workbench's store
writer (``fraudcore.writer``), which writes events, scores with their inputs, reasons, review cases, rejected records
and the feed cursor in ONE transaction (idempotent on event id), grouped with whatever else is queued. ``ingest``
does both and waits for the commit.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraudcore.ingest_checks import text_errors, typed_events
from fraudcore.ingest_rows import ScoredColumns, ShadowScores, score_columns, shadow_scores, write_batch
from fraudcore.recent import RecentHistory
from fraudcore.scoring import EventValidationError, ScoredEvent, Scorer
from fraudcore.store import Store
from fraudcore.store_inputs import INPUT_COLUMNS
from fraudcore.store_write import WriteBatch
from fraudcore.writer import Ticket

__all__ = ["IngestResult", "Prepared", "cancel", "check_records", "ingest", "prepare", "submit"]


@dataclass
class IngestResult:
    """What one ingest did: the valid records scored (input order; built on first use), how many events were newly
    stored (known once committed) and how many were already known, the rejected records (index, record, reason),
    counts per tier and the scoring model."""

    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, Any, str]] = field(default_factory=list)
    by_tier: dict[str, int] = field(default_factory=dict)
    model_id: str = ""
    shadow_model_id: str | None = None  # the challenger that also scored the new events
    shadow_error: str | None = None  # why the shadow challenger did not score them
    _scored: list[ScoredEvent] | Callable[[], list[ScoredEvent]] = field(default_factory=list, repr=False)

    @property
    def scored(self) -> list[ScoredEvent]:
        """The valid records scored, in input order (a duplicate gets its stored or pending score)."""
        if callable(self._scored):
            self._scored = self._scored()
        return self._scored

    def summary(self) -> dict[str, Any]:
        """The counts as plain JSON (no per-event detail)."""
        return {"model_id": self.model_id, "scored": sum(self.by_tier.values()), "stored": self.stored,
                "duplicates": self.duplicates, "rejected": len(self.rejected), "by_tier": dict(self.by_tier)}


@dataclass
class Prepared:
    """A prepared batch: the result so far, what to write, and the recent histories holding its events as pending."""

    result: IngestResult
    batch: WriteBatch
    holders: frozenset = frozenset()
    pending: list[tuple[RecentHistory, int]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # new event ids, answered from memory until committed


def check_records(scorer: Scorer, records: Sequence[Any]) -> tuple[list[tuple[int, dict]], list[tuple[int, list]]]:
    """Typed events (index, event) for the valid records and field errors (index, [{field, message}]) for the
    rest: the model's contract plus what storing needs (an event id, a label of 0/1 when one is sent)."""
    spec, valid, invalid = scorer.spec, [], []
    for i, (record, (event, errors)) in enumerate(zip(records, typed_events(scorer, records), strict=True)):
        bad_text = text_errors(record)
        if bad_text:  # only these: other messages may quote the text, which no answer or store could carry
            invalid.append((i, bad_text))
            continue
        if isinstance(record, Mapping):
            if spec.event_id and _missing(record.get(spec.event_id)) and not any(
                    e["field"] == spec.event_id for e in errors):
                errors.append({"field": spec.event_id, "message": "required: events are stored and deduplicated by "
                                                                  "id; send a unique id per event"})
            elif spec.event_id and isinstance(record.get(spec.event_id), str) and not record[spec.event_id].strip():
                errors.append({"field": spec.event_id, "message": "is blank: events are stored and deduplicated by "
                                                                  "id, so blank ids would merge unrelated events; "
                                                                  "send a unique, non-blank id per event"})
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
    """``prepare`` then ``submit`` ``records`` and wait until their transaction committed (see the module)."""
    prepared = prepare(workbench, records, source=source, cursor=cursor, strict=strict, k=k,
                       explain_tiers=explain_tiers, model_id=model_id, shadow=shadow)
    prepared.result.stored = submit(workbench, prepared).wait()
    return prepared.result


def prepare(workbench: Any, records: Sequence[Any], *, source: str, cursor: tuple[str, str] | None = None,
            strict: bool = False, k: int = 3, explain_tiers: Sequence[str] = ("medium", "high"),
            model_id: str | None = None, shadow: bool = True) -> Prepared:
    """Validate, deduplicate, feature, score and explain ``records``; the new events become pending in the recent
    history until ``submit``'s commit (or ``cancel``). With ``shadow``, the shadow challenger (fraudcore.shadow)
    scores the new events too, stored in the same transaction.

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
    live = _live(workbench)
    pending: list[tuple[RecentHistory, int]] = []
    with live.lock:  # one prepare at a time per process: the recent history follows every batch in order
        try:
            fresh = _fresh(scorer, store, recent, events, live, pending)
            chosen = [events[j] for j in fresh.rows]
            scored = score_columns(scorer, chosen, fresh.features, k, explain_tiers)
            challenger = shadow_scores(workbench, scorer, store, chosen, fresh.features, pending) if shadow \
                else ShadowScores()
        except BaseException:
            for history, token in pending:
                history.release(token)
            raise
        ids = [str(i) for i in scored.ids]
        live.remember(ids, scored)
        live.warmed(bool(scored.reasons))
    batch = write_batch(scorer, chosen, [records[valid[j][0]] for j in fresh.rows], fresh.times, fresh.amounts,
                        [scored.score_rows(), *challenger.parts])
    batch.rejects, batch.source, batch.cursor = [(r, why) for _, r, why in rejected], source, cursor
    known = {j: events[j] for j in range(len(events)) if fresh.first[j] == j and j not in fresh.position}
    duplicates = _stored_scores(scorer, store, live, known, k)
    tiers = Counter(scored.tiers)
    for j, f in enumerate(fresh.first):
        if f != j or f not in fresh.position:  # the new events are counted already
            tiers[scored.tiers[fresh.position[f]] if f in fresh.position else duplicates[f].tier] += 1

    def build() -> list[ScoredEvent]:
        new = scored.events()
        return [new[fresh.position[f]] if f in fresh.position else duplicates[f] for f in fresh.first]

    result = IngestResult(0, len(events) - len(chosen), rejected, dict(tiers), scorer.model_id,
                          challenger.model_id, challenger.error, build)
    holders = frozenset(h for h, _ in pending)
    return Prepared(result, batch, holders, pending, ids)


def submit(workbench: Any, prepared: Prepared, on_done: Callable[[Ticket], None] | None = None,
           after: Ticket | None = None, linger_s: float = 0.0) -> Ticket:
    """Hand a prepared batch to the workbench's store writer; ``on_done(ticket)`` runs once it committed or failed
    (on the writer's thread); with ``after``, it is written only if that batch was; ``linger_s``: how long the
    writer may hold it for more batches to commit with (``StoreWriter.submit``). If the writer refuses it, the
    batch is cancelled and the error raised."""
    live = _live(workbench)

    def done(ticket: Ticket) -> None:
        prepared.result.stored = ticket.stored or 0
        live.forget(prepared.ids)
        if on_done is not None:
            on_done(ticket)

    try:
        return workbench.writer().submit(prepared.batch, after=after, holders=prepared.holders,
                                         pending=prepared.pending, on_done=done, linger_s=linger_s)
    except BaseException:
        cancel(workbench, prepared)
        raise


def cancel(workbench: Any, prepared: Prepared) -> None:
    """Drop a prepared batch that will not be submitted (its pending events leave the recent history)."""
    for history, token in prepared.pending:
        history.release(token)
    _live(workbench).forget(prepared.ids)


# ---- per-workbench state: the prepare lock and the scores of events not committed yet ---------------------------

class _Live:
    def __init__(self) -> None:
        self.lock = threading.RLock()  # held by a prepare
        self.pending: dict[str, tuple[ScoredColumns, int]] = {}  # guarded by pending_lock (the writer's thread forgets)
        self.pending_lock = threading.Lock()
        self.warm: set[bool] = set()  # whether a batch was scored (False) and one explained (True) yet

    def warmed(self, explained: bool) -> None:
        """After the first batch scored and the first one explained (the model's lazily built parts, numba's
        compiled kernels), freeze the heap (``runtime.freeze_heap``): the collector walks only what comes later."""
        news = {False, explained} - self.warm
        if news:
            from fraudcore.runtime import freeze_heap

            self.warm |= news
            freeze_heap()

    def remember(self, ids: list[str], scored: ScoredColumns) -> None:
        with self.pending_lock:
            self.pending.update(zip(ids, ((scored, j) for j in range(len(ids))), strict=True))

    def held(self, event_id: str) -> tuple[ScoredColumns, int] | None:
        with self.pending_lock:
            return self.pending.get(event_id)

    def forget(self, ids: list[str]) -> None:
        with self.pending_lock:
            for event_id in ids:
                self.pending.pop(event_id, None)


_LIVE: weakref.WeakKeyDictionary[Any, _Live] = weakref.WeakKeyDictionary()
_LIVE_GUARD = threading.Lock()


def _live(workbench: Any) -> _Live:
    with _LIVE_GUARD:
        if workbench not in _LIVE:
            _LIVE[workbench] = _Live()
        return _LIVE[workbench]


@dataclass
class _Fresh:
    first: list[int]  # per event: the position of the first event with its id
    rows: list[int]  # the events to store (first of their id, neither stored nor pending)
    position: dict[int, int]  # event position -> row among the new ones
    times: np.ndarray  # µs since the epoch of the new events
    amounts: np.ndarray
    features: np.ndarray


def _fresh(scorer: Scorer, store: Store, recent: RecentHistory | None, events: list[dict], live: _Live,
           pending: list[tuple[RecentHistory, int]]) -> _Fresh:
    """The new events, their features, and (held in ``recent`` as pending) their rows."""
    id_column, time_column = scorer.spec.event_id, scorer.spec.event_time
    seen: dict[str, int] = {}
    first = [seen.setdefault(str(ev[id_column]), j) for j, ev in enumerate(events)]
    if recent is None:
        pending = {i for i in seen if live.held(i) is not None}
        stored = store.known_ids([i for i in seen if i not in pending]) | pending
        rows = [j for j in range(len(events)) if first[j] == j and str(events[j][id_column]) not in stored]
        times = np.array([events[j][time_column].value // 1000 for j in rows], dtype=np.int64)
        amounts = np.array([_amount(events[j].get(scorer.spec.amount)) for j in rows], dtype=float)
        return _Fresh(first, rows, {j: r for r, j in enumerate(rows)}, times, amounts, np.empty((len(rows), 0)))
    recent.sync(store)
    batch, amounts = recent.batch_rows(events)
    unique = np.array([first[j] == j for j in range(len(events))], dtype=bool)
    keep = np.flatnonzero(unique & ~recent.known(store, batch)) if len(events) else np.empty(0, dtype=np.int64)
    rows = batch.take(keep)
    features = recent.features(store, rows, amounts[keep])
    pending.append((recent, recent.hold(rows)))
    chosen = keep.tolist()
    return _Fresh(first, chosen, {j: r for r, j in enumerate(chosen)}, rows.t, amounts[keep], features)


def _stored_scores(scorer: Scorer, store: Store, live: _Live, events: dict[int, dict],
                   k: int) -> dict[int, ScoredEvent]:
    """The live score of events already stored or pending (scored now, not stored, where none was kept)."""
    if not events:
        return {}
    id_column, out = scorer.spec.event_id, {}
    for j, ev in events.items():
        held = live.held(str(ev[id_column]))
        if held is not None:
            out[j] = held[0].event(held[1])
    ids = [str(ev[id_column]) for j, ev in events.items() if j not in out]
    if ids:
        few = len(ids) <= 64  # a few: index lookups
        wanted = "IN (" + ", ".join("?" * len(ids)) + ")" if few else "= ANY(?)"
        found = store.query(f"SELECT event_id, model_id, score, tier, reasons, {INPUT_COLUMNS} FROM scores "
                            f"WHERE event_id {wanted} AND NOT coalesce(shadow, false) "
                            "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY scored_at DESC) = 1",
                            ids if few else [ids])
        inputs = store.input_rows(found)
        rows = {r.event_id: (r, inputs[j]) for j, r in enumerate(found.itertuples(index=False))}
        for j, ev in events.items():
            if j in out:
                continue
            row, features = rows.get(str(ev[id_column]), (None, None))
            if row is None:
                out[j] = scorer.score_event(ev, store, k)
            else:
                out[j] = ScoredEvent(ev[id_column], float(row.score), str(row.tier), str(row.model_id),
                                     json.loads(row.reasons) if row.reasons else [], features)
    return out


def _amount(value: Any) -> float:
    return math.nan if value is None else float(value)


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
