"""The array path of the batch features gives the SQL path's values bit for bit, and says when it cannot."""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraudcore import features_batch
from fraudcore.features import FeatureConfig, feature_names
from fraudcore.features_arrays import event_arrays, point_in_time
from fraudcore.features_batch import build_features
from fraudcore.simulate import generate, world_for_rows
from tests.test_features import T, _config


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """4,000 events on a minute grid: shuffled text ids, same-entity ties, missing entities, amounts and labels."""
    rng = np.random.default_rng(21)
    n = 4000
    ts = (T + pd.to_timedelta(rng.integers(0, 20 * 1440, n), unit="min")).to_numpy().copy()
    card = rng.integers(0, 50, n).astype(float)
    twins = rng.choice(n, 600, replace=False)
    ts[twins[:300]], card[twins[:300]] = ts[twins[300:]], card[twins[300:]]  # same card at the same time
    card[rng.choice(n, 40, replace=False)] = np.nan
    shop = np.array([f"s{i}" for i in rng.integers(0, 15, n)], dtype=object)
    shop[rng.choice(n, 25, replace=False)] = None
    amt = rng.gamma(2.0, 30.0, n).round(2)
    amt[rng.choice(n, 50, replace=False)] = np.nan
    fraud = pd.array(rng.random(n) < 0.1, dtype="Int64")
    fraud[rng.choice(n, 70, replace=False)] = pd.NA
    return pd.DataFrame({"tx": [f"e{i}" for i in rng.permutation(n)], "ts": ts,
                         "card": pd.array(card, dtype="Int64"), "shop": shop, "amt": amt, "fraud": fraud})


def _both_paths(frame: pd.DataFrame, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(SQL path, array path) features as float matrices in the frame's row order; None when arrays decline."""
    con = duckdb.connect()
    try:
        con.register("src", frame.assign(__row=np.arange(len(frame))))
        sql = build_features(con, "src", config).df().sort_values("__row")
        expected = sql[feature_names(config)].to_numpy(dtype=np.float64, na_value=np.nan)
        fetched = event_arrays(con, "src", config, keep=("__row",))
    finally:
        con.close()
    if fetched is None:
        return expected, None
    arrays, kept = fetched
    features = point_in_time(arrays, config)
    assert list(features) == feature_names(config)
    got = np.column_stack(list(features.values()))
    return expected, got[np.argsort(kept.column("__row").to_numpy())]


def _assert_identical(expected: np.ndarray, got: np.ndarray | None) -> None:
    assert got is not None
    np.testing.assert_array_equal(got, expected)  # NaN where NULL, every other value bit-identical
    assert np.isnan(expected).any() and (expected != 0).any()


@pytest.mark.parametrize("overrides", [
    {},
    {"windows": ("30s", "1h", "3d"), "risk_windows": ("12h",), "label_delay": "1d", "risk_entities": ("shop",)},
    {"amount": None, "label": None},
    {"entities": ("shop",), "amount_ratio": False, "recency": False, "calendar": ("weekend",)},
])
def test_array_features_equal_sql_features(events, overrides):
    _assert_identical(*_both_paths(events, _config(**overrides)))


def test_row_order_and_integer_ids_do_not_matter(events):
    shuffled = events.sample(frac=1.0, random_state=2).assign(tx=lambda f: np.arange(len(f))[::-1] * 7)
    _assert_identical(*_both_paths(shuffled, _config()))


@pytest.mark.parametrize("kind", ["seconds", "tz-aware", "before 1970"])
def test_other_time_encodings(events, kind):
    config = _config()
    if kind == "seconds":
        frame = events.assign(ts=(events["ts"] - T).dt.total_seconds() + 0.25)
        config = dataclasses.replace(config, time_unit="seconds", time_origin=T.to_pydatetime())
    elif kind == "tz-aware":
        frame = events.assign(ts=events["ts"].dt.tz_localize("Europe/Brussels"))
    else:  # negative microseconds: hours and weekdays still taken as floor divisions
        frame = events.assign(ts=events["ts"] - pd.Timedelta(days=365 * 60 + 3, minutes=7))
    _assert_identical(*_both_paths(frame, config))


def test_simulated_events_agree(tmp_path):
    frame = generate(rows=20_000, world=world_for_rows(20_000, seed=3, days=40))
    config = FeatureConfig(event_id="event_id", event_time="event_time", amount="amount", label="is_fraud",
                           entities=("customer_id", "card_id", "terminal_id", "device_id"))
    _assert_identical(*_both_paths(frame, config))


@pytest.mark.parametrize("change", ["huge amounts", "fractional labels", "float entity"])
def test_arrays_decline_what_only_sql_reproduces(events, change, monkeypatch):
    frame = {"huge amounts": events.assign(amt=events["amt"] * 1e8),
             "fractional labels": events.assign(fraud=np.linspace(0, 1, len(events)).round(3)),
             "float entity": events.assign(card=events["card"].astype(float))}[change]
    expected, got = _both_paths(frame, _config())
    assert got is None and expected.shape == (len(events), len(feature_names(_config())))
    monkeypatch.setattr(features_batch, "_PACK_LIMIT", 0)  # the same switch the SQL path reads
    assert _both_paths(events, _config())[1] is None


def test_wide_time_spans_and_many_entities_agree():
    """Two centuries of events with 40k distinct cards: entity keys too wide for raw times (time ranks are used) and
    codes beyond one 15-bit sort digit."""
    rng = np.random.default_rng(8)
    n = 60_000
    ts = pd.Timestamp("1900-01-01") + pd.to_timedelta(rng.integers(0, 200 * 365 * 24, n), unit="h")
    frame = pd.DataFrame({"tx": rng.permutation(n), "ts": ts, "card": rng.integers(0, 40_000, n),
                          "shop": rng.integers(0, 5, n), "amt": rng.gamma(2.0, 30.0, n).round(2),
                          "fraud": (rng.random(n) < 0.1).astype(int)})
    frame.loc[rng.choice(n, 5000, replace=False), "ts"] = frame["ts"].iloc[0]  # many ties on one instant
    _assert_identical(*_both_paths(frame, _config(windows=("1d", "3650d"), risk_windows=("30d",))))
