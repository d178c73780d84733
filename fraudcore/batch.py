"""Score a CSV or Parquet file with a saved model, file to file, in bounded memory.

Rows that break the contract go to a rejects file with a ``reject_reason`` naming the field. Point-in-time features
need the whole file's history, so they are computed over every valid row in DuckDB (which spills to disk) into a temp
Parquet; that file is then streamed in chunks to score, tier, explain and append to the output. The output keeps
the input's rows (in file order) and columns, plus ``score``, ``tier``, ``model_id`` and ``reason_1..reason_k``.
Outputs are written to temp files beside their targets and renamed only when everything succeeded.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation, explain, reasons_frame
from fraudcore.features_batch import build_features
from fraudcore.loading import LoadedDataset, load_dataset, qident, typed_spec
from fraudcore.matrix import MatrixSpec
from fraudcore.registry import check_input_schema
from fraudcore.scoring import MAX_AMOUNT, MAX_NUMBER, Scorer
from fraudcore.thresholds import assign_tiers

__all__ = ["bench_score", "score_file"]

Progress = Callable[[float, str], None]
TIERS = ("high", "medium", "low")
ROW, RAW = "__fc_row", "__fc_raw_"  # file row key (0-based) and prefix of the untouched input columns
FEATURES_DONE = 0.35  # share of the progress bar spent before streaming starts


def score_file(in_path: str | Path, out_path: str | Path, model_id: str | None = None, *,
               explain_tiers: Sequence[str] = ("high", "medium"), explain_all: bool = False, k: int = 3,
               chunk_rows: int = 200_000, rejects_path: str | Path | None = None, root: str | Path | None = None,
               progress: Progress | None = None, explanation_sample: int = 0) -> dict[str, Any]:
    """Score every valid row of ``in_path`` into ``out_path`` (same format); return counts, paths and timings.

    ``explanation_sample`` > 0 also returns ``explanation``: the contributions of up to that many of the explained
    rows (a seeded sample across the file, None when no row was explained), for a SHAP summary of the batch."""
    started, report = time.perf_counter(), progress or (lambda fraction, message: None)
    in_path, out_path = Path(in_path), Path(out_path)
    _check_request(in_path, out_path, explain_tiers, k, chunk_rows)
    scorer = Scorer.load(model_id, root)
    report(0.0, f"reading {in_path.name}")
    ds = load_dataset(in_path)
    fmt = ds.format
    _check_format(out_path, fmt)
    rejects_path = Path(rejects_path) if rejects_path else out_path.with_name(f"{out_path.stem}.rejects.{_suffix(fmt)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fraudcore-score-", dir=out_path.parent))
    tmp_out, tmp_rejects = _temp_beside(out_path), _temp_beside(rejects_path)
    seconds = {"load": time.perf_counter() - started}
    try:
        check_input_schema(scorer.metadata, ds.columns)
        tick = time.perf_counter()
        layout = _prepare(ds, scorer)
        rejected = _write_rejects(ds, layout, tmp_rejects, fmt)
        seconds["validate"] = time.perf_counter() - tick
        report(0.1, f"{rejected:,} rows rejected; computing features on {ds.n_rows - rejected:,} rows")
        tick = time.perf_counter()
        features = work / "features.parquet"
        _write_features(ds, scorer, layout, features, chunk_rows)
        seconds["features"] = time.perf_counter() - tick
        report(FEATURES_DONE, "features ready; scoring")
        tiers_to_explain = TIERS if explain_all else tuple(explain_tiers)
        run = _stream(features, tmp_out, fmt, scorer, layout, tiers_to_explain, k, chunk_rows, report,
                      explanation_sample)
        seconds.update(run.pop("seconds"))
        os.replace(tmp_out, out_path)
        if rejected:
            os.replace(tmp_rejects, rejects_path)
    finally:
        ds.con.close()
        shutil.rmtree(work, ignore_errors=True)
        tmp_out.unlink(missing_ok=True)
        tmp_rejects.unlink(missing_ok=True)
    seconds["total"] = time.perf_counter() - started
    report(1.0, f"scored {run['rows_scored']:,} rows, rejected {rejected:,}")
    return {"model_id": scorer.model_id, "in_path": str(in_path), "out_path": str(out_path), "format": fmt,
            "rejects_path": str(rejects_path) if rejected else None, "rows_in": ds.n_rows, "rows_rejected": rejected,
            **run, "replaced_columns": layout.replaced, "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "rows_per_second": round(ds.n_rows / max(seconds["total"], 1e-9))}


@dataclasses.dataclass
class _Layout:
    """How the input's columns travel: original names, their raw aliases, and input columns the output replaces."""

    originals: list[str]
    raw: dict[str, str]
    replaced: list[str]


