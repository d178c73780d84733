"""Which input rows a batch scores: contract checks in SQL over the loaded file, rejects with the field and reason.

``prepare`` creates the views the scoring reads: ``__fc_rows`` (the file rows with a row key and raw aliases),
``__fc_rejects`` (row key and reason of every row that breaks the contract) and ``__fc_valid`` (the typed model and
feature inputs of every other row).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fraudcore.batch_files import write_all
from fraudcore.loading import LoadedDataset, qident, typed_spec
from fraudcore.scoring import AMOUNT_MISSING, MAX_AMOUNT, MAX_NUMBER, Scorer

__all__ = ["RAW", "ROW", "RowLayout", "prepare", "rejected_rows", "write_rejects"]

ROW, RAW = "__fc_row", "__fc_raw_"  # file row key (0-based) and prefix of the untouched input columns


@dataclasses.dataclass
class RowLayout:
    """How the input's columns travel: original names, their raw aliases, input columns the output replaces, and the
    view of every file row with typed inputs beside the raw aliases."""

    originals: list[str]
    raw: dict[str, str]
    replaced: list[str]
    typed: str


def prepare(ds: LoadedDataset, scorer: Scorer) -> RowLayout:
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
        checks.append(_number_check(spec.amount, raw[spec.amount], amount=True, required=scorer.amount_required))
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
    return RowLayout([c for c in ds.columns if c not in outputs], raw, replaced, typed)


def _shown(raw: str) -> str:
    return f"left(CAST({qident(raw)} AS VARCHAR), 40)"


def _time_check(column: str, raw: str, required: bool) -> str:
    missing = f"WHEN {qident(raw)} IS NULL THEN {_text(f'{column}: missing (features need the event time)')} " \
        if required else f"WHEN {qident(raw)} IS NULL THEN NULL "
    return (f"CASE {missing}WHEN {qident(column)} IS NULL THEN {_text(f'{column}: cannot read ')} || "
            f"{_shown(raw)} || {_text(' as a time')} END")


def _number_check(column: str, raw: str, amount: bool = False, required: bool = False) -> str:
    q = qident(column)
    bad = f"WHEN {qident(raw)} IS NOT NULL AND {q} IS NULL THEN {_text(f'{column}: not a number: ')} || {_shown(raw)} "
    if required:  # the model never saw this value missing (Scorer.amount_required)
        bad += f"WHEN {qident(raw)} IS NULL THEN {_text(f'{column}: {AMOUNT_MISSING}')} "
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


def write_rejects(ds: LoadedDataset, layout: RowLayout, path: Path, fmt: str) -> int:
    """Write rejected rows (input columns + reject_reason, file order) to ``path``; return how many there were."""
    count = ds.con.execute("SELECT count(*) FROM __fc_rejects").fetchall()[0][0]
    if count:
        cols = ", ".join(f"r.{qident(layout.raw[c])} AS {qident(c)}" for c in layout.originals)
        rel = ds.con.sql(f"SELECT {cols}, j.reason AS reject_reason FROM __fc_rows r JOIN __fc_rejects j "
                         f"ON r.{ROW} = j.{ROW} ORDER BY r.{ROW}")
        reader = rel.to_arrow_reader(50_000)
        write_all(path, fmt, reader.schema, reader)
    return int(count)


def rejected_rows(ds: LoadedDataset) -> np.ndarray:
    """Row keys of the rejected rows, ascending."""
    rows = ds.con.execute(f"SELECT {ROW} FROM __fc_rejects ORDER BY {ROW}").fetchnumpy()[ROW]
    return np.asarray(rows, dtype=np.int64)
