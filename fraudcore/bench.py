"""Benchmarks behind ``python -m fraudcore bench …``; results go to docs/benchmarks.md with the command and machine."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fraudcore.config import PROJECT_ROOT
from fraudcore.errors import FraudcoreError

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
HANDBOOK_RAW = SHARED_DATA / "handbook_raw.parquet"
ULB = SHARED_DATA / "ulb_creditcard.parquet"

# Published anchors (../shared/data/README.md) beside the workbench's own targets.
QUALITY_CASES = {
    "ulb_time_60_20_20": {"data": ULB, "anchor": "published XGBoost AP ~0.79 (±0.09, 75 test frauds)",
                          "target": {"average_precision": 0.82}, "split": {"kind": "time"}},
    "ulb_random_80_20": {"data": ULB, "anchor": "published AP 0.80-0.88 on stratified random splits",
                         "target": {"average_precision": 0.88}, "split": {"kind": "random"}},
    "handbook_protocol": {
        "data": HANDBOOK_RAW, "anchor": "handbook XGBoost AUC .862 / AP .639 / CP@100 .273; best AP .694 (ch. 5)",
        "target": {"average_precision": 0.70, "card_precision_at_k": 0.31},
        "split": {"kind": "dates", "train_start": "2018-07-25", "train_end": "2018-07-31",
                  "test_start": "2018-08-08", "test_end": "2018-08-14", "delay_days": 7}},
}


def machine() -> dict:
    """What the numbers were measured on."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}


def run(what: str, rows: int = 1_000_000, data: str | None = None, minutes: float = 1.0) -> dict:
    """Run one benchmark and return its figures with the machine description."""
    if what == "generate":
        from fraudcore.simulate import bench_generate

        return {"bench": what, **bench_generate(rows=rows), **machine()}
    if what == "features":
        from fraudcore.features_batch import bench_features

        path = Path(data) if data else HANDBOOK_RAW
        if not path.exists():
            raise FraudcoreError(f"{path} not found: pass --data PATH (a CSV/Parquet with an id, time and entities)")
        return {"bench": what, **bench_features(path), **machine()}
    if what == "score":
        from fraudcore.bench_score import bench_score

        return {"bench": what, **bench_score(rows=rows), **machine()}
    if what == "explain":
        from fraudcore.bench_explain import bench_explain

        return {"bench": what, **bench_explain(), **machine()}
    if what == "quality":
        return {"bench": what, "cases": quality(search_minutes=minutes), **machine()}
    if what == "api":
        from fraudcore.cli import progress_line

        return bench_api(progress=progress_line("bench api"))
    if what == "ingest":
        from fraudcore.cli import progress_line

        return bench_ingest(progress=progress_line("bench ingest"))
    raise FraudcoreError(f"unknown benchmark {what!r}; choose generate, features, score, explain, quality, api "
                         "or ingest")


def quality(search_minutes: float = 1.0, cases: list[str] | None = None,
            progress: Callable[[float, str], None] | None = None) -> dict:
    """Train the default XGBoost on the real datasets per the published protocols; figures beside their anchors."""
    from fraudcore.split import SplitPlan
    from fraudcore.training import TrainRequest, train

    results = {}
    with tempfile.TemporaryDirectory() as root:
        for name in cases or list(QUALITY_CASES):
            case = QUALITY_CASES[name]
            if not case["data"].exists():
                results[name] = {"skipped": f"{case['data']} is absent"}
                continue
            plan = SplitPlan(**case["split"])
            request = TrainRequest(model_id=name, split=plan, search_minutes=search_minutes, seed=0)
            started = time.perf_counter()
            meta = train(case["data"], request, progress=progress, root=Path(root))
            test = meta.metrics["test"]
            results[name] = {
                "anchor": case["anchor"], "split": meta.split["label"], "features": len(meta.features["names"]),
                "test_frauds": test["n_fraud"], "average_precision": round(test["average_precision"], 4),
                "roc_auc": round(test["roc_auc"], 4),
                "card_precision_at_k": _round(test["card_precision_at_k"]),
                "target": case["target"],
                "met": all((test[m] or 0) >= v for m, v in case["target"].items()),
                "seconds": round(time.perf_counter() - started, 1),
            }
    return results


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---- POST /api/score latency: the real app on loopback, a paced keep-alive client ------------------------------