def _prepare(ds: LoadedDataset, scorer: Scorer) -> _Layout:
    """Views: the file rows with a row key and raw aliases, the typed view over them, and the rows' reject reasons."""
    spec, config = scorer.spec, scorer.feature_config
    raw = {c: f"{RAW}{i}" for i, c in enumerate(ds.columns)}
    aliases = ", ".join(f"{qident(c)} AS {qident(a)}" for c, a in raw.items())
    ds.con.execute(f"CREATE OR REPLACE VIEW __fc_rows AS SELECT rowid AS rowid, rowid AS {ROW}, *, {aliases} "
                   f"FROM {ds.table}")
    rows = dataclasses.replace(ds, table="__fc_rows",
                               columns={**ds.columns, ROW: "BIGINT", **{a: ds.columns[c] for c, a in raw.items()}})
    typed = rows.typed_view(spec)
    checks = []
    if spec.event_time in raw:
        checks.append(_time_check(spec.event_time, raw[spec.event_time], required=config is not None))
    if spec.amount in raw:
        checks.append(_number_check(spec.amount, raw[spec.amount], amount=True))
    checks += [_number_check(c, raw[c]) for c in spec.numeric if c in raw]
    if config is not None and spec.event_id in raw:
        checks.append(_id_check(spec.event_id))
    reason = f"nullif(concat_ws('; ', {', '.join(checks)}), '')" if checks else "CAST(NULL AS VARCHAR)"
    ds.con.execute(f"CREATE OR REPLACE TEMP TABLE __fc_rejects AS SELECT {ROW}, reason FROM "
                   f"(SELECT {ROW}, {reason} AS reason FROM {typed}) WHERE reason IS NOT NULL")
    label = config.label if config is not None else None
    extra = f", CAST(NULL AS INTEGER) AS {qident(label)}" if label and label not in ds.columns else ""
    # only what the features and the model read: every extra column is carried through each window
    needed = [ROW, *(config.columns if config is not None else []), *scorer.feature_names]
    present = {*ds.columns, ROW, typed_spec(spec).event_id}
    kept = ", ".join(qident(c) for c in dict.fromkeys(needed) if c in present)
    ds.con.execute(f"CREATE OR REPLACE VIEW __fc_valid AS SELECT {kept}{extra} FROM {typed} "
                   f"WHERE {ROW} NOT IN (SELECT {ROW} FROM __fc_rejects)")
    outputs = {"score", "tier", "model_id", "reject_reason"} | {f"reason_{i}" for i in range(1, 100)}
    replaced = [c for c in ds.columns if c in outputs]
    return _Layout([c for c in ds.columns if c not in outputs], raw, replaced)


def _shown(raw: str) -> str:
    return f"left(CAST({qident(raw)} AS VARCHAR), 40)"


def _time_check(column: str, raw: str, required: bool) -> str:
    missing = f"WHEN {qident(raw)} IS NULL THEN {_text(f'{column}: missing (features need the event time)')} " \
        if required else f"WHEN {qident(raw)} IS NULL THEN NULL "
    return (f"CASE {missing}WHEN {qident(column)} IS NULL THEN {_text(f'{column}: cannot read ')} || "
            f"{_shown(raw)} || {_text(' as a time')} END")


