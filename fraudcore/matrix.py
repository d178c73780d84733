"""The model input contract: which columns a model reads, in which order, and the fixed codes of each category.

Numeric columns come first, then categorical ones; that order is the model's feature order. Categories are kept as
text in code order (code = position in the list); levels never seen in training, rare levels cut by
``max_categories`` and missing values all become "unknown" (NaN), which every model family treats as missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from fraudcore.errors import DataContractError

Records = Mapping[str, Any] | Iterable[Mapping[str, Any]]


class MatrixSpec(BaseModel):
    """Numeric and categorical feature columns with frozen category lists; JSON-serialisable."""

    model_config = ConfigDict(extra="forbid")

    numeric: list[str]
    categorical: dict[str, list[str]]
    _codes: dict[str, dict[str, int]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _distinct(self) -> MatrixSpec:
        names = self.feature_names
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"columns {dupes} are listed twice; each feature column must appear once")
        for column, levels in self.categorical.items():
            if len(set(levels)) != len(levels):
                raise ValueError(f"categorical column {column!r} repeats a category; categories must be distinct")
        return self

    @property
    def feature_names(self) -> list[str]:
        """Numeric then categorical column names: the model's feature order."""
        return [*self.numeric, *self.categorical]

    @property
    def n_numeric(self) -> int:
        """How many leading columns of the matrix are numeric."""
        return len(self.numeric)

    @classmethod
    def fit(
        cls, df: pd.DataFrame, numeric: list[str], categorical: list[str], max_categories: int = 200
    ) -> MatrixSpec:
        """Freeze the categories of ``categorical`` (the ``max_categories`` most frequent; the rest are unknown)."""
        if max_categories < 1:
            raise DataContractError(f"max_categories must be at least 1; got {max_categories}")
        _require(df.columns, [*numeric, *categorical])
        levels = {}
        for column in categorical:
            counts = _as_text(df[column]).value_counts(dropna=True)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
            levels[column] = sorted(str(level) for level, _ in ranked)
        empty = [c for c, v in levels.items() if not v]
        if empty:
            raise DataContractError(f"categorical columns {empty} have no values in the training rows; "
                                    "mark them ignored or fill them before training")
        return cls(numeric=list(numeric), categorical=levels)

    @classmethod
    def infer(
        cls, df: pd.DataFrame, categorical: list[str] | None = None, max_categories: int = 200
    ) -> MatrixSpec:
        """Fit on every column of ``df``: ``categorical`` as named, else text and category dtypes; the rest numeric."""
        if categorical is None:
            categorical = [c for c in df.columns if _is_text_like(df[c])]
        _require(df.columns, categorical)
        numeric = [c for c in df.columns if c not in set(categorical)]
        bad = [c for c in numeric if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))]
        if bad:
            raise DataContractError(
                f"columns {bad} are neither numeric nor text; convert them or drop them before training"
            )
        return cls.fit(df, [str(c) for c in numeric], [str(c) for c in categorical], max_categories)

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in model order: numeric as float64, categorical with the frozen categories."""
        _require(df.columns, self.feature_names)
        out = {c: _as_float(df[c]) for c in self.numeric}
        for column, levels in self.categorical.items():
            out[column] = pd.Categorical.from_codes(_codes_of(df[column], levels), categories=levels)
        return pd.DataFrame(out, index=df.index, columns=self.feature_names)

    def numpy(self, data: pd.DataFrame | pa.Table | pa.RecordBatch | Records, dtype: type = np.float64) -> np.ndarray:
        """A 2-D matrix in model order: numeric values then category codes (NaN for unknown or missing)."""
        if isinstance(data, pd.DataFrame):
            return self._numpy_frame(data, dtype)
        if isinstance(data, pa.Table | pa.RecordBatch):
            return self._numpy_arrow(data, dtype)
        rows = [data] if isinstance(data, Mapping) else list(data)
        out = np.empty((len(rows), len(self.feature_names)), dtype=dtype)
        codes = self.codes()
        for i, row in enumerate(rows):
            missing = [c for c in self.feature_names if c not in row]
            if missing:
                raise DataContractError(f"record {i} lacks fields {missing}; send every feature (None if unknown)")
            for j, column in enumerate(self.numeric):
                out[i, j] = _float_value(row[column], column)
            for j, column in enumerate(self.categorical, start=self.n_numeric):
                out[i, j] = codes[column].get(category_text(row[column]), np.nan)
        return out

    def codes(self) -> dict[str, dict[str, int]]:
        """Per categorical column, category text -> code (built once, reused for record scoring)."""
        if self._codes is None:
            self._codes = {c: {level: k for k, level in enumerate(v)} for c, v in self.categorical.items()}
        return self._codes

    def _numpy_frame(self, df: pd.DataFrame, dtype: type) -> np.ndarray:
        """Matrix of a DataFrame without building categoricals per column twice."""
        _require(df.columns, self.feature_names)
        columns = [_as_float(df[column]).to_numpy() for column in self.numeric]
        columns += [_code_floats(_codes_of(df[column], levels)) for column, levels in self.categorical.items()]
        return fill_rows(np.empty((len(df), len(columns)), dtype=dtype), columns)

    def _numpy_arrow(self, data: pa.Table | pa.RecordBatch, dtype: type) -> np.ndarray:
        """Matrix of an Arrow table or batch: numbers cast, text matched to the levels, other columns as pandas."""
        _require(pd.Index(data.schema.names), self.feature_names)
        columns = []
        for column in self.numeric:
            values = data.column(column)
            if _is_number(values.type):
                columns.append(pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False))
            else:  # text and other types: the frame contract decides what reads as a number
                columns.append(_as_float(pa.table({column: values}).to_pandas()[column]).to_numpy())
        for column, levels in self.categorical.items():
            values = data.column(column)
            if pa.types.is_dictionary(values.type) and _is_text(values.type.value_type):
                values = pc.cast(values, values.type.value_type)
            if _is_text(values.type):
                columns.append(_code_floats(_arrow_codes(values, levels)))
            else:  # numbers, booleans: written as text the way the frame contract writes them
                series = pa.table({column: values}).to_pandas()[column]
                columns.append(_code_floats(_codes_of(series, levels)))
        return fill_rows(np.empty((data.num_rows, len(columns)), dtype=dtype), columns)


def fill_rows(out: np.ndarray, columns: list[np.ndarray], block: int = 4096) -> np.ndarray:
    """Copy 1-D ``columns`` into the columns of the C-ordered ``out``, a block of rows at a time (cache-friendly)."""
    for lo in range(0, len(out), block):
        part = out[lo:lo + block]
        for j, values in enumerate(columns):
            part[:, j] = values[lo:lo + block]
    return out


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
        or pa.types.is_null(kind)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _arrow_codes(values: pa.Array | pa.ChunkedArray, levels: list[str]) -> np.ndarray:
    """Code of each Arrow text value in ``levels`` (-1 for unknown or missing)."""
    codes = pc.index_in(values, value_set=pa.array(levels, values.type))
    return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)


def _code_floats(codes: np.ndarray) -> np.ndarray:
    """Category codes as floats, NaN for -1 (unknown or missing)."""
    return np.where(codes < 0, np.nan, codes)


def _require(columns: pd.Index, needed: list[str]) -> None:
    """Raise a DataContractError naming every needed column that is absent."""
    present = set(columns)
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataContractError(
            f"missing feature columns {missing}; the model was trained on them, so the data must provide them"
        )


def _codes_of(s: pd.Series, levels: list[str]) -> np.ndarray:
    """Code of each value in ``levels`` (-1 for unknown or missing)."""
    index = pd.Index(levels, dtype=object)
    if isinstance(s.dtype, pd.CategoricalDtype):  # text each category once, then map the codes
        categories = pd.Series(s.cat.categories.to_numpy(dtype=object), dtype=object)
        mapped = np.append(_lookup(index, _as_text(categories).to_numpy(dtype=object)), -1)
        return mapped[s.cat.codes.to_numpy()]
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return _arrow_codes(pa.array(s.array), levels)
    text = pd.api.types.infer_dtype(s, skipna=True) == "string" if s.dtype == object else \
        pd.api.types.is_string_dtype(s.dtype)
    if text:  # already text: no per-value conversion
        return _lookup(index, s.to_numpy(dtype=object, na_value=None))
    return _lookup(index, _as_text(s).to_numpy(dtype=object))


def _lookup(index: pd.Index, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent); the values stay objects (no text-dtype inference)."""
    return index.get_indexer(pd.Index(values, dtype=object))


