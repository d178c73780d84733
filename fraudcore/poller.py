"""The poller: reads the live feed page by page and ingests each page in ONE store transaction with the feed cursor.

Pipelined: while the store writer commits page N, the poller fetches and prepares page N+1 (features, scores,
reasons), and hands it over once page N has committed; if page N's write failed, page N+1 is dropped and reading
resumes from the last committed cursor. At-least-once delivery (the cursor moves only with the page's events) plus
idempotent writes (events by id, rejects by payload) means nothing is lost and nothing is stored twice, whatever
fails or gets killed in between. Network errors, 5xx answers and failed writes are counted and retried with
exponential backoff and jitter; bad records are quarantined by ``ingest``, never dropped and never fatal. Runs as a
thread owned by the app (``PollerController``, kept in ``Workbench.services["poller"]``) or as
``python -m fraudcore poll``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from fraudcore.errors import FeedError
from fraudcore.ingest import IngestResult, Prepared, cancel, prepare, submit
from fraudcore.json_text import loads
from fraudcore.writer import Ticket

__all__ = ["FeedRejected", "Poller", "PollerController", "start_poller"]

MIN_BATCH, MAX_BATCH = 100, 1000
IN_FLIGHT = 4  # pages handed to the store writer and not committed yet (it commits them together)
GATHER_S = 0.02  # after a page short of the batch size, the next request goes this long after the last one


class FeedRejected(FeedError):
    """The feed refused the request itself (4xx): retrying the same request cannot help."""


class Poller:
    """Fetch a page after the last cursor read, prepare it, hand it to the store writer with the next cursor, repeat;
    counts everything once committed. ``on_commit(status)`` (optional) runs on the writer's thread after each page
    commits."""

    def __init__(self, workbench: Any, url: str, *, name: str | None = None, batch: int = 500,
                 model_id: str | None = None, timeout_s: float = 10.0, backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0, idle_s: float = 0.5, poll_s: float = 0.2,
                 gather_s: float | None = None, session: requests.Session | None = None,
                 on_commit: Callable[[dict], None] | None = None) -> None:
        self.workbench, self.url, self.model_id = workbench, url.rstrip("/"), model_id
        self.batch = max(MIN_BATCH, min(MAX_BATCH, int(batch)))
        self.timeout_s, self.backoff_s, self.max_backoff_s, self.idle_s = timeout_s, backoff_s, max_backoff_s, idle_s
        self.poll_s = poll_s  # how long the feed may hold a request with nothing new (long poll), then our pause
        # Caught up with the feed (a page short of the batch size), the next request waits until gather_s after the
        # last one: a few events per page cost a page's fixed work and a commit each (at 500 events/s, pages of 3
        # kept the store writer busy 94 % of the time); pages gathered for 20 ms carry ~10.
        self.gather_s = GATHER_S if gather_s is None else max(0.0, gather_s)
        self.session = session or _session(self.url)
        self.name, self.cursor, self._opened = name, None, False  # cursor: the last one committed
        self.on_commit = on_commit
        self._read_cursor: str | None = None  # the last one read (ahead of ``cursor`` while a page is in flight)
        self._read = 0  # records read
        self._inflight: deque[Ticket] = deque()
        self._lock = threading.Lock()
        self.counts = {"events": 0, "stored": 0, "duplicates": 0, "quarantined": 0, "errors": 0, "batches": 0}
        self.by_tier: dict[str, int] = {}
        self.lag: int | None = None
        self.last_error: str | None = None
        self.started = time.monotonic()
        self._recent: deque[tuple[float, int]] = deque()
        self._failures = 0

    # ---- one step -------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Learn the feed's name (unless given) and resume from the cursor stored for it."""
        if self.name is None:
            try:
                self.name = str(self._get("/health", {}).get("feed") or self.url)
            except FeedRejected:  # a feed without /health: its URL names the cursor
                self.name = self.url
        self.cursor = self._read_cursor = self.workbench.store(self.workbench.scorer(self.model_id)).cursor(self.name)
        self._opened = True

    def step(self, limit: int | None = None) -> int:
        """Fetch one page, prepare it and hand it to the store writer once the page before has committed; returns
        how many records it held (0: nothing new yet)."""
        params = {"limit": min(self.batch, limit or self.batch), "wait_ms": int(self.poll_s * 1000)}
        if self._read_cursor:
            params["after"] = self._read_cursor
        page = self._get("/events", params)
        records, following = page.get("events"), page.get("next")
        if not isinstance(records, list) or not isinstance(following, str):
            raise FeedError(f"the feed at {self.url} answered a page without an 'events' list and a 'next' cursor")
        lag = page.get("available") if isinstance(page.get("available"), int) else None
        if records or following != self._read_cursor:
            prepared = prepare(self.workbench, records, source=self.name, cursor=(self.name, following),
                               strict=False, model_id=self.model_id)
            self.settle(prepared, keep=IN_FLIGHT - 1)
            previous = self._inflight[-1] if self._inflight else None
            self._inflight.append(submit(self.workbench, prepared, after=previous, on_done=lambda t: self._committed(
                t, prepared.result, following, lag, len(records))))
        else:
            self.settle()
            with self._lock:
                self.lag = lag
                self.counts["batches"] += 1
        self._read_cursor = following
        self._read += len(records)
        return len(records)

    def settle(self, following: Prepared | None = None, keep: int = 0) -> None:
        """Wait until at most ``keep`` pages are in flight; if a page's write failed, wait for the rest (they fail
        too), drop ``following`` (prepared against them) and read again from the last committed cursor (FeedError)."""
        while len(self._inflight) > keep:
            self._inflight[0].done.wait()
            if self._inflight[0].error is None:
                self._inflight.popleft()
                continue
            error = self._inflight[0].error
            for ticket in self._inflight:
                ticket.done.wait()
            self._inflight.clear()
            if following is not None:
                cancel(self.workbench, following)
            with self._lock:
                self._read_cursor, self._read = self.cursor, self.counts["events"]
            raise FeedError(f"the store did not take a page ({error}); reading again from cursor {self.cursor}")
        if any(t.done.is_set() and t.error is not None for t in self._inflight):
            self.settle(following, keep=0)

    def _committed(self, ticket: Ticket, result: IngestResult, following: str, lag: int | None, n: int) -> None:
        """A page's transaction is done (the writer's thread): count it, move the committed cursor."""
        if ticket.error is not None:  # counted when the poller learns it (``settle``)
            return
        with self._lock:  # "lag 0" never shows while a page is still being written
            self.cursor, self.lag = following, lag
            self.counts["events"] += n
            self.counts["stored"] += result.stored
            self.counts["duplicates"] += result.duplicates
            self.counts["quarantined"] += len(result.rejected)
            self.counts["batches"] += 1
            for tier, count in result.by_tier.items():
                self.by_tier[tier] = self.by_tier.get(tier, 0) + count
            self._recent.append((time.monotonic(), n))
        if self.on_commit is not None:
            self.on_commit(self.status())

    def _get(self, path: str, params: dict) -> dict:
        try:
            answer = self.session.get(self.url + path, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise FeedError(f"the feed at {self.url} did not answer ({type(exc).__name__}: {exc})") from exc
        if 400 <= answer.status_code < 500:
            raise FeedRejected(f"the feed at {self.url} refused {path} with {answer.status_code}: {answer.text[:200]}")
        if answer.status_code != 200:
            raise FeedError(f"the feed at {self.url} answered {answer.status_code} to {path}; retrying")
        try:
            return loads(answer.content)
        except ValueError as exc:
            raise FeedError(f"the feed at {self.url} answered {path} with something that is not JSON") from exc

    # ---- the loop -------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, max_events: int | None = None, until_idle: bool = False,
            progress: Callable[[dict], None] | None = None) -> dict:
        """Poll until ``stop`` is set, ``max_events`` records were read or (``until_idle``) the feed has had nothing
        new for ``idle_s``; an empty page is asked again after ``poll_s`` (or at once if the feed held it that long);
        errors are counted and retried with backoff, a FeedRejected ends the run."""
        idle_since = None
        while not stop.is_set():
            if max_events is not None and self._read >= max_events:
                break
            try:
                if not self._opened:
                    self.open()
                left = None if max_events is None else max_events - self._read
                asked = time.monotonic()
                got = self.step(left)
                self._failures = 0
            except FeedRejected as exc:
                self._fail(exc)
                raise
            except Exception as exc:  # counted, shown, retried: the loop must outlive any one failure
                self._fail(exc)
                stop.wait(self._backoff())
                continue
            if progress is not None:
                progress(self.status())
            if got:
                idle_since = None
                if got < min(self.batch, left or self.batch):  # caught up: let the next page gather events
                    stop.wait(max(0.0, self.gather_s - (time.monotonic() - asked)))
                continue
            idle_since = idle_since or asked
            if until_idle and time.monotonic() - idle_since >= self.idle_s:
                break
            stop.wait(max(0.0, self.poll_s - (time.monotonic() - asked)))  # the feed may have held the request
        try:
            self.settle()  # the last page commits before the run ends
        except FeedError as exc:
            self._fail(exc)
        return self.status()

    def _fail(self, exc: BaseException) -> None:
        self.counts["errors"] += 1
        self._failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def _backoff(self) -> float:
        """Exponential in the consecutive failures, capped, with full jitter."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures - 1)))

    def status(self) -> dict:
        """Counts, throughput over the last 10 s, lag behind the feed (events it could send now), the cursor, the
        last error and ``failing``: how many tries in a row have failed (0 once one succeeds)."""
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0][0] > 10:
                self._recent.popleft()
            recent, counts = sum(n for _, n in self._recent), dict(self.counts)
        window = min(10.0, max(now - self.started, 1e-9))
        return {"feed": self.name, "url": self.url, "cursor": self.cursor, **counts,
                "events_per_s": round(recent / window, 1), "lag": self.lag,
                "by_tier": dict(self.by_tier), "last_error": self.last_error, "failing": self._failures,
                "seconds": round(now - self.started, 2)}


def _session(url: str) -> requests.Session:
    """A session with the environment's settings for ``url`` (proxies unless NO_PROXY covers it, the CA bundle,
    .netrc credentials) read once, not on every request: requests re-reads them per call when ``trust_env`` is on,
    about a third of a millisecond of the poller's time per page."""
    session = requests.Session()
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    return session