def _number_check(column: str, raw: str, amount: bool = False) -> str:
    q = qident(column)
    bad = f"WHEN {qident(raw)} IS NOT NULL AND {q} IS NULL THEN {_text(f'{column}: not a number: ')} || {_shown(raw)} "
    if amount:
        bad += f"WHEN isnan({q}) OR isinf({q}) THEN {_text(f'{column}: not finite')} "
        bad += f"WHEN {q} < 0 THEN {_text(f'{column}: negative (')} || CAST({q} AS VARCHAR) || ')' "
        bad += (f"WHEN {q} > {MAX_AMOUNT:.0e} THEN {_text(f'{column}: too large (')} || CAST({q} AS VARCHAR) || "
                f"{_text(f'); amounts up to {MAX_AMOUNT:.0e} can be scored')} ")
    else:
        bad += f"WHEN isinf({q}) THEN {_text(f'{column}: not finite')} "
        bad += (f"WHEN abs({q}) > {MAX_NUMBER:.1e} THEN {_text(f'{column}: too large for the model (')} || "
                f"CAST({q} AS VARCHAR) || {_text(f'); values within ±{MAX_NUMBER:g} can be scored')} ")
    return f"CASE {bad}END"


def _id_check(column: str) -> str:
    q = qident(column)
    first = f"min({ROW}) OVER (PARTITION BY {q})"
    return (f"CASE WHEN {q} IS NULL THEN {_text(f'{column}: missing (features need an event id)')} "
            f"WHEN {first} < {ROW} THEN {_text(f'{column}: duplicate of row ')} || CAST({first} + 1 AS VARCHAR) END")


def _text(value: str) -> str:
    """A SQL string literal (messages are ours; column names are escaped)."""
    return "'" + value.replace("'", "''") + "'"


def _write_rejects(ds: LoadedDataset, layout: _Layout, path: Path, fmt: str) -> int:
    """Write rejected rows (input columns + reject_reason, file order) to ``path``; return how many there were."""
    count = ds.con.execute("SELECT count(*) FROM __fc_rejects").fetchall()[0][0]
    if count:
        cols = ", ".join(f"r.{qident(layout.raw[c])} AS {qident(c)}" for c in layout.originals)
        rel = ds.con.sql(f"SELECT {cols}, j.reason AS reject_reason FROM __fc_rows r JOIN __fc_rejects j "
                         f"ON r.{ROW} = j.{ROW} ORDER BY r.{ROW}")
        reader = rel.to_arrow_reader(50_000)
        _write_all(path, fmt, reader.schema, reader)
    return int(count)


def _write_features(ds: LoadedDataset, scorer: Scorer, layout: _Layout, path: Path, chunk_rows: int) -> None:
    """Model inputs (typed, with point-in-time features) and the raw input columns of every valid row, file order."""
    config = scorer.feature_config
    rel = build_features(ds.con, "__fc_valid", config) if config is not None else ds.con.sql("SELECT * FROM __fc_valid")
    rel.create_view("__fc_features", replace=True)
    inputs = ", ".join(f"f.{qident(c)}" for c in dict.fromkeys([ROW, *scorer.feature_names]))
    raw = ", ".join(f"r.{qident(c)} AS {qident(layout.raw[c])}" for c in layout.originals)
    ds.con.sql(f"SELECT {inputs}, {raw} FROM __fc_features f JOIN (SELECT rowid AS {ROW}, * FROM {ds.table}) r "
               f"ON f.{ROW} = r.{ROW} ORDER BY f.{ROW}") \
        .write_parquet(str(path), row_group_size=min(chunk_rows, 122_880))


