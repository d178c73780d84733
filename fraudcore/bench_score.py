"""``python -m fraudcore bench score``: file-to-file batch scoring of generated events (per-stage wall and CPU
seconds, the load average around each run) and single-event latency."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fraudcore.batch import score_file
from fraudcore.scoring import Scorer

__all__ = ["bench_score"]


def _load() -> float:
    """The 1-minute load average (other work on the machine inflates every figure)."""
    return round(os.getloadavg()[0], 2)


def bench_score(rows: int = 1_000_000, model_id: str | None = None, root: str | Path | None = None,
                events: int = 500) -> dict[str, Any]:
    """File-to-file scoring of ``rows`` generated events (score only, then with reasons for medium/high rows) and
    single-event latency; without a model id or champion, a default XGBoost is trained on the first 100k rows."""
    from fraudcore.registry import champion_id
    from fraudcore.simulate import generate
    from fraudcore.training import TrainRequest, train

    with tempfile.TemporaryDirectory(prefix="fraudcore-bench-") as folder:
        tmp = Path(folder)
        tick = time.perf_counter()
        frame = generate(rows=rows)
        path = tmp / "events.parquet"
        frame.to_parquet(path, index=False)
        result: dict[str, Any] = {"rows": rows, "generate_seconds": round(time.perf_counter() - tick, 2)}
        if model_id is None and champion_id(root) is None:
            root, model_id = tmp / "artifacts", "bench-default"
            frame.iloc[:100_000].to_parquet(tmp / "train.parquet", index=False)
            train(tmp / "train.parquet", TrainRequest(model_id=model_id, search_minutes=0), root=root)
        for name, tiers in (("score_only", ()), ("with_reasons", ("high", "medium"))):
            load_before = _load()
            run = score_file(path, tmp / f"{name}.parquet", model_id, explain_tiers=tiers, root=root)
            result[name] = {key: run[key] for key in ("model_id", "rows_scored", "rows_explained", "rows_per_second",
                                                      "features_path", "seconds", "cpu_seconds", "tiers")}
            result[name]["load_average_1m"] = [load_before, _load()]
            after = run["seconds"]["total"] - sum(run["seconds"].get(s, 0.0) for s in ("load", "validate", "features"))
            result[name]["rows_per_second_after_features"] = round(run["rows_scored"] / max(after, 1e-9))
        result["single_event"] = _bench_events(Scorer.load(model_id, root), frame, events)
    return result


def _bench_events(scorer: Scorer, frame: Any, n: int) -> dict[str, Any]:
    """Median and p95 milliseconds per step of ``score_event`` (the steps timed apart, each building its own
    matrix) and of the whole call, over ``n`` events from the later half of ``frame``."""
    history = scorer.frame_history(frame)
    label = [c for c in (scorer.spec.label, *scorer.spec.leakage) if c in frame.columns]
    raw = frame.drop(columns=label)
    picks = np.linspace(len(frame) // 2, len(frame) - 1, num=min(n, len(frame) // 2), dtype=np.int64)
    steps: dict[str, list[float]] = {"validate": [], "features": [], "score": [], "reasons": [], "total": [],
                                     "score_event": []}
    sizes = []
    for i in picks:
        event = raw.iloc[int(i)].to_dict()
        tick = start = time.perf_counter()
        valid = scorer.validate_event(event)
        tick = _lap(steps, "validate", tick)
        record = {**valid, **scorer.features(valid, history)}
        tick = _lap(steps, "features", tick)
        scorer.score_records([record])
        tick = _lap(steps, "score", tick)
        scorer.reasons([record], 3)
        _lap(steps, "reasons", tick)
        steps["total"].append(time.perf_counter() - start)
        if scorer.feature_config is not None:
            t0 = valid[scorer.feature_config.event_time]
            sizes.append(len(history.history({e: valid.get(e) for e in scorer.entities},
                                             t0 - scorer.lookback, t0)))
    for i in picks:  # the whole call as callers make it (one matrix for score and reasons), in a pass of its own
        event = raw.iloc[int(i)].to_dict()
        tick = time.perf_counter()
        scorer.score_event(event, history)
        _lap(steps, "score_event", tick)
    out = {f"{step}_ms": {"median": round(1e3 * float(np.median(v)), 3),
                          "p95": round(1e3 * float(np.quantile(v, 0.95)), 3)} for step, v in steps.items()}
    return {"events": len(picks), "history_rows_median": float(np.median(sizes)) if sizes else 0.0, **out}


def _lap(steps: dict[str, list[float]], key: str, tick: float) -> float:
    now = time.perf_counter()
    steps[key].append(now - tick)
    return now
