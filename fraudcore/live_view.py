"""What the Live page needs around the feed and the poller: start and stop them cleanly, read their status, and read
the store for the live picture (scored events per minute and tier, quarantined records page by page, with reasons).

The poller and the embedded feed are the workbench's services (``services["poller"]``, ``services["feed"]``), so one
poller serves every session of the app, keeps running when an analyst leaves the page, and stops with the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from fraudcore.errors import FeedError
from fraudcore.feed import FeedHandle, FeedOptions, ensure_feed
from fraudcore.poller import PollerController, start_poller
from fraudcore.store import Store

__all__ = ["EXCERPT_CHARS", "MAX_RATE", "STALLED_AFTER", "TIERS", "LiveStatus", "error_advice", "feed_options",
           "live_status", "live_totals", "quarantine_count", "quarantine_page", "quarantine_reasons",
           "quarantine_sources", "seed_history", "start_live", "stop_live", "storage_line", "tier_minutes"]

TIERS = ("high", "medium", "low")
EXCERPT_CHARS = 160
MAX_RATE = 50_000.0
STALLED_AFTER = 3  # failed tries in a row after which the Live page says the poller is stalled


@dataclass(frozen=True)
class LiveStatus:
    """The poller's status (None: never started in this process) and the embedded feed, if it serves."""

    poller: dict[str, Any] | None
    feed_url: str | None
    feed_options: FeedOptions | None
    feed_read: int | None = None  # the embedded feed's events before the poller's committed cursor (None: n/a)
    storage: dict[str, Any] | None = None  # the store writer's status (None: no writer started in this process)

    @property
    def running(self) -> bool:
        """Whether a poller thread runs now."""
        return bool(self.poller and self.poller.get("running"))

    @property
    def stalled(self) -> bool:
        """The poller runs but its last ``STALLED_AFTER`` tries all failed: nothing new is being stored."""
        return self.running and int((self.poller or {}).get("failing") or 0) >= STALLED_AFTER

    @property
    def total_reached(self) -> bool:
        """The poller has committed every event the embedded feed's ``total`` allows (paced or not): it idles."""
        options, status = self.feed_options, self.poller or {}
        return (options is not None and options.total is not None and self.feed_read is not None
                and self.feed_read >= options.total and status.get("url") == self.feed_url)


def feed_options(rate: float | None = None, error_rate: float = 0.0, malformed_rate: float = 0.0,
                 total: int | None = None, seed: int = 0) -> FeedOptions:
    """Embedded feed options from the page's fields (rate and total: None or 0 mean unbounded); ValueError naming the
    field and its allowed range otherwise."""
    if rate is not None and (not math.isfinite(rate) or rate < 0 or rate > MAX_RATE):
        raise ValueError(f"rate must be between 0 and {MAX_RATE:,.0f} events/s (0: as fast as the poller asks); "
                         f"got {rate}")
    for name, share in (("error rate", error_rate), ("malformed rate", malformed_rate)):
        if not math.isfinite(share) or not 0 <= share <= 0.9:
            raise ValueError(f"{name} must be a share between 0 and 0.9 (e.g. 0.05 for 5 %); got {share}")
    if total is not None and total < 0:
        raise ValueError(f"total must be 0 (endless) or a positive number of events; got {total}")
    return FeedOptions(rate=rate or None, error_rate=float(error_rate), malformed_rate=float(malformed_rate),
                       total=int(total) if total else None, seed=int(seed))


def _serving(handle: FeedHandle | None) -> bool:
    """Whether an embedded feed handle answers now (FeedHandle has no public flag for it yet)."""
    return handle is not None and handle._server is not None