def _stream(features: Path, out: Path, fmt: str, scorer: Scorer, layout: _Layout, tiers_to_explain: Sequence[str],
            k: int, chunk_rows: int, report: Progress, sample: int = 0) -> dict[str, Any]:
    """Score, tier and explain the features file chunk by chunk, appending each chunk to ``out`` (keeping up to
    ``sample`` explained rows' contributions)."""
    source = pq.ParquetFile(features)
    total = max(source.metadata.num_rows, 1)
    raw_schema = source.schema_arrow
    fields = [pa.field(c, raw_schema.field(layout.raw[c]).type) for c in layout.originals]
    fields += [pa.field("score", pa.float64()), pa.field("tier", pa.string()), pa.field("model_id", pa.string())]
    fields += [pa.field(f"reason_{i}", pa.string()) for i in range(1, k + 1)]
    schema = pa.schema(fields)
    explainable = scorer.explainable and bool(tiers_to_explain) and k > 0
    counts = dict.fromkeys(TIERS, 0)
    seconds = {"score": 0.0, "explain": 0.0, "write": 0.0}
    done = explained = 0
    kept: list[Explanation] | None = [] if sample > 0 else None
    rng = np.random.default_rng(0)
    with _writer(out, fmt, schema) as write:
        for batch in source.iter_batches(batch_size=chunk_rows):
            tick = time.perf_counter()
            score = scorer.model.predict_numpy(arrow_matrix(batch, scorer.matrix))
            tier = assign_tiers(score, scorer.tiers)
            tick = _add(seconds, "score", tick)
            picked = np.flatnonzero(np.isin(tier, tiers_to_explain)) if explainable else np.empty(0, np.int64)
            reasons = _reasons(batch, picked, scorer, k, kept)
            if kept and len(kept[-1]) > sample:  # bounded memory: at most ``sample`` rows kept per chunk
                kept[-1] = kept[-1][np.sort(rng.choice(len(kept[-1]), sample, replace=False))]
            tick = _add(seconds, "explain", tick)
            arrays = [batch.column(layout.raw[c]) for c in layout.originals]
            arrays += [pa.array(score, pa.float64()), pa.array(tier, pa.string()),
                       pa.array([scorer.model_id], pa.string()).take(np.zeros(len(score), dtype=np.int64)), *reasons]
            write(pa.RecordBatch.from_arrays(arrays, schema=schema))
            _add(seconds, "write", tick)
            for name, n in zip(*np.unique(tier, return_counts=True), strict=True):
                counts[str(name)] += int(n)
            done, explained = done + batch.num_rows, explained + len(picked)
            report(FEATURES_DONE + (1 - FEATURES_DONE) * done / total, f"scored {done:,} of {total:,} rows")
    run = {"rows_scored": done, "rows_explained": explained, "tiers": counts, "seconds": seconds}
    if kept is not None:
        run["explanation"] = _sampled(kept, sample, rng)
    return run


def _sampled(parts: list[Explanation], n: int, rng: np.random.Generator) -> Explanation | None:
    """The parts as one Explanation of at most ``n`` rows (a seeded sample, in file order); None when empty."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    whole = Explanation(np.vstack([p.values for p in parts]), np.concatenate([p.base_values for p in parts]),
                        pd.concat([p.data for p in parts], ignore_index=True), parts[0].feature_names)
    return whole if len(whole) <= n else whole[np.sort(rng.choice(len(whole), n, replace=False))]


def arrow_matrix(batch: pa.RecordBatch, spec: MatrixSpec) -> np.ndarray:
    """``MatrixSpec.numpy`` of an Arrow batch without going through pandas: numerics, then category codes."""
    out = np.empty((len(spec.feature_names), batch.num_rows), dtype=np.float64)  # filled column by column
    for j, name in enumerate(spec.numeric):
        out[j] = pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    for j, (name, levels) in enumerate(spec.categorical.items(), start=spec.n_numeric):
        column = batch.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            codes = pc.index_in(pc.cast(column, pa.string()), value_set=pa.array(levels, pa.string()))
            out[j] = pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)
        else:  # not text: let the matrix contract decide how values read as categories
            single = MatrixSpec(numeric=[], categorical={name: levels})
            out[j] = single.numpy(pa.table({name: column}).to_pandas())[:, 0]
    return out.T


def _reasons(batch: pa.RecordBatch, picked: np.ndarray, scorer: Scorer, k: int,
             kept: list[Explanation] | None = None) -> list[pa.Array]:
    """reason_1..reason_k for the picked rows (exact contributions), null for every other row; the picked rows'
    Explanation is appended to ``kept`` when given."""
    columns = [np.full(batch.num_rows, None, dtype=object) for _ in range(k)]
    if len(picked):
        inputs = batch.select(scorer.feature_names).take(pa.array(picked)).to_pandas()
        expl = explain(scorer.model, inputs)
        frame = reasons_frame(expl, k, scorer.feature_config)
        if kept is not None:
            kept.append(expl)
        for i in range(k):
            columns[i][picked] = frame[f"reason_{i + 1}"].to_numpy(dtype=object)
    return [pa.array(c, pa.string()) for c in columns]


class _writer:
    """A context manager giving ``write(batch)`` for Parquet (ParquetWriter) or CSV (header once, then rows)."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        self.path, self.fmt, self.schema = path, fmt, schema

    def __enter__(self) -> Callable[[pa.RecordBatch], None]:
        if self.fmt == "parquet":
            self.sink = pq.ParquetWriter(self.path, self.schema)
            return self.sink.write_batch
        self.sink = pacsv.CSVWriter(self.path, self.schema)
        return self.sink.write_batch

    def __exit__(self, *exc: object) -> None:
        self.sink.close()


