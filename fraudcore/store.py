"""The workbench's DuckDB file: versioned schema, idempotent batch writes, bounded history reads, one owning process.

Events keep their raw payload as JSON text (nothing is lost) next to typed key columns; a long ``event_entities``
table (entity_key 'entity=value', event_time, event_id) indexed on entity_key answers ``history()`` for a handful
of entity values without scanning every event. DuckDB lets one process own a file: a second one gets ``StoreBusyError``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from fraudcore.config import ENV_DB, get_paths
from fraudcore.errors import FraudcoreError, StoreBusyError
from fraudcore.loading import qident
from fraudcore.store_frames import frames_batch, ids_of, is_missing, text_of
from fraudcore.store_inputs import Layout, input_frame, input_rows, read_layouts
from fraudcore.store_schema import MIGRATIONS, SCHEMA_VERSION
from fraudcore.store_write import CASE_TIERS, WriteBatch, commit_batches, keep_rejects

__all__ = ["CASE_TIERS", "SCHEMA_VERSION", "EventKeys", "Store", "WriteBatch", "frames_batch", "store_stats"]

_BUSY_HINT = ("stop the app (it owns the store) or point FRAUDCORE_DB elsewhere; "
              "the CLI cannot open the file while the app runs")


@dataclass(frozen=True)
class EventKeys:
    """Which raw columns are the event id, time, amount, label and the entities ``history()`` looks up."""

    event_id: str = "event_id"
    event_time: str = "event_time"
    amount: str | None = "amount"
    label: str | None = "label"
    entities: tuple[str, ...] = field(default_factory=tuple)
    time_unit: str = "timestamp"
    time_origin: datetime = datetime(1970, 1, 1)

    @classmethod
    def from_spec(cls, spec: Any, entities: Sequence[str] | None = None) -> EventKeys:
        """Keys from a ``DatasetSpec`` (entities default to the spec's; give the model's to index its risk ones)."""
        if not spec.event_id or not spec.event_time:
            raise FraudcoreError("the store needs an event id and an event time column; set them in the dataset spec")
        return cls(event_id=spec.event_id, event_time=spec.event_time, amount=spec.amount, label=spec.label,
                   entities=tuple(entities if entities is not None else spec.entities), time_unit=spec.time_unit,
                   time_origin=spec.time_origin)


class Store:
    """One DuckDB connection to the workbench file, guarded by a lock (safe to share across threads)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool, keys: EventKeys) -> None:
        self._con, self.path, self.read_only, self.keys = con, path, read_only, keys
        self._lock = threading.RLock()
        self._generation_lock = threading.Lock()
        self._threshold: str | None = None  # DuckDB's checkpoint threshold while auto-checkpoints are off
        self.generation = 0  # bumped by every write_batch / set_labels: in-memory copies know when to reload
        self._layouts_stored: set[str] = set()  # input layout ids seen committed (the writer skips storing them)
        self._layouts: dict[str, Layout] = {}  # input layouts read so far (they never change once stored)

    @classmethod
    def open(cls, path: Path | None = None, read_only: bool = False, keys: EventKeys | None = None) -> Store:
        """Open (creating and migrating unless read-only) the store; StoreBusyError when another process owns it."""
        path = Path(path) if path is not None else get_paths().db
        if read_only and not path.exists():
            raise FraudcoreError(f"there is no workbench store at {path} yet; it is created when the app first "
                                 f"runs (or set {ENV_DB} to an existing file)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            raise _busy_error(path, exc) from exc
        store = cls(con, path, read_only, keys or EventKeys())
        try:
            store._migrate()
        except BaseException:
            con.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        with self._lock:
            return int(self._db().execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def write_batch(self, events: pd.DataFrame, scores: pd.DataFrame | None = None,
                    cursor: tuple[str, str] | None = None, *,
                    rejects: Sequence[tuple[Any, str]] = (), source: str = "feed",
                    case_tiers: Sequence[str] = CASE_TIERS) -> int:
        """Store new events (by id), their scores, a review case for each new event whose (non-shadow) tier is in
        ``case_tiers``, the rejected records (payload, reason) and the feed cursor in ONE transaction; returns the
        events stored. Re-sending a batch stores nothing twice (rejects are kept once per payload and source)."""
        batch = frames_batch(events, scores, self.keys, case_tiers)
        batch.cursor, batch.rejects, batch.source = cursor, list(rejects), source
        return self.commit([batch])[0]

    def commit(self, batches: Sequence[WriteBatch], on_commit: Callable[[int, int], None] | None = None, *,
               trusted: bool = False) -> list[int]:
        """Write ``batches`` (see ``fraudcore.store_write``) in ONE transaction; the events newly stored per batch.
        ``on_commit(before, after)`` runs once it committed, as ``generation`` moves, under the generation lock.
        ``trusted``: no event is stored yet (else duckdb.ConstraintException and nothing written)."""
        registered: set[str] = set()
        with self.transaction(events_changed=any(len(b) for b in batches), on_commit=on_commit) as con:
            counts = commit_batches(con, batches, _utcnow(), trusted=trusted, layouts=self._layouts_stored,
                                    registered=registered)
        self._layouts_stored |= registered  # committed: not looked up again
        return counts

    def input_layouts(self) -> dict[str, Layout]:
        """Every input layout stored (``fraudcore.store_inputs``), by id."""
        with self._lock:
            self._layouts = read_layouts(self._db())
            return dict(self._layouts)

    def input_rows(self, found: pd.DataFrame) -> list[dict[str, Any]]:
        """The model inputs ``{name: value}`` of score rows queried with ``store_inputs.INPUT_COLUMNS`` ({} where
        none were kept); those columns are dropped from ``found``."""
        return input_rows(self._layouts_of(found), found)

    def input_frame(self, found: pd.DataFrame, names: Sequence[str], categorical: Sequence[str] = ()) -> pd.DataFrame:
        """The inputs ``names`` of score rows queried with ``INPUT_COLUMNS``, as columns (see ``store_inputs``)."""
        return input_frame(self._layouts_of(found), found, names, categorical)

    def _layouts_of(self, found: pd.DataFrame) -> dict[str, Layout]:
        """The layouts, read again when ``found`` names one not read yet (stored layouts never change)."""
        if {i for i in found["layout_id"] if isinstance(i, str)} - self._layouts.keys():
            with self._lock:
                self._layouts = read_layouts(self._db())
        return self._layouts

    def quarantine(self, records: list[dict], reasons: list[str], source: str) -> int:
        """Keep rejected records verbatim (JSON) with why and when; returns how many were kept."""
        if len(records) != len(reasons):
            raise FraudcoreError(f"quarantine got {len(records)} records but {len(reasons)} reasons; give one each")
        if not records:
            return 0
        with self.transaction() as con:
            return keep_rejects(con, list(zip(records, reasons, strict=True)), source, _utcnow())

    def in_step(self, generation: int | None) -> bool:
        """Whether ``generation`` is the store's current one (read under the generation lock)."""
        with self._generation_lock:
            return generation == self.generation

    @contextmanager
    def exclusive(self) -> Iterator[int]:
        """Hold the store's lock (no statement or commit runs meanwhile); yields the current generation."""
        with self._lock:
            with self._generation_lock:
                generation = self.generation
            yield generation

    def auto_checkpoint(self, enabled: bool) -> None:
        """Let DuckDB checkpoint by itself once the WAL passes its threshold (as before it was switched off), or
        only when asked (``checkpoint``)."""
        with self._lock:
            con = self._db()
            if not enabled and self._threshold is None:
                self._threshold = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
            if enabled and self._threshold is not None:
                con.execute("SET checkpoint_threshold = ?", [self._threshold])
                self._threshold = None
            elif not enabled:
                con.execute("SET checkpoint_threshold = '1TB'")

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database file now."""
        with self._lock:
            self._db().execute("CHECKPOINT")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log (0 when there is none)."""
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except OSError:
            return 0

    def cursor(self, feed: str) -> str | None:
        """The last cursor committed for this feed, or None."""
        with self._lock:
            row = self._db().execute("SELECT cursor FROM feed_state WHERE feed = ?", [feed]).fetchone()
        return row[0] if row else None

    def history(self, entities: Mapping[str, Any], since: datetime, until: datetime) -> pd.DataFrame:
        """Raw events sharing any of these entity values, event time in [since, until], ordered by (time, id)."""
        wanted = list(dict.fromkeys(f"{k}={text_of(v)}" for k, v in entities.items() if not is_missing(v)))
        if not wanted:
            return self._empty_history()
        lo, hi = _naive(since), _naive(until)
        with self._lock:  # two small lookups beat one join that scans every event's id
            con = self._db()
            ids = [i for (i,) in con.execute(
                f"SELECT DISTINCT event_id FROM event_entities WHERE entity_key IN ({', '.join('?' * len(wanted))}) "
                "AND event_time BETWEEN ? AND ?", [*wanted, lo, hi]).fetchall()]
            if not ids:
                return self._empty_history()
            found = con.execute(f"SELECT event_id, event_time, label, raw FROM events WHERE event_id IN "
                                f"({', '.join('?' * len(ids))}) ORDER BY event_time, event_id", ids).df()
        if found.empty:
            return self._empty_history()
        frame = pd.DataFrame([json.loads(raw) for raw in found["raw"]])
        keys = self.keys
        if keys.time_unit == "timestamp":
            frame[keys.event_time] = found["event_time"].to_numpy()
        frame[keys.label or "label"] = found["label"].astype("Int64").to_numpy()
        return frame

    def set_labels(self, labels: pd.DataFrame) -> int:
        """Set known labels (columns event_id, label) on stored events; returns how many labels changed."""
        missing = {"event_id", "label"} - set(labels.columns)
        if missing:
            raise FraudcoreError(f"set_labels needs columns event_id and label; missing {sorted(missing)}")
        frame = pd.DataFrame({"event_id": ids_of(labels["event_id"]),
                              "label": pd.to_numeric(labels["label"]).astype("Int64")})
        with self.transaction(events_changed=True) as con:
            con.register("new_labels", frame)
            try:
                changed = con.execute("UPDATE events SET label = n.label FROM new_labels n "
                                      "WHERE events.event_id = n.event_id "
                                      "AND events.label IS DISTINCT FROM n.label").fetchone()[0]
            finally:
                con.unregister("new_labels")
        return int(changed)

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these event ids (as text) are stored."""
        if not len(ids):
            return set()
        found = self.query("SELECT event_id FROM events WHERE event_id = ANY(?)", [list(ids)])
        return set(found["event_id"].tolist())

    def raw_fields(self, fields: Sequence[str], since: datetime | None = None,
                   until: datetime | None = None) -> pd.DataFrame:
        """Stored events with event time in [since, until): ``__t`` (µs since the epoch), ``__amount``, ``__label``
        and per raw field its JSON value as text and its JSON type (``<field>__type``), read in one scan. An event
        whose raw JSON DuckDB cannot read (text with an unpaired surrogate escape, which ingestion refuses since
        2026-11-22 but older files may hold) is left out rather than failing every read."""
        paths = [f'$."{f}"' for f in fields]
        if any('"' in f or "\\" in f for f in fields):
            raise FraudcoreError(f"field names with quotes or backslashes cannot be read from the raw events: {fields}")
        picks = ", ".join(f"v[{i + 1}] AS {qident(f)}, ty[{i + 1}] AS {qident(f + '__type')}"
                          for i, f in enumerate(fields))
        where = " AND ".join(w for w, v in (("event_time >= ?", since), ("event_time < ?", until)) if v is not None)
        bounds = [_naive(v) for v in (since, until) if v is not None]
        sql = (f"SELECT __t, __amount, __label{', ' + picks if picks else ''} FROM (SELECT "
               "epoch_us(event_time) AS __t, amount AS __amount, label AS __label, "
               "try(json_extract_string(raw, ?)) AS v, try(json_type(raw, ?)) AS ty "
               f"FROM events{' WHERE ' + where if where else ''}) WHERE ty IS NOT NULL")
        return self.query(sql, [paths, paths, *bounds])

    def stats(self) -> dict:
        """Counts for the sidebar and the CLI: events, labels, quarantine, scores by tier, cursors, cases, version."""
        with self._lock:
            con = self._db()
            one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
            tiers = dict(con.execute("SELECT coalesce(tier, 'none'), count(*) FROM scores GROUP BY 1 ORDER BY 1")
                         .fetchall())
            feeds = {f: {"cursor": c, "updated_at": u} for f, c, u in
                     con.execute("SELECT feed, cursor, updated_at FROM feed_state ORDER BY feed").fetchall()}
            return {"path": str(self.path), "schema_version": self.schema_version,
                    "events": int(one("SELECT count(*) FROM events")),
                    "distinct_event_ids": int(one("SELECT count(DISTINCT event_id) FROM events")),
                    "labelled_events": int(one("SELECT count(label) FROM events")),
                    "quarantined": int(one("SELECT count(*) FROM quarantine")),
                    "scores": int(one("SELECT count(*) FROM scores")), "scores_by_tier": tiers, "feeds": feeds,
                    "cases": int(one("SELECT count(*) FROM cases")),
                    "cases_by_tier_status": {f"{t}/{st}": int(n) for t, st, n in con.execute(
                        "SELECT tier, status, count(*) FROM cases GROUP BY ALL ORDER BY ALL").fetchall()},
                    "decisions": int(one("SELECT count(*) FROM decisions"))}

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run one parameterised read under the store's lock and return it as a DataFrame."""
        with self._lock:
            return self._db().execute(sql, list(params or [])).df()

    @contextmanager
    def transaction(self, events_changed: bool = False,
                    on_commit: Callable[[int, int], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection inside BEGIN … COMMIT under the store's lock (ROLLBACK if the block raises).
        ``events_changed``: the block writes events or their labels, so ``generation`` moves on and in-memory copies
        of the events (the live recent history) reload; ``on_commit(before, after)`` runs as it moves after a
        commit, under the generation lock (the store writer tells the histories that already hold the rows)."""
        with self._lock:
            con = self._db()
            con.execute("BEGIN TRANSACTION")
            committed = False
            try:
                yield con
                con.execute("COMMIT")
                committed = True
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                if events_changed:
                    with self._generation_lock:
                        self.generation += 1
                        if committed and on_commit is not None:
                            on_commit(self.generation - 1, self.generation)

    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise FraudcoreError(f"the store {self.path} is closed; open it again with Store.open()")
        return self._con

    def _migrate(self) -> None:
        with self._lock:
            con = self._db()
            if self.read_only:
                have = _version_or_zero(con)
                if have < SCHEMA_VERSION:
                    raise FraudcoreError(f"the store {self.path} is at schema version {have}, this code expects "
                                         f"{SCHEMA_VERSION}; open it once read-write (start the app) to migrate it")
                return
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                        "applied_at TIMESTAMP NOT NULL)")
            have = _version_or_zero(con)
            for version, statements in enumerate(MIGRATIONS[have:], start=have + 1):
                with self.transaction():
                    for statement in statements:
                        con.execute(statement)
                    con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, _utcnow()])

    def _empty_history(self) -> pd.DataFrame:
        keys = self.keys
        columns = dict.fromkeys([keys.event_id, keys.event_time, *(c for c in (keys.amount,) if c),
                                 *keys.entities, keys.label or "label"])
        return pd.DataFrame(columns=list(columns))


def store_stats(path: Path | None = None) -> dict:
    """Open the store read-only and return ``Store.stats()``; StoreBusyError while the app owns the file."""
    with Store.open(path, read_only=True) as store:
        return store.stats()


def _version_or_zero(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'").fetchone()[0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def _busy_error(path: Path, exc: duckdb.IOException) -> FraudcoreError:
    message = str(exc)
    if "lock" not in message.lower():
        return FraudcoreError(f"could not open the workbench store {path}: {message}")
    pid = re.search(r"PID (\d+)", message)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return StoreBusyError(f"the workbench store {path} is held by {holder} (DuckDB allows one owning process); "
                          f"{_BUSY_HINT}")


def _naive(moment: datetime) -> datetime:
    moment = pd.Timestamp(moment).to_pydatetime()
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
