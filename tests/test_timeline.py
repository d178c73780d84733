"""Split timeline: volume per period and bands for train / validation / test, label-delay gaps and unused days."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from fraudcore.dataset import open_dataset
from fraudcore.errors import DataContractError, FraudcoreError
from fraudcore.simulate import generate_to_file
from fraudcore.split import SplitPlan
from fraudcore.timeline import GAP, MIXED, UNUSED, default_dates, event_times, period_for, split_preview


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("timeline") / "events.parquet"
    generate_to_file(path, rows=8_000, seed=3)
    return event_times(open_dataset(path))


def test_event_times_are_in_time_order_with_labels(frame):
    assert list(frame.columns) == ["time", "label"] and len(frame) == 8_000
    assert frame["time"].is_monotonic_increasing and set(frame["label"]) == {0, 1}


def test_time_split_bands_cover_the_parts_in_order(frame):
    preview = split_preview(frame, SplitPlan(valid_size=0.2, test_size=0.2))
    assert list(preview.bands["band"]) == ["train", "validation", "test"]
    parts = preview.parts.set_index("part")
    assert parts["rows"].sum() == 8_000 and parts.loc["test", "rows"] == pytest.approx(1_600, abs=5)
    assert parts.loc["train", "end"] < parts.loc["validation", "start"] <= parts.loc["test", "start"]
    assert preview.volume["events"].sum() == 8_000 and preview.volume["frauds"].sum() == frame["label"].sum()
    assert "no label-delay gap" in preview.label


def test_label_delay_shows_as_gaps_holding_the_rows_left_out(frame):
    preview = split_preview(frame, SplitPlan(valid_size=0.3, delay_days=0.1))
    bands = preview.bands
    assert list(bands["band"]) == ["train", GAP, "validation", GAP, "test"]
    assert bands["rows"].sum() == 8_000  # every row is in exactly one band
    assert bands.loc[bands["band"] == GAP, "rows"].sum() == 8_000 - preview.parts["rows"].sum() > 0
    assert "0.1-day label delay" in preview.label


def test_dates_split_marks_unused_days_and_random_split_is_one_mixed_band(frame):
    start = frame["time"].min().normalize()
    day = pd.Timedelta(days=1)  # the 8k events span three calendar days: train on the first, test on the third
    plan = SplitPlan(kind="dates", train_start=start, train_end=start, test_start=start + 2 * day,
                     test_end=start + 2 * day)
    bands = split_preview(frame, plan).bands.set_index("band")
    assert list(bands.index) == ["train", "validation", UNUSED, "test"]
    assert bands["rows"].sum() == 8_000
    assert bands.loc[UNUSED, "rows"] == ((frame["time"] >= start + day) & (frame["time"] < start + 2 * day)).sum()
    mixed = split_preview(frame, SplitPlan(kind="random"))
    assert list(mixed.bands["band"]) == [MIXED] and "NOT time-ordered" in mixed.label


def test_impossible_splits_and_missing_roles_say_what_to_do(frame, tmp_path):
    late = frame["time"].max() + pd.Timedelta(days=10)
    plan = SplitPlan(kind="dates", train_start=datetime(2020, 1, 1), train_end=datetime(2020, 1, 2),
                     test_start=late, test_end=late)
    with pytest.raises(FraudcoreError, match="no rows between train_start"):
        split_preview(frame, plan)
    path = tmp_path / "nolabel.csv"
    path.write_text("id,when,amount\n1,2025-01-01 10:00:00,5\n2,2025-01-02 10:00:00,7\n")
    with pytest.raises(DataContractError, match="no label column"):
        event_times(open_dataset(path))


def test_period_width_follows_the_span():
    assert period_for(pd.Timedelta(days=5)) == "h"
    assert period_for(pd.Timedelta(days=90)) == "D"
    assert period_for(pd.Timedelta(days=400)) == "W"


def test_default_dates_test_the_last_quarter_of_days(frame):
    first, train_end, test_start, last = default_dates(frame)
    assert first == frame["time"].min().date() and last == frame["time"].max().date()
    assert train_end < test_start <= last and (test_start - train_end).days == 1
    one_day = pd.DataFrame({"time": pd.to_datetime(["2025-01-01 01:00", "2025-01-01 05:00"]), "label": [0, 1]})
    start, end, test_from, test_to = default_dates(one_day)
    assert start == end and test_from > test_to  # one day cannot be split by dates: the plan will say so
