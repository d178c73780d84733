"""Exploratory aggregations of fraud against legitimate traffic: computed in DuckDB, returned as small DataFrames."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from fraudcore.dataset import OpenedDataset
from fraudcore.errors import DataContractError
from fraudcore.loading import qident

SAMPLE_ROWS = 200_000
TOP_CATEGORIES = 20
FRAUD, LEGIT = "fraud", "legitimate"
Freq = Literal["hour", "day", "week"]

# typed_view replaces one view per connection; the lock keeps a query and its view's spec together across threads
_VIEW_LOCK = threading.Lock()


@contextmanager
def _typed(opened: OpenedDataset) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    with _VIEW_LOCK:
        view = opened.data.typed_view(opened.spec)
        yield opened.data.con.cursor(), view


def _need(opened: OpenedDataset, *roles: str) -> None:
    missing = [r for r in roles if not getattr(opened.spec, r) or getattr(opened.spec, r) not in opened.data.columns]
    if missing:
        raise DataContractError(f"this view needs a column with role {' and '.join(missing)}; "
                                "set it in the roles table")


def _class_expr(label: str) -> str:
    return f"CASE WHEN {qident(label)} = 1 THEN '{FRAUD}' ELSE '{LEGIT}' END"


def class_balance(opened: OpenedDataset) -> pd.DataFrame:
    """Events and share of fraud and legitimate (rows with a missing label are left out)."""
    _need(opened, "label")
    label = qident(opened.spec.label)
    with _typed(opened) as (cur, view):
        df = cur.execute(
            f"SELECT {_class_expr(opened.spec.label)} AS class, count(*) AS events FROM {view} "
            f"WHERE {label} IS NOT NULL GROUP BY ALL ORDER BY class"
        ).df()
    df["events"] = df["events"].astype("int64")
    df["share"] = df["events"] / df["events"].sum() if len(df) else 0.0
    return df


def _with_rate(df: pd.DataFrame) -> pd.DataFrame:
    """Integer events and frauds columns plus their fraud rate."""
    df["events"] = df["events"].astype("int64")
    df["frauds"] = df["frauds"].astype("int64")
    df["fraud_rate"] = df["frauds"] / df["events"]
    return df


def fraud_over_time(opened: OpenedDataset, freq: Freq = "day") -> pd.DataFrame:
    """Events, frauds and fraud rate per hour, day or week of event time."""
    if freq not in ("hour", "day", "week"):
        raise ValueError(f"freq must be 'hour', 'day' or 'week', not {freq!r}")
    _need(opened, "label", "event_time")
    t, label = qident(opened.spec.event_time), qident(opened.spec.label)
    with _typed(opened) as (cur, view):
        df = cur.execute(
            f"SELECT date_trunc('{freq}', {t}) AS period, count(*) AS events, "
            f"sum(CASE WHEN {label} = 1 THEN 1 ELSE 0 END) AS frauds FROM {view} "
            f"WHERE {t} IS NOT NULL AND {label} IS NOT NULL GROUP BY ALL ORDER BY period"
        ).df()
    return _with_rate(df)


def _histogram(cur: duckdb.DuckDBPyConnection, view: str, value_sql: str, label: str, where: str,
               bins: int, lo: float, hi: float) -> pd.DataFrame:
    """Per-class counts of ``value_sql`` in ``bins`` equal bins over [lo, hi] (outside values go to the edge bins)."""
    width = (hi - lo) / bins if hi > lo else 1.0
    df = cur.execute(
        f"SELECT {_class_expr(label)} AS class, "
        f"least(greatest(floor(({value_sql} - ?) / ?), 0), ? - 1)::INTEGER AS bin, count(*) AS events "
        f"FROM {view} WHERE {where} AND {qident(label)} IS NOT NULL GROUP BY ALL ORDER BY class, bin",
        [lo, width, bins],
    ).df()
    df["bin_start"] = lo + df["bin"] * width
    df["bin_end"] = df["bin_start"] + width
    df["events"] = df["events"].astype("int64")
    df["share"] = df["events"] / df.groupby("class")["events"].transform("sum")
    return df[["class", "bin", "bin_start", "bin_end", "events", "share"]]


def amount_by_class(opened: OpenedDataset, bins: int = 40) -> pd.DataFrame:
    """Histogram of log10(amount) per class, each class's shares summing to 1 (amounts ≤ 0 are left out)."""
    _need(opened, "label", "amount")
    a = qident(opened.spec.amount)
    value, where = f"log10({a})", f"{a} > 0 AND isfinite({a})"
    with _typed(opened) as (cur, view):
        lo, hi = cur.execute(f"SELECT min({value}), max({value}) FROM {view} WHERE {where}").fetchone()
        if lo is None:
            return pd.DataFrame(columns=["class", "bin", "bin_start", "bin_end", "events", "share",
                                         "amount_from", "amount_to"])
        df = _histogram(cur, view, value, opened.spec.label, where, bins, float(lo), float(hi))
    df["amount_from"] = 10 ** df["bin_start"]
    df["amount_to"] = 10 ** df["bin_end"]
    return df


