"""Validation: one test per kind of bad input; every problem names the column, example rows and a fix."""

from __future__ import annotations

import pandas as pd
import pytest

from fraudcore.dataset import open_dataset
from fraudcore.errors import DataContractError
from fraudcore.infer import infer_spec
from fraudcore.loading import load_frame
from fraudcore.spec import DatasetSpec
from fraudcore.validate import validate
from tests.conftest import write_bytes

SPEC = DatasetSpec(event_id="event_id", event_time="event_time", label="is_fraud", amount="amount",
                   entities=["customer_id"], numeric=["score"])


def frame(**overrides) -> pd.DataFrame:
    base = pd.DataFrame({
        "event_id": [1, 2, 3, 4, 5, 6],
        "event_time": ["2024-01-01 10:00:00"] * 6,
        "customer_id": [7, 7, 8, 8, 9, 9],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        "is_fraud": [0, 0, 1, 0, 0, 0],
        "score": ["1.5", "2.5", "3.5", "4.5", "5.5", "6.5"],
    })
    for col, values in overrides.items():
        base[col] = values
    return base


def only(report, kind):
    found = [p for p in report.problems if p.kind == kind]
    assert len(found) == 1, f"expected one {kind}, got {report.problems}"
    return found[0]


def test_clean_data_has_no_errors():
    report = validate(load_frame(frame()), SPEC)
    assert report.ok, report.problems


def test_non_binary_label():
    p = only(validate(load_frame(frame(is_fraud=[0, 1, 2, 0, "yes", 0])), SPEC), "label_not_binary")
    assert p.column == "is_fraud" and p.rows == [3, 5] and p.count == 2
    assert "'2'" in p.values and "1 = fraud" in p.fix


def test_unparseable_timestamps():
    times = ["2024-01-01 10:00:00", "yesterday", "2024-01-01 12:00:00", "31/31/2024", "2024-01-02", "2024-01-03"]
    p = only(validate(load_frame(frame(event_time=times)), SPEC), "unparseable_time")
    assert p.column == "event_time" and p.rows == [2, 4] and "ISO" in p.fix


def test_numbers_stored_as_text():
    p = only(validate(load_frame(frame(score=["1.5", "2,5", "n/a", "4", "5", "6"])), SPEC), "number_as_text")
    assert p.column == "score" and p.rows == [2, 3] and "decimal commas" in p.fix


def test_all_null_column_with_a_role_is_an_error():
    p = only(validate(load_frame(frame(score=[None] * 6)), SPEC), "all_null")
    assert p.column == "score" and p.severity == "error"


def test_duplicate_event_ids():
    p = only(validate(load_frame(frame(event_id=[1, 2, 2, 4, 5, 5])), SPEC), "duplicate_id")
    assert p.rows == [2, 3, 5, 6] and p.count == 4 and "unique" in p.fix


def test_amounts_too_large_for_features_and_scoring():
    p = only(validate(load_frame(frame(amount=[10.0, 3e15, 30.0, 40.0, 50.0, 60.0])), SPEC), "amount_too_large")
    assert p.column == "amount" and p.rows == [2] and p.severity == "error" and "unit" in p.fix


def test_negative_amounts():
    p = only(validate(load_frame(frame(amount=[10.0, -5.0, 30.0, 40.0, 50.0, 60.0])), SPEC), "negative_amount")
    assert p.rows == [2] and p.values == ["'-5.0'"]


def test_missing_amounts_are_a_warning_naming_the_rows():
    report = validate(load_frame(frame(amount=[10.0, None, 30.0, None, 50.0, 60.0])), SPEC)
    p = only(report, "amount_missing")
    assert p.rows == [2, 4] and p.count == 2 and p.severity == "warning" and "refuses" in p.fix
    assert report.ok  # training may use such rows: the model then learns what a missing amount means


def test_every_problem_is_collected_at_once_and_raised_together():
    bad = frame(is_fraud=[0, 3, 0, 0, 0, 0], event_id=[1, 1, 3, 4, 5, 6], amount=[-1.0, 2, 3, 4, 5, 6],
                event_time=["x"] + ["2024-01-01"] * 5)
    report = validate(load_frame(bad), SPEC)
    kinds = {p.kind for p in report.errors}
    assert {"label_not_binary", "duplicate_id", "negative_amount", "unparseable_time"} <= kinds
    with pytest.raises(DataContractError) as err:
        report.raise_for_errors()
    assert len(err.value.problems) == len(report.errors)
    assert "column 'event_id'" in str(err.value)


def test_missing_spec_column_is_reported():
    report = validate(load_frame(frame().drop(columns=["score"])), SPEC)
    assert only(report, "missing_column").column == "score"


def test_csv_with_several_problems_through_open_dataset(tmp_path):
    text = ("transaction_id,tx_datetime,customer_id,tx_amount,is_fraud\n"
            "1,2024-01-01 10:00:00,5,10.0,0\n2,not a time,5,-3.0,1\n2,2024-01-01 11:00:00,6,7.5,0\n")
    opened = open_dataset(write_bytes(tmp_path, "tx.csv", text.encode()))
    assert opened.spec.event_id == "transaction_id"  # taken by name although it repeats, so duplicates are reported
    kinds = {p.kind for p in opened.report.errors}
    assert {"duplicate_id", "unparseable_time", "negative_amount"} <= kinds
    assert only(opened.report, "duplicate_id").rows == [2, 3]


def test_decimal_commas_in_amount_and_numeric_columns_are_one_problem_each():
    euro = frame(amount=["24,28", "55,26", "1.234,50", "9,64", "31,82", "51,89"],
                 score=["1,5", "2,5", "3,5", "4,5", "5,5", "6,5"])
    ds = load_frame(euro)
    spec = infer_spec(ds, leakage=False)
    assert spec.amount == "amount" and "score" in spec.numeric and "decimal commas" in spec.reasons["amount"]
    problems = [p for p in validate(ds, spec).errors if p.kind == "decimal_comma"]
    assert [p.column for p in problems] == ["amount", "score"]
    assert problems[0].count == 6 and problems[0].rows == [1, 2, 3, 4, 5] and problems[0].values[2] == "'1.234,50'"
    # '1.234,50' has a thousands separator, which no decimal setting reads: re-export, not --decimal ,
    assert "thousands separators" in problems[0].message and "--decimal" not in problems[0].fix
    assert "decimal commas" in problems[1].message and "--decimal ," in problems[1].fix  # '1,5': the option reads it
    us = validate(load_frame(frame(amount=["1,234.50", "2,000.00", "10.0", "20.0", "30.0", "40.0"])), SPEC)
    assert "thousands separators" in only(us, "decimal_comma").message  # US grouping is not a decimal comma
    ambiguous = validate(load_frame(frame(amount=["1,200", "15,000", "10.0", "20.0", "30.0", "40.0"])), SPEC)
    assert "--decimal" not in only(ambiguous, "decimal_comma").fix  # it would read 1.2 and 15.0


def test_amount_named_text_that_is_not_the_amount_is_flagged():
    ds = load_frame(frame(amount=["EUR 10", "EUR 20", "EUR 30", "EUR 40", "EUR 50", "EUR 60"]))
    spec = infer_spec(ds, leakage=False)
    assert spec.amount is None
    p = only(validate(ds, spec), "amount_not_numeric")
    assert p.column == "amount" and p.severity == "warning" and p.count == 6 and p.values[0] == "'EUR 10'"
    assert "currency signs" in p.fix
