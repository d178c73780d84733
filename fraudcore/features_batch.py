"""Batch path of the point-in-time features: DuckDB window functions over integer microsecond keys.

RANGE frames on the time key give (t - w, t]; same-entity events at the same time that come later in
(time, id) order are subtracted with a ROWS frame over PARTITION BY entity, time ORDER BY id. Amounts are
summed as integer micro-units, so means are exact and identical whatever the row order or thread schedule.

For speed, each entity is windowed in its own subquery over only the rows that have it (rows without it would
form one huge partition) and joined back by event id. DuckDB searches a frame's bounds once per aggregate, so a
frame runs one sum of a packed HUGEINT (value sum << 64 | known-value count << 32 | row count), unpacked exactly
afterwards; labels that are not whole numbers, and columns whose absolute values sum to 2**62 or more, are summed
apart instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
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


_PACK_LIMIT = 2**62  # packed sums cannot overflow a HUGEINT while a column's absolute values sum below this


def _pack_sql(value: str, known: str) -> str:
    """One row's packed HUGEINT: ``value`` (an integer, NULL as 0) << 64 | (``known`` IS NOT NULL) << 32 | 1."""
    return f"CAST(coalesce({value}, 0) AS HUGEINT) * {2**64} + CAST({known} IS NOT NULL AS HUGEINT) * {2**32} + 1"


def _sums_sql(frame: str, name: str, packed: str, plain: str | None) -> tuple[list[str], list[str]]:
    """Sums over one frame, unpacked as {name}_n (rows), _na (known values), _s (sum of ``plain`` if given)."""
    aggs = [f"coalesce(sum({packed}) OVER {frame}, 0) AS {name}_p"]
    total = f"{name}_p >> 64"
    if plain:
        aggs.append(f"coalesce(sum({plain}) OVER {frame}, 0) AS {name}_v")
        total = f"{name}_v"
    low = 2**32 - 1
    return aggs, [f"CAST({name}_p & {low} AS BIGINT) AS {name}_n",
                  f"CAST(({name}_p >> 32) & {low} AS BIGINT) AS {name}_na", f"{total} AS {name}_s"]


def _by_time(entity: str) -> str:
    """The window over one entity's events in time order."""
    return f"PARTITION BY {_q(entity)} ORDER BY __fc_t"


def _velocity_sql(entity: str, config: FeatureConfig, plain: str | None) -> tuple[list[str], list[str]]:
    """Window aggregates behind count, mean amount, amount ratio and recency, and their unpacking."""
    peers = f"PARTITION BY {_q(entity)}, __fc_t ORDER BY {_q(config.event_id)}"
    later = f"({peers} ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"  # same-time peers after this event
    aggs, unpack = _sums_sql(later, "__fc_p", "__fc_vp", plain)
    aggs, unpack = [f"row_number() OVER ({peers}) AS __fc_rank", *aggs], ["__fc_rank", *unpack]
    for k, w in enumerate(config.windows):
        frame = f"({_by_time(entity)} RANGE BETWEEN {to_us(w) - 1} PRECEDING AND CURRENT ROW)"
        window_aggs, window_unpack = _sums_sql(frame, f"__fc_v{k}", "__fc_vp", plain)
        aggs, unpack = aggs + window_aggs, unpack + window_unpack
    if config.recency:
        span = f"RANGE BETWEEN {to_us(config.windows[-1]) - 1} PRECEDING AND 1 PRECEDING"
        aggs.append(f"max(__fc_t) OVER ({_by_time(entity)} {span}) AS __fc_prev")
        unpack.append("__fc_prev")
    return aggs, unpack


def _risk_sql(entity: str, config: FeatureConfig, plain: str | None) -> tuple[list[str], list[str]]:
    """Window aggregates behind the delayed count and fraud share, and their unpacking."""
    aggs, unpack, d = [], [], to_us(config.label_delay)
    for k, w in enumerate(config.risk_windows):
        frame = f"({_by_time(entity)} RANGE BETWEEN {d + to_us(w) - 1} PRECEDING AND {d} PRECEDING)"
        window_aggs, window_unpack = _sums_sql(frame, f"__fc_r{k}", "__fc_rp", plain)
        aggs, unpack = aggs + window_aggs, unpack + window_unpack
    return aggs, unpack