def _separation_columns(opened: OpenedDataset, max_columns: int) -> list[str]:
    spec, present = opened.spec, opened.data.columns
    cols = ([spec.amount] if spec.amount else []) + list(spec.numeric)
    return [c for c in cols if c in present][:max_columns]


def separation_scores(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """ROC AUC of ``x`` as a fraud score, average precision in its better direction, KS statistic and that direction.

    One sort serves all three (sklearn's definitions, ties included): 40 columns × 200k rows stay well under 2 s.
    """
    order = np.argsort(x)
    xs, ys = x[order], y[order]
    ends = np.flatnonzero(np.r_[xs[1:] != xs[:-1], True])  # last index of each distinct value, ascending
    fraud_cum = np.cumsum(ys)[ends].astype(float)
    legit_cum = (ends + 1) - fraud_cum
    n_fraud, n_legit = fraud_cum[-1], legit_cum[-1]
    fraud_g, legit_g = np.diff(np.r_[0.0, fraud_cum]), np.diff(np.r_[0.0, legit_cum])
    legit_below = legit_cum - legit_g
    auc = float(np.sum(fraud_g * (legit_below + 0.5 * legit_g)) / (n_fraud * n_legit))
    ks = float(np.max(np.abs(fraud_cum / n_fraud - legit_cum / n_legit)))
    sign = 1.0 if auc >= 0.5 else -1.0
    # flag at or above each threshold, highest threshold first (lowest first when lower values mean fraud)
    tp = np.cumsum(fraud_g[::-1]) if sign > 0 else fraud_cum
    fp = np.cumsum(legit_g[::-1]) if sign > 0 else legit_cum
    recall_step = np.diff(np.r_[0.0, tp / n_fraud])
    ap = float(np.sum(recall_step * tp / (tp + fp)))
    return auc, ap, ks, sign


def feature_separation(opened: OpenedDataset, max_columns: int = 40, sample_rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """How well each numeric column alone separates fraud (average precision, ROC AUC, KS) on a ~200k-row sample."""
    _need(opened, "label")
    columns = _separation_columns(opened, max_columns)
    out_cols = ["column", "average_precision", "roc_auc", "ks", "direction", "fraud_rate", "n"]
    if not columns:
        return pd.DataFrame(columns=out_cols)
    label = qident(opened.spec.label)
    cols = ", ".join(qident(c) for c in columns)
    # a seeded Bernoulli sample of about sample_rows rows: unlike a reservoir it runs in parallel (5× faster at 1M)
    percent = 100.0 * sample_rows / max(opened.data.n_rows, 1)
    sampling = f" USING SAMPLE {percent:.6f} PERCENT (bernoulli, 1)" if percent < 100 else ""
    with _typed(opened) as (cur, view):
        sample = cur.execute(f"SELECT {cols}, {label} AS _y FROM {view} WHERE {label} IS NOT NULL{sampling}").df()
    y_all = (sample["_y"].to_numpy() == 1).astype(np.int64)

    def score(col: str) -> dict | None:
        x = pd.to_numeric(sample[col], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x)
        x, y = x[ok], y_all[ok]
        if len(x) < 2 or y.min() == y.max():
            return None
        auc, ap, ks, sign = separation_scores(x, y)
        return {"column": col, "average_precision": ap, "roc_auc": max(auc, 1 - auc), "ks": ks,
                "direction": "higher → fraud" if sign > 0 else "lower → fraud", "fraud_rate": float(y.mean()),
                "n": len(x)}

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # numpy sorts release the GIL
        rows = [r for r in pool.map(score, columns) if r is not None]
    df = pd.DataFrame(rows, columns=out_cols)
    return df.sort_values(["average_precision", "roc_auc"], ascending=False, ignore_index=True)


def _is_numeric(opened: OpenedDataset, column: str) -> bool:
    spec = opened.spec
    if column == spec.amount or column in spec.numeric:
        return True
    if column in spec.categorical or column in (spec.event_id, spec.label) or column in spec.entities:
        return False
    duck = opened.data.columns[column].upper()
    return any(duck.startswith(t) for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT",
                                            "DOUBLE", "DECIMAL", "REAL", "UBIGINT", "UINTEGER", "USMALLINT"))


def distribution_by_class(opened: OpenedDataset, column: str, bins: int = 30) -> pd.DataFrame:
    """Per-class histogram of a numeric column, or the top 20 values of a categorical one with their fraud rate."""
    _need(opened, "label")
    if column not in opened.data.columns:
        raise DataContractError(f"the data has no column {column!r}; pick one of {', '.join(opened.data.columns)}")
    q, label = qident(column), opened.spec.label
    with _typed(opened) as (cur, view):
        if _is_numeric(opened, column):
            value = f"TRY_CAST({q} AS DOUBLE)"
            where = f"{value} IS NOT NULL AND isfinite({value})"
            lo, hi = cur.execute(f"SELECT quantile_cont({value}, 0.005), quantile_cont({value}, 0.995) "
                                 f"FROM {view} WHERE {where}").fetchone()
            if lo is None:
                return pd.DataFrame(columns=["class", "bin", "bin_start", "bin_end", "events", "share"])
            return _histogram(cur, view, value, label, where, bins, float(lo), float(hi))
        lq = qident(label)
        df = cur.execute(
            f"SELECT coalesce(CAST({q} AS VARCHAR), '(missing)') AS value, count(*) AS events, "
            f"sum(CASE WHEN {lq} = 1 THEN 1 ELSE 0 END) AS frauds FROM {view} WHERE {lq} IS NOT NULL "
            f"GROUP BY ALL ORDER BY events DESC, value LIMIT {TOP_CATEGORIES}"
        ).df()
    return _with_rate(df)


def missing_values(opened: OpenedDataset) -> pd.DataFrame:
    """Per column: how many values are null and what share of rows that is; most missing first."""
    data = opened.data
    if not data.columns:
        return pd.DataFrame(columns=["column", "missing", "share"])
    counts = ", ".join(f"count(*) - count({qident(c)})" for c in data.columns)
    values = data.con.cursor().execute(f"SELECT {counts} FROM {data.table}").fetchone()
    df = pd.DataFrame({"column": list(data.columns), "missing": [int(v) for v in values]})
    df["share"] = df["missing"] / max(data.n_rows, 1)
    return df.sort_values(["share", "column"], ascending=[False, True], ignore_index=True)


def roles_table(opened: OpenedDataset) -> pd.DataFrame:
    """One row per column of the data: its stored type, its role in the spec and why it got that role."""
    spec = opened.spec
    return pd.DataFrame({
        "column": list(opened.data.columns),
        "type": list(opened.data.columns.values()),
        "role": [spec.role_of(c) or "unassigned" for c in opened.data.columns],
        "why": [spec.leakage.get(c) or spec.reasons.get(c, "") for c in opened.data.columns],
    })

