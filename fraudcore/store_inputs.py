"""The model inputs each stored score used, kept as lists: numbers in ``scores.inputs`` (DOUBLE[], null when missing)
and category labels in ``scores.labels`` (VARCHAR[]), in the model's order, with the names held once per layout in
``input_layouts`` (``scores.layout_id``). As a JSON object per row the inputs were 87 % of the live path's WAL and
most of a commit's time (2.6 KB an event; scratch measurements in docs/benchmarks.md).

Rows stored before schema 3, and rows given as DataFrames (``Store.write_batch``), keep a JSON object in
``scores.features``; ``input_rows`` reads both kinds, so every reader sees ``{name: value}`` in the model's order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from fraudcore.errors import FraudcoreError

__all__ = ["HAS_INPUTS", "INPUT_COLUMNS", "Layout", "input_columns", "input_rows", "layout_of", "register_layout"]

INPUT_COLUMNS = "features, layout_id, inputs, labels"  # what a query selects from scores for ``input_rows``
HAS_INPUTS = "(features IS NOT NULL OR inputs IS NOT NULL)"  # a score row that kept its model inputs


@dataclass(frozen=True)
class Layout:
    """The names of a model's inputs in order, and which are categorical (their labels go to ``scores.labels``)."""

    names: tuple[str, ...]
    categorical: tuple[bool, ...]
    layout_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.categorical):
            raise FraudcoreError(f"an input layout needs one kind per name; got {len(self.names)} names and "
                                 f"{len(self.categorical)} kinds")
        text = json.dumps([list(self.names), list(self.categorical)], separators=(",", ":"))
        object.__setattr__(self, "layout_id", hashlib.sha256(text.encode()).hexdigest()[:16])

    def positions(self) -> dict[str, tuple[str, int]]:
        """Each name's list column ('inputs' or 'labels') and 1-based position in it (DuckDB's list index)."""
        out, counts = {}, {"inputs": 0, "labels": 0}
        for name, cat in zip(self.names, self.categorical, strict=True):
            column = "labels" if cat else "inputs"
            counts[column] += 1
            out[name] = (column, counts[column])
        return out

    def row(self, numbers: Sequence[float | None] | None, labels: Sequence[str | None] | None) -> dict[str, Any]:
        """One row's ``{name: value}`` (missing numbers as None, as the JSON rows read)."""
        numbers = iter(() if numbers is None else numbers)
        labels = iter(() if labels is None else labels)
        out = {}
        for name, cat in zip(self.names, self.categorical, strict=True):
            value = next(labels, None) if cat else next(numbers, None)
            out[name] = None if (not cat and value is not None and math.isnan(value)) else value
        return out


def layout_of(inputs: Mapping[str, Any]) -> Layout:
    """The layout of live inputs (name -> float array for numbers, a list of texts for categories)."""
    return Layout(tuple(inputs), tuple(not isinstance(v, np.ndarray) for v in inputs.values()))


def input_columns(layout: Layout, inputs: Mapping[str, Any], n: int) -> tuple[pa.Array, pa.Array | None]:
    """The ``inputs`` (list<double>, NaN as null) and ``labels`` (list<string>, or None without categories) columns
    for ``n`` rows."""
    numeric = [np.asarray(inputs[name], dtype=np.float64)
               for name, cat in zip(layout.names, layout.categorical, strict=True) if not cat]
    m = len(numeric)
    flat = np.column_stack(numeric).ravel() if m else np.empty(0)
    numbers = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * m),
                                       pa.array(flat, type=pa.float64(), from_pandas=True))
    names = [name for name, cat in zip(layout.names, layout.categorical, strict=True) if cat]
    if not names:
        return numbers, None
    texts = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
             for row in zip(*(inputs[name] for name in names), strict=True) for v in row]
    k = len(names)
    labels = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * k), pa.array(texts, pa.string()))
    return numbers, labels


def register_layout(con: duckdb.DuckDBPyConnection, layout: Layout, known: set[str], now: datetime) -> None:
    """Store ``layout`` in the caller's transaction unless it is there; ``known`` caches ids seen committed."""
    if layout.layout_id in known:
        return
    if con.execute("SELECT 1 FROM input_layouts WHERE layout_id = ?", [layout.layout_id]).fetchall():
        known.add(layout.layout_id)  # committed by an earlier transaction: never asked again
        return
    con.execute("INSERT INTO input_layouts VALUES (?, ?, ?, ?)",
                [layout.layout_id, list(layout.names), list(layout.categorical), now])


def read_layouts(con: duckdb.DuckDBPyConnection) -> dict[str, Layout]:
    """Every stored layout by id."""
    rows = con.execute("SELECT layout_id, names, categorical FROM input_layouts").fetchall()
    out = {}
    for layout_id, names, categorical in rows:
        layout = Layout(tuple(names), tuple(bool(c) for c in categorical))
        if layout.layout_id != layout_id:
            raise FraudcoreError(f"the store's input layout {layout_id!r} does not match its names (it hashes to "
                                 f"{layout.layout_id!r}); the file was edited outside the workbench")
        out[layout_id] = layout
    return out


def input_rows(layouts: Mapping[str, Layout], found: pd.DataFrame, drop: bool = True) -> list[dict[str, Any]]:
    """Each row's model inputs ``{name: value}`` from the ``INPUT_COLUMNS`` of ``found`` ({} where none were kept);
    ``drop`` removes those columns from ``found``."""
    out = []
    for features, layout_id, numbers, labels in zip(found["features"], found["layout_id"], found["inputs"],
                                                    found["labels"], strict=True):
        if isinstance(layout_id, str):
            layout = layouts.get(layout_id)
            if layout is None:
                raise FraudcoreError(f"a stored score names the input layout {layout_id!r}, which the store does not "
                                     "hold; the file was edited outside the workbench")
            out.append(layout.row(_values(numbers), _values(labels)))
        elif isinstance(features, str):
            out.append(json.loads(features))
        else:
            out.append({})
    if drop:
        for column in INPUT_COLUMNS.split(", "):
            del found[column]
    return out


def _values(column: Any) -> list | None:
    if column is None or column is pd.NA or (isinstance(column, float) and math.isnan(column)):
        return None
    return column.tolist() if isinstance(column, np.ndarray) else list(column)
