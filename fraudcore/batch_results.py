"""Batch scoring for the Score page: accept a file, score it as background work, and read back what it produced.

The scoring itself is ``fraudcore.batch.score_file``; this module adds what a page needs around it: a clear refusal
of files that are not CSV or Parquet, output paths in the data folder, the highest-scored rows and the rejects as
tables, tier counts as a chart, and the results in the other format for download.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import duckdb
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudcore.errors import DataContractError
from fraudcore.jobs import ProgressFn
from fraudcore.loading import CSV_SUFFIXES, PARQUET_SUFFIXES, save_upload

__all__ = ["EXPLANATION_SAMPLE", "PREVIEW_ROWS", "UPLOAD_SUFFIXES", "accept_upload", "as_format", "output_path",
           "preview", "scoring_work", "tier_chart"]

UPLOAD_SUFFIXES = sorted(CSV_SUFFIXES | PARQUET_SUFFIXES)
PREVIEW_ROWS = 1_000
EXPLANATION_SAMPLE = 2_000  # explained rows kept for the batch's SHAP summary
TIERS = ("high", "medium", "low")
TIER_HEX = {"high": "#d62728", "medium": "#ff7f0e", "low": "#2ca02c"}
FIRST = ("reject_reason", "score", "tier", "reason_1", "reason_2", "reason_3")


def accept_upload(data: bytes, filename: str, folder: Path) -> Path:
    """Save an uploaded CSV or Parquet file under ``folder``; a clear error for any other kind or an empty file."""
    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise DataContractError(f"{filename} is not a CSV or Parquet file; upload one ending in "
                                f"{', '.join(UPLOAD_SUFFIXES)}")
    return save_upload(data, filename, folder)


def output_path(folder: Path, in_path: Path) -> Path:
    """A fresh output path in ``folder`` for scoring ``in_path`` (same format as the input)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", in_path.stem)[-60:] or "batch"
    suffix = ".parquet" if in_path.suffix.lower() in PARQUET_SUFFIXES else ".csv"
    return folder / f"{stem}.{uuid.uuid4().hex[:8]}.scored{suffix}"


def scoring_work(in_path: Path, out_path: Path, model_id: str, root: Path,
                 explain_tiers: Sequence[str]) -> Callable[[ProgressFn], dict[str, Any]]:
    """The background work scoring ``in_path`` into ``out_path`` (for ``Jobs.submit``), keeping a SHAP sample."""
    from fraudcore.batch import score_file

    def work(progress: ProgressFn) -> dict[str, Any]:
        return score_file(in_path, out_path, model_id, explain_tiers=tuple(explain_tiers), root=root,
                          progress=progress, explanation_sample=EXPLANATION_SAMPLE)

    return work


def _read(path: Path) -> str:
    return "read_parquet(?)" if path.suffix.lower() in PARQUET_SUFFIXES else "read_csv(?, header = true)"


def preview(path: str | Path, limit: int = PREVIEW_ROWS, by_score: bool = True) -> pd.DataFrame:
    """Up to ``limit`` rows of a scored (highest score first) or rejects file, reason columns first."""
    path = Path(path)
    order = " ORDER BY score DESC" if by_score else ""
    with duckdb.connect(":memory:") as con:
        frame = con.execute(f"SELECT * FROM {_read(path)}{order} LIMIT ?", [str(path), int(limit)]).df()
    first = [c for c in FIRST if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first and c != "model_id"]]


def as_format(path: str | Path, fmt: str) -> bytes:
    """The file's bytes in ``fmt`` ('csv' or 'parquet'), converted when it was written in the other one."""
    path = Path(path)
    is_parquet = path.suffix.lower() in PARQUET_SUFFIXES
    if (fmt == "parquet") == is_parquet:
        return path.read_bytes()
    table = pq.read_table(path) if is_parquet else pacsv.read_csv(path)
    sink = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:
        pacsv.write_csv(table, sink)
    return sink.getvalue()


def tier_chart(counts: Mapping[str, int]) -> alt.Chart:
    """Events per tier as bars (high, medium, low), with the share of the batch in the tooltip."""
    total = max(sum(int(counts.get(t, 0)) for t in TIERS), 1)
    frame = pd.DataFrame({"tier": list(TIERS), "events": [int(counts.get(t, 0)) for t in TIERS]})
    frame["share"] = frame["events"] / total
    return alt.Chart(frame, title="events per tier").mark_bar().encode(
        x=alt.X("events:Q", title="events"), y=alt.Y("tier:N", sort=list(TIERS), title=None),
        color=alt.Color("tier:N", scale=alt.Scale(domain=list(TIERS), range=[TIER_HEX[t] for t in TIERS]),
                        legend=None),
        tooltip=["tier:N", alt.Tooltip("events:Q", format=","), alt.Tooltip("share:Q", format=".1%")])
