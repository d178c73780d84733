"""The store writer: ONE thread per workbench that commits what the live path hands it, every batch queued meanwhile in
the same transaction (group commit), and checkpoints DuckDB between commits rather than inside one.

The poller and ``POST /api/score`` prepare their batches (validation, features, scores, reasons) and ``submit`` them;
each gets a ``Ticket`` that is done once its transaction committed (or failed). DuckDB runs without the GIL, so the
next page is prepared while this one commits. DuckDB's own checkpoints (at 16 MB of WAL, inside whichever commit
crosses it, ~0.1-1 s here) are switched off while the writer runs: it checkpoints after ``idle_s`` without work, or
between two commits once the WAL passes ``checkpoint_bytes``, and when it stops.

Batches that carry events already held by an in-memory recent history name that history (``holders``) and its
pending rows (``pending``): on commit the history stays in step with the store instead of reloading; on failure
its pending rows are dropped and it reloads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from fraudcore.errors import FraudcoreError
from fraudcore.store import Store
from fraudcore.store_write import WriteBatch

__all__ = ["StoreWriter", "Ticket"]

_STOP = object()
RECENT_COMMITS = 1000  # group commits whose durations status() summarises


@dataclass(eq=False)
class Ticket:
    """One submitted batch: ``done`` once committed (``stored``: events newly stored) or failed (``error``)."""

    batch: WriteBatch
    after: Ticket | None = None  # committed only if this one was (a feed's pages, in order)
    holders: frozenset | None = None  # recent histories already holding the batch's events
    pending: list[tuple[Any, int]] = field(default_factory=list)  # (history, token) of those rows
    callbacks: list[Callable[[Ticket], None]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    stored: int | None = None
    error: BaseException | None = None
    committed_at: float | None = None  # time.monotonic() when the transaction committed
    linger_s: float = 0.0  # how long the writer may hold it for company (one commit for several small batches)
    submitted_at: float = field(default_factory=time.monotonic)

    def wait(self, timeout_s: float | None = None) -> int:
        """The events newly stored, once committed; FraudcoreError if the write failed or did not finish in time."""
        if not self.done.wait(timeout_s):
            raise FraudcoreError(f"the store writer did not commit the batch within {timeout_s} s")
        if self.error is not None:
            raise FraudcoreError(f"the store write failed: {type(self.error).__name__}: {self.error}") \
                from self.error
        return int(self.stored or 0)


class StoreWriter:
    """The thread that owns writing ``store`` for the live path (``Workbench.services["writer"]``)."""

    def __init__(self, store: Store, *, max_group: int = 256, idle_s: float = 1.0,
                 checkpoint_bytes: int = 256 << 20) -> None:
        self.store, self.max_group, self.idle_s, self.checkpoint_bytes = store, max_group, idle_s, checkpoint_bytes
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = self._finished = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.counts = {"batches": 0, "events": 0, "groups": 0, "largest_group": 0, "errors": 0, "checkpoints": 0}
        self.last_error: str | None = None
        self.checkpoint_ms: float | None = None
        self._commit_ms: deque[float] = deque(maxlen=RECENT_COMMITS)  # durations of the latest group commits

    @property
    def running(self) -> bool:
        """Whether the thread runs and takes batches."""
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def start(self) -> StoreWriter:
        """Start the thread (DuckDB's automatic checkpoints off while it runs)."""
        if self._thread is None:
            self.store.auto_checkpoint(False)
            self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
            self._thread.start()
        return self

    def submit(self, batch: WriteBatch, *, after: Ticket | None = None, holders: Iterable[Any] | None = None,
               pending: Iterable[tuple[Any, int]] = (), on_done: Callable[[Ticket], None] | None = None,
               linger_s: float = 0.0) -> Ticket:
        """Queue ``batch`` for the next group commit; ``on_done(ticket)`` runs on the writer thread once it is done.
        With ``after`` (submitted earlier), the batch fails without being written if that one failed. With
        ``linger_s``, the writer may wait that long after the submission for more batches to commit with it (it
        commits at once when a batch without a linger arrives, and when it stops)."""
        ticket = Ticket(batch, after, None if holders is None else frozenset(holders), list(pending),
                        [on_done] if on_done is not None else [], linger_s=max(0.0, float(linger_s)))
        with self._cond:
            if not self.running:
                raise FraudcoreError("the store writer has stopped (the workbench is shutting down); nothing was "
                                     "written, send the events again")
            self._submitted += 1
            self._queue.put(ticket)
        return ticket

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every batch submitted so far is done; False if that took longer than ``timeout_s``."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._finished >= target or self._thread is None
                                       or not self._thread.is_alive(), timeout_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Commit what is queued, checkpoint, end the thread and give DuckDB its automatic checkpoints back."""
        with self._cond:
            if self._closed or self._thread is None:
                self._closed = True
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout_s)
        try:
            self.store.auto_checkpoint(True)
            self._checkpoint()
        except FraudcoreError:  # the store was closed under us: DuckDB checkpoints on close anyway
            pass

    def status(self) -> dict:
        """Counts, what waits, the WAL size, the last checkpoint's duration and the latest group commits' durations
        (ms: median, 99th percentile, longest; a commit waits for the disk's fsync)."""
        with self._cond:
            waiting = self._submitted - self._finished
        commit_ms = self.commit_times()
        return {"running": self.running, **self.counts, "queued": waiting, "last_error": self.last_error,
                "wal_bytes": self.store.wal_bytes(), "last_checkpoint_ms": self.checkpoint_ms, "commit_ms": commit_ms}

    def commit_times(self, last: int | None = None) -> dict | None:
        """Durations of the latest ``last`` group commits (all kept: ``RECENT_COMMITS``) in ms: how many, median,
        99th percentile, longest; None before the first."""
        times = list(self._commit_ms)
        if last is not None:
            times = times[-last:] if last > 0 else []
        times.sort()
        if not times:
            return None
        return {"commits": len(times), "p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)],
                "max": times[-1]}

    # ---- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        dirty = False
        while True:
            try:
                first = self._queue.get(timeout=self.idle_s) if dirty else self._queue.get()
            except queue.Empty:  # idle: the checkpoint costs nobody a wait
                self._checkpoint()
                dirty = False
                continue
            group, stopping = [], first is _STOP
            if not stopping:
                group.append(first)
                stopping = self._gather(group)
            if group:
                try:
                    self._commit(group)
                except Exception as exc:  # a bug here must not leave anyone waiting on a ticket forever
                    self.counts["errors"] += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    for ticket in group:
                        if not ticket.done.is_set():
                            self._fail(ticket, exc)
                dirty = True
                if self.store.wal_bytes() > self.checkpoint_bytes:
                    self._checkpoint()
            if stopping:
                return

    def _gather(self, group: list[Ticket]) -> bool:
        """Add what is queued to ``group`` (up to ``max_group``), waiting while every batch in it may still linger;
        True when the stop marker came."""
        deadline = min(t.submitted_at + t.linger_s for t in group)
        while len(group) < self.max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    return False
            if item is _STOP:
                return True
            group.append(item)
            deadline = min(deadline, item.submitted_at + item.linger_s)
        return False

    def _commit(self, group: list[Ticket]) -> None:
        """One transaction for the group; if it fails, each batch alone (one bad batch fails only itself and the
        batches submitted after it)."""
        broken = [t for t in group if t.after is not None and t.after.error is not None]
        for ticket in broken:  # its predecessor failed: writing it would skip that one's events
            self._fail(ticket, FraudcoreError("an earlier batch of the same feed was not written"))
        group = [t for t in group if t not in broken]
        if not group:
            return
        batches = [t.batch for t in group]
        started = time.perf_counter()
        try:
            try:  # the live path checked the ids against its recent history: no lookup per commit
                counts = self.store.commit(batches, lambda before, after: _settle(group, before, after), trusted=True)
            except duckdb.ConstraintException:  # someone else stored one of them meanwhile: look them up
                counts = self.store.commit(batches, lambda before, after: _settle(group, before, after))
        except Exception as exc:  # counted, reported on the tickets, never kills the thread
            if len(group) > 1:
                for ticket in group:
                    self._commit([ticket])
                return
            self.counts["errors"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self._fail(group[0], exc)
            return
        self._commit_ms.append(round((time.perf_counter() - started) * 1000, 2))
        self.counts["groups"] += 1
        self.counts["largest_group"] = max(self.counts["largest_group"], len(group))
        for ticket, stored in zip(group, counts, strict=True):
            self.counts["batches"] += 1
            self.counts["events"] += stored
            self._finish(ticket, stored, None)

    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        for history, token in ticket.pending:
            history.release(token)
        self._finish(ticket, None, error)

    def _finish(self, ticket: Ticket, stored: int | None, error: BaseException | None) -> None:
        ticket.stored, ticket.error, ticket.committed_at = stored, error, time.monotonic()
        ticket.after = None  # done: a feed's chain of tickets must not keep every earlier batch alive
        ticket.done.set()
        for callback in ticket.callbacks:
            try:
                callback(ticket)
            except Exception as exc:  # a caller's hook must not stop the writer
                self.last_error = f"callback {type(exc).__name__}: {exc}"[:500]
        with self._cond:
            self._finished += 1
            self._cond.notify_all()

    def _checkpoint(self) -> None:
        started = time.perf_counter()
        try:
            self.store.checkpoint()
        except Exception as exc:  # e.g. a reader's open transaction: try again later
            self.last_error = f"checkpoint {type(exc).__name__}: {exc}"[:500]
            return
        self.counts["checkpoints"] += 1
        self.checkpoint_ms = round((time.perf_counter() - started) * 1000, 1)


def _settle(group: list[Ticket], before: int, after: int) -> None:
    """Just committed (under the store's generation lock): the histories holding every batch's events stay in step;
    each batch's pending rows are now stored rows."""
    with_events = [t.holders for t in group if len(t.batch)]
    holders = frozenset.intersection(*with_events) if with_events and None not in with_events else frozenset()
    for history in holders:
        history.advance(before, after)
    for ticket in group:
        for history, token in ticket.pending:
            history.settle(token)
