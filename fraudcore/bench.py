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
            progress: Callable[[float, str], None] | None = None, trials: int | None = None) -> dict:
    """Train the default XGBoost on the real datasets per the published protocols; figures beside their anchors
    (``trials``: exactly that many search trials instead of ``search_minutes``, for figures a busy machine cannot
    change)."""
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
            request = TrainRequest(model_id=name, split=plan, search_minutes=search_minutes, search_trials=trials,
                                   seed=0)
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
                "valid_average_precision": round(meta.metrics["valid"]["average_precision"], 4),
                "trials": len(meta.search["trials"]), "bags": meta.params.get("n_bags", 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
    return results


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---- the live path: POST /api/score latency and ingestion (bench_api.py, bench_live.py) ----------------------------

def bench_api(**options) -> dict:
    """POST /api/score latency against the app on loopback (``fraudcore.bench_api.bench_api``)."""
    from fraudcore.bench_api import bench_api as live_api

    return live_api(**options)


def bench_ingest(**options) -> dict:
    """Live ingestion throughput and paced latency (``fraudcore.bench_live.bench_ingest``)."""
    from fraudcore.bench_live import bench_ingest as live_ingest

    return live_ingest(**options)
