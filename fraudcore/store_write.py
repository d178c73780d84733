"""Writes to the workbench store as columns: new events with their entity keys, scores, review cases, rejected records
and feed cursors, for one batch or a group of batches committed in ONE transaction (idempotent on event id).

``WriteBatch`` is what the live path hands the store writer; ``batch_from_frames`` builds one from the DataFrames of
``Store.write_batch``. Small groups bind their values; larger ones are scanned by DuckDB from Arrow tables. The model
inputs go packed, their names once per layout (``fraudcore.store_inputs``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudcore.store_inputs import input_columns, layout_of, register_layout

__all__ = ["CASE_TIERS", "FEW_ROWS", "ScoreRows", "WriteBatch", "commit_batches"]

CASE_TIERS = ("medium", "high")
FEW_ROWS = 128  # up to this many rows an insert binds one list per column instead of scanning an Arrow table
LOOKUP_ROWS = 16  # up to this many ids are looked up in the primary key's index (IN with one parameter each)


@dataclass
class ScoreRows:
    """Score rows of one model: equal-length ``columns`` event_id, model_id, score, tier, reasons (JSON text), shadow
    (and optionally scored_at), and optionally the model inputs as ``inputs`` columns (name -> float array,
    or a list of texts for a category, in the model's order) that the commit packs (``store_inputs``)."""

    columns: dict[str, Any]
    inputs: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.columns["event_id"])

    def take(self, rows: np.ndarray) -> ScoreRows:
        """The given rows."""
        return ScoreRows(_take(self.columns, rows), None if self.inputs is None else _take(self.inputs, rows))


@dataclass
class WriteBatch:
    """One batch to store: events (distinct text ids, µs times, amounts, labels, raw JSON), their entity values as
    the store keys them, score rows, the review cases to open, rejected records (payload, reason) and the cursor."""

    event_id: list[str]
    event_time: np.ndarray  # datetime64[us]
    amount: np.ndarray  # float64, NaN when unknown
    label: list[int | None]
    raw: list[str]
    entities: dict[str, list[str | None]] = field(default_factory=dict)
    scores: list[ScoreRows] = field(default_factory=list)
    cases: dict[str, list] = field(default_factory=lambda: {"event_id": [], "tier": [], "risk": [], "amount": []})
    rejects: list[tuple[Any, str]] = field(default_factory=list)
    source: str = "feed"
    cursor: tuple[str, str] | None = None

    def __len__(self) -> int:
        return len(self.event_id)


def commit_batches(con: duckdb.DuckDBPyConnection, batches: Sequence[WriteBatch], now: datetime, *,
                   trusted: bool = False, layouts: Set[str] = frozenset(),
                   registered: set[str] | None = None) -> list[int]:
    """Insert ``batches`` inside the caller's transaction: events not stored yet (the first of an id wins), then the
    entity keys, scores and cases of those only, rejects not kept before, and each feed's last cursor. Returns the
    events newly stored per batch. ``trusted``: the caller checked that no event is stored yet (the live path's
    recent history knows); a stored one then fails the insert (duckdb.ConstraintException) instead of costing a
    lookup every time, and the caller writes again untrusted. ``layouts``: input layout ids known to be committed;
    ``registered`` collects those this transaction found or stored (``store_inputs.register_layout``)."""
    registered = set() if registered is None else registered
    merged, owner = _merge(batches)
    fresh = _insert_events(con, merged, now, trusted)
    counts = [0] * len(batches)
    for event_id in fresh:
        counts[owner[event_id]] += 1
    if fresh:
        keep = None if len(fresh) == len(merged) else fresh
        _insert_entities(con, merged if keep is None else merged.take_ids(keep))
        parts = [p if keep is None else p.take(_in(p.columns["event_id"], keep)) for b in batches for p in b.scores]
        for part in _merge_parts(parts):
            _insert_scores(con, part, now, layouts, registered)
        cases = [c for b in batches for c in _case_rows(b) if keep is None or c[0] in keep]
        _insert(con, "cases", {"event_id": [c[0] for c in cases], "tier": [c[1] for c in cases],
                               "risk": [c[2] for c in cases], "amount": [c[3] for c in cases], "opened_at": now})
    for source in dict.fromkeys(b.source for b in batches if b.rejects):
        keep_rejects(con, [r for b in batches if b.source == source for r in b.rejects], source, now)
    cursors = {b.cursor[0]: b.cursor[1] for b in batches if b.cursor is not None}
    for feed, cursor in cursors.items():
        updated = con.execute("UPDATE feed_state SET cursor = ?, updated_at = ? WHERE feed = ?",
                              [cursor, now, feed]).fetchall()
        if not updated or not updated[0][0]:
            con.execute("INSERT INTO feed_state VALUES (?, ?, ?)", [feed, cursor, now])
    return counts