_CALENDAR_SQL = {"hour": "hour(make_timestamp(__fc_t))", "dow": "isodow(make_timestamp(__fc_t)) - 1",
                 "weekend": "CAST(isodow(make_timestamp(__fc_t)) >= 6 AS INTEGER)",
                 "night": "CAST(hour(make_timestamp(__fc_t)) <= 6 AS INTEGER)"}


def _entity_feature_sql(f: Feature, config: FeatureConfig) -> str:
    """The expression of one entity feature, from the unpacked window aggregates of its entity."""
    if f.family in ("nb_tx_delay", "risk"):
        p = f"__fc_r{config.risk_windows.index(f.window)}"
        share = f"CASE WHEN {p}_n = 0 THEN 0.0 ELSE CAST({p}_s AS DOUBLE) / {p}_n END"
        return f"{p}_n" if f.family == "nb_tx_delay" else share
    if f.family == "secs_since_prev":
        return "CASE WHEN __fc_rank > 1 THEN 0.0 ELSE (__fc_t - __fc_prev) / 1e6 END"
    p = f"__fc_v{config.windows.index(f.window)}"
    mean = f"CAST({p}_s - __fc_p_s AS DOUBLE) / 1e6 / nullif({p}_na - __fc_p_na, 0)"
    ratio = f"__fc_amt / nullif({mean}, 0)"
    return {"nb_tx": f"{p}_n - __fc_p_n", "avg_amount": mean, "amount_ratio": ratio}[f.family]


def _entity_sql(entity: str, config: FeatureConfig, plain: dict[str, str | None]) -> str:
    """Subquery of one entity's features keyed by event id (__fc_key), over only the rows that have the entity."""
    aggs, unpack = _velocity_sql(entity, config, plain["amount"]) if entity in config.entities else ([], [])
    if entity in config.risk_entities:
        risk_aggs, risk_unpack = _risk_sql(entity, config, plain["label"])
        aggs, unpack = aggs + risk_aggs, unpack + risk_unpack
    feats = [f"{_entity_feature_sql(f, config)} AS {_q(f.name)}" for f in feature_plan(config) if f.entity == entity]
    return (f"SELECT __fc_key, {', '.join(feats)} FROM (SELECT __fc_key, __fc_t, __fc_amt, {', '.join(unpack)} "
            f"FROM (SELECT __fc_key, __fc_t, __fc_amt, {', '.join(aggs)} FROM base WHERE {_q(entity)} IS NOT NULL))")


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


def plain_columns(con: duckdb.DuckDBPyConnection, typed: str) -> dict[str, str | None]:
    """The amount and label columns to sum apart (None: packed): not whole numbers, or too large to pack."""
    fits_amount, fits_label = con.execute(
        f"SELECT coalesce(sum(abs(CAST(__fc_amu AS HUGEINT))), 0) < {_PACK_LIMIT}, "
        f"coalesce(bool_and(__fc_y = floor(__fc_y)) AND sum(abs(__fc_y)) < {_PACK_LIMIT}, true) FROM ({typed})"
    ).fetchall()[0]
    return {"amount": None if fits_amount else "__fc_amu", "label": None if fits_label else "__fc_y"}


def typed_sql(con: duckdb.DuckDBPyConnection, source: str, config: FeatureConfig) -> tuple[str, dict[str, str]]:
    """SQL of the source rows with the keys the windows read (__fc_key, __fc_t µs, __fc_amt, __fc_amu micro-units,
    __fc_y label), after checking the source; and the source's column types."""
    types = _source_columns(con, source, config)
    amount = f"CAST({_q(config.amount)} AS DOUBLE)" if config.amount else "CAST(NULL AS DOUBLE)"
    label = f"coalesce(CAST({_q(config.label)} AS DOUBLE), 0)" if config.label else "0"
    typed = (f"SELECT *, {_q(config.event_id)} AS __fc_key, "
             f"{_time_us_sql(config, types[config.event_time])} AS __fc_t, {amount} AS __fc_amt, "
             f"CAST(floor({amount} * 1e6 + 0.5) AS BIGINT) AS __fc_amu, {label} AS __fc_y "
             f"FROM {_q(source)}")
    return typed, types


