"""EDA aggregations: hand-computed values on a tiny frame, and shapes on a 200k simulated dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudcore import eda, eda_charts
from fraudcore.dataset import OpenedDataset
from fraudcore.errors import DataContractError
from fraudcore.infer import infer_spec
from fraudcore.loading import load_frame
from fraudcore.simulate import generate
from fraudcore.spec import DatasetSpec
from fraudcore.validate import validate

SPEC = DatasetSpec(event_id="event_id", event_time="event_time", label="is_fraud", amount="amount",
                   categorical=["channel"], numeric=["score", "noise"])


def opened_from(df: pd.DataFrame, spec: DatasetSpec | None = None) -> OpenedDataset:
    data = load_frame(df)
    spec = spec or infer_spec(data)
    return OpenedDataset(data, spec, validate(data, spec))


@pytest.fixture
def tiny() -> OpenedDataset:
    df = pd.DataFrame({
        "event_id": range(1, 9),
        "event_time": pd.to_datetime(["2025-01-01 08:00"] * 4 + ["2025-01-02 09:00"] * 4),
        "amount": [1.0, 10.0, 100.0, 1000.0, 10.0, 10.0, 100.0, 0.0],
        "is_fraud": [0, 0, 0, 1, 0, 1, 1, 0],
        "channel": ["web", "web", "pos", "web", "pos", "pos", "web", "pos"],
        "score": [0.1, 0.2, 0.3, 0.9, 0.2, 0.8, 0.7, 0.1],
        "noise": [1.0, None, 3.0, None, 5.0, 6.0, 7.0, 8.0],
    })
    return opened_from(df, SPEC)


def test_class_balance_counts_and_shares(tiny):
    df = eda.class_balance(tiny).set_index("class")
    assert df.loc["fraud", "events"] == 3 and df.loc["legitimate", "events"] == 5
    assert df.loc["fraud", "share"] == pytest.approx(3 / 8)


def test_fraud_over_time_per_day_and_week(tiny):
    day = eda.fraud_over_time(tiny, "day")
    assert day["events"].tolist() == [4, 4]
    assert day["frauds"].tolist() == [1, 2]
    assert day["fraud_rate"].tolist() == pytest.approx([0.25, 0.5])
    assert day["period"].dt.day.tolist() == [1, 2]
    week = eda.fraud_over_time(tiny, "week")  # Wednesday and Thursday of one ISO week
    assert week[["events", "frauds"]].values.tolist() == [[8, 3]]
    with pytest.raises(ValueError, match="freq"):
        eda.fraud_over_time(tiny, "month")


def test_fraud_over_time_needs_event_time(tiny):
    without_time = tiny.with_spec(SPEC.with_role("event_time", "ignored"))
    with pytest.raises(DataContractError, match="event_time"):
        eda.fraud_over_time(without_time)


def test_amount_by_class_log_histogram_normalised_within_class(tiny):
    # log10 amounts 0..3 in 3 bins of width 1; the zero amount is left out; 1000 falls in the last bin
    df = eda.amount_by_class(tiny, bins=3)
    legit = df[df["class"] == "legitimate"].set_index("bin")
    fraud = df[df["class"] == "fraud"].set_index("bin")
    assert legit["events"].to_dict() == {0: 1, 1: 2, 2: 1}
    assert fraud["events"].to_dict() == {1: 1, 2: 2}
    assert fraud["share"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert legit["amount_from"].tolist() == pytest.approx([1.0, 10.0, 100.0])


def test_feature_separation_hand_computed(tiny):
    df = eda.feature_separation(tiny).set_index("column")
    assert df.index[0] == "score"  # separates perfectly, so it ranks first
    assert df.loc["score", ["average_precision", "roc_auc", "ks"]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # amount: fraud {10, 100, 1000} vs legit {0, 1, 10, 10, 100}: 12.5 of 15 pairs ordered; largest CDF gap 7/15
    assert df.loc["amount", "roc_auc"] == pytest.approx(12.5 / 15)
    assert df.loc["amount", "ks"] == pytest.approx(7 / 15)
    assert df.loc["amount", "direction"] == "higher → fraud"
    assert df.loc["noise", "n"] == 6  # the two null rows are left out


@pytest.mark.parametrize("shift", [0.8, -0.8])
def test_separation_scores_agree_with_sklearn_and_ks_definition(shift):
    rng = np.random.default_rng(4)
    y = (rng.random(5_000) < 0.05).astype(int)
    x = np.round(rng.normal(size=5_000) + shift * y, 1)  # rounded: many ties
    auc, ap, ks, sign = eda.separation_scores(x, y)
    assert auc == pytest.approx(roc_auc_score(y, x))
    assert sign == np.sign(shift)
    assert ap == pytest.approx(average_precision_score(y, sign * x))
    grid = np.unique(x)
    cdf = [np.searchsorted(np.sort(x[y == c]), grid, side="right") / (y == c).sum() for c in (1, 0)]
    assert ks == pytest.approx(np.abs(cdf[0] - cdf[1]).max())


def test_distribution_by_class_categorical_and_numeric(tiny):
    cat = eda.distribution_by_class(tiny, "channel")
    assert cat["value"].tolist() == ["pos", "web"]
    assert cat["frauds"].tolist() == [1, 2]
    assert cat["fraud_rate"].tolist() == pytest.approx([0.25, 0.5])
    num = eda.distribution_by_class(tiny, "score", bins=5)
    assert num.groupby("class")["events"].sum().to_dict() == {"fraud": 3, "legitimate": 5}
    assert num.groupby("class")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert num["bin"].between(0, 4).all()
    with pytest.raises(DataContractError, match="no column"):
        eda.distribution_by_class(tiny, "nope")


def test_missing_values_share(tiny):
    df = eda.missing_values(tiny)
    assert df.iloc[0].tolist() == ["noise", 2, 0.25]
    assert df["missing"].iloc[1:].eq(0).all()


def test_roles_table_follows_spec(tiny):
    roles = eda.roles_table(tiny.with_spec(SPEC.with_role("score", "ignored"))).set_index("column")["role"]
    assert roles["score"] == "ignored" and roles["is_fraud"] == "label" and roles["channel"] == "categorical"


@pytest.fixture(scope="module")
def simulated() -> OpenedDataset:
    return opened_from(generate(rows=200_000, seed=3))


def test_aggregations_on_simulated_data_have_expected_shapes(simulated):
    balance = eda.class_balance(simulated)
    assert balance["class"].tolist() == ["fraud", "legitimate"] and balance["events"].sum() == 200_000
    assert 0.001 < balance.set_index("class").loc["fraud", "share"] < 0.05
    hours = eda.fraud_over_time(simulated, "hour")
    days = eda.fraud_over_time(simulated, "day")
    assert len(hours) > len(days) > 1 and days["events"].sum() == 200_000
    amounts = eda.amount_by_class(simulated, bins=40)
    assert amounts["bin"].between(0, 39).all()
    assert amounts.groupby("class")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    separation = eda.feature_separation(simulated)
    assert "amount" in separation["column"].tolist()
    assert separation["roc_auc"].between(0.5, 1.0).all() and separation["ks"].between(0, 1).all()
    top = eda.distribution_by_class(simulated, "merchant_category")
    assert 1 < len(top) <= eda.TOP_CATEGORIES and top["events"].is_monotonic_decreasing
    missing = eda.missing_values(simulated)
    assert len(missing) == len(simulated.data.columns) and missing["share"].between(0, 1).all()


def test_charts_build_for_every_aggregation(tiny):
    charts = [
        eda_charts.class_balance_chart(eda.class_balance(tiny)),
        eda_charts.fraud_over_time_chart(eda.fraud_over_time(tiny)),
        eda_charts.amount_by_class_chart(eda.amount_by_class(tiny)),
        eda_charts.feature_separation_chart(eda.feature_separation(tiny)),
        eda_charts.distribution_by_class_chart(eda.distribution_by_class(tiny, "score"), "score"),
        eda_charts.distribution_by_class_chart(eda.distribution_by_class(tiny, "channel"), "channel"),
        eda_charts.missing_values_chart(eda.missing_values(tiny)),
    ]
    specs = [c.to_dict() for c in charts]
    assert all("$schema" in s for s in specs)
    assert specs[5]["encoding"]["y"]["field"] == "value"