def keep_rejects(con: duckdb.DuckDBPyConnection, rejects: Sequence[tuple[Any, str]], source: str,
                 now: datetime) -> int:
    """Insert rejected payloads not already quarantined from this source (a re-sent batch adds nothing)."""
    payloads = [r if isinstance(r, str) else json.dumps(r, default=str, sort_keys=True) for r, _ in rejects]
    first: dict[str, str] = {}
    for payload, (_, why) in zip(payloads, rejects, strict=True):
        first.setdefault(payload, str(why))
    found = con.execute("SELECT payload FROM quarantine WHERE source = ? AND payload = ANY(?)",
                        [source, list(first)]).fetchall()
    for (payload,) in found:
        first.pop(payload, None)
    _insert(con, "quarantine", {"source": source, "reason": list(first.values()), "payload": list(first),
                                "received_at": now})
    return len(first)


# ---- internals ----------------------------------------------------------------------------------------------------

@dataclass
class _Events:
    """The events of a group as columns (first of each id), with the entity columns."""

    ids: list[str]
    times: np.ndarray
    amount: np.ndarray
    label: list
    raw: list[str]
    entities: dict[str, list]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> _Events:
        return _Events(*(_pick(v, rows) for v in (self.ids, self.times, self.amount, self.label, self.raw)),
                       {e: _pick(v, rows) for e, v in self.entities.items()})

    def take_ids(self, keep: set[str]) -> _Events:
        return self.take(_in(self.ids, keep))


def _merge(batches: Sequence[WriteBatch]) -> tuple[_Events, dict[str, int]]:
    """The group's events as one set of columns (the first of each id) and the batch each id belongs to."""
    owner: dict[str, int] = {}
    for b, batch in enumerate(batches):
        for event_id in batch.event_id:
            owner.setdefault(event_id, b)
    entities = list(dict.fromkeys(e for b in batches for e in b.entities))
    if len(batches) == 1:
        b = batches[0]
        merged = _Events(b.event_id, b.event_time, b.amount, b.label, b.raw,
                         {e: b.entities.get(e, [None] * len(b)) for e in entities})
    else:
        merged = _Events([i for b in batches for i in b.event_id],
                         np.concatenate([b.event_time for b in batches]).astype("datetime64[us]"),
                         np.concatenate([np.asarray(b.amount, dtype=float) for b in batches]),
                         [v for b in batches for v in b.label], [r for b in batches for r in b.raw],
                         {e: [v for b in batches for v in b.entities.get(e, [None] * len(b))] for e in entities})
    if len(owner) < len(merged):  # an id twice: keep its first row
        seen: set[str] = set()
        rows = np.array([j for j, i in enumerate(merged.ids) if not (i in seen or seen.add(i))], dtype=np.int64)
        merged = merged.take(rows)
    return merged, owner


def _insert_events(con: duckdb.DuckDBPyConnection, ev: _Events, now: datetime, trusted: bool) -> set[str]:
    """Insert the events whose id is not stored yet; the ids inserted."""
    if not len(ev):
        return set()
    if not trusted:
        if len(ev) <= LOOKUP_ROWS:  # index lookups
            found = con.execute(f"SELECT event_id FROM events WHERE event_id IN ({', '.join('?' * len(ev))})",
                                ev.ids).fetchall()
        else:
            found = con.execute("SELECT event_id FROM events WHERE event_id = ANY(?)", [ev.ids]).fetchall()
        if found:
            ev = ev.take_ids(set(ev.ids) - {i for (i,) in found})
    _insert(con, "events", {"event_id": ev.ids, "event_time": ev.times, "amount": ev.amount, "label": ev.label,
                            "raw": ev.raw, "stored_at": now})
    return set(ev.ids)


def _insert_entities(con: duckdb.DuckDBPyConnection, ev: _Events) -> None:
    """The long (entity_key, event_time, event_id) rows: one per event and known entity value."""
    keys, at = [], []
    for entity, values in ev.entities.items():
        prefix = f"{entity}="
        for j, value in enumerate(values):
            if value is not None:
                keys.append(prefix + value)
                at.append(j)
    rows = np.array(at, dtype=np.int64)
    _insert(con, "event_entities", {"entity_key": keys, "event_time": ev.times[rows], "event_id": _pick(ev.ids, rows)})