def build_features(con: duckdb.DuckDBPyConnection, source: str, config: FeatureConfig,
                   out: Path | None = None, ordered: bool = True) -> duckdb.DuckDBPyRelation:
    """Source rows plus point-in-time features, ordered by (time, id) unless ``ordered`` is False (for callers that
    order them their own way); written to Parquet at ``out`` if given."""
    typed, types = typed_sql(con, source, config)
    plan = feature_plan(config)
    plain = plain_columns(con, typed)
    velocity = _pack_sql("NULL" if plain["amount"] else "__fc_amu", "__fc_amu")
    risk = _pack_sql("NULL" if plain["label"] else "CAST(__fc_y AS BIGINT)", "__fc_y")
    entities = list(dict.fromkeys([*config.entities, *config.risk_entities]))
    alias = {e: f"__fc_e{j}" for j, e in enumerate(entities)}
    names = {f.name for f in plan}
    cols = [f"b.{_q(c)}" for c in types if c not in names]
    cols += [f"{_CALENDAR_SQL[f.family]} AS {_q(f.name)}" if f.entity is None else f"{alias[f.entity]}.{_q(f.name)}"
             for f in plan]
    joins = "".join(f" LEFT JOIN ({_entity_sql(e, config, plain)}) AS {alias[e]} ON {alias[e]}.__fc_key = b.__fc_key"
                    for e in entities)
    sql = (f"WITH base AS MATERIALIZED (SELECT *, {velocity} AS __fc_vp, {risk} AS __fc_rp FROM ({typed})) "
           f"SELECT {', '.join(cols)} FROM base AS b{joins}"
           + (f" ORDER BY b.__fc_t, b.{_q(config.event_id)}" if ordered else ""))
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
                        progress: Callable[[float, str], None] | None = None, **csv: Any) -> dict[str, Any]:
    """Read CSV/Parquet (``csv``: ``load_dataset``'s delimiter, encoding, decimal), write Parquet with the original
    columns plus the preset's features (spec: inferred)."""
    start, report = time.perf_counter(), progress or (lambda fraction, text: None)
    report(0.0, f"reading {Path(in_path).name}")
    ds = load_dataset(in_path, **csv)
    spec = spec or infer_spec(ds)
    config = FeatureConfig.from_spec(typed_spec(spec), preset)
    out = Path(out_path)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        report(0.2, f"computing {len(feature_names(config))} features on {ds.n_rows:,} rows")
        build_features(ds.con, ds.typed_view(spec), config, out=partial)
        spec_file = out.with_name(out.stem + ".spec.json")
        spec_file.write_text(json.dumps({"spec": json.loads(spec.to_json()), "features": config.to_dict(),
                                         "source": str(in_path)}, indent=2, default=str), encoding="utf-8")
        os.replace(partial, out)  # nothing half-written under the output name
    finally:
        partial.unlink(missing_ok=True)
        ds.con.close()
    report(1.0, "done")
    return {"rows": ds.n_rows, "seconds": round(time.perf_counter() - start, 3), "features": feature_names(config),
            "spec": str(spec_file)}


def bench_features(path: str | Path) -> dict[str, Any]:
    """File-to-file timings of the handbook and auto presets on a handbook-shaped file."""
    result: dict[str, Any] = {"path": str(path)}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("handbook", "auto"):
            run = build_features_file(path, Path(tmp) / f"{preset}.parquet", preset=preset)
            result.update(rows=run["rows"], **{f"{preset}_seconds": run["seconds"],
                                               f"{preset}_features": len(run["features"])})
    return result
