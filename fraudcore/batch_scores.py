"""Score, tier and explain a batch's chunks and append them to the output: model inputs in blocks small enough to
stay in cache-warm memory, exact reasons for the rows asked for in one call per chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudcore.batch_files import Writer
from fraudcore.batch_inputs import Inputs
from fraudcore.explain import Explanation, explain, reasons_frame
from fraudcore.matrix import MatrixSpec
from fraudcore.scoring import Scorer
from fraudcore.thresholds import assign_tiers

__all__ = ["TIERS", "Clock", "output_schema", "score_chunks"]

Progress = Callable[[float, str], None]
TIERS = ("high", "medium", "low")
BLOCK_ROWS = 32_768  # rows per model matrix: 19 MB at 72 features, reused memory rather than fresh pages


@dataclass
class Clock:
    """Wall and CPU seconds per stage."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str, since: tuple[float, float]) -> tuple[float, float]:
        """Add the time since ``since`` to ``stage``; return now."""
        now = time.perf_counter(), time.process_time()
        self.wall[stage] = self.wall.get(stage, 0.0) + now[0] - since[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now[1] - since[1]
        return now

    @staticmethod
    def now() -> tuple[float, float]:
        """Wall and process CPU seconds now (CPU counts every thread: the model's, DuckDB's, the writer's)."""
        return time.perf_counter(), time.process_time()


def output_schema(raw_fields: list[pa.Field], k: int) -> pa.Schema:
    """The input's columns, then score, tier, model_id and reason_1..reason_k."""
    fields = [*raw_fields, pa.field("score", pa.float64()), pa.field("tier", pa.string()),
              pa.field("model_id", pa.string())]
    return pa.schema(fields + [pa.field(f"reason_{i}", pa.string()) for i in range(1, k + 1)])


def score_chunks(inputs: Inputs, write: Writer, scorer: Scorer, tiers_to_explain: Sequence[str], k: int,
                 report: Progress, clock: Clock, start: float, sample: int = 0) -> dict[str, Any]:
    """Score every chunk and write it; return counts (and up to ``sample`` explained rows' contributions).

    Progress runs from ``start`` to 1 as rows are written."""
    explainable = scorer.explainable and bool(tiers_to_explain) and k > 0
    wanted = np.isin(np.array(TIERS), list(tiers_to_explain)) if explainable else None
    counts = np.zeros(len(TIERS), dtype=np.int64)
    done = explained = 0
    kept: list[Explanation] | None = [] if sample > 0 else None
    keys: list[np.ndarray] = []  # a random key per kept row: the ``sample`` smallest are a uniform sample of all
    rng = np.random.default_rng(0)
    since = clock.now()
    with ThreadPoolExecutor(1, thread_name_prefix="fraudcore-predict") as pool:
        for chunk in inputs.chunks:
            since = clock.lap("read", since)
            n = chunk.inputs.num_rows
            score, codes, rows = _score(chunk.inputs, scorer, wanted, clock, pool)
            since = clock.now()
            picked = np.flatnonzero(wanted[codes]) if wanted is not None else np.empty(0, dtype=np.int64)
            reasons = _reasons(rows, picked, n, scorer, k, kept)
            if kept is not None and len(kept) > len(keys):  # this chunk's explained rows: keep the sample's share
                keys.append(rng.random(len(kept[-1])))
                _keep_smallest(kept, keys, sample)
            since = clock.lap("explain", since)
            tiers = pc.take(pa.array(TIERS), pa.array(codes))
            model_id = pc.take(pa.array([scorer.model_id]), pa.array(np.zeros(n, dtype=np.int8)))
            write(pa.RecordBatch.from_arrays([*_arrays(chunk.raw), pa.array(score), tiers, model_id, *reasons],
                                             schema=write.schema))
            counts += np.bincount(codes, minlength=len(TIERS))
            done, explained = done + n, explained + len(picked)
            report(start + (1 - start) * done / max(inputs.rows, 1), f"scored {done:,} of {inputs.rows:,} rows")
            since = clock.lap("write", since)
    run = {"rows_scored": done, "rows_explained": explained,
           "tiers": {t: int(c) for t, c in zip(TIERS, counts, strict=True)}}
    if tiers_to_explain and k > 0 and not scorer.explainable:  # asked for reasons this model cannot give
        run["reasons_note"] = (f"no reasons: a {scorer.metadata.algo} model's score has no additive per-feature "
                               "contributions, so the reason columns are empty; explain with a supervised model "
                               "trained on the same data")
    if kept is not None:
        run["explanation"] = _joined(kept)
    return run


def _score(inputs: pa.Table | pa.RecordBatch, scorer: Scorer, wanted: np.ndarray | None, clock: Clock,
           pool: ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores and tier codes (index in TIERS) of every row, and the model matrix rows of those in ``wanted`` tiers.

    The model predicts one block on ``pool`` while the next block's matrix is built here."""
    n = inputs.num_rows
    score, codes = np.empty(n), np.empty(n, dtype=np.int8)
    picked = []

    def finish(lo: int, A: np.ndarray, future: Future[np.ndarray], since: tuple[float, float]) -> tuple[float, float]:
        score[lo:lo + len(A)] = future.result()
        since = clock.lap("predict", since)
        codes[lo:lo + len(A)] = _tier_codes(score[lo:lo + len(A)], scorer)
        if wanted is not None:
            picked.append(A[wanted[codes[lo:lo + len(A)]]])
        return clock.lap("matrix", since)

    since, pending = clock.now(), None
    for lo in range(0, n, BLOCK_ROWS):
        A = scorer.matrix.numpy(inputs.slice(lo, BLOCK_ROWS))
        since = clock.lap("matrix", since)
        future = pool.submit(scorer.model.predict_numpy, A)
        if pending is not None:
            since = finish(*pending, since)
        pending = (lo, A, future)
    if pending is not None:
        finish(*pending, since)
    rows = np.vstack(picked) if picked else np.empty((0, len(scorer.feature_names)))
    return score, codes, rows


def _tier_codes(score: np.ndarray, scorer: Scorer) -> np.ndarray:
    """Index in TIERS of each score's tier (``assign_tiers`` decides)."""
    tier = assign_tiers(score, scorer.tiers)
    return (tier == "medium").astype(np.int8) + 2 * (tier == "low").astype(np.int8)


def _arrays(columns: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    return [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]


def _inputs_frame(spec: MatrixSpec, A: np.ndarray) -> pd.DataFrame:
    """Matrix rows as the model's input frame: numbers as float64, categories with the frozen levels."""
    frame = pd.DataFrame(A[:, :spec.n_numeric], columns=spec.numeric)
    for j, (column, levels) in enumerate(spec.categorical.items(), start=spec.n_numeric):
        codes = np.where(np.isnan(A[:, j]), -1, A[:, j]).astype(np.int64)
        frame[column] = pd.Categorical.from_codes(codes, categories=levels)
    return frame


def _reasons(rows: np.ndarray, picked: np.ndarray, n: int, scorer: Scorer, k: int,
             kept: list[Explanation] | None) -> list[pa.Array]:
    """reason_1..reason_k for the picked rows (exact contributions, one call), null for every other row; the picked
    rows' Explanation is appended to ``kept`` when given."""
    if not len(picked):
        return [pa.nulls(n, pa.string()) for _ in range(k)]
    expl = explain(scorer.model, _inputs_frame(scorer.matrix, rows))
    frame = reasons_frame(expl, k, scorer.feature_config)
    if kept is not None:
        kept.append(expl)
    at = np.full(n, -1, dtype=np.int64)
    at[picked] = np.arange(len(picked))
    where = pa.array(at, mask=at < 0)
    return [pc.take(pa.array(frame[f"reason_{i + 1}"].to_numpy(dtype=object), pa.string()), where)
            for i in range(k)]


def _keep_smallest(parts: list[Explanation], keys: list[np.ndarray], n: int) -> None:
    """Keep, across all parts, the ``n`` rows with the smallest keys (bottom-n sampling: every explained row of the
    file is equally likely to be in the sample, whatever the chunk sizes; memory stays at ``n`` + one chunk)."""
    every = np.concatenate(keys)
    if len(every) <= n:
        return
    cut = np.partition(every, n - 1)[n - 1]
    for i, part_keys in enumerate(keys):
        keep = np.flatnonzero(part_keys <= cut)
        parts[i], keys[i] = parts[i][keep], part_keys[keep]


def _joined(parts: list[Explanation]) -> Explanation | None:
    """The kept parts (``_keep_smallest`` left at most the sample) as one Explanation in file order; None when empty."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return Explanation(np.vstack([p.values for p in parts]), np.concatenate([p.base_values for p in parts]),
                       pd.concat([p.data for p in parts], ignore_index=True), parts[0].feature_names)