class PollerController:
    """A poller on a daemon thread of the app process: ``start``, ``stop``, ``status`` (thread-safe reads)."""

    def __init__(self, workbench: Any, url: str, **options: Any) -> None:
        self.poller = Poller(workbench, url, **options)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> PollerController:
        """Start polling in the background (no-op while running)."""
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        with contextlib.suppress(FeedRejected):  # counted and shown in status(); the feed refuses us, so stop
            self.poller.run(self._stop)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to stop after its current page and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def status(self) -> dict:
        """The poller's status plus whether it runs."""
        return {"running": self.running, **self.poller.status()}


def start_poller(workbench: Any, url: str, **options: Any) -> PollerController:
    """Start a poller for ``url`` as the workbench's ``services["poller"]`` (stopping the one there first)."""
    previous = workbench.services.pop("poller", None)
    if previous is not None:
        previous.stop()
    controller = PollerController(workbench, url, **options).start()
    workbench.services["poller"] = controller
    return controller


def poll_cli(url: str, *, db: str | None = None, model_id: str | None = None, max_events: int | None = None,
             until_idle: bool = False, batch: int = 500, name: str | None = None, idle_s: float = 1.0,
             stream: Any = None) -> dict:
    """``python -m fraudcore poll``: open the store (StoreBusyError, with what to do, while another process holds
    it), poll with progress lines on stderr until Ctrl-C/SIGTERM, ``max_events`` or idle; returns the summary."""
    import dataclasses
    import signal
    import sys
    from pathlib import Path

    from fraudcore import runtime
    from fraudcore.config import get_paths

    paths = get_paths() if db is None else dataclasses.replace(get_paths(), db=Path(db).expanduser().resolve())
    workbench = runtime.start(paths)
    stream = stream or sys.stderr
    try:
        workbench.store(workbench.scorer(model_id))  # fail now, clearly, if the file is held or no model is set
        poller = Poller(workbench, url, name=name, batch=batch, model_id=model_id, idle_s=idle_s)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        shown = [0.0]

        def progress(status: dict) -> None:
            if time.monotonic() - shown[0] >= 1.0:
                shown[0] = time.monotonic()
                print(f"poll: {status['events']:,} events  {status['events_per_s']:,.0f}/s  stored "
                      f"{status['stored']:,}  quarantined {status['quarantined']:,}  errors {status['errors']}  "
                      f"lag {status['lag']}  cursor {status['cursor']}", file=stream, flush=True)

        return poller.run(stop, max_events=max_events, until_idle=until_idle, progress=progress)
    finally:
        runtime.shutdown()