def bench_api(seconds: float = 15.0, rate: float = 100.0, train_rows: int = 100_000, warmup: int = 50,
              progress: Callable[[float, str], None] | None = None) -> dict:
    """Single events at a paced ``rate`` per second for ``seconds`` against ``streamlit run app.py`` on 127.0.0.1
    (a default XGBoost trained on ``train_rows`` simulated events, those events stored as history first); client
    latency percentiles in ms, errors, then where the time goes in process."""
    import requests

    from fraudcore.registry import promote
    from fraudcore.simulate import generate
    from fraudcore.store import Store
    from fraudcore.training import TrainRequest, train

    report = progress or (lambda fraction, message: None)
    n_send = warmup + int(seconds * rate)
    with tempfile.TemporaryDirectory(prefix="fraudcore-bench-api-") as folder:
        tmp = Path(folder)
        env = {**os.environ, "FRAUDCORE_DATA": str(tmp / "data"), "FRAUDCORE_ARTIFACTS": str(tmp / "artifacts"),
               "FRAUDCORE_DB": str(tmp / "data" / "workbench.duckdb")}
        env.pop("FRAUDCORE_API_KEY", None)
        report(0.0, "generating events")
        setup = time.perf_counter()
        frame = generate(rows=train_rows + n_send)
        history, live = frame.iloc[:train_rows], frame.iloc[train_rows:]
        history.to_parquet(tmp / "train.parquet", index=False)
        report(0.05, "training the default model")
        meta = train(tmp / "train.parquet", TrainRequest(model_id="bench-api", search_minutes=0),
                     root=tmp / "artifacts")
        promote(meta.model_id, root=tmp / "artifacts", who="bench", why="api benchmark")
        scorer_keys = _store_keys(meta.model_id, tmp / "artifacts")
        with Store.open(tmp / "data" / "workbench.duckdb", keys=scorer_keys) as store:
            store.write_batch(history, None, source="bench")  # the events the live feed would have stored
        events = _plain_events(live.drop(columns=[c for c in ("is_fraud", "fraud_scenario") if c in live.columns]))
        setup_s = round(time.perf_counter() - setup, 1)
        report(0.3, "starting the app")
        with _app(env) as base, requests.Session() as http:
            for event in events[:warmup]:  # first calls load the model and the recent history: not timed
                http.post(base + "/api/score", json=event, timeout=60)
            latencies, statuses = [], []
            started = time.perf_counter()
            stop_at = started + seconds  # a slow server gets fewer requests, not a longer run
            for i, event in enumerate(events[warmup:]):
                due = started + i / rate
                if due > stop_at or time.perf_counter() > stop_at:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                tick = time.perf_counter()
                try:
                    status = http.post(base + "/api/score", json=event, timeout=10).status_code
                except requests.RequestException:
                    status = 0
                latencies.append((time.perf_counter() - tick) * 1000)
                statuses.append(status)
                report(0.3 + 0.6 * min((time.perf_counter() - started) / seconds, 1.0), f"{i + 1} requests")
            elapsed = time.perf_counter() - started
            floor = []  # the HTTP stack alone: GET /api/health over the same connection
            for _ in range(100):
                tick = time.perf_counter()
                http.get(base + "/api/health", timeout=10)
                floor.append((time.perf_counter() - tick) * 1000)
        measured, codes = latencies, statuses
        result = {"server": "streamlit run app.py (st.App, uvicorn) on 127.0.0.1", "client": "requests.Session",
                  "model": meta.model_id, "history_events": train_rows, "rate_asked": rate,
                  "rate_sent": round(len(statuses) / elapsed, 1), "requests": len(measured), "warmup": warmup,
                  "errors": sum(code != 200 for code in codes), "latency_ms": _percentiles(measured),
                  "target_ms": {"p50": 3.0, "p99": 10.0}, "health_latency_ms": _percentiles(floor),
                  "setup_seconds": setup_s}
        result["met"] = result["errors"] == 0 and result["latency_ms"]["p50"] <= 3.0 and \
            result["latency_ms"]["p99"] <= 10.0
        result["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine inflates every figure
        report(0.9, "profiling in process")
        result["in_process_ms"] = _profile_api(tmp, meta.model_id, events[:200])
        report(1.0, "done")
    return {"bench": "api", **result, **machine()}


def _store_keys(model_id: str, root: Path):
    from fraudcore.scoring import Scorer
    from fraudcore.store import EventKeys

    scorer = Scorer.load(model_id, root)
    return EventKeys.from_spec(scorer.spec, scorer.entities)


def _plain_events(frame) -> list[dict]:
    """Rows as the JSON a client sends (ISO times, null for missing)."""
    import json

    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def _percentiles(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {}
    p = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p[0]), 2), "p95": round(float(p[1]), 2), "p99": round(float(p[2]), 2),
            "max": round(max(values), 2)}