def _insert_scores(con: duckdb.DuckDBPyConnection, part: ScoreRows, now: datetime, layouts: Set[str],
                   registered: set[str]) -> None:
    n = len(part)
    if not n:
        return
    columns = {"scored_at": now, **part.columns}
    if part.inputs is None:
        _insert(con, "scores", columns)
        return
    layout = layout_of(part.inputs)
    register_layout(con, layout, layouts, registered, now)
    numbers, labels = input_columns(layout, part.inputs, n)
    columns.update(layout_id=layout.layout_id, inputs=numbers)
    if labels is not None:
        columns["labels"] = labels
    _insert(con, "scores", columns)


def _merge_parts(parts: list[ScoreRows]) -> list[ScoreRows]:
    """Score parts with the same columns and the same inputs (names and kinds) joined into one: one insert for the
    group's API requests or pages instead of one each."""
    kinds: dict[tuple, list[ScoreRows]] = {}
    for part in parts:
        if len(part) or len(parts) == 1:
            layout = None if part.inputs is None else layout_of(part.inputs)
            kinds.setdefault((tuple(part.columns), layout), []).append(part)
    out = []
    for (names, layout), group in kinds.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        columns = {name: [v for part in group for v in _plain_values(part.columns[name], len(part))] for name in names}
        out.append(ScoreRows(columns, None if layout is None else {
            name: [v for part in group for v in part.inputs[name]] if categorical else
            np.concatenate([part.inputs[name] for part in group])
            for name, categorical in zip(layout.names, layout.categorical, strict=True)}))
    return out


def _case_rows(batch: WriteBatch) -> list[tuple]:
    return list(zip(batch.cases["event_id"], batch.cases["tier"], batch.cases["risk"], batch.cases["amount"],
                    strict=True))


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, Any]) -> None:
    """Insert columns (lists, arrays, or one value for every row) by name; bound values for a few rows, an Arrow
    scan for more."""
    n = max((len(v) for v in columns.values() if _is_column(v)), default=0)
    if not n:
        return
    names = ", ".join(columns)
    if n <= FEW_ROWS:  # one list parameter per column (DuckDB binds each parameter for ~15 µs: not one per value)
        select = ", ".join("unnest(?)" if _is_column(v) else "?" for v in columns.values())
        params = [_plain_values(v, n) if _is_column(v) else _plain(v) for v in columns.values()]
        con.execute(f"INSERT INTO {table} ({names}) SELECT {select}", params)
        return
    _scan(con, _arrow(columns, n), f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming")


def _scan(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str, params: list | None = None) -> list[tuple]:
    con.register("incoming", table)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        with contextlib.suppress(duckdb.Error):  # in a transaction a failed statement aborted; the error says why
            con.unregister("incoming")


def _arrow(columns: dict[str, Any], n: int) -> pa.Table:
    """Columns as an Arrow table (NaN as null, one value repeated for every row)."""
    out = {}
    for name, values in columns.items():
        if not _is_column(values):
            values = [values] * n
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            out[name] = pa.array(values, from_pandas=True)  # NaN: null
        elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
            out[name] = pa.array(values.astype("datetime64[us]"))
        else:
            try:
                out[name] = pa.array(values.tolist() if not isinstance(values, list) else values, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # pd.NA and the like: plain None first
                out[name] = pa.array(_plain_values(values, n), from_pandas=True)
    return pa.table(out)


def _in(ids: Sequence[str], keep: set[str]) -> np.ndarray:
    return np.array([j for j, i in enumerate(ids) if i in keep], dtype=np.int64)


def _take(columns: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return {k: _pick(v, rows) if _is_column(v) else v for k, v in columns.items()}


def _pick(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[rows]
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return pc.take(values, pa.array(rows))
    return [values[j] for j in rows.tolist()]


def _is_column(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray | pd.api.extensions.ExtensionArray | pd.Series)


def _plain_values(column: Any, n: int) -> list:
    """A column (or one value for all rows) as Python values, missing ones as None."""
    values = (column.tolist() if not isinstance(column, list) else column) if _is_column(column) else [column] * n
    return [None if _missing(v) else v for v in values]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if _missing(value) or (isinstance(value, float) and not math.isfinite(value)) else value


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)
