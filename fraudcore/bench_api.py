"""``python -m fraudcore bench api``: POST /api/score latency against the real app on loopback (``streamlit run
app.py``), single events paced at 100 requests/s from two keep-alive clients taking turns request by request
(requests, and the standard library's http.client, whose own overhead is ~1 ms less per call here), with the
handler's own time from the ``Server-Timing`` header, the health route as the HTTP stack's floor, and where the time
goes in process."""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fraudcore.bench import machine
from fraudcore.config import PROJECT_ROOT
from fraudcore.errors import FraudcoreError

__all__ = ["bench_api", "percentiles"]

TARGET_MS = {"p50": 3.0, "p99": 10.0}


def bench_api(seconds: float = 30.0, rate: float = 100.0, train_rows: int = 100_000, warmup: int = 50,
              progress: Callable[[float, str], None] | None = None) -> dict:
    """Single events at a paced ``rate`` per second for ``seconds`` (the two clients alternating) against ``streamlit
    run app.py`` on 127.0.0.1 (a default XGBoost trained on ``train_rows`` simulated events, those events stored as
    history first); client latency percentiles in ms per client, the handler's own time, errors, then where the time
    goes in process."""
    import requests

    from fraudcore.registry import promote
    from fraudcore.simulate import generate
    from fraudcore.store import Store
    from fraudcore.training import TrainRequest, train

    report = progress or (lambda fraction, message: None)
    n_requests = int(seconds * rate)  # in all, the two clients taking turns
    with tempfile.TemporaryDirectory(prefix="fraudcore-bench-api-") as folder:
        tmp = Path(folder)
        env = {**os.environ, "FRAUDCORE_DATA": str(tmp / "data"), "FRAUDCORE_ARTIFACTS": str(tmp / "artifacts"),
               "FRAUDCORE_DB": str(tmp / "data" / "workbench.duckdb")}
        env.pop("FRAUDCORE_API_KEY", None)
        report(0.0, "generating events")
        setup = time.perf_counter()
        frame = generate(rows=train_rows + warmup + n_requests)
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
        with _app(env) as base, requests.Session() as session:
            for event in events[:warmup]:  # first calls load the model and the recent history: not timed
                session.post(base + "/api/score", json=event, timeout=60)
            port = int(base.rsplit(":", 1)[1])
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            clients = {"requests.Session": _requests_client(session, base),
                       "http.client": _stdlib_client(connection)}
            runs = _paced(clients, events[warmup:], rate, seconds, lambda f, m: report(0.3 + 0.6 * f, m))
            connection.close()
        result = {"server": "streamlit run app.py (st.App, uvicorn) on 127.0.0.1", "model": meta.model_id,
                  "history_events": train_rows, "rate_asked": rate, "warmup": warmup, "target_ms": TARGET_MS,
                  "api_write": env.get("FRAUDCORE_API_WRITE", "async"), "setup_seconds": setup_s, "clients": runs}
        result["met"] = all(run["met"] for run in runs.values())
        result["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine inflates every figure
        report(0.9, "profiling in process")
        result["in_process_ms"] = _profile_api(tmp, meta.model_id, events[:200])
        report(1.0, "done")
    return {"bench": "api", **result, **machine()}


Send = Callable[[str, str, dict | None], tuple[int, float | None]]  # (method, path, event) -> (status, handler ms)


def _requests_client(session, base: str) -> Send:
    import requests

    def send(method: str, path: str, event: dict | None) -> tuple[int, float | None]:
        try:
            answer = session.request(method, base + path, json=event, timeout=10)
        except requests.RequestException:
            return 0, None
        return answer.status_code, _server_ms(answer.headers.get("server-timing", ""))

    return send


def _stdlib_client(connection: http.client.HTTPConnection) -> Send:
    def send(method: str, path: str, event: dict | None) -> tuple[int, float | None]:
        body = None if event is None else json.dumps(event)
        headers = {} if event is None else {"Content-Type": "application/json"}
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnects on the next request
            return 0, None
        return answer.status, _server_ms(answer.getheader("server-timing") or "")

    return send


def _paced(clients: dict[str, Send], events: list[dict], rate: float, seconds: float,
           report: Callable[[float, str], None]) -> dict[str, dict]:
    """``events`` POSTed one per request at ``rate`` per second for at most ``seconds`` (a slow server gets fewer
    requests, not a longer run), the clients taking turns request by request (so each meets the same server); then
    GET /api/health 100 times per client over its connection (the HTTP stack's floor). Figures per client."""
    names = list(clients)
    latencies: dict[str, list[float]] = {n: [] for n in names}
    statuses: dict[str, list[int]] = {n: [] for n in names}
    handler: dict[str, list[float]] = {n: [] for n in names}
    started = time.perf_counter()
    stop_at = started + seconds
    for i, event in enumerate(events):
        due = started + i / rate
        if due > stop_at or time.perf_counter() > stop_at:
            break
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        name = names[i % len(names)]
        tick = time.perf_counter()
        status, server_ms = clients[name]("POST", "/api/score", event)
        latencies[name].append((time.perf_counter() - tick) * 1000)
        statuses[name].append(status)
        if server_ms is not None:
            handler[name].append(server_ms)
        report(min((time.perf_counter() - started) / seconds, 1.0), f"{i + 1} requests")
    elapsed = time.perf_counter() - started
    out = {}
    for name in names:
        floor = []
        for _ in range(100):
            tick = time.perf_counter()
            clients[name]("GET", "/api/health", None)
            floor.append((time.perf_counter() - tick) * 1000)
        latency, errors = percentiles(latencies[name]), sum(code != 200 for code in statuses[name])
        out[name] = {"rate_sent": round(len(statuses[name]) / elapsed, 1), "requests": len(latencies[name]),
                     "errors": errors, "latency_ms": latency, "handler_ms": percentiles(handler[name]),
                     "health_latency_ms": percentiles(floor),
                     "met": errors == 0 and latency.get("p50", 1e9) <= TARGET_MS["p50"]
                     and latency.get("p99", 1e9) <= TARGET_MS["p99"]}
    return out


def _server_ms(header: str) -> float | None:
    """The duration in a ``Server-Timing: name;dur=MS`` header (None when absent)."""
    for part in header.split(";"):
        if part.strip().startswith("dur="):
            return float(part.strip()[4:])
    return None


def _store_keys(model_id: str, root: Path):
    from fraudcore.scoring import Scorer
    from fraudcore.store import EventKeys

    scorer = Scorer.load(model_id, root)
    return EventKeys.from_spec(scorer.spec, scorer.entities)


def _plain_events(frame) -> list[dict]:
    """Rows as the JSON a client sends (ISO times, null for missing)."""
    import json

    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def percentiles(values: list[float]) -> dict:
    """Median, 95th and 99th percentiles and the maximum of ``values``, rounded to 0.01 (empty: {})."""
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


