"""The live feed: simulator events continuing the demo world in time, served as HTTP JSON with cursor pagination.

``GET /events?after=<cursor>&limit=<n>[&wait_ms=<ms>]`` returns ``{"events": [...], "next": "<cursor>",
"available": n|null}`` (``wait_ms``: hold an empty answer until the next event, at most that long). A cursor
``"day:index"`` names the next event of the simulated world, so the same world gives the same events for the same
cursor across restarts. ``GET /stats`` counts the distinct events and malformed records served (a test checks
the sink against it); ``GET /health`` names the feed. Faults for tests and demos: 5xx errors, delays, malformed
records (chosen per event, so a re-served record is the same payload), duplicates, a rate and a total.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import signal
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from fraudcore.config import DEMO_ROWS, DEMO_SEED, get_paths
from fraudcore.simulate import Cursor, World, cursor_after, default_world, generate, generate_days, read_world

__all__ = ["FeedHandle", "FeedOptions", "FeedSource", "ensure_feed", "feed_origin", "parse_cursor", "serve_blocking",
           "start_feed"]

MAX_LIMIT = 5000


@dataclass(frozen=True)
class FeedOptions:
    """How the feed behaves: pace, faults, how many events in all, whether labels are sent."""

    rate: float | None = None  # events per second (None: as fast as asked)
    error_rate: float = 0.0  # share of requests answered 500/503
    delay_ms: float = 0.0  # added to every request
    malformed_rate: float = 0.0  # share of events sent broken or breaking the schema
    duplicate_rate: float = 0.0  # share of events sent twice in a page
    total: int | None = None  # stop after this many distinct events
    labels: bool = False  # send the simulator's is_fraud (ground truth) with each event
    seed: int = 0  # seeds the faults


def parse_cursor(text: str) -> Cursor:
    """'day:index' as a Cursor; ValueError saying the expected form otherwise."""
    day, sep, index = str(text).partition(":")
    if not sep or not day.isdigit() or not index.isdigit():
        raise ValueError(f"cursor {text!r} is not 'day:index' (two whole numbers), e.g. '60:1234'")
    return Cursor(int(day), int(index))


def feed_origin(demo: Path | None = None, seed: int | None = None) -> tuple[World, Cursor]:
    """Where the feed starts: just after the demo file's last event (its world and cursor), or, without a demo file
    or with an explicit ``seed``, after the first DEMO_ROWS events of that seed's demo world."""
    demo = demo if demo is not None else get_paths().demo_dataset
    if seed is None and demo.is_file():
        return read_world(demo)
    world = default_world(DEMO_SEED if seed is None else seed)
    return world, cursor_after(generate(rows=DEMO_ROWS, world=world)[["event_id"]])


