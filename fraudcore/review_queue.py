"""The review queue: one page of cases, ordered by tier, then risk x amount, then age, under the analyst's filters.

Filtering, ordering and paging run in DuckDB over the cases table (entity and date filters as semi-joins on the
entity index and the events); only the page's events are read, for their time and entity values. Age is the case's:
among equal tiers and exposures the case opened first comes first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from fraudcore.review import ACTIVE, STATUSES, ReviewError, _naive, _utcnow, entity_text
from fraudcore.store import Store

__all__ = ["TIER_ORDER", "UNASSIGNED", "QueueFilter", "queue", "queue_count"]

TIER_ORDER = ("high", "medium", "low")
UNASSIGNED = ""  # QueueFilter(assignee=UNASSIGNED): cases nobody holds


@dataclass(frozen=True)
class QueueFilter:
    """Which cases the queue shows: tiers and statuses (empty: any), holder (UNASSIGNED: nobody), entity values
    (all must match, e.g. {"customer_id": 17}) and an event-time range [since, until]."""

    tiers: Sequence[str] = ()
    statuses: Sequence[str] = ACTIVE
    assignee: str | None = None
    entities: Mapping[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))
        object.__setattr__(self, "statuses", tuple(self.statuses))
        unknown = sorted(set(self.statuses) - set(STATUSES))
        if unknown:
            raise ReviewError(f"unknown case status {unknown}; statuses are {', '.join(STATUSES)}")

    def where(self, store: Store) -> tuple[str, list[Any]]:
        """The SQL condition over cases ``c`` and its parameters."""
        parts, params = ["true"], []
        if self.tiers:
            parts.append(f"c.tier IN ({', '.join('?' * len(self.tiers))})")
            params += list(self.tiers)
        if self.statuses:
            parts.append(f"c.status IN ({', '.join('?' * len(self.statuses))})")
            params += list(self.statuses)
        if self.assignee == UNASSIGNED:
            parts.append("c.assignee IS NULL")
        elif self.assignee is not None:
            parts.append("c.assignee = ?")
            params.append(self.assignee)
        for column, value in self.entities.items():
            if column not in store.keys.entities:
                raise ReviewError(f"cannot filter cases by {column!r}: the store indexes the entities "
                                  f"{list(store.keys.entities)}; filter by one of those")
            parts.append("c.event_id IN (SELECT event_id FROM event_entities WHERE entity_key = ?)")
            params.append(f"{column}={entity_text(value)}")
        bounds = [(op, _naive(t)) for op, t in ((">=", self.since), ("<=", self.until)) if t is not None]
        if bounds:
            parts.append("c.event_id IN (SELECT event_id FROM events WHERE "
                         f"{' AND '.join(f'event_time {op} ?' for op, _ in bounds)})")
            params += [t for _, t in bounds]
        return " AND ".join(parts), params


_ORDER = ("CASE c.tier " + " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TIER_ORDER)) +
          f" ELSE {len(TIER_ORDER)} END, c.risk * coalesce(c.amount, 0) DESC NULLS LAST, c.opened_at, c.case_id")


def queue(store: Store, filters: QueueFilter | None = None, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of cases: by tier, then risk x amount, then age (oldest first); with the event's entity values."""
    if limit < 1 or offset < 0:
        raise ReviewError(f"queue pages need limit >= 1 and offset >= 0; got limit={limit}, offset={offset}")
    where, params = (filters or QueueFilter()).where(store)
    page = store.query(  # pick the page from the cases alone, then read only its events
        f"""WITH c AS (SELECT c.case_id, c.event_id, c.tier, c.risk, c.amount,
                              c.risk * coalesce(c.amount, 0) AS exposure, c.opened_at, c.status, c.assignee
                       FROM cases c WHERE {where} ORDER BY {_ORDER} LIMIT ? OFFSET ?)
            SELECT c.*, e.event_time, e.raw FROM c JOIN events e USING (event_id) ORDER BY {_ORDER}""",
        [*params, int(limit), int(offset)])
    page.insert(7, "age", pd.Timestamp(_utcnow()) - page["opened_at"])
    raw = [json.loads(r) for r in page.pop("raw")]
    for entity in store.keys.entities:
        page[entity] = [None if r.get(entity) is None else entity_text(r[entity]) for r in raw]
    return page


def queue_count(store: Store, filters: QueueFilter | None = None) -> int:
    """How many cases the filters match (for the queue's page count)."""
    where, params = (filters or QueueFilter()).where(store)
    found = store.query(f"SELECT count(*) AS n FROM cases c WHERE {where}", params)
    return int(found["n"].iloc[0])
