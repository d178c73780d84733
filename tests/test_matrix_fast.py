"""The vectorised frame and Arrow paths of MatrixSpec.numpy give the matrix of the per-column reference path
(the implementation they replaced, kept here) on mixed inputs, and the same clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fraudcore.errors import DataContractError
from fraudcore.matrix import MatrixSpec, _as_float, _as_text, fill_rows

LEVELS = {"channel": ["atm", "pos", "web"], "mcc": ["5411", "5812", "7", "7.5"], "flag": ["False", "True"],
          "size": ["1", "2"]}


def _reference(spec: MatrixSpec, df: pd.DataFrame) -> np.ndarray:
    """The frame path as it was: a float column per numeric, text codes per categorical, written column by column."""
    out = np.empty((len(df), len(spec.feature_names)))
    for j, column in enumerate(spec.numeric):
        out[:, j] = _as_float(df[column]).to_numpy()
    for j, (column, levels) in enumerate(spec.categorical.items(), start=spec.n_numeric):
        code = pd.Index(levels, dtype=object).get_indexer(_as_text(df[column]).to_numpy(dtype=object))
        out[:, j] = np.where(code < 0, np.nan, code)
    return out


@pytest.fixture
def spec() -> MatrixSpec:
    return MatrixSpec(numeric=["amount", "count", "maybe", "paid", "text_number"], categorical=LEVELS)


@pytest.fixture
def mixed() -> pd.DataFrame:
    """Every input type a frame brings: NaN, None, pd.NA, unknown levels, numbers as text, whole and other floats."""
    n = 9000
    rng = np.random.default_rng(1)
    channel = rng.choice(np.array(["atm", "pos", "web", "moto", None], dtype=object), n)
    mcc = rng.choice(np.array([5411.0, 5812.0, 7.0, 7.5, np.nan, 99.0]), n)
    return pd.DataFrame({
        "amount": rng.gamma(2.0, 20.0, n), "count": rng.integers(0, 9, n),
        "maybe": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 5, n)), dtype="Int64"),
        "paid": rng.random(n) < 0.5, "text_number": rng.integers(0, 100, n).astype(str).astype(object),
        "channel": pd.Series(channel, dtype="str"), "mcc": mcc, "flag": rng.random(n) < 0.3,
        "size": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(1, 4, n)), dtype="Int64"),
    })


def _variants(mixed: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same rows with the categorical columns held as object, category, mixed object and string dtypes."""
    channel, mcc = mixed["channel"], mixed["mcc"]
    mixed_objects = mcc.astype(object).where(mcc.index % 3 != 0, mcc.map(lambda v: None if v != v else str(v)))
    return {
        "str dtype": mixed,
        "object text": mixed.assign(channel=channel.astype(object)),
        "object text with NaN": mixed.assign(channel=channel.astype(object).where(channel.notna(), np.nan)),
        "category": mixed.assign(channel=channel.astype("category"), mcc=mcc.astype("category")),
        "category unused levels": mixed.assign(channel=pd.Categorical(channel.where(channel.isin(["web", "atm"])),
                                                                      categories=["zz", "web", "atm"])),
        "python string dtype": mixed.assign(channel=channel.astype("string[python]")),
        "mixed objects": mixed.assign(mcc=mixed_objects, size=mixed["size"].astype(object)),
        "whole floats": mixed.assign(mcc=mcc.where(mcc != 7.5, 7.0)),
        "reversed index": mixed.iloc[::-1],
        "empty": mixed.iloc[:0],
    }


@pytest.mark.parametrize("variant", ["str dtype", "object text", "object text with NaN", "category",
                                     "category unused levels", "python string dtype", "mixed objects", "whole floats",
                                     "reversed index", "empty"])
def test_frame_matrix_equals_the_reference(spec, mixed, variant):
    frame = _variants(mixed)[variant]
    expected = _reference(spec, frame)
    got = spec.numpy(frame)
    np.testing.assert_array_equal(got, expected)
    assert got.flags.c_contiguous and got.dtype == np.float64 and spec.numpy(frame, np.float32).dtype == np.float32
    if len(frame):
        assert np.isnan(got[:, -4:]).any() and (got[:, -4:] >= 1).any()  # unknown/missing and real codes both seen


def test_arrow_matrix_equals_the_frame_matrix(spec, mixed):
    table = pa.Table.from_pandas(mixed.assign(paid=mixed["paid"].astype(np.int8)), preserve_index=False)
    reference = _reference(spec, mixed)
    as_dictionary = table.set_column(table.schema.get_field_index("channel"), "channel",
                                     table.column("channel").dictionary_encode())
    large = table.set_column(table.schema.get_field_index("channel"), "channel",
                             table.column("channel").cast(pa.large_string()))
    chunked = pa.concat_tables([table.slice(0, 1000), table.slice(1000)])
    for name, data in {"table": table, "dictionary": as_dictionary, "large strings": large, "chunks": chunked,
                       "batch": table.combine_chunks().to_batches()[0]}.items():
        np.testing.assert_array_equal(spec.numpy(data), reference, err_msg=name)


@pytest.mark.parametrize("kind", ["frame", "arrow"])
def test_non_numbers_and_missing_columns_are_named(spec, mixed, kind):
    bad = mixed.assign(text_number=mixed["text_number"].where(mixed.index != 4321, "12 EUR"))
    data = bad if kind == "frame" else pa.Table.from_pandas(bad, preserve_index=False)
    with pytest.raises(DataContractError, match=r"'text_number' holds non-numbers.*12 EUR"):
        spec.numpy(data)
    narrow = mixed.drop(columns=["mcc", "count"])
    with pytest.raises(DataContractError, match=r"missing feature columns \['count', 'mcc'\]"):
        spec.numpy(narrow if kind == "frame" else pa.Table.from_pandas(narrow, preserve_index=False))


def test_fill_rows_crosses_block_edges():
    columns = [np.arange(10_001, dtype=float) * (j + 1) for j in range(3)]
    out = fill_rows(np.empty((10_001, 3)), columns, block=4096)
    np.testing.assert_array_equal(out, np.column_stack(columns))