def _unit(seed: int, event_id: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, event, salt)."""
    digest = hashlib.blake2b(f"{seed}:{salt}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


_BREAKERS = (  # each broken payload still names its event, so payloads stay distinct
    lambda e: {**e, "amount": f"{e['amount']} EUR"},
    lambda e: {k: v for k, v in e.items() if k != "event_time"},
    lambda e: {**e, "amount": -abs(e["amount"] or 1.0)},
    lambda e: f"<<truncated record {e['event_id']}",
    lambda e: {**e, "event_time": f"yesterday-{e['event_id']}"},
    lambda e: {**e, "customer_id": [e["customer_id"], "?"]},
)


class FeedSource:
    """The events after ``origin`` in ``world``, page by page, with the options' faults; counts what it served."""

    def __init__(self, world: World, origin: Cursor, options: FeedOptions | None = None) -> None:
        self.world, self.origin, self.options = world, Cursor(*origin), options or FeedOptions()
        fingerprint = hashlib.sha1(json.dumps(world.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        self.name = f"sim-{fingerprint}"
        self._lock = threading.Lock()
        self._days: OrderedDict[int, tuple[list[str], np.ndarray]] = OrderedDict()
        self._sizes: dict[int, int] = {}
        self._served: dict[int, np.ndarray] = {}
        self._random = random.Random(self.options.seed)
        self.started = time.monotonic()  # the rate counts from here (time.monotonic)
        self.counts = {"requests": 0, "served_events": 0, "malformed": 0, "duplicates_sent": 0, "errors_sent": 0}
        self._advanced = 0

    # ---- pages ----------------------------------------------------------------------------------------------

    def page(self, after: str | None, limit: int, wait_s: float = 0.0) -> dict:
        """The next at most ``limit`` events after cursor ``after`` (None: the origin) as raw JSON texts, the next
        cursor, and how many more could be served right now (None: unbounded). When the rate has nothing to send
        yet, wait up to ``wait_s`` for the next event (a long poll: low latency without busy polling)."""
        start = self.origin if after in (None, "") else parse_cursor(after)
        if start < self.origin:
            raise ValueError(f"cursor {after} is before this feed's start {self._text(self.origin)}")
        limit = max(1, min(int(limit), MAX_LIMIT))
        rate, total = self.options.rate, self.options.total
        if wait_s > 0 and rate:
            with self._lock:
                ended = total is not None and self._ordinal(start) >= total
                due = self.started + (self._advanced + 1) / rate - time.monotonic()
            if not ended:
                time.sleep(max(0.0, min(due, wait_s)))
        with self._lock:
            room = self._room(start)
            want = limit if room is None else max(0, min(limit, room))
            texts, cursor = self._take(start, want)
            self._advanced += len(texts)
            out = self._with_duplicates(texts)
            left = self._room(cursor)
        return {"events": out, "next": self._text(cursor), "available": left}

    def events_before(self, cursor: str | None) -> int:
        """How many of this feed's events lie before ``cursor`` (a reader's position; None: the origin)."""
        if cursor in (None, ""):
            return 0
        with self._lock:
            return max(0, self._ordinal(parse_cursor(cursor)))

    def _room(self, cursor: Cursor) -> int | None:
        """How many events may follow ``cursor`` now: the rate's budget and the total, whichever is smaller."""
        limits = []
        if self.options.rate is not None:
            limits.append(int(self.options.rate * (time.monotonic() - self.started)) - self._advanced)
        if self.options.total is not None:
            limits.append(self.options.total - self._ordinal(cursor))
        return max(0, min(limits)) if limits else None

    def _take(self, cursor: Cursor, want: int) -> tuple[list[str], Cursor]:
        day, index, texts = cursor.day, cursor.index, []
        while len(texts) < want:
            events, malformed = self._day(day)
            if index >= len(events):
                day, index = day + 1, 0
                continue
            stop = min(len(events), index + want - len(texts))
            texts += events[index:stop]
            self._mark(day, index, stop, malformed)
            index = stop
        return texts, Cursor(day, index)

    def _with_duplicates(self, texts: list[str]) -> list[str]:
        rate = self.options.duplicate_rate
        if not rate or not texts:
            return texts
        out = []
        for text in texts:
            out.append(text)
            if self._random.random() < rate:
                out.append(out[self._random.randrange(len(out))])
                self.counts["duplicates_sent"] += 1
        return out

    # ---- days -----------------------------------------------------------------------------------------------

    def _day(self, day: int) -> tuple[list[str], np.ndarray]:
        """One simulated day as JSON texts (malformed ones replaced) and which are malformed (a few days cached)."""
        if day in self._days:
            self._days.move_to_end(day)
            return self._days[day]
        frame = generate_days(self.world, day, 1).drop(columns=["fraud_scenario"])
        if not self.options.labels:
            frame = frame.drop(columns=["is_fraud"])
        texts = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s").splitlines()
        ids = frame["event_id"].tolist()
        opts = self.options
        bad = np.array([opts.malformed_rate > 0 and _unit(opts.seed, i, "bad") < opts.malformed_rate for i in ids],
                       dtype=bool)
        for j in np.flatnonzero(bad):
            kind = int(_unit(opts.seed, ids[j], "kind") * len(_BREAKERS))
            texts[j] = json.dumps(_BREAKERS[kind](json.loads(texts[j])))
        self._days[day], self._sizes[day] = (texts, bad), len(texts)
        while len(self._days) > 8:
            self._days.popitem(last=False)
        return texts, bad

    def _size(self, day: int) -> int:
        if day not in self._sizes:
            self._day(day)
        return self._sizes[day]

    def _ordinal(self, cursor: Cursor) -> int:
        """How many events lie between the origin and ``cursor``."""
        before = sum(self._size(d) for d in range(self.origin.day, cursor.day))
        return before - self.origin.index + min(cursor.index, self._size(cursor.day))

    def _mark(self, day: int, lo: int, hi: int, malformed: np.ndarray) -> None:
        served = self._served.setdefault(day, np.zeros(len(malformed), dtype=bool))
        fresh = ~served[lo:hi]
        self.counts["served_events"] += int(fresh.sum())
        self.counts["malformed"] += int((fresh & malformed[lo:hi]).sum())
        served[lo:hi] = True

    # ---- reporting ------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Distinct events and malformed records served so far, duplicates and errors sent, requests."""
        with self._lock:
            counts = dict(self.counts)
        return {"feed": self.name, "origin": self._text(self.origin), **counts,
                "valid_events": counts["served_events"] - counts["malformed"],
                "rate_clock": self.started}  # time.monotonic() when the rate started (one clock per machine)

    def fault(self) -> int | None:
        """Wait the delay, then an HTTP error status to answer with (or None)."""
        if self.options.delay_ms:
            time.sleep(self.options.delay_ms / 1000)
        with self._lock:
            self.counts["requests"] += 1
            if self.options.error_rate and self._random.random() < self.options.error_rate:
                self.counts["errors_sent"] += 1
                return self._random.choice((500, 503))
        return None

    @staticmethod
    def _text(cursor: Cursor) -> str:
        return f"{cursor.day}:{cursor.index}"


class _Handler(BaseHTTPRequestHandler):
    """GET /events, /stats, /health as JSON over keep-alive HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _FeedServer

    def do_GET(self) -> None:
        url = urlparse(self.path)
        source = self.server.source
        if url.path == "/health":
            return self._send(200, json.dumps({"status": "ok", "feed": source.name}))
        if url.path == "/stats":
            return self._send(200, json.dumps(source.stats()))
        if url.path != "/events":
            return self._send(404, json.dumps({"error": f"no route {url.path}; use /events, /stats or /health"}))
        status = source.fault()
        if status is not None:
            return self._send(status, json.dumps({"error": "injected fault: try again"}))
        query = parse_qs(url.query)
        try:
            limit = int(query.get("limit", ["500"])[0])
            wait_s = min(float(query.get("wait_ms", ["0"])[0]), 5000.0) / 1000
            page = source.page(query.get("after", [None])[0], limit, wait_s)
        except ValueError as exc:
            return self._send(400, json.dumps({"error": str(exc)}))
        body = (f'{{"events":[{",".join(page["events"])}],"next":{json.dumps(page["next"])},'
                f'"available":{json.dumps(page["available"])}}}')
        return self._send(200, body)

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a feed answers many requests a second."""


class _FeedServer(ThreadingHTTPServer):
    """The threading server, remembering open connections so that stopping it drops keep-alive clients too."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], source: FeedSource) -> None:
        self.source, self.connections = source, set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close every open client connection (a stopped feed answers nobody)."""
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@dataclass
class FeedHandle:
    """A feed served from a background thread: its URL, source; ``stop()`` and ``restart()`` (same port and
    cursor space, counters kept)."""

    url: str
    source: FeedSource
    host: str
    port: int
    _server: _FeedServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def serve(self) -> FeedHandle:
        """Start answering (binds the port)."""
        self._server = _FeedServer((self.host, self.port), self.source)
        self.port = self._server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"feed:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and free the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, and serve the same source on the same port again."""
        self.stop()
        time.sleep(down_s)
        self.serve()

    def stats(self) -> dict:
        """The source's counters (what ``GET /stats`` answers)."""
        return self.source.stats()


def start_feed(options: FeedOptions | None = None, *, host: str = "127.0.0.1", port: int = 0,
               world: World | None = None, origin: Cursor | None = None, seed: int | None = None,
               demo: Path | None = None) -> FeedHandle:
    """Serve the feed from a background thread (port 0: a free one) and return its handle; the world and start
    default to ``feed_origin(demo, seed)``."""
    if world is None or origin is None:
        world, origin = feed_origin(demo, seed)
    source = FeedSource(world, origin, options)
    return FeedHandle("", source, host, port).serve()


def serve_blocking(options: FeedOptions | None = None, *, host: str = "127.0.0.1", port: int = 8765,
                   seed: int | None = None, demo: Path | None = None, origin: str | None = None) -> int:
    """Serve until SIGINT/SIGTERM (the CLI): prints one JSON line with the URL, the feed's name and its start.
    ``origin`` ('day:index') starts the feed at that cursor of the world instead of after the demo events."""
    if origin is not None and seed is not None:  # no need to find where the demo events end
        world, start = default_world(seed), parse_cursor(origin)
    else:
        world, start = feed_origin(demo, seed)
        start = parse_cursor(origin) if origin is not None else start
    handle = start_feed(options, host=host, port=port, world=world, origin=start)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    print(json.dumps({"url": handle.url, "feed": handle.source.name,
                      "origin": FeedSource._text(handle.source.origin)}), flush=True)
    try:
        stopped.wait()
    finally:
        handle.stop()
    return 0


def ensure_feed(workbench: object, options: FeedOptions | None = None) -> FeedHandle:
    """The workbench's embedded feed (``services["feed"]``), started on a free loopback port on first use."""
    services = workbench.services  # type: ignore[attr-defined]
    handle = services.get("feed")
    if handle is None or handle._server is None:
        handle = services["feed"] = start_feed(options)
    return handle