def _write_all(path: Path, fmt: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    with _writer(path, fmt, schema) as write:
        for batch in batches:
            write(batch)


def _add(seconds: dict[str, float], key: str, tick: float) -> float:
    now = time.perf_counter()
    seconds[key] += now - tick
    return now


def _suffix(fmt: str) -> str:
    return "parquet" if fmt == "parquet" else "csv"


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _check_request(in_path: Path, out_path: Path, explain_tiers: Sequence[str], k: int, chunk_rows: int) -> None:
    if out_path.resolve() == in_path.resolve():
        raise FraudcoreError(f"the output {out_path} is the input file; write the scores to another path")
    unknown = sorted(set(explain_tiers) - set(TIERS))
    if unknown:
        raise FraudcoreError(f"explain_tiers {unknown} are not tiers; choose from {TIERS}")
    if k < 1 or chunk_rows < 1:
        raise FraudcoreError(f"k (reasons per row, got {k}) and chunk_rows (got {chunk_rows}) must be at least 1")


def _check_format(out_path: Path, fmt: str) -> None:
    suffix = out_path.suffix.lower()
    other = {"csv": (".parquet", ".pq"), "parquet": (".csv", ".tsv", ".txt")}[fmt if fmt == "parquet" else "csv"]
    if suffix in other:
        raise FraudcoreError(f"the input is {fmt.upper()} but the output is named {out_path.name}; the output keeps "
                             f"the input's format: name it *.{_suffix(fmt)}")


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
            run = score_file(path, tmp / f"{name}.parquet", model_id, explain_tiers=tiers, root=root)
            result[name] = {key: run[key] for key in ("model_id", "rows_scored", "rows_explained", "rows_per_second",
                                                      "seconds", "tiers")}
            scoring = sum(run["seconds"][s] for s in ("score", "explain", "write"))
            result[name]["rows_per_second_after_features"] = round(run["rows_scored"] / max(scoring, 1e-9))
        result["single_event"] = _bench_events(Scorer.load(model_id, root), frame, events)
    return result


def _bench_events(scorer: Scorer, frame: Any, n: int) -> dict[str, Any]:
    """Median and p95 milliseconds per step of ``score_event`` over ``n`` events from the later half of ``frame``."""
    history = scorer.frame_history(frame)
    label = [c for c in (scorer.spec.label, *scorer.spec.leakage) if c in frame.columns]
    raw = frame.drop(columns=label)
    picks = np.linspace(len(frame) // 2, len(frame) - 1, num=min(n, len(frame) // 2), dtype=np.int64)
    steps: dict[str, list[float]] = {"validate": [], "features": [], "score": [], "reasons": [], "total": []}
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
    out = {f"{step}_ms": {"median": round(1e3 * float(np.median(v)), 3),
                          "p95": round(1e3 * float(np.quantile(v, 0.95)), 3)} for step, v in steps.items()}
    return {"events": len(picks), "history_rows_median": float(np.median(sizes)) if sizes else 0.0, **out}


def _lap(steps: dict[str, list[float]], key: str, tick: float) -> float:
    now = time.perf_counter()
    steps[key].append(now - tick)
    return now
