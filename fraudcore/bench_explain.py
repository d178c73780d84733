"""``python -m fraudcore bench explain``: exact TreeSHAP from the tables against the booster's own pred_contribs.

Trains the default XGBoost (``search_minutes=0``) on the first 100k simulated events, computes the model inputs of
later events with the online features, then times one-row and batch explanations both ways on the same matrix and
reports how far apart the values are (they are the same algorithm: the difference is float32 rounding).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

__all__ = ["bench_explain"]


def bench_explain(train_rows: int = 100_000, events: int = 5_000, single: int = 1_000) -> dict[str, Any]:
    """Timings and agreement of ``TreeTables`` and ``pred_contribs`` for the default model (see the module)."""
    from fraudcore.scoring import Scorer
    from fraudcore.simulate import generate
    from fraudcore.training import TrainRequest, train
    from fraudcore.treeshap import TreeTables

    frame = generate(rows=train_rows + events)
    with tempfile.TemporaryDirectory(prefix="fraudcore-bench-") as folder:
        tmp = Path(folder)
        frame.iloc[:train_rows].to_parquet(tmp / "train.parquet", index=False)
        train(tmp / "train.parquet", TrainRequest(model_id="bench-explain", search_minutes=0), root=tmp / "a")
        scorer = Scorer.load("bench-explain", tmp / "a")
    model, history = scorer.model, scorer.frame_history(frame)
    raw = frame.iloc[train_rows:].drop(columns=[c for c in ("is_fraud", "fraud_scenario") if c in frame.columns])
    records = []
    for event in raw.to_dict("records"):
        valid = scorer.validate_event(event)
        records.append({**valid, **scorer.features(valid, history)})
    A = scorer.matrix.numpy(records)
    n_trees = model.best_iteration_ + 1
    types = ["q"] * scorer.matrix.n_numeric + ["c"] * len(scorer.matrix.categorical)
    tick = time.perf_counter()
    tables = TreeTables.build(model.booster_, n_trees, types)
    build_s = time.perf_counter() - tick
    if tables is None:
        return {"error": "the default model is outside what the tables cover; explanations use pred_contribs"}
    one_thread = model.booster_.copy()
    one_thread.set_param({"nthread": 1})

    def contribs(booster: xgb.Booster, rows: np.ndarray) -> np.ndarray:
        dmatrix = xgb.DMatrix(rows, feature_names=scorer.feature_names, feature_types=types, enable_categorical=True)
        return booster.predict(dmatrix, pred_contribs=True, iteration_range=(0, n_trees))

    want = contribs(model.booster_, A)
    values, base = tables.contributions(A)
    top = np.argsort(-np.abs(values), axis=1)[:, :3]
    top_want = np.argsort(-np.abs(want[:, :-1]), axis=1)[:, :3]
    rows = A[:single]
    return {
        "model": {"trees": n_trees, "leaves": len(tables.arrays["offset"]), "inputs": len(scorer.feature_names),
                  "table_mb": round(tables.arrays["table"].nbytes / 1e6, 1), "build_seconds": round(build_s, 3)},
        "max_abs_difference": float(np.abs(values - want[:, :-1]).max()),
        "base_difference": float(np.abs(base - want[:, -1]).max()),
        "top3_same_order_share": float((top == top_want).all(axis=1).mean()),
        "one_row_ms": {"tables": _median_ms(lambda r: tables.contributions(r[None, :]), rows),
                       "pred_contribs_one_thread": _median_ms(lambda r: contribs(one_thread, r[None, :]), rows)},
        "batch_rows_per_second": {"tables": _rate(lambda: tables.contributions(A), len(A)),
                                  "pred_contribs": _rate(lambda: contribs(model.booster_, A), len(A))},
        "rows": len(A),
    }


def _median_ms(call: Any, rows: np.ndarray) -> dict[str, float]:
    for row in rows[:20]:  # warm-up
        call(row)
    laps = []
    for row in rows:
        tick = time.perf_counter()
        call(row)
        laps.append(time.perf_counter() - tick)
    return {"median": round(1e3 * float(np.median(laps)), 3), "p95": round(1e3 * float(np.quantile(laps, 0.95)), 3)}


def _rate(call: Any, n: int) -> int:
    tick = time.perf_counter()
    call()
    return round(n / (time.perf_counter() - tick))
