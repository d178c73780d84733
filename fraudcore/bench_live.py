"""``python -m fraudcore bench ingest``: ingestion from the local feed (sustained throughput, then end-to-end latency
at a paced rate), with CPU per 1000 events and what the store writer did (groups, checkpoints, commit durations).
``bench api`` lives in fraudcore.bench_api."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fraudcore.bench import machine
from fraudcore.bench_api import percentiles
from fraudcore.config import PROJECT_ROOT
from fraudcore.errors import FraudcoreError

__all__ = ["bench_ingest"]


# ---- live ingestion: local feed -> poller -> features, scores, reasons for alerts, DuckDB ---------------------------

def bench_ingest(events: int = 100_000, train_rows: int = 100_000, batch: int = 1000, rate: float = 500.0,
                 paced_seconds: float = 20.0, progress: Callable[[float, str], None] | None = None) -> dict:
    """Sustained ingestion: a default XGBoost trained on ``train_rows`` simulated events (stored as history first);
    ``events`` pulled from the local feed by the poller as fast as it goes (features, scores, exact reasons for
    medium/high, pages committed by the store writer); then, once the writer has checkpointed while idle, the feed
    paced at ``rate`` events/s for ``paced_seconds``: latency per event from when the feed offers it to when its
    transaction has committed. Run twice on the same store: with the feed served from a thread of the workbench's
    own process (the app's embedded demo feed) and with the feed as its own process (``python -m fraudcore feed
    serve``, as a real source is). CPU is the workbench process's (poller, writer, DuckDB; plus the feed in the
    first run)."""
    from fraudcore import runtime
    from fraudcore.config import Paths
    from fraudcore.registry import promote
    from fraudcore.simulate import cursor_after, default_world, generate
    from fraudcore.training import TrainRequest, train

    report = progress or (lambda fraction, message: None)
    with tempfile.TemporaryDirectory(prefix="fraudcore-bench-ingest-") as folder:
        tmp, world = Path(folder), default_world()
        report(0.0, "generating and training")
        history = generate(rows=train_rows, world=world)
        history.to_parquet(tmp / "train.parquet", index=False)
        meta = train(tmp / "train.parquet", TrainRequest(model_id="bench-ingest", search_minutes=0),
                     root=tmp / "artifacts")
        promote(meta.model_id, root=tmp / "artifacts", who="bench", why="ingest benchmark")
        workbench = runtime.start(Paths(tmp / "data", tmp / "artifacts", tmp / "data" / "workbench.duckdb"))
        try:
            scorer = workbench.scorer()
            store = workbench.store(scorer)
            for i in range(0, train_rows, 50_000):  # the history the live events continue
                store.write_batch(history.iloc[i:i + 50_000].drop(columns=["fraud_scenario"]), source="bench")
            warm = time.perf_counter()
            workbench.history(scorer).sync(store)
            warm_s = time.perf_counter() - warm
            origin, runs = cursor_after(history), {}
            for k, external in enumerate((False, True)):
                name = "feed_process" if external else "feed_in_process"
                runs[name], origin = _ingest_run(workbench, world, origin, events, batch, rate, paced_seconds,
                                                 external, lambda f, m, k=k: report(0.3 + 0.35 * (k + f), m))
        finally:
            runtime.shutdown()
    result = {
        "model": f"default XGBoost trained in the bench on {train_rows:,} simulated events (search 0 min), "
                 f"{len(scorer.feature_names)} inputs", "history_events": train_rows, "warm_seconds": round(warm_s, 2),
        **runs, "target": {"events_per_s": 10_000, "latency_p99_ms": 50.0}}
    report(1.0, "done")
    return {"bench": "ingest", **result, **machine()}


def _ingest_run(workbench, world, origin, events: int, batch: int, rate: float, paced_seconds: float,
                external: bool, report: Callable[[float, str], None]) -> tuple[dict, object]:
    """One fast run of ``events`` and one paced run from ``origin``; the figures and the cursor after them."""
    import threading

    from fraudcore.feed import FeedOptions, parse_cursor
    from fraudcore.poller import Poller

    writer = workbench.writer()
    report(0.0, f"ingesting {events:,} events as fast as possible ({'feed process' if external else 'feed thread'})")
    with _feed(FeedOptions(total=events), world, origin, external) as (url, _):
        load_before = os.getloadavg()[0]
        before = writer.status()
        started, cpu = time.perf_counter(), time.process_time()
        fast = Poller(workbench, url, batch=batch).run(threading.Event(), max_events=events)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu  # every page committed
        fast_writer = writer.status()
    report(0.4, "waiting for the writer's idle checkpoint")
    idle_checkpoint = _idle_checkpoint(writer)
    report(0.5, f"paced at {rate:g} events/s for {paced_seconds:g} s")
    n_paced = int(rate * paced_seconds)
    commits: list[tuple[float, int]] = []
    with _feed(FeedOptions(rate=rate, total=n_paced), world, parse_cursor(fast["cursor"]), external) as (url, clock):
        paced = Poller(workbench, url, batch=batch,
                       on_commit=lambda s: commits.append((time.monotonic(), s["events"])))
        paced_status = paced.run(threading.Event(), max_events=n_paced)
        offered_from = clock()
    paced_writer = writer.status()
    latencies, done = [], 0
    for moment, upto in commits:  # events [done, upto) committed at ``moment``; event k was offered at (k + 1) / rate
        latencies += [(moment - offered_from - (k + 1) / rate) * 1000 for k in range(done, upto)]
        done = max(done, upto)
    alerts = sum(n for tier, n in fast["by_tier"].items() if tier in ("medium", "high"))
    throughput = fast["events"] / elapsed if elapsed > 0 else 0.0
    latency = percentiles([max(v, 0.0) for v in latencies])
    counted = ("groups", "checkpoints")
    out = {
        "feed": "its own process (python -m fraudcore feed serve)" if external else "a thread of this process",
        "events": fast["events"], "batch": batch, "seconds": round(elapsed, 2),
        "events_per_s": round(throughput), "cpu_ms_per_1000_events": round(cpu / max(fast["events"], 1) * 1e6, 1),
        "alerts_explained_share": round(alerts / max(fast["events"], 1), 4),
        "writer_fast": {k: fast_writer[k] - before[k] if k in counted else fast_writer[k]
                        for k in ("groups", "largest_group", "checkpoints", "wal_bytes")},
        "idle_checkpoint_ms": idle_checkpoint, "errors": fast["errors"] + paced_status["errors"],
        "paced_rate": rate, "paced_events": len(latencies), "latency_ms": latency,
        "writer_paced": {**{k: paced_writer[k] - fast_writer[k] if k in counted else paced_writer[k]
                            for k in ("groups", "largest_group", "checkpoints", "wal_bytes")},
                         "commit_ms": writer.commit_times(paced_writer["groups"] - fast_writer["groups"])},
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}}
    out["met"] = {"throughput": throughput >= 10_000, "latency": latency.get("p99", 1e9) <= 50.0}
    return out, parse_cursor(paced_status["cursor"])


class _feed:
    """The feed from ``origin`` of ``world`` for the block: a thread of this process, or (``external``) its own
    process on a free loopback port; yields (url, clock) where clock() is the time.monotonic() its rate started."""

    def __init__(self, options, world, origin, external: bool) -> None:
        self.options, self.world, self.origin, self.external = options, world, origin, external
        self.handle = self.proc = None

    def __enter__(self):
        from fraudcore.feed import start_feed

        if not self.external:
            self.handle = start_feed(self.options, world=self.world, origin=self.origin)
            return self.handle.url, lambda: self.handle.source.started
        return self._spawn()

    def _spawn(self):
        import json
        import subprocess
        import sys
        import urllib.request

        from fraudcore.simulate import default_world

        if self.world != default_world(self.world.seed):
            raise FraudcoreError("an external feed serves a default world only (python -m fraudcore feed serve)")
        command = [sys.executable, "-m", "fraudcore", "feed", "serve", "--port", "0", "--seed", str(self.world.seed),
                   "--origin", f"{self.origin.day}:{self.origin.index}", "--total", str(self.options.total)]
        if self.options.rate:
            command += ["--rate", str(self.options.rate)]
        self.proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        url = json.loads(self.proc.stdout.readline())["url"]

        def clock() -> float:
            with urllib.request.urlopen(url + "/stats", timeout=10) as answer:
                return float(json.loads(answer.read())["rate_clock"])

        return url, clock

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.handle is not None:
            self.handle.stop()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _idle_checkpoint(writer, timeout_s: float = 60.0) -> float | None:
    """Wait until the writer has checkpointed while idle (as it does between bursts); how long that took, in ms."""
    seen = writer.status()["checkpoints"]
    deadline = time.monotonic() + timeout_s
    while writer.status()["checkpoints"] == seen and time.monotonic() < deadline:
        time.sleep(0.1)
    return writer.status()["last_checkpoint_ms"]
