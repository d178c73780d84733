"""The process's long-lived resources: the one store handle, scorers kept per model, the poller and the embedded feed.

DuckDB lets one process own the workbench file, so one ``Workbench`` per process owns it. The app's lifespan creates
it (``start``) and closes it (``shutdown``); pages, ``/api/*`` handlers and the poller thread all reach it through
``current()``. Outside the app (AppTest, the CLI, tests) ``current()`` creates one on first use. It is keyed by the
workbench paths, so a test that points ``FRAUDCORE_*`` somewhere else gets a fresh one.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from typing import Any

from fraudcore.config import Paths, get_paths
from fraudcore.jobs import Jobs
from fraudcore.registry import champion_id
from fraudcore.scoring import Scorer
from fraudcore.store import EventKeys, Store

__all__ = ["ENV_API_KEY", "Workbench", "current", "freeze_heap", "shutdown", "start"]

ENV_API_KEY = "FRAUDCORE_API_KEY"


class Workbench:
    """Owner of the store, the scorers, the poller controller and the embedded feed for one set of paths."""

    def __init__(self, paths: Paths, api_key: str | None = None) -> None:
        self.paths = paths
        self.api_key = api_key or None
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._scorers: dict[str, Scorer] = {}
        self._champion: tuple[float, str | None] | None = None
        self.services: dict[str, Any] = {}  # e.g. "poller", "feed": objects with a stop() method
        self.jobs = Jobs()  # background work (training, generation, batch scoring) the pages poll
        self._recent: dict[Any, Any] = {}  # feature config -> fraudcore.recent.RecentHistory

    # ---- models -------------------------------------------------------------------------------------------------

    def champion_id(self) -> str | None:
        """The champion's model id (re-read when champion.json changes), or None."""
        try:  # one stat per call: it runs for every scored request
            stamp = os.stat(Path(self.paths.artifacts) / "champion.json").st_mtime_ns
        except FileNotFoundError:
            stamp = -1
        with self._lock:
            if self._champion is None or self._champion[0] != stamp:
                self._champion = (stamp, champion_id(self.paths.artifacts))
            return self._champion[1]

    def scorer(self, model_id: str | None = None) -> Scorer:
        """The scorer of ``model_id`` (None: the champion), loaded once and kept; ModelArtifactError if none."""
        wanted = model_id or self.champion_id()
        with self._lock:
            if wanted is not None and wanted in self._scorers:
                return self._scorers[wanted]
            scorer = Scorer.load(wanted, self.paths.artifacts)
            self._scorers[scorer.model_id] = scorer
        freeze_heap()
        return scorer

    def forget_model(self, model_id: str) -> None:
        """Drop a kept scorer (after its tiers change on disk) so the next call reloads it."""
        with self._lock:
            self._scorers.pop(model_id, None)

    # ---- store --------------------------------------------------------------------------------------------------

    def store(self, scorer: Scorer | None = None) -> Store:
        """The process's store, opened on first use; with ``scorer``, its keys follow that model's dataset spec."""
        with self._lock:
            if self._store is None:
                self._store = Store.open(self.paths.db)
            if scorer is not None:
                keys = EventKeys.from_spec(scorer.spec, scorer.entities)
                if keys != self._store.keys:
                    self._store.keys = keys
            return self._store

    def history(self, scorer: Scorer) -> Any:
        """The in-memory recent history (fraudcore.recent.RecentHistory) shared by every ingest for this scorer's
        features; it reloads itself from the store when needed."""
        from fraudcore.recent import RecentHistory

        with self._lock:
            config = scorer.feature_config
            if config not in self._recent:
                self._recent[config] = RecentHistory(config, on_reload=freeze_heap)
            return self._recent[config]

    def writer(self) -> Any:
        """The store writer (fraudcore.writer.StoreWriter) that commits the live path's batches, started on first use
        as ``services["writer"]`` (stopped last on close, after whatever feeds it)."""
        from fraudcore.writer import StoreWriter

        with self._lock:
            writer = self.services.get("writer")
            if writer is None or not writer.running:
                writer = self.services["writer"] = StoreWriter(self.store()).start()
            return writer

    def store_is_open(self) -> bool:
        with self._lock:
            return self._store is not None

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the services (poller, feed, then the store writer, which commits what they handed it), then close
        the store. Idempotent."""
        with self._lock:  # the writer stays reachable while the poller finishes its page
            first = {name: self.services.pop(name) for name in list(self.services) if name != "writer"}
        for service in first.values():
            _stop(service)
        with self._lock:
            rest, self.services = dict(self.services), {}
        for service in rest.values():
            _stop(service)
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._scorers.clear()
        gc.unfreeze()  # what was frozen can be collected again (and is, at exit)


def freeze_heap() -> None:
    """Move every object alive now (libraries, the app, loaded models and histories) out of the cyclic garbage
    collector's reach (``gc.freeze``), so its full collections walk only what the live path created since: on this
    machine a full collection over the ~230k objects of a warm app took 150-250 ms, one stall of the feed and the
    API every few seconds. Called after a model or the recent history loads; frozen objects are still freed by
    reference counting, and ``Workbench.close`` unfreezes them."""
    gc.freeze()


def _stop(service: Any) -> None:
    stop = getattr(service, "stop", None)
    if callable(stop):
        stop()


_CURRENT: Workbench | None = None
_GUARD = threading.Lock()


def start(paths: Paths | None = None, api_key: str | None = None) -> Workbench:
    """Create this process's workbench (closing any previous one); the app's lifespan calls this."""
    global _CURRENT
    paths = (paths or get_paths()).ensure()
    with _GUARD:
        if _CURRENT is not None:
            _CURRENT.close()
        _CURRENT = Workbench(paths, api_key if api_key is not None else os.environ.get(ENV_API_KEY))
        return _CURRENT


def current() -> Workbench:
    """The process's workbench for the current paths (created on first use, replaced when the paths change)."""
    global _CURRENT
    paths = get_paths()
    with _GUARD:
        if _CURRENT is not None and _CURRENT.paths == paths:
            return _CURRENT
    return start(paths)


def shutdown() -> None:
    """Close the process's workbench (the app's lifespan calls this on exit)."""
    global _CURRENT
    with _GUARD:
        if _CURRENT is not None:
            _CURRENT.close()
            _CURRENT = None