def _is_text_like(s: pd.Series) -> bool:
    """Text, object or category dtype: treated as categorical when not named explicitly."""
    return isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s) or s.dtype == object


def _as_float(s: pd.Series) -> pd.Series:
    """A column as float64 with NaN for missing, or a DataContractError naming it."""
    if s.dtype == np.float64:
        return s  # already what the model reads (to_numeric would copy it for nothing)
    try:
        return pd.to_numeric(s, errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataContractError(f"numeric column {s.name!r} holds non-numbers: {exc}; clean or retype it") from exc


def _as_text(s: pd.Series) -> pd.Series:
    """A column as text categories (whole floats written as integers, so 7.0 and 7 agree), missing kept missing."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_float_dtype(s):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if np.array_equal(finite, np.round(finite)):
            s = s.astype("Int64")
    if s.dtype == object:
        return s.map(category_text, na_action="ignore").astype("string")
    return s.astype("string")


def category_text(value: Any) -> str | None:
    """One category value as text, the same way ``_as_text`` writes a column (the store keeps labels so too); None
    when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _float_value(value: Any, column: str) -> float:
    """One numeric value as float (None → NaN), or a DataContractError naming the field."""
    if value is None or value is pd.NA:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataContractError(f"field {column!r} must be a number or None; got {value!r}") from exc
