"""The model inputs each stored score used: the numbers packed in ``scores.inputs`` (a BLOB of little-endian float64,
NaN when missing) and the category labels as a JSON array in ``scores.labels``, each in the model's order, with the
names held once per layout in ``input_layouts`` (``scores.layout_id``).

Why not a JSON object per row: it was 87 % of the live path's WAL and most of a commit's time (2.6 KB an event).
Why not a DOUBLE[] list: DuckDB's WAL writes ~28 KB per row of a 70-value list appended a few rows at a time (the
live path's small commits), 50× the values themselves; a BLOB is written as its bytes (scratch figures in
docs/benchmarks.md).

Rows stored before schema 3 keep a JSON object in ``scores.features``; ``input_rows`` and ``input_frame`` read both
kinds, so every reader sees ``{name: value}`` in the model's order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.json_text import dumps
from fraudcore.matrix import category_text

__all__ = ["HAS_INPUTS", "INPUT_COLUMNS", "Layout", "input_columns", "input_frame", "input_rows", "layout_of",
           "read_layouts", "register_layout"]

_F8 = np.dtype("<f8")

_INPUT_NAMES = ("features", "layout_id", "inputs", "labels")
INPUT_COLUMNS = ", ".join(_INPUT_NAMES)  # what a query selects from scores for ``input_rows`` / ``input_frame``
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
        """Each name's column ('inputs' or 'labels') and 0-based position in it."""
        out, counts = {}, {"inputs": 0, "labels": 0}
        for name, cat in zip(self.names, self.categorical, strict=True):
            column = "labels" if cat else "inputs"
            out[name] = (column, counts[column])
            counts[column] += 1
        return out

    @property
    def n_numbers(self) -> int:
        return len(self.names) - sum(self.categorical)

    def row(self, numbers: bytes | None, labels: str | None) -> dict[str, Any]:
        """One row's ``{name: value}`` from its stored columns (missing numbers as None, as the JSON rows read)."""
        values = iter(() if numbers is None else np.frombuffer(numbers, _F8).tolist())
        texts = iter(() if labels is None else json.loads(labels))
        out = {}
        for name, cat in zip(self.names, self.categorical, strict=True):
            value = next(texts, None) if cat else next(values, None)
            out[name] = None if (not cat and value is not None and math.isnan(value)) else value
        return out


def layout_of(inputs: Mapping[str, Any]) -> Layout:
    """The layout of live inputs (name -> float array for numbers, a list of texts for categories)."""
    return Layout(tuple(inputs), tuple(not isinstance(v, np.ndarray) for v in inputs.values()))


def input_columns(layout: Layout, inputs: Mapping[str, Any], n: int) -> tuple[list[bytes], list[str] | None]:
    """The ``inputs`` (each row's numbers as float64 bytes) and ``labels`` (JSON array text, or None without
    categories) columns for ``n`` rows."""
    numeric = [np.asarray(inputs[name], dtype=_F8)
               for name, cat in zip(layout.names, layout.categorical, strict=True) if not cat]
    flat = np.array(np.column_stack(numeric) if numeric else np.empty((n, 0)), dtype=_F8, order="C")
    flat[~np.isfinite(flat)] = np.nan  # ±inf is no measurement either (the JSON rows kept null)
    numbers = [row.tobytes() for row in flat]
    names = [name for name, cat in zip(layout.names, layout.categorical, strict=True) if cat]
    if not names:
        return numbers, None
    texts = [dumps([category_text(v) for v in row]) for row in zip(*(inputs[name] for name in names), strict=True)]
    return numbers, texts


def register_layout(con: duckdb.DuckDBPyConnection, layout: Layout, known: Set[str], registered: set[str],
                    now: datetime) -> None:
    """Store ``layout`` in the caller's transaction unless it is there. ``known``: ids of committed layouts (not
    asked again); ``registered`` collects the ids this transaction found or stored, for the caller to add to its
    ``known`` once the transaction has committed (a rolled-back insert must not be remembered)."""
    if layout.layout_id in known or layout.layout_id in registered:
        return
    registered.add(layout.layout_id)
    if con.execute("SELECT 1 FROM input_layouts WHERE layout_id = ?", [layout.layout_id]).fetchall():
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


def input_rows(layouts: Mapping[str, Layout], found: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row's model inputs ``{name: value}`` from the ``INPUT_COLUMNS`` of ``found`` ({} where none were kept);
    those columns are removed from ``found``."""
    out = []
    for features, layout_id, numbers, labels in zip(found["features"], found["layout_id"], found["inputs"],
                                                    found["labels"], strict=True):
        if isinstance(layout_id, str):
            out.append(_layout(layouts, layout_id).row(_bytes(numbers), labels if isinstance(labels, str) else None))
        elif isinstance(features, str):
            out.append(json.loads(features))
        else:
            out.append({})
    for column in _INPUT_NAMES:
        del found[column]
    return out


def input_frame(layouts: Mapping[str, Layout], found: pd.DataFrame, names: Sequence[str],
                categorical: Sequence[str] = ()) -> pd.DataFrame:
    """The inputs ``names`` of each row of ``found`` (its ``INPUT_COLUMNS``) as columns: numbers as float (NaN
    when missing or not kept), ``categorical`` ones as text (None). Packed rows are read a layout at a time."""
    cats = set(categorical)
    n = len(found)
    out = {name: np.full(n, None, dtype=object) if name in cats else np.full(n, np.nan) for name in names}
    layout_ids = found["layout_id"].to_numpy(dtype=object)
    for layout_id in {i for i in layout_ids if isinstance(i, str)}:
        layout = _layout(layouts, layout_id)
        rows = np.flatnonzero(layout_ids == layout_id)
        packed = [_bytes(b) or b"" for b in found["inputs"].to_numpy(dtype=object)[rows]]
        numbers = np.frombuffer(b"".join(packed), _F8).reshape(len(rows), layout.n_numbers)
        labels = [json.loads(t) if isinstance(t, str) else None for t in found["labels"].to_numpy(dtype=object)[rows]]
        for name, (column, j) in layout.positions().items():
            if name not in out:
                continue
            values = numbers[:, j] if column == "inputs" else [None if t is None else t[j] for t in labels]
            if name in cats:  # also a category stored as a number: its text as the model's levels write it
                out[name][rows] = [category_text(v) for v in values]
            else:
                out[name][rows] = [_float(v) for v in values] if column == "labels" else values
    for j, (layout_id, features) in enumerate(zip(layout_ids, found["features"], strict=True)):
        if isinstance(layout_id, str) or not isinstance(features, str):
            continue
        values = json.loads(features)  # a row stored before schema 3: a JSON object
        for name in names:
            value = values.get(name)
            out[name][j] = category_text(value) if name in cats else _float(value)
    return pd.DataFrame(out, index=found.index)


def _layout(layouts: Mapping[str, Layout], layout_id: str) -> Layout:
    layout = layouts.get(layout_id)
    if layout is None:
        raise FraudcoreError(f"a stored score names the input layout {layout_id!r}, which the store does not hold; "
                             "the file was edited outside the workbench")
    return layout


def _float(value: Any) -> float:
    try:
        return math.nan if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return math.nan


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None
