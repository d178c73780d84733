"""Loader: CSV/Parquet from paths and bytes; unreadable files give clear errors that say what to do."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudcore.errors import DataContractError
from fraudcore.loading import load_bytes, load_dataset, load_frame
from tests.conftest import write_bytes

GOOD = "event_id,event_time,amount,is_fraud\n1,2024-01-01 10:00:00,12.5,0\n2,2024-01-01 11:00:00,99.0,1\n"


def test_utf8_bom_and_crlf_load_cleanly(tmp_path):
    data = b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()
    ds = load_dataset(write_bytes(tmp_path, "bom.csv", data))
    assert list(ds.columns) == ["event_id", "event_time", "amount", "is_fraud"]
    assert ds.n_rows == 2
    assert ds.columns["event_time"].startswith("TIMESTAMP")
    assert ds.frame()["amount"].tolist() == [12.5, 99.0]


def test_semicolon_file_is_auto_detected(tmp_path):
    ds = load_dataset(write_bytes(tmp_path, "semi.csv", GOOD.replace(",", ";").encode()))
    assert ds.n_rows == 2 and "amount" in ds.columns


def test_wrong_delimiter_names_the_likely_one(tmp_path):
    path = write_bytes(tmp_path, "tabs.csv", GOOD.replace(",", "\t").encode())
    with pytest.raises(DataContractError) as err:
        load_dataset(path, delimiter=",")
    assert "tab" in str(err.value) and "delimiter" in str(err.value)


def test_ragged_rows_are_reported_not_read_as_one_column(tmp_path):
    path = write_bytes(tmp_path, "ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataContractError, match=r"row 2: 3 fields, '3,4,5'"):
        load_dataset(path)


def _rows(n: int, ragged_row: int) -> bytes:
    """GOOD's columns over ``n`` data rows; data row ``ragged_row`` has two extra fields."""
    rows = [f"{i},2024-01-01 10:00:00,{i}.5,0" + (",extra,fields" if i == ragged_row else "") for i in range(1, n + 1)]
    return ("\n".join([GOOD.splitlines()[0], *rows]) + "\n").encode()


@pytest.mark.parametrize("delimiter", [None, ","])
def test_one_ragged_row_is_named_not_blamed_on_delimiter_or_encoding(tmp_path, delimiter):
    path = write_bytes(tmp_path, "ragged.csv", _rows(2000, ragged_row=4))
    with pytest.raises(DataContractError) as err:
        load_dataset(path, delimiter=delimiter)
    message = str(err.value)
    assert "1 row(s) do not have the header's 4 fields" in message and "row 4: 6 fields" in message
    assert "Quote fields" in message and "utf-8" not in message and "single column" not in message


def test_ragged_row_past_the_sniffed_sample_is_named(tmp_path):
    with pytest.raises(DataContractError, match=r"row 30000: 6 fields"):
        load_dataset(write_bytes(tmp_path, "late.csv", _rows(30_000, ragged_row=30_000)))


def test_non_utf8_file_says_how_to_fix(tmp_path):
    path = write_bytes(tmp_path, "latin.csv", "id,city\n1,Liège\n2,Köln\n".encode("latin-1"))
    with pytest.raises(DataContractError) as err:
        load_dataset(path)
    assert "UTF-8" in str(err.value) and "latin-1" in str(err.value)
    assert load_dataset(path, encoding="latin-1").frame()["city"].tolist() == ["Liège", "Köln"]


def test_empty_file_and_header_only_file(tmp_path):
    with pytest.raises(DataContractError, match="empty"):
        load_dataset(write_bytes(tmp_path, "empty.csv", b""))
    with pytest.raises(DataContractError, match="no data rows"):
        load_dataset(write_bytes(tmp_path, "header.csv", b"event_id,amount\n"))


def test_missing_file(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        load_dataset(tmp_path / "nope.parquet")


def test_parquet_and_corrupt_parquet(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3], "amount": [1.0, 2.0, 3.0]})
    frame.to_parquet(tmp_path / "ok.parquet")
    assert load_dataset(tmp_path / "ok.parquet").n_rows == 3
    with pytest.raises(DataContractError, match="Parquet"):
        load_dataset(write_bytes(tmp_path, "bad.parquet", b"PAR1 not really parquet"))


def test_uploaded_bytes_are_saved_once_and_loaded(tmp_path):
    folder = tmp_path / "uploads"
    first = load_bytes(GOOD.encode(), "../../evil name.csv", folder)
    second = load_bytes(GOOD.encode(), "../../evil name.csv", folder)
    saved = list(folder.iterdir())
    assert len(saved) == 1 and saved[0].parent == folder and ".." not in saved[0].name
    assert first.n_rows == second.n_rows == 2


def test_frame_rows_keep_file_order(tmp_path):
    frame = pd.DataFrame({"x": range(1000, 0, -1)})
    ds = load_frame(frame)
    assert ds.frame()["x"].tolist() == list(range(1000, 0, -1))
    assert ds.frame(limit=3)["x"].tolist() == [1000, 999, 998]


def test_bad_value_past_the_type_sample_becomes_a_validation_problem(tmp_path):
    from fraudcore.dataset import open_dataset

    lines = ["event_id,amount,is_fraud"] + [f"{i},{i * 1.5},0" for i in range(30_000)] + ["30000,abc,1"]
    opened = open_dataset(write_bytes(tmp_path, "late.csv", ("\n".join(lines) + "\n").encode()))
    assert opened.data.n_rows == 30_001 and opened.spec.amount == "amount"
    problem = next(p for p in opened.report.errors if p.kind == "number_as_text")
    assert problem.column == "amount" and problem.rows == [30_001] and problem.values == ["'abc'"]


def test_european_csv_keeps_its_amount_flagged_or_read_with_decimal_comma(tmp_path):
    from fraudcore.dataset import open_dataset

    path = write_bytes(tmp_path, "euro.csv", GOOD.replace(",", ";").replace("12.5", "12,5").replace("99.0", "99,0")
                       .encode())
    opened = open_dataset(path)
    assert opened.spec.amount == "amount"
    problem = next(p for p in opened.report.errors if p.kind == "decimal_comma")
    assert problem.column == "amount" and problem.rows == [1, 2] and problem.values == ["'12,5'", "'99,0'"]
    read = open_dataset(path, decimal=",")
    assert read.data.frame()["amount"].tolist() == [12.5, 99.0] and read.report.ok
    with pytest.raises(DataContractError, match="cannot also be its decimal separator"):
        load_dataset(write_bytes(tmp_path, "comma.csv", GOOD.encode()), decimal=",")