class _app:
    """``streamlit run app.py`` on a free loopback port with ``env``; the base URL while inside the block."""

    def __init__(self, env: dict, timeout_s: float = 90) -> None:
        self.env, self.timeout_s, self.proc = env, timeout_s, None

    def __enter__(self) -> str:
        import socket
        import subprocess
        import sys
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                                     cwd=PROJECT_ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + self.timeout_s
        while True:
            if self.proc.poll() is not None:
                raise FraudcoreError(f"the app exited early (code {self.proc.returncode}); run it by hand to see why")
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2):
                    return base
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise FraudcoreError(f"the app did not answer /api/health within {self.timeout_s} s") from None
                time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _profile_api(tmp: Path, model_id: str, events: list[dict], top: int = 12) -> dict:
    """What POST /api/score does for one event (``api.score_and_store``), in process on the benchmark's store:
    the median total ms per call, then the ``top`` fraudcore functions by cumulative ms per call (cProfile)."""
    import cProfile
    import pstats
    import statistics

    from fraudcore.api import score_and_store
    from fraudcore.config import Paths
    from fraudcore.runtime import Workbench

    workbench = Workbench(Paths(tmp / "data", tmp / "artifacts", tmp / "data" / "workbench.duckdb"))
    try:
        id_field = workbench.scorer(model_id).spec.event_id
        fresh = [{**e, id_field: 10**12 + e[id_field]} for e in events]  # not stored yet, same kind of id
        half = len(fresh) // 2
        totals = []
        for event in fresh[:half]:
            tick = time.perf_counter()
            score_and_store(workbench, [event])
            totals.append((time.perf_counter() - tick) * 1000)
        profiler = cProfile.Profile()
        for event in fresh[half:]:
            profiler.runcall(score_and_store, workbench, [event])
    finally:
        workbench.close()
    calls = max(len(fresh) - half, 1)
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    ours = sorted(((v[3], f"{Path(k[0]).stem}.{k[2]}") for k, v in stats.items() if "/fraudcore/" in k[0]),
                  reverse=True)[:top]
    return {"total_median": round(statistics.median(totals), 3) if totals else None,
            "cumulative_per_call": {name: round(ct * 1000 / calls, 3) for ct, name in ours}}


# ---- live ingestion: local feed -> poller -> features, scores, reasons for alerts, DuckDB ---------------------------

def bench_ingest(events: int = 100_000, train_rows: int = 100_000, batch: int = 1000, rate: float = 500.0,
                 paced_seconds: float = 20.0, progress: Callable[[float, str], None] | None = None) -> dict:
    """Sustained ingestion in one process: a default XGBoost trained on ``train_rows`` simulated events (stored as
    history first); ``events`` pulled from the local feed by the poller as fast as it goes (features, scores, exact
    reasons for medium/high, one DuckDB transaction per page); then the feed paced at ``rate`` events/s for
    ``paced_seconds``: latency per event from when the feed offers it to when its transaction has committed."""
    import threading

    import numpy as np

    from fraudcore import runtime
    from fraudcore.config import Paths
    from fraudcore.feed import FeedOptions, parse_cursor, start_feed
    from fraudcore.poller import Poller
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
            report(0.3, f"ingesting {events:,} events as fast as possible")
            feed = start_feed(FeedOptions(total=events), world=world, origin=cursor_after(history))
            marks: list[float] = []
            poller = Poller(workbench, feed.url, batch=batch)
            started = time.perf_counter()
            fast = poller.run(threading.Event(), max_events=events,
                              progress=lambda s: marks.append(time.perf_counter()))
            elapsed = (marks[-1] if marks else time.perf_counter()) - started
            feed.stop()
            report(0.7, f"paced at {rate:g} events/s for {paced_seconds:g} s")
            n_paced = int(rate * paced_seconds)
            paced_feed = start_feed(FeedOptions(rate=rate, total=n_paced), world=world,
                                    origin=parse_cursor(fast["cursor"]))
            commits: list[tuple[float, int]] = []
            paced = Poller(workbench, paced_feed.url, batch=batch)
            paced.run(threading.Event(), max_events=n_paced,
                      progress=lambda s: commits.append((time.monotonic(), s["events"])))
            offered_from = paced_feed.source.started
            paced_feed.stop()
        finally:
            runtime.shutdown()
    latencies, done = [], 0
    for moment, upto in commits:  # events [done, upto) committed at ``moment``; event k was offered at (k + 1) / rate
        latencies += [(moment - offered_from - (k + 1) / rate) * 1000 for k in range(done, upto)]
        done = upto
    alerts = sum(n for tier, n in fast["by_tier"].items() if tier in ("medium", "high"))
    throughput = fast["events"] / elapsed if elapsed > 0 else 0.0
    result = {
        "model": f"default XGBoost trained in the bench on {train_rows:,} simulated events (search 0 min), "
                 f"{len(scorer.feature_names)} inputs", "history_events": train_rows, "warm_seconds": round(warm_s, 2),
        "events": fast["events"], "batch": batch, "seconds": round(elapsed, 2),
        "events_per_s": round(throughput), "alerts_explained_share": round(alerts / max(fast["events"], 1), 4),
        "errors": fast["errors"] + paced.counts["errors"], "paced_rate": rate, "paced_events": len(latencies),
        "latency_ms": _percentiles([max(v, 0.0) for v in latencies]),
        "target": {"events_per_s": 10_000, "latency_p99_ms": 50.0},
        "load_average_1m": round(os.getloadavg()[0], 2)}
    result["met"] = {"throughput": throughput >= 10_000,
                     "latency": bool(latencies) and float(np.percentile(latencies, 99)) <= 50.0}
    report(1.0, "done")
    return {"bench": "ingest", **result, **machine()}