def _check_url(url: str) -> str:
    text = url.strip().rstrip("/")
    parts = urlparse(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FeedError(f"the feed URL {url!r} is not an http(s) address such as http://127.0.0.1:8765 "
                        "(serve one with `python -m fraudcore feed serve`, or use the embedded feed)")
    return text


def start_live(workbench: Any, url: str | None = None, options: FeedOptions | None = None,
               **poller_options: Any) -> PollerController:
    """Start the poller on ``url``, or (None) on the embedded simulator feed served on a free loopback port with
    ``options``; a running poller (and an embedded feed with other options, or left without a reader) stops first.
    Needs a champion (ModelArtifactError otherwise) and an http(s) URL (FeedError otherwise)."""
    target = _check_url(url) if url else None
    workbench.scorer()  # fail before touching anything when there is no usable champion
    embedded = workbench.services.get("feed")
    # another feed: the embedded one (unless that is the URL given) has no reader left, so it stops too
    stop_live(workbench, feed=target is not None and not (_serving(embedded) and embedded.url == target))
    if target is None:
        handle: FeedHandle | None = workbench.services.get("feed")
        wanted = options or FeedOptions()
        if handle is not None and (not _serving(handle) or handle.source.options != wanted):
            handle.stop()
            workbench.services.pop("feed", None)
        seed_history(workbench)
        target = ensure_feed(workbench, wanted).url
    return start_poller(workbench, target, **poller_options)


def seed_history(workbench: Any, demo: Path | None = None, chunk: int = 50_000) -> int:
    """Before the embedded feed first runs into an empty store, store the demo events it continues from (the last
    look-back of the champion's features, labels included), so live velocity and risk features see the same past as
    training did instead of starting from nothing. Returns the events stored (0: not needed or not possible)."""
    scorer = workbench.scorer()
    demo = demo if demo is not None else workbench.paths.demo_dataset
    spec = scorer.spec
    if scorer.lookback is None or not demo.is_file() or not spec.event_time:
        return 0
    store = workbench.store(scorer)
    if int(store.query("SELECT count(*) AS n FROM events")["n"].iloc[0]):
        return 0
    frame = pd.read_parquet(demo)
    if not {spec.event_time, spec.event_id, *scorer.entities} <= set(frame.columns):
        return 0  # the champion reads another kind of data than the simulator's
    times = pd.to_datetime(frame[spec.event_time])
    recent = frame[times >= times.max() - scorer.lookback]
    for start in range(0, len(recent), chunk):
        store.write_batch(recent.iloc[start:start + chunk], None, source="demo history")
    return len(recent)


def stop_live(workbench: Any, *, feed: bool = True) -> bool:
    """Stop the poller (waiting for its thread and closing its connections) and, with ``feed``, the embedded feed;
    returns whether anything was running. Safe to call any number of times."""
    was_running = False
    controller = workbench.services.get("poller")
    if controller is not None:
        was_running = bool(controller.running)
        controller.stop()
        session = getattr(getattr(controller, "poller", None), "session", None)
        if session is not None:
            session.close()  # ends the feed's keep-alive handler thread for this connection
    handle = workbench.services.get("feed") if feed else None
    if handle is not None:
        was_running = was_running or _serving(handle)
        handle.stop()
        workbench.services.pop("feed", None)
    return was_running


def live_status(workbench: Any) -> LiveStatus:
    """The poller's status (with ``running``) and the embedded feed's URL and options while it serves."""
    controller = workbench.services.get("poller")
    handle = workbench.services.get("feed")
    serving = _serving(handle)
    status = controller.status() if controller is not None else None
    writer = workbench.services.get("writer")
    return LiveStatus(poller=status,
                      feed_url=handle.url if serving else None,
                      feed_options=handle.source.options if serving else None,
                      feed_read=_read(handle, status) if serving else None,
                      storage=writer.status() if writer is not None else None)


def storage_line(storage: dict[str, Any] | None) -> str | None:
    """One line on the store writer for the Live page: its latest commits' durations (a slow disk's fsync shows in
    the longest), what waits, the WAL's size and the last checkpoint; None before any commit."""
    commits = (storage or {}).get("commit_ms")
    if not commits:
        return None
    parts = [f"{storage['groups']:,} commits, latest {commits['commits']:,}: median {commits['p50']:.1f} ms, "
             f"p99 {commits['p99']:.1f} ms, longest {commits['max']:.0f} ms",
             f"{storage['queued']:,} batches waiting", f"WAL {storage['wal_bytes'] / 1e6:.1f} MB"]
    if storage.get("last_checkpoint_ms") is not None:
        parts.append(f"last checkpoint {storage['last_checkpoint_ms']:.0f} ms")
    if storage.get("last_error"):
        parts.append(f"last error: {storage['last_error']}")
    return "Store writes · " + " · ".join(parts)


def _read(handle: FeedHandle, status: dict[str, Any] | None) -> int | None:
    """Events of the embedded feed before the poller's committed cursor (None: no poller on this feed)."""
    status = status or {}
    if status.get("url") != handle.url:
        return None
    try:
        return handle.source.events_before(status.get("cursor"))
    except ValueError:  # a cursor of another feed
        return None


def error_advice(error: str | None) -> str | None:
    """What to do about the poller's last error (its text as ``status()['last_error']`` gives it)."""
    if not error:
        return None
    text = error.lower()
    if "did not answer" in text:  # before "refused": a connection refused is an unreachable feed
        return ("The feed cannot be reached; the poller keeps retrying with backoff. Check the feed runs and the URL "
                "(host and port), or switch to the embedded feed.")
    if text.startswith("feedrejected") or " refused /" in text:
        return ("The feed refused the poller's request, so polling stopped. Check the URL points at the feed itself "
                "(it answers /events and /health), then start again.")
    if "answered 5" in text:
        return "The feed answered with a server error; the poller retries with backoff, nothing is lost or doubled."
    if "not json" in text or "without an 'events' list" in text:
        return "The URL answers, but not as a feed (GET /events with an 'events' list and a 'next' cursor)."
    if "modelartifact" in text or "champion" in text:
        return "The champion model could not be used; check it on the Compare & thresholds page, then start again."
    if "did not take a page" in text:
        return ("The store refuses the poller's pages, so nothing new is stored; each try reads again from the last "
                "stored cursor, so nothing is lost or doubled. The error after 'did not take a page' says why: fix "
                "that (e.g. disk full, or a model the store cannot take), then stop and start the poller.")
    if "storebusy" in text or "is held by" in text:
        return "Another process holds the workbench database; stop it (e.g. a CLI `poll`) and start again."
    return "The poller counted the error and retries with backoff; if it repeats, stop, check the feed, start again."


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def tier_minutes(store: Store, minutes: int = 15, now: datetime | None = None) -> pd.DataFrame:
    """Live (non-shadow) scores stored per minute (UTC) and tier over the last ``minutes`` minutes, zeros included:
    columns minute, tier, events, one row per minute and tier of TIERS (plus any other tier seen)."""
    minutes = max(1, int(minutes))
    end = (now or _utcnow()).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    return store.query(
        "WITH grid AS (SELECT unnest(generate_series(?::TIMESTAMP, ?::TIMESTAMP, INTERVAL 1 MINUTE)) AS minute), "
        "counts AS (SELECT date_trunc('minute', scored_at) AS minute, coalesce(tier, 'none') AS tier, "
        "count(*) AS events FROM scores WHERE scored_at >= ? AND NOT coalesce(shadow, false) GROUP BY ALL), "
        "tiers AS (SELECT unnest(?::VARCHAR[]) AS tier UNION SELECT DISTINCT tier FROM counts) "
        "SELECT g.minute, t.tier, coalesce(c.events, 0)::BIGINT AS events FROM grid g CROSS JOIN tiers t "
        "LEFT JOIN counts c USING (minute, tier) ORDER BY g.minute, t.tier",
        [start, end, start, list(TIERS)])


def live_totals(store: Store) -> dict[str, int]:
    """What the store holds: events, live scores per tier, quarantined records."""
    counts = store.query("SELECT (SELECT count(*) FROM events) AS events, "
                         "(SELECT count(*) FROM quarantine) AS quarantined")
    tiers = store.query("SELECT coalesce(tier, 'none') AS tier, count(*) AS n FROM scores "
                        "WHERE NOT coalesce(shadow, false) GROUP BY 1")
    by_tier = dict(zip(tiers["tier"].tolist(), tiers["n"].astype(int).tolist(), strict=True))
    return {"events": int(counts["events"].iloc[0]), "quarantined": int(counts["quarantined"].iloc[0]),
            **{tier: by_tier.get(tier, 0) for tier in TIERS}}


def quarantine_count(store: Store, source: str | None = None) -> int:
    """How many quarantined records there are (from ``source`` only, when given)."""
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    return int(store.query(f"SELECT count(*) AS n FROM quarantine {where}", params)["n"].iloc[0])


def quarantine_page(store: Store, page: int = 1, size: int = 25,
                    source: str | None = None) -> tuple[pd.DataFrame, int]:
    """One page (1-based, newest first) of quarantined records: id, received_at, source, reason and the payload's
    first EXCERPT_CHARS characters; and how many records match in all."""
    size = max(1, min(int(size), 500))
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    total = quarantine_count(store, source)
    offset = (max(1, int(page)) - 1) * size
    rows = store.query(
        "SELECT quarantine_id AS id, received_at, source, reason, "
        f"CASE WHEN length(payload) > ? THEN left(payload, ?) || '…' ELSE payload END AS payload "
        f"FROM quarantine {where} ORDER BY quarantine_id DESC LIMIT ? OFFSET ?",
        [EXCERPT_CHARS, EXCERPT_CHARS, *params, size, offset])
    return rows, total


def quarantine_reasons(store: Store, source: str | None = None) -> pd.DataFrame:
    """Quarantined records per offending field (the text before the first ':' of each reason), most first:
    columns field, records, example (one full reason)."""
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    return store.query(
        "SELECT trim(split_part(reason, ':', 1)) AS field, count(*) AS records, min(reason) AS example "
        f"FROM quarantine {where} GROUP BY 1 ORDER BY records DESC, field", params)


def quarantine_sources(store: Store) -> list[str]:
    """The sources with quarantined records, by name."""
    return store.query("SELECT DISTINCT source FROM quarantine ORDER BY source")["source"].tolist()
