"""The simulator: determinism, exact sizes, exact continuation, the column contract and each fraud signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudcore import simulate
from fraudcore.errors import DataContractError
from fraudcore.simulate import (
    COLUMNS,
    Cursor,
    World,
    compromised_terminals,
    continue_from,
    cursor_after,
    customers,
    default_world,
    generate,
    generate_days,
    read_world,
    world_for_rows,
    write_parquet,
)

ROWS = 100_000


@pytest.fixture(scope="module")
def world() -> World:
    return default_world(7)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return generate(rows=ROWS, seed=7)


@pytest.fixture(scope="module")
def legit_median(df: pd.DataFrame) -> pd.Series:
    return df[df["fraud_scenario"] == 0].groupby("customer_id")["amount"].median()


@pytest.fixture(scope="module")
def home(world: World) -> pd.Series:
    return customers(world).set_index("customer_id")["home_country"]


def test_columns_dtypes_and_values(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == COLUMNS
    for col in ("event_id", "customer_id", "card_id", "terminal_id"):
        assert df[col].dtype == np.int64, col
    assert df["event_time"].dtype.kind == "M"
    assert df["amount"].dtype == np.float64 and (df["amount"] > 0).all()
    assert (df["amount"] == df["amount"].round(2)).all()
    for col in ("merchant_category", "channel", "country", "device_id"):
        assert pd.api.types.is_string_dtype(df[col]), col
    assert df["is_fraud"].dtype == np.int8 and df["fraud_scenario"].dtype == np.int8
    assert set(df["channel"]) == {"pos", "ecom"}
    assert df["country"].str.len().eq(2).all()
    assert df.loc[df["channel"] == "pos", "device_id"].isna().all()
    assert df.loc[df["channel"] == "ecom", "device_id"].notna().all()
    assert df["merchant_category"].nunique() >= 8


def test_time_sorted_ids_unique_and_inside_their_day(df: pd.DataFrame, world: World) -> None:
    assert df["event_time"].is_monotonic_increasing
    assert df["event_id"].is_unique and df["event_id"].is_monotonic_increasing
    day_of_time = (df["event_time"] - pd.Timestamp(world.start)).dt.days
    assert (day_of_time == df["event_id"] // simulate.IDS_PER_DAY).all()


def test_deterministic_for_a_seed() -> None:
    a, b = generate(rows=20_000, seed=3), generate(rows=20_000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    other = generate(rows=20_000, seed=4)
    assert not a["amount"].equals(other["amount"])


@pytest.mark.parametrize("rows", [0, 1, 12_345, 20_000])
def test_exact_row_count(rows: int) -> None:
    assert len(generate(rows=rows)) == rows


def test_continuation_equals_one_longer_run(world: World) -> None:
    first = generate(rows=30_000)
    assert cursor_after(first).index > 0  # the cut falls inside a day
    second = continue_from((world, cursor_after(first)), rows=25_000)
    third = continue_from((world, cursor_after(second)), rows=1)
    joined = pd.concat([first, second, third], ignore_index=True)
    pd.testing.assert_frame_equal(joined, generate(rows=55_001))


def test_continuation_through_parquet(tmp_path, world: World) -> None:
    first = generate(rows=21_000)
    path = write_parquet(first, tmp_path / "demo.parquet", world)
    pd.testing.assert_frame_equal(pd.read_parquet(path), first)
    stored, cursor = read_world(path)
    assert stored == world and cursor == cursor_after(first)
    joined = pd.concat([first, continue_from(path, rows=9_000)], ignore_index=True)
    pd.testing.assert_frame_equal(joined, generate(rows=30_000))


def test_continuation_by_days(world: World) -> None:
    first = generate(days=3)
    assert cursor_after(first).day == 2
    rest = continue_from((world, cursor_after(first)), days=2)
    assert set(rest["event_id"] // simulate.IDS_PER_DAY) == {3, 4}
    pd.testing.assert_frame_equal(pd.concat([first, rest], ignore_index=True), generate(days=5))
    pd.testing.assert_frame_equal(generate_days(world, 3, 2), rest)


def test_generate_to_file_records_a_resumable_cursor(tmp_path, world: World) -> None:
    info = simulate.generate_to_file(tmp_path / "d.parquet", rows=5_000)
    assert info["rows"] == 5_000 and sum(info["by_scenario"].values()) >= 0
    stored, cursor = read_world(tmp_path / "d.parquet")
    assert stored == world and cursor == Cursor(*info["cursor"])
    assert continue_from(tmp_path / "d.parquet", rows=10)["event_id"].iloc[0] == cursor.day * 10_000_000 + cursor.index


def test_read_world_rejects_foreign_parquet(tmp_path) -> None:
    path = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    with pytest.raises(DataContractError, match="simulator"):
        read_world(path)
    with pytest.raises(DataContractError):
        read_world(tmp_path / "missing.parquet")


def test_world_round_trip_and_sizing() -> None:
    w = world_for_rows(1_000_000, seed=11)
    assert World.from_dict(w.to_dict()) == w
    assert w.n_customers > world_for_rows(100_000, seed=11).n_customers
    with pytest.raises(ValueError):
        generate()


def test_label_and_fraud_rate(df: pd.DataFrame) -> None:
    assert (df["is_fraud"] == (df["fraud_scenario"] > 0)).all()
    assert 0.002 <= df["is_fraud"].mean() <= 0.02
    assert set(df["fraud_scenario"].unique()) == {0, 1, 2, 3, 4, 5}


def test_compromised_terminals_are_all_fraud_for_a_stretch(df: pd.DataFrame, world: World) -> None:
    day = df["event_id"] // simulate.IDS_PER_DAY
    expected = np.zeros(len(df), dtype=bool)
    for d in np.unique(day):
        rows = (day == d).to_numpy()
        expected[rows] = df.loc[rows, "terminal_id"].isin(compromised_terminals(world, int(d))).to_numpy()
    assert expected.sum() > 50
    assert (df.loc[expected, "is_fraud"] == 1).all()
    assert (expected[df["fraud_scenario"] == 1]).all()
    active = np.zeros((60, world.n_terminals), dtype=bool)
    for d in range(60):
        active[d, compromised_terminals(world, d)] = True
    for terminal in np.flatnonzero(active.any(axis=0)):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], active[:, terminal].astype(int), [0]])))
        for start, end in zip(edges[::2], edges[1::2]):
            if start > 0 and end < 60:
                assert end - start >= 7, (terminal, start, end)


def test_compromised_cards_spend_large_and_mostly_online(df: pd.DataFrame, legit_median, home) -> None:
    fraud = df[df["fraud_scenario"] == 2]
    ratio = fraud["amount"] / fraud["customer_id"].map(legit_median)
    assert ratio.min() > 1.5 and ratio.median() >= 4
    assert (fraud["channel"] == "ecom").mean() > 0.6
    assert (fraud["country"] != fraud["customer_id"].map(home)).mean() > 0.4


def test_card_testing_tiny_amounts_then_a_large_one(df: pd.DataFrame) -> None:
    fraud = df[df["fraud_scenario"] == 3]
    bursts = 0
    for _, card in fraud.groupby("card_id"):
        tiny = []
        for when, amount, channel in zip(card["event_time"], card["amount"], card["channel"]):
            assert channel == "ecom"
            if amount <= 3.0:
                tiny.append((when, amount))
                continue
            assert 3 <= len(tiny) <= 10
            assert amount >= 30 and amount > 10 * max(a for _, a in tiny)
            assert when - tiny[0][0] < pd.Timedelta(hours=1)
            bursts, tiny = bursts + 1, []
        assert not tiny  # every burst ends with the large purchase
    assert bursts >= 5


def test_account_takeover_new_device_abroad(df: pd.DataFrame, legit_median, home) -> None:
    fraud = df[df["fraud_scenario"] == 4]
    assert (fraud["channel"] == "ecom").all()
    assert (fraud["country"] != fraud["customer_id"].map(home)).all()
    legit = df[df["fraud_scenario"] == 0]
    legit_devices = set(zip(legit["customer_id"], legit["device_id"]))
    assert not any(pair in legit_devices for pair in zip(fraud["customer_id"], fraud["device_id"]))
    owners = df.dropna(subset=["device_id"]).groupby("device_id")["customer_id"].nunique()
    assert (owners[fraud["device_id"].unique()] == 1).all()  # nobody else ever used it
    assert (fraud["amount"] / fraud["customer_id"].map(legit_median)).median() > 2.5


def test_abnormal_amounts_far_above_habit(df: pd.DataFrame, legit_median) -> None:
    fraud = df[df["fraud_scenario"] == 5]
    assert (fraud["amount"] / fraud["customer_id"].map(legit_median) >= 4).all()
    legit = df[df["fraud_scenario"] == 0]
    usual = set(zip(legit["customer_id"], legit["device_id"].fillna("")))
    online = fraud[fraud["channel"] == "ecom"]
    assert np.mean([pair in usual for pair in zip(online["customer_id"], online["device_id"])]) > 0.9


def test_legit_habits(df: pd.DataFrame, home) -> None:
    legit = df[df["fraud_scenario"] == 0]
    pos = legit[legit["channel"] == "pos"]
    assert (pos["country"] == pos["customer_id"].map(home)).mean() > 0.9  # terminals near home
    assert (legit["event_time"].dt.hour < 6).mean() < 0.06  # fewer at night
    per_day = legit.groupby(legit["event_time"].dt.normalize()).size()
    sundays = per_day[per_day.index.day_of_week == 6].mean()
    assert sundays < 0.9 * per_day[per_day.index.day_of_week < 5].mean()
    spend = legit.groupby("customer_id")["amount"].median()
    assert spend.quantile(0.9) > 2 * spend.quantile(0.1)  # customers differ


def test_bench_generate_reports() -> None:
    out = simulate.bench_generate(rows=10_000)
    assert out["rows"] == 10_000 and out["rows_per_s"] > 0
    assert set(out["by_scenario"]) == {"compromised_terminal", "compromised_card", "card_testing",
                                       "account_takeover", "abnormal_amount"}
