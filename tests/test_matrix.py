"""The model input contract: feature order, frozen categories, unknown levels, and records agreeing with frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fraudcore.errors import DataContractError
from fraudcore.matrix import MatrixSpec


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame({
        "channel": ["web", "pos", "web", "atm", None, "web"],
        "amount": [10.0, 25.5, np.nan, 3.0, 7.0, 1.0],
        "mcc": [5411.0, 5812.0, np.nan, 5411.0, 5999.0, 5411.0],
        "n_tx": [1, 2, 3, 4, 5, 6],
    })


@pytest.fixture
def spec(df: pd.DataFrame) -> MatrixSpec:
    return MatrixSpec.fit(df, ["amount", "n_tx"], ["channel", "mcc"])


def test_feature_names_are_numeric_then_categorical(spec: MatrixSpec) -> None:
    assert spec.feature_names == ["amount", "n_tx", "channel", "mcc"]
    assert spec.categorical == {"channel": ["atm", "pos", "web"], "mcc": ["5411", "5812", "5999"]}


def test_rare_levels_beyond_max_categories_become_unknown(df: pd.DataFrame) -> None:
    spec = MatrixSpec.fit(df, ["amount"], ["channel"], max_categories=1)
    assert spec.categorical == {"channel": ["web"]}
    frame = spec.frame(df)
    assert frame["channel"].isna().tolist() == [False, True, False, True, True, False]


def test_frame_types_and_unseen_levels(spec: MatrixSpec, df: pd.DataFrame) -> None:
    new = df.assign(channel=["web", "moto", "pos", "atm", "web", None])
    frame = spec.frame(new[::-1])
    assert list(frame.columns) == spec.feature_names
    assert frame["amount"].dtype == np.float64 and frame["n_tx"].dtype == np.float64
    assert list(frame["channel"].cat.categories) == ["atm", "pos", "web"]
    assert frame["channel"].isna().tolist() == [True, False, False, False, True, False]
    assert frame.index.tolist() == [5, 4, 3, 2, 1, 0]


def test_missing_columns_are_named(spec: MatrixSpec, df: pd.DataFrame) -> None:
    with pytest.raises(DataContractError, match=r"\['n_tx', 'mcc'\]"):
        spec.frame(df.drop(columns=["n_tx", "mcc"]))
    with pytest.raises(DataContractError, match="mcc"):
        spec.numpy({"amount": 1.0, "n_tx": 1, "channel": "web"})


def test_numpy_codes_match_frame_codes(spec: MatrixSpec, df: pd.DataFrame) -> None:
    A = spec.numpy(df)
    frame = spec.frame(df)
    expected_codes = frame["channel"].cat.codes.to_numpy().astype(float)
    expected_codes[expected_codes < 0] = np.nan
    np.testing.assert_array_equal(A[:, 2], expected_codes)
    np.testing.assert_array_equal(A[:, 0], frame["amount"].to_numpy())
    assert A.dtype == np.float64 and spec.numpy(df, dtype=np.float32).dtype == np.float32


def test_records_give_the_same_matrix_as_the_frame(spec: MatrixSpec, df: pd.DataFrame) -> None:
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    records[0]["mcc"] = 5411  # an integer from a JSON event must match the float column it was trained on
    np.testing.assert_array_equal(spec.numpy(records), spec.numpy(df))
    np.testing.assert_array_equal(spec.numpy(records[1]), spec.numpy(df.iloc[[1]]))


def test_json_round_trip_keeps_the_contract(spec: MatrixSpec, df: pd.DataFrame) -> None:
    again = MatrixSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    np.testing.assert_array_equal(again.numpy(df), spec.numpy(df))


def test_non_numbers_in_numeric_columns_are_rejected(spec: MatrixSpec, df: pd.DataFrame) -> None:
    with pytest.raises(DataContractError, match="amount"):
        spec.frame(df.assign(amount=["1", "x", "2", "3", "4", "5"]))
    with pytest.raises(DataContractError, match="amount"):
        spec.numpy({"amount": "ten", "n_tx": 1, "channel": "web", "mcc": 1})


def test_infer_uses_dtypes_unless_told(df: pd.DataFrame) -> None:
    spec = MatrixSpec.infer(df)
    assert spec.numeric == ["amount", "mcc", "n_tx"] and list(spec.categorical) == ["channel"]
    told = MatrixSpec.infer(df, categorical=["channel", "mcc"])
    assert told.numeric == ["amount", "n_tx"] and list(told.categorical) == ["channel", "mcc"]
    with pytest.raises(DataContractError, match="when"):
        MatrixSpec.infer(df.assign(when=pd.Timestamp("2024-01-01")))


def test_duplicate_columns_are_refused() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        MatrixSpec(numeric=["a"], categorical={"a": ["x"]})
