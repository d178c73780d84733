"""Score a CSV or Parquet file with a saved model, file to file.

Rows that break the contract go to a rejects file with a ``reject_reason`` naming the field (``batch_rows``).
Point-in-time features need the whole file's history, so they are computed over every valid row first: in memory
with numpy when the rows fit (``features_arrays``), else by DuckDB's window SQL, which spills to disk; both give the
same values (``batch_inputs``). The rows are then scored, tiered, explained and appended to the output in chunks
(``batch_scores``), keeping the input's rows (in file order) and columns, plus ``score``, ``tier``, ``model_id`` and
``reason_1..reason_k``. Outputs are written to temp files beside their targets and renamed only when everything
succeeded; a run without rejects then removes a rejects file an earlier run left at its rejects path, which would
otherwise read as this run's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fraudcore.batch_files import Writer, suffix, temp_beside
from fraudcore.batch_history import add_history
from fraudcore.batch_inputs import array_chunks, sql_chunks
from fraudcore.batch_rows import prepare, write_rejects
from fraudcore.batch_scores import TIERS, Clock, output_schema, score_chunks
from fraudcore.errors import FraudcoreError
from fraudcore.loading import load_dataset
from fraudcore.registry import check_input_schema
from fraudcore.scoring import Scorer

__all__ = ["score_file"]

Progress = Callable[[float, str], None]
FEATURES_DONE = 0.35  # share of the progress bar spent before streaming starts


def score_file(in_path: str | Path, out_path: str | Path, model_id: str | None = None, *,
               explain_tiers: Sequence[str] = ("high", "medium"), explain_all: bool = False, k: int = 3,
               chunk_rows: int = 200_000, rejects_path: str | Path | None = None, root: str | Path | None = None,
               progress: Progress | None = None, explanation_sample: int = 0, delimiter: str | None = None,
               encoding: str = "utf-8", decimal: str = ".", history_path: str | Path | None = None,
               ) -> dict[str, Any]:
    """Score every valid row of ``in_path`` into ``out_path`` (same format); return counts, paths and timings (wall
    ``seconds`` and ``cpu_seconds`` per stage).

    ``delimiter``, ``encoding`` and ``decimal`` read a CSV input as ``load_dataset`` does; a CSV output is UTF-8,
    comma-separated.

    ``history_path``: a file of earlier events (read with the same options) that the point-in-time features count
    as history without scoring them (``batch_history``); without it the file is its own only history.

    ``explanation_sample`` > 0 also returns ``explanation``: the contributions of up to that many of the explained
    rows (a seeded sample across the file, None when no row was explained), for a SHAP summary of the batch."""
    clock, report = Clock(), progress or (lambda fraction, message: None)
    started = since = clock.now()
    in_path, out_path = Path(in_path), Path(out_path)
    _check_request(in_path, out_path, explain_tiers, k, chunk_rows)
    scorer = Scorer.load(model_id, root)
    report(0.0, f"reading {in_path.name}")
    ds = load_dataset(in_path, delimiter=delimiter, encoding=encoding, decimal=decimal)
    fmt = ds.format
    rejects_path = Path(rejects_path) if rejects_path else out_path.with_name(f"{out_path.stem}.rejects.{suffix(fmt)}")
    try:
        _check_targets(in_path, out_path, rejects_path, fmt)
    except FraudcoreError:
        ds.con.close()
        raise
    work = Path(tempfile.mkdtemp(prefix=".fraudcore-score-", dir=out_path.parent))
    tmp_out, tmp_rejects = temp_beside(out_path), temp_beside(rejects_path)
    since = clock.lap("load", since)
    try:
        check_input_schema(scorer.metadata, ds.columns)
        layout = prepare(ds, scorer)
        rejected = write_rejects(ds, layout, tmp_rejects, fmt)
        history = 0 if history_path is None else add_history(ds, scorer, Path(history_path), work,
                                                             delimiter=delimiter, encoding=encoding, decimal=decimal)
        since = clock.lap("validate", since)
        report(0.1, f"{rejected:,} rows rejected; computing features on {ds.n_rows - rejected:,} rows"
               + (f" and {history:,} history events" if history_path is not None else ""))
        inputs = array_chunks(ds, scorer, layout, ds.n_rows - rejected + history, chunk_rows)
        path = "arrays" if inputs is not None else "sql"
        inputs = inputs or sql_chunks(ds, scorer, layout, work, chunk_rows)
        since = clock.lap("features", since)
        report(FEATURES_DONE, "features ready; scoring")
        tiers_to_explain = TIERS if explain_all else tuple(explain_tiers)
        with Writer(tmp_out, fmt, output_schema(inputs.raw_fields, k)) as write:
            run = score_chunks(inputs, write, scorer, tiers_to_explain, k, report, clock, FEATURES_DONE,
                               explanation_sample)
            since = clock.now()
        clock.lap("write", since)
        clock.wall["encode_thread"], clock.cpu["encode_thread"] = write.busy
        os.replace(tmp_out, out_path)
        if rejected:
            os.replace(tmp_rejects, rejects_path)
        else:  # a rejects file from an earlier run to this output would read as this run's
            rejects_path.unlink(missing_ok=True)
    finally:
        ds.con.close()
        shutil.rmtree(work, ignore_errors=True)
        tmp_out.unlink(missing_ok=True)
        tmp_rejects.unlink(missing_ok=True)
    clock.lap("total", started)
    report(1.0, f"scored {run['rows_scored']:,} rows, rejected {rejected:,}")
    return {"model_id": scorer.model_id, "in_path": str(in_path), "out_path": str(out_path), "format": fmt,
            "rejects_path": str(rejects_path) if rejected else None, "rows_in": ds.n_rows, "rows_rejected": rejected,
            "history_rows": history,
            **run, "replaced_columns": layout.replaced, "features_path": path,
            "seconds": {s: round(v, 3) for s, v in clock.wall.items()},
            "cpu_seconds": {s: round(v, 3) for s, v in clock.cpu.items()},
            "rows_per_second": round(ds.n_rows / max(clock.wall["total"], 1e-9))}


def _check_request(in_path: Path, out_path: Path, explain_tiers: Sequence[str], k: int, chunk_rows: int) -> None:
    if _same_file(out_path, in_path):
        raise FraudcoreError(f"the output {out_path} is the input file; write the scores to another path")
    unknown = sorted(set(explain_tiers) - set(TIERS))
    if unknown:
        raise FraudcoreError(f"explain_tiers {unknown} are not tiers; choose from {TIERS}")
    for name, value, what in (("k", k, "reasons per row"), ("chunk_rows", chunk_rows, "rows per chunk")):
        if value < 1:
            raise FraudcoreError(f"{name} ({what}) must be at least 1, got {value}")


def _check_targets(in_path: Path, out_path: Path, rejects_path: Path, fmt: str) -> None:
    """Refuse, before anything is written, a rejects file that would replace the input or the output (it is written
    last and, with no rejects, removed), a name in the other format, and a target no file can be written to; then
    create the targets' folders."""
    for other, role in ((in_path, "input"), (out_path, "output")):
        if _same_file(rejects_path, other):
            raise FraudcoreError(f"the rejects file {rejects_path} is the {role} file; name another rejects path")
    for path, role in ((out_path, "output"), (rejects_path, "rejects file")):
        _check_format(path, fmt, role)
        if path.is_dir():
            raise FraudcoreError(f"the {role} {path} is a folder; name a file in it")
        nearest = next(p for p in path.absolute().parents if p.exists())
        if not nearest.is_dir():
            raise FraudcoreError(f"the {role} {path} lies under {nearest}, which is a file, not a folder; "
                                 f"choose a path in a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FraudcoreError(f"cannot create the folder {path.parent} for the {role} ({exc.strerror}); "
                                 f"choose a path in a folder you can write to") from exc


def _same_file(a: Path, b: Path) -> bool:
    """The same file, whatever the spelling: relative paths, symlinks and (for existing files) hard links."""
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def _check_format(path: Path, fmt: str, role: str = "output") -> None:
    other = {"csv": (".parquet", ".pq"), "parquet": (".csv", ".tsv", ".txt")}[fmt if fmt == "parquet" else "csv"]
    if path.suffix.lower() in other:
        raise FraudcoreError(f"the input is {fmt.upper()} but the {role} is named {path.name}; the {role} keeps "
                             f"the input's format: name it *.{suffix(fmt)}")
