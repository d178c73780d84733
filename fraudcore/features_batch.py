"""Batch path of the point-in-time features: DuckDB window functions over integer microsecond keys.

RANGE frames on the time key give (t - w, t]; same-entity events at the same time that come later in
(time, id) order are subtracted with a ROWS frame over PARTITION BY entity, time ORDER BY id. Amounts are
summed as integer micro-units, so means are exact and identical whatever the row order or thread schedule.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fraudcore.errors import DataContractError
from fraudcore.features import Feature, FeatureConfig, feature_names, feature_plan, origin_us, to_us
from fraudcore.infer import infer_spec
from fraudcore.loading import load_dataset, typed_spec
from fraudcore.spec import DatasetSpec

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "FLOAT", "REAL", "DOUBLE", "DECIMAL")


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _time_us_sql(config: FeatureConfig, column_type: str) -> str:
    """SQL for the event time as integer microseconds since the epoch (UTC for time-zone-aware columns)."""
    col, kind = _q(config.event_time), column_type.upper()
    if config.time_unit == "seconds" and kind.startswith(_NUMERIC):
        return f"CAST(floor(CAST({col} AS DOUBLE) * 1e6 + 0.5) AS BIGINT) + {origin_us(config)}"
    if config.time_unit == "timestamp" and kind == "TIMESTAMP WITH TIME ZONE":
        return f"epoch_us({col})"
    if config.time_unit == "timestamp" and (kind.startswith("TIMESTAMP") or kind == "DATE"):
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
    raise DataContractError(
        f"event time column {config.event_time!r} has type {column_type}, which does not fit time_unit="
        f"{config.time_unit!r}; use a timestamp column, or numeric seconds with time_unit='seconds'")


def _velocity_sql(i: int, entity: str, config: FeatureConfig) -> list[str]:
    """Window aggregates behind count, mean amount, amount ratio and recency for one entity."""
    p, e, by_time = f"__fc_v{i}", _q(entity), f"PARTITION BY {_q(entity)} ORDER BY __fc_t"
    peers = f"PARTITION BY {e}, __fc_t ORDER BY {_q(config.event_id)}"
    later = f"({peers} ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"  # same-time peers after this event
    cols = [f"row_number() OVER ({peers}) AS {p}_rank", f"count(*) OVER {later} AS {p}_pn"]
    if config.amount:
        cols += [f"count(__fc_amu) OVER {later} AS {p}_pna", f"coalesce(sum(__fc_amu) OVER {later}, 0) AS {p}_ps"]
    for k, w in enumerate(config.windows):
        frame = f"({by_time} RANGE BETWEEN {to_us(w) - 1} PRECEDING AND CURRENT ROW)"
        cols.append(f"count(*) OVER {frame} AS {p}_n{k}")
        if config.amount:
            cols += [f"count(__fc_amu) OVER {frame} AS {p}_na{k}", f"sum(__fc_amu) OVER {frame} AS {p}_s{k}"]
    if config.recency:
        span = to_us(config.windows[-1]) - 1
        cols.append(f"max(__fc_t) OVER ({by_time} RANGE BETWEEN {span} PRECEDING AND 1 PRECEDING) AS {p}_prev")
    return cols


def _risk_sql(j: int, entity: str, config: FeatureConfig) -> list[str]:
    """Window aggregates behind the delayed count and fraud share for one entity."""
    p, d, by_time = f"__fc_r{j}", to_us(config.label_delay), f"PARTITION BY {_q(entity)} ORDER BY __fc_t"
    cols = []
    for k, w in enumerate(config.risk_windows):
        frame = f"({by_time} RANGE BETWEEN {d + to_us(w) - 1} PRECEDING AND {d} PRECEDING)"
        cols += [f"count(*) OVER {frame} AS {p}_n{k}", f"sum(__fc_y) OVER {frame} AS {p}_f{k}"]
    return cols


_CALENDAR_SQL = {"hour": "hour(make_timestamp(__fc_t))", "dow": "isodow(make_timestamp(__fc_t)) - 1",
                 "weekend": "CAST(isodow(make_timestamp(__fc_t)) >= 6 AS INTEGER)",
                 "night": "CAST(hour(make_timestamp(__fc_t)) <= 6 AS INTEGER)"}


def _entity_feature_sql(f: Feature, config: FeatureConfig) -> str:
    """The expression of one entity feature, from the window aggregates of its entity."""
    if f.family in ("nb_tx_delay", "risk"):
        p, k = f"__fc_r{config.risk_entities.index(f.entity)}", config.risk_windows.index(f.window)
        share = f"CASE WHEN {p}_n{k} = 0 THEN 0.0 ELSE {p}_f{k} / {p}_n{k} END"
        return f"{p}_n{k}" if f.family == "nb_tx_delay" else share
    p = f"__fc_v{config.entities.index(f.entity)}"
    if f.family == "secs_since_prev":
        return f"CASE WHEN {p}_rank > 1 THEN 0.0 ELSE (__fc_t - {p}_prev) / 1e6 END"
    k = config.windows.index(f.window)
    mean = f"CAST({p}_s{k} - {p}_ps AS DOUBLE) / 1e6 / nullif({p}_na{k} - {p}_pna, 0)"
    ratio = f"__fc_amt / nullif({mean}, 0)"
    return {"nb_tx": f"{p}_n{k} - {p}_pn", "avg_amount": mean, "amount_ratio": ratio}[f.family]


def _feature_sql(f: Feature, config: FeatureConfig) -> str:
    """The final select item of one feature (NULL for entity features of rows without that entity)."""
    if f.entity is None:
        return f"{_CALENDAR_SQL[f.family]} AS {_q(f.name)}"
    expr = _entity_feature_sql(f, config)
    return f"CASE WHEN {_q(f.entity)} IS NULL THEN NULL ELSE {expr} END AS {_q(f.name)}"


def _source_columns(con: duckdb.DuckDBPyConnection, source: str, config: FeatureConfig) -> dict[str, str]:
    """Column name -> type of the source, after checking the roles exist and ids and times are usable."""
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {_q(source)}").fetchall()}
    missing = [c for c in config.columns if c not in types]
    if missing:
        raise DataContractError(f"columns {missing} are missing from {source!r} (it has {list(types)}); "
                                "fix the dataset spec or the file")
    t, i = _q(config.event_time), _q(config.event_id)
    null_t, null_id, dup_id = con.execute(
        f"SELECT count(*) - count({t}), count(*) - count({i}), count({i}) - count(DISTINCT {i}) FROM {_q(source)}"
    ).fetchall()[0]
    if null_t or null_id or dup_id:
        raise DataContractError(f"{source!r} has {null_t} empty event times, {null_id} empty event ids and {dup_id} "
                                "repeated event ids; features need a unique id and a time on every row")
    return types


def build_features(con: duckdb.DuckDBPyConnection, source: str, config: FeatureConfig,
                   out: Path | None = None) -> duckdb.DuckDBPyRelation:
    """Source rows plus point-in-time features, ordered by (time, id); written to Parquet at ``out`` if given."""
    types = _source_columns(con, source, config)
    plan = feature_plan(config)
    amount = f"CAST({_q(config.amount)} AS DOUBLE)" if config.amount else "CAST(NULL AS DOUBLE)"
    label = f"coalesce(CAST({_q(config.label)} AS DOUBLE), 0)" if config.label else "0"
    windows = [c for i, e in enumerate(config.entities) for c in _velocity_sql(i, e, config)]
    windows += [c for j, e in enumerate(config.risk_entities) for c in _risk_sql(j, e, config)]
    keep = [_q(c) for c in types if c not in {f.name for f in plan}]
    sql = (f"WITH base AS (SELECT *, {_time_us_sql(config, types[config.event_time])} AS __fc_t, "
           f"{amount} AS __fc_amt, CAST(floor({amount} * 1e6 + 0.5) AS BIGINT) AS __fc_amu, {label} AS __fc_y "
           f"FROM {_q(source)}), "
           f"agg AS (SELECT *{''.join(', ' + c for c in windows)} FROM base) "
           f"SELECT {', '.join(keep + [_feature_sql(f, config) for f in plan])} "
           f"FROM agg ORDER BY __fc_t, {_q(config.event_id)}")
    rel = con.sql(sql)
    if out is not None:
        rel.write_parquet(str(out))
    return rel


def build_features_frame(df: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """``df`` plus its point-in-time features, in df's row order and index."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        frame = df.copy()  # a deep copy: duckdb 2.0 cannot scan negative-stride views (std::bad_cast)
        frame["__fc_row"] = np.arange(len(df))
        con.register("__fc_source", frame)
        result = build_features(con, "__fc_source", config).df()
    finally:
        con.close()
    result = result.sort_values("__fc_row").drop(columns="__fc_row")
    result.index = df.index
    return result


