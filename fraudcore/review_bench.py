"""Benchmark of the review queue at scale: ``bench_queue(n)`` stores n cases in a temporary store, decides some,
and times the queue pages, filters, counts, actions, the drill-down, similar cases and the labels export."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.review import claim, decide, release
from fraudcore.review_detail import case_detail, entity_history
from fraudcore.review_export import export_labels
from fraudcore.review_queue import UNASSIGNED, QueueFilter, queue, queue_count
from fraudcore.review_similar import similar_cases
from fraudcore.store import EventKeys, Store

__all__ = ["bench_queue"]

FEATURES = 16


def bench_queue(n: int = 100_000, decided: int = 2000, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    """Median milliseconds of each review operation over ``n`` stored cases (``decided`` of them decided)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder, \
            Store.open(Path(folder) / "bench.duckdb", keys=EventKeys(entities=("customer_id", "terminal_id"))) as st:
        started = time.perf_counter()
        for lo in range(0, n, 25_000):
            st.write_batch(*_batch(rng, lo, min(n, lo + 25_000)))
        write_s = time.perf_counter() - started
        ids = st.query("SELECT case_id FROM cases ORDER BY case_id")["case_id"].to_numpy()
        picked = rng.choice(ids, size=min(decided, len(ids)), replace=False)
        started = time.perf_counter()
        for i, case_id in enumerate(picked):
            decide(st, int(case_id), f"analyst{i % 7}", "confirmed_fraud" if i % 4 == 0 else "legitimate", "bench")
        decide_ms = (time.perf_counter() - started) * 1000 / max(len(picked), 1)
        open_case = int(st.query("SELECT min(case_id) AS c FROM cases WHERE status = 'open'")["c"].iloc[0])
        event = st.query("SELECT event_id FROM cases WHERE case_id = ?", [open_case])["event_id"].iloc[0]
        customer = int(event.removeprefix("e")) % max(n // 20, 1)
        day = datetime(2024, 1, 1) + timedelta(days=3)

        def claim_release() -> None:
            claim(st, open_case, "bench")
            release(st, open_case, "bench")

        timings = {
            "queue_first_page_ms": lambda: queue(st),
            "queue_deep_page_ms": lambda: queue(st, offset=n // 2),
            "queue_high_unassigned_ms": lambda: queue(st, QueueFilter(tiers=["high"], assignee=UNASSIGNED)),
            "queue_by_customer_ms": lambda: queue(st, QueueFilter(entities={"customer_id": customer})),
            "queue_one_day_ms": lambda: queue(st, QueueFilter(since=day, until=day + timedelta(days=1))),
            "queue_closed_by_analyst_ms": lambda: queue(st, QueueFilter(statuses=["closed"], assignee="analyst3")),
            "queue_count_ms": lambda: queue_count(st),
            "claim_release_pair_ms": claim_release,
            "entity_history_ms": lambda: entity_history(st, event),
            "similar_cases_ms": lambda: similar_cases(st, open_case, k=10, pool=5000),
            "case_detail_ms": lambda: case_detail(st, open_case),
        }
        result = {name: _median_ms(fn, repeats) for name, fn in timings.items()}
        out = Path(folder) / "labels.parquet"
        result["export_labels_ms"] = _median_ms(lambda: export_labels(st, out), 1)
        return {"cases": int(queue_count(st, QueueFilter(statuses=()))), "decided": len(picked),
                "write_s": round(write_s, 2), "decide_ms_each": round(decide_ms, 2), **result}


def _batch(rng: np.random.Generator, lo: int, hi: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events lo..hi over a week, every one medium or high (so each opens a case), with model inputs."""
    count, ids = hi - lo, np.arange(lo, hi)
    events = pd.DataFrame({
        "event_id": [f"e{i}" for i in ids],
        "event_time": datetime(2024, 1, 1) + pd.to_timedelta(ids * (7 * 86400 / max(hi, 1)), unit="s"),
        "amount": np.round(rng.gamma(2.0, 40.0, count), 2), "customer_id": ids % max(hi // 20, 1),
        "terminal_id": [f"T{i % 2000}" for i in ids], "channel": rng.choice(["web", "pos"], count)})
    values = rng.normal(size=(count, FEATURES)).round(4)
    names = [f"f{j}" for j in range(FEATURES)]
    features = [{**dict(zip(names, row.tolist(), strict=True)), "channel": ch}
                for row, ch in zip(values, events["channel"], strict=True)]
    score = rng.uniform(0.3, 1.0, count)
    scores = pd.DataFrame({"event_id": events["event_id"], "model_id": "bench", "score": score,
                           "tier": np.where(score > 0.8, "high", "medium"),
                           "reasons": [[{"feature": "f0", "contribution": 0.5, "text": "f0 is high"}]] * count,
                           "features": features})
    return events, scores


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)
