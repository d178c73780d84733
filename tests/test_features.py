"""Point-in-time features: handbook reproduction, online = batch, no leakage, hand-computed values."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fraudcore import features_batch
from fraudcore.errors import DataContractError, FraudcoreError
from fraudcore.features import FeatureConfig, feature_names, handbook_spec, history_lookback
from fraudcore.features_batch import build_features, build_features_file, build_features_frame
from fraudcore.features_online import online_features
from fraudcore.spec import DatasetSpec

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HANDBOOK_RAW = SHARED_DATA / "handbook_raw.parquet"
HANDBOOK_REF = SHARED_DATA / "handbook_features_first45d.parquet"
T = pd.Timestamp("2024-01-06 05:00:00")  # a Saturday


def _config(**overrides) -> FeatureConfig:
    """A small config over the synthetic columns."""
    base = dict(event_id="tx", event_time="ts", amount="amt", label="fraud", entities=("card", "shop"),
                windows=("1h", "1d", "7d"), risk_windows=("1d", "7d"), label_delay="2d")
    return FeatureConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """3,000 events on a 10-minute grid over 30 days: shuffled string ids, forced same-entity ties, gaps in data."""
    rng = np.random.default_rng(11)
    n = 3000
    ts = T + pd.to_timedelta(rng.integers(0, 30 * 144, n) * 10, unit="min")
    card = rng.integers(0, 40, n).astype(float)
    shop = rng.integers(0, 12, n)
    twins = rng.choice(n, 300, replace=False)
    ts = ts.to_numpy().copy()
    ts[twins[:150]], card[twins[:150]] = ts[twins[150:]], card[twins[150:]]  # same card, same time
    card[rng.choice(n, 30, replace=False)] = np.nan
    amt = rng.gamma(2.0, 30.0, n).round(2)
    amt[rng.choice(n, 40, replace=False)] = np.nan
    fraud = pd.array(rng.random(n) < 0.1, dtype="Int64")
    fraud[rng.choice(n, 60, replace=False)] = pd.NA
    ids = [f"e{i}" for i in rng.permutation(n)]  # lexicographic order differs from numeric and from row order
    return pd.DataFrame({"tx": ids, "ts": ts, "card": pd.array(card, dtype="Int64"), "shop": shop,
                         "amt": amt, "fraud": fraud})


def _assert_same(batch: dict, online: dict, where: str) -> None:
    """Counts and calendar exact, floats within 1e-9, NaN in the same places."""
    assert list(online) == list(batch), where
    for name, value in online.items():
        expected = batch[name]
        expected = math.nan if pd.isna(expected) else float(expected)
        if math.isnan(expected) or math.isnan(value):
            assert math.isnan(expected) and math.isnan(value), f"{where} {name}: {expected} vs {value}"
        elif "nb_tx" in name or name.startswith("tx_"):
            assert value == expected, f"{where} {name}: {expected} vs {value}"
        else:
            assert abs(value - expected) <= 1e-9 * max(1.0, abs(expected)), f"{where} {name}: {expected} vs {value}"


def _floats(row: pd.Series) -> np.ndarray:
    """A row of feature values as floats, missing as NaN."""
    return row.to_numpy(dtype=float, na_value=np.nan)


# 1. Handbook reproduction -------------------------------------------------------------------------------------


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared datasets folder {SHARED_DATA} is absent")
def test_handbook_preset_reproduces_the_handbook_features():
    con = duckdb.connect()
    con.execute("CREATE TABLE raw AS SELECT * FROM read_parquet(?) WHERE TX_DATETIME < TIMESTAMP '2018-05-16'",
                [str(HANDBOOK_RAW)])
    config = FeatureConfig.from_spec(handbook_spec(), "handbook")
    ours = build_features(con, "raw", config).df().set_index("TRANSACTION_ID")
    ref = pd.read_parquet(HANDBOOK_REF).set_index("TRANSACTION_ID")
    names = feature_names(config)
    assert names == list(ref.columns[8:]) and len(names) == 14
    assert len(ref) == 431_773 and set(ref.index) <= set(ours.index)
    ours = ours.loc[ref.index]
    # The handbook sorts with an unstable sort, so same-customer same-second pairs are in arbitrary order there.
    tied = ref.groupby(["CUSTOMER_ID", "TX_DATETIME"])["TX_AMOUNT"].transform("size") > 1
    assert 0 < tied.sum() <= 20
    for name in names:
        a, b = ours[name].to_numpy(float), ref[name].to_numpy(float)
        rows = ~tied.to_numpy() if name.startswith("CUSTOMER_ID") else slice(None)
        if "AVG_AMOUNT" in name or "RISK" in name:
            np.testing.assert_allclose(a[rows], b[rows], rtol=0, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(a[rows], b[rows], err_msg=name)
    # Within each tie group, the member the handbook put last saw the whole group, exactly as our last member did.
    for _, group in ref[tied].groupby(["CUSTOMER_ID", "TX_DATETIME"]):
        for w in (1, 7, 30):
            nb, avg = f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"
            mine = ours.loc[group.index]
            assert sorted(mine[nb]) == sorted(group[nb])
            assert abs(mine[avg].loc[mine[nb].idxmax()] - group[avg].loc[group[nb].idxmax()]) <= 1e-9


# 2. Online = batch --------------------------------------------------------------------------------------------


def test_online_features_equal_batch_features_for_every_event(events):
    config = _config()
    batch = build_features_frame(events, config)
    assert list(batch.columns) == list(events.columns) + feature_names(config)
    ties = events.groupby(["card", "ts"])["tx"].transform("size") > 1
    assert ties.sum() >= 100
    for i, event in enumerate(events.to_dict("records")):
        # the whole frame is offered as history: the online path must ignore what comes after the event itself
        online = online_features(event, events, config)
        _assert_same(batch.iloc[i][feature_names(config)].to_dict(), online, f"event {event['tx']}")


def test_online_features_on_arrays_equal_the_frame_path_and_the_plan_is_built_once(events):
    from fraudcore.features import cached_plan, feature_plan
    from fraudcore.features_online import history_arrays, online_features_arrays

    config = _config()
    arrays = history_arrays(events, config)
    for event in events.to_dict("records")[::7]:
        _assert_same(online_features(event, events, config), online_features_arrays(event, arrays, config), "arrays")
    assert cached_plan(config) is cached_plan(_config())
    plan = feature_plan(config)
    plan.clear()  # callers get their own list; the cached plan is unchanged
    assert len(feature_plan(config)) == len(feature_names(config)) > 0


def test_online_features_need_only_the_lookback_slice(events):
    config = _config()
    lookback = history_lookback(config)
    assert lookback == timedelta(days=9)
    for event in events.sample(200, random_state=3).to_dict("records"):
        recent = events[events["ts"] > event["ts"] - lookback]
        assert online_features(event, recent, config) == pytest.approx(online_features(event, events, config),
                                                                       nan_ok=True, rel=1e-12)


def test_packed_window_sums_equal_plain_window_sums(events, monkeypatch):
    config = _config()
    packed = build_features_frame(events, config)
    monkeypatch.setattr(features_batch, "_PACK_LIMIT", 0)  # nothing fits: every sum is taken apart
    pd.testing.assert_frame_equal(build_features_frame(events, config), packed, check_exact=True)


@pytest.mark.parametrize("change", ["huge amounts", "fractional labels"])
def test_online_equals_batch_when_sums_are_too_large_or_fractional_to_pack(events, change):
    rng = np.random.default_rng(4)
    frame = (events.assign(amt=events["amt"] * 1e8) if change == "huge amounts"  # |amounts| sum past 2**62 units
             else events.assign(fraud=rng.random(len(events)).round(3)))
    config = _config()
    batch = build_features_frame(frame, config)
    for i in rng.choice(len(frame), 300, replace=False):
        event = frame.iloc[i].to_dict()
        _assert_same(batch.iloc[i][feature_names(config)].to_dict(), online_features(event, frame, config), change)


# 3. No leakage ------------------------------------------------------------------------------------------------


def test_future_rows_and_their_labels_never_change_earlier_features(events):
    config = _config()
    before = build_features_frame(events, config)
    last = events["ts"].max()
    hours = np.where(np.arange(500) < 50, 0, np.arange(500))  # same-time rows with later ids count as future too
    future = events.sample(500, random_state=5).assign(
        tx=[f"zz{i}" for i in range(500)], ts=last + pd.to_timedelta(hours, unit="h"), fraud=1, amt=10_000.0)
    after = build_features_frame(pd.concat([events, future], ignore_index=True), config).iloc[: len(events)]
    pd.testing.assert_frame_equal(after.reset_index(drop=True), before.reset_index(drop=True))


def test_labels_inside_the_delay_are_never_used(events):
    config = _config()
    delay = config.label_delay
    chosen = events[events["ts"] > T + pd.Timedelta(days=10)].sample(5, random_state=8)
    names = feature_names(config)
    risk_names = [n for n in names if "__risk_" in n]
    base = build_features_frame(events, config).loc[chosen.index]
    changed_any = False
    for idx, event in chosen.iterrows():
        recent = events["ts"] > event["ts"] - delay
        flipped = events.assign(fraud=events["fraud"].where(~recent, 1 - events["fraud"].fillna(0)))
        assert (flipped["fraud"] != events["fraud"]).sum() > 0
        again = build_features_frame(flipped, config).loc[idx]
        np.testing.assert_array_equal(_floats(again[names]), _floats(base.loc[idx, names]))
        online = online_features(event.to_dict(), flipped, config)
        _assert_same(online_features(event.to_dict(), events, config), online, f"event {event['tx']}")
        # control: flipping the labels that are old enough to be known does move the risk
        known = (events["ts"] <= event["ts"] - delay) & (events["shop"] == event["shop"])
        moved = events.assign(fraud=events["fraud"].where(~known, 1 - events["fraud"].fillna(0)))
        moved_risk = build_features_frame(moved, config).loc[idx, risk_names]
        changed_any |= not np.array_equal(_floats(moved_risk), _floats(base.loc[idx, risk_names]))
    assert changed_any


# 4. Hand-computed values --------------------------------------------------------------------------------------


@pytest.fixture()
def tiny() -> pd.DataFrame:
    """Thirteen events built so that each window boundary, a tie and the delay boundary are hit exactly."""
    us, h, d = pd.Timedelta(microseconds=1), pd.Timedelta(hours=1), pd.Timedelta(days=1)
    rows = [  # tx, ts, card, shop, amt, fraud
        (4, T + 2 * h, "A", "R", 60.0, 0), (1, T, "A", "S", 10.0, 1), (2, T + h, "A", "S", 20.0, 0),
        (3, T + 2 * h, "A", "S", 30.0, None), (5, T + d, "A", "R", 40.0, 0), (6, T + 3 * d, "A", "R", 5.0, 0),
        (7, T + 7 * d, "C", "S", 1.0, 0), (8, T + 7 * d + h, "C", "S", 1.0, 0), (9, T + 8 * d, "C", "S", 1.0, 0),
        (10, T + 2 * h, None, "R", 8.0, 0), (11, T + 10 * d, "Q", "Q", 2.0, 1),
        (12, T + 17 * d - us, "Q", "Q", 4.0, 0), (13, T + 17 * d, "Q", "Q", 6.0, 0),
    ]
    frame = pd.DataFrame(rows, columns=["tx", "ts", "card", "shop", "amt", "fraud"])
    return frame.astype({"fraud": "Int64"})


def _tiny_config() -> FeatureConfig:
    return FeatureConfig(event_id="tx", event_time="ts", amount="amt", label="fraud", entities=("card",),
                         risk_entities=("shop",), windows=("1h", "1d"), risk_windows=("1d",), label_delay="7d")


def test_hand_computed_values_for_every_family(tiny):
    config = _tiny_config()
    got = build_features_frame(tiny, config).set_index("tx")
    nan = math.nan
    expected = {  # tx: nb_1h, avg_1h, nb_1d, avg_1d, ratio_1d, secs, shop nb_delay_1d, shop risk_1d
        1: (1, 10.0, 1, 10.0, 1.0, nan, 0, 0.0),
        2: (1, 20.0, 2, 15.0, 20 / 15, 3600.0, 0, 0.0),   # event exactly 1h earlier is outside (t-1h, t]
        3: (1, 30.0, 3, 20.0, 1.5, 3600.0, 0, 0.0),       # tie with tx 4: tx 3 comes first, does not see it
        4: (2, 45.0, 4, 30.0, 2.0, 0.0, 0, 0.0),          # tx 4 sees its earlier same-time peer
        5: (1, 40.0, 4, 37.5, 40 / 37.5, 79200.0, 0, 0.0),  # tx 1 exactly 1d earlier is outside
        6: (1, 5.0, 1, 5.0, 1.0, nan, 0, 0.0),            # previous event 2 days back: beyond the longest window
        7: (1, 1.0, 1, 1.0, 1.0, nan, 1, 1.0),            # tx 1 at exactly t-7d is inside (t-8d, t-7d]
        8: (1, 1.0, 2, 1.0, 1.0, 3600.0, 2, 0.5),         # tx 7 exactly 1h earlier is out; tx 1 fraud, tx 2 legit
        9: (1, 1.0, 2, 1.0, 1.0, 82800.0, 2, 0.0),        # tx 7 exactly 1d earlier is out; tx 1 at exactly t-8d
                                                          # is out of the delay window; tx 3's unknown label = 0
        10: (nan, nan, nan, nan, nan, nan, 0, 0.0),       # no card: no card features
        11: (1, 2.0, 1, 2.0, 1.0, nan, 0, 0.0),
        12: (1, 4.0, 1, 4.0, 1.0, nan, 0, 0.0),           # tx 11 is 1 microsecond too recent to have a known label
        13: (2, 5.0, 2, 5.0, 1.2, 1e-6, 1, 1.0),          # tx 11 at exactly t-7d has a known label
    }
    cols = ["card__nb_tx_1h", "card__avg_amount_1h", "card__nb_tx_1d", "card__avg_amount_1d",
            "card__amount_ratio_1d", "card__secs_since_prev", "shop__nb_tx_delay_1d", "shop__risk_1d"]
    for tx, values in expected.items():
        np.testing.assert_allclose(got.loc[tx, cols].to_numpy(float), values, rtol=0, atol=1e-12, err_msg=str(tx))
        online = online_features(tiny[tiny["tx"] == tx].iloc[0].to_dict(), tiny, config)
        np.testing.assert_allclose([online[c] for c in cols], values, rtol=0, atol=1e-12, err_msg=f"online {tx}")
    calendar = got[["tx_hour", "tx_dow", "tx_during_weekend", "tx_during_night"]].astype(int)
    assert calendar.loc[1].tolist() == [5, 5, 1, 1]   # Saturday 05:00
    assert calendar.loc[3].tolist() == [7, 5, 1, 0]   # 07:00 is no longer night
    assert calendar.loc[5].tolist() == [5, 6, 1, 1]   # Sunday
    assert calendar.loc[6].tolist() == [5, 1, 0, 1]   # Tuesday


def test_row_order_does_not_change_features(tiny):
    config = _tiny_config()
    forward = build_features_frame(tiny, config).set_index("tx").sort_index()
    backward = build_features_frame(tiny.iloc[::-1], config).set_index("tx").sort_index()
    pd.testing.assert_frame_equal(forward, backward)


# Configuration, presets and files -----------------------------------------------------------------------------


def test_presets_and_config_validation():
    auto = FeatureConfig.from_spec(handbook_spec())
    assert auto.risk_entities == ("CUSTOMER_ID", "TERMINAL_ID")
    assert "TERMINAL_ID__risk_7d" in feature_names(auto) and "CUSTOMER_ID__amount_ratio_30d" in feature_names(auto)
    assert history_lookback(auto) == timedelta(days=37)
    unlabeled = FeatureConfig.from_spec(handbook_spec().model_copy(update={"label": None}))
    assert unlabeled.risk_entities == () and not any("risk" in n for n in feature_names(unlabeled))
    with pytest.raises(FraudcoreError, match="label"):
        _config(label=None, risk_entities=("shop",))
    with pytest.raises(FraudcoreError, match="window"):
        _config(windows=("1 fortnight",))
    with pytest.raises(FraudcoreError, match="preset"):
        FeatureConfig.from_spec(handbook_spec(), "nope")
    config = _config(windows="1d", calendar=("night",))
    assert config.windows == (timedelta(days=1),) and config.calendar == ("night",)
    assert FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_build_features_file_round_trip_and_contract_errors(tiny, tmp_path):
    spec = handbook_spec().model_copy(update=dict(
        event_id="tx", event_time="ts", amount="amt", label="fraud", entities=["card", "shop"], ignored=[], leakage={}))
    src = tmp_path / "tiny events.csv"  # a space in the name: the path is a bound parameter, not SQL text
    tiny.to_csv(src, index=False)
    seen = []
    info = build_features_file(src, tmp_path / "out.parquet", spec=spec, progress=lambda f, t: seen.append(f))
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert info["rows"] == len(tiny) == len(written) and seen[-1] == 1.0
    saved = json.loads((tmp_path / "out.spec.json").read_text())  # the spec travels with what was derived
    assert saved["spec"]["entities"] == ["card", "shop"] and saved["features"]["event_id"] == "tx"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    assert list(written.columns) == list(tiny.columns) + info["features"]
    assert written["tx"].tolist() == [1, 2, 3, 4, 10, 5, 6, 7, 8, 9, 11, 12, 13]  # ordered by (time, id)
    with pytest.raises(DataContractError, match="missing"):
        build_features_file(src, tmp_path / "x.parquet", spec=spec.model_copy(update={"amount": "price"}))
    with pytest.raises(DataContractError, match="does not exist"):
        build_features_file(tmp_path / "absent.parquet", tmp_path / "x.parquet", spec=spec)
    with pytest.raises(DataContractError, match="repeated event ids"):
        build_features_frame(pd.concat([tiny, tiny.iloc[:1]]), _tiny_config())


@pytest.mark.parametrize("kind", ["seconds", "tz-aware"])
def test_online_equals_batch_for_other_time_encodings(tiny, kind):
    if kind == "seconds":  # ULB-style: float seconds from an origin, with sub-second parts
        frame = tiny.assign(ts=(tiny["ts"] - T).dt.total_seconds() + 0.25)
        config = dataclasses.replace(_tiny_config(), time_unit="seconds", time_origin=T.to_pydatetime())
    else:  # calendar features are taken in UTC
        frame = tiny.assign(ts=tiny["ts"].dt.tz_localize("Europe/Brussels"))
        config = _tiny_config()
    batch = build_features_frame(frame, config)
    for i, event in enumerate(frame.to_dict("records")):
        _assert_same(batch.iloc[i][feature_names(config)].to_dict(), online_features(event, frame, config), kind)
    hours = batch.set_index("tx")["tx_hour"]
    assert hours.loc[1] == (5 if kind == "seconds" else 4)


@pytest.mark.parametrize(("entities", "customer", "terminal"), [
    (["CUSTOMER_ID", "TERMINAL_ID"], "CUSTOMER_ID", "TERMINAL_ID"),
    (["customer_id", "card_id", "terminal_id"], "customer_id", "terminal_id"),  # the demo data's order
    (["merchant", "card"], "card", "merchant"),
    (["a", "b"], "a", "b"),  # no telling names: the order given
])
def test_handbook_preset_picks_customer_and_terminal_by_name(entities, customer, terminal):
    spec = DatasetSpec(event_id="id", event_time="t", amount="amt", label="y", entities=entities)
    config = FeatureConfig.from_spec(spec, "handbook")
    assert config.entities == (customer,) and config.risk_entities == (terminal,)