def build_features_file(in_path: str | Path, out_path: str | Path, preset: str = "auto",
                        spec: DatasetSpec | None = None,
                        progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Read CSV/Parquet, write Parquet with the original columns plus the preset's features (spec: inferred)."""
    start, report = time.perf_counter(), progress or (lambda fraction, text: None)
    report(0.0, f"reading {Path(in_path).name}")
    ds = load_dataset(in_path)
    spec = spec or infer_spec(ds)
    config = FeatureConfig.from_spec(typed_spec(spec), preset)
    try:
        report(0.2, f"computing {len(feature_names(config))} features on {ds.n_rows:,} rows")
        build_features(ds.con, ds.typed_view(spec), config, out=Path(out_path))
    finally:
        ds.con.close()
    report(1.0, "done")
    return {"rows": ds.n_rows, "seconds": round(time.perf_counter() - start, 3), "features": feature_names(config)}


def bench_features(path: str | Path) -> dict[str, Any]:
    """File-to-file timings of the handbook and auto presets on a handbook-shaped file."""
    result: dict[str, Any] = {"path": str(path)}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("handbook", "auto"):
            run = build_features_file(path, Path(tmp) / f"{preset}.parquet", preset=preset)
            result.update(rows=run["rows"], **{f"{preset}_seconds": run["seconds"],
                                               f"{preset}_features": len(run["features"])})
    return result
