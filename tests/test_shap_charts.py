"""Explanation charts: each returns an Altair chart whose spec serialises and whose data is what the analyst sees."""

from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation, explain
from fraudcore.models import make_model
from fraudcore.shap_charts import beeswarm, dependence, importance, waterfall
from tests.test_explain import synthetic


def _random_explanation(n: int = 300, f: int = 25, seed: int = 0) -> Explanation:
    """Feature j has contributions of scale j + 1 (so the strongest is the last); one categorical, some NaN."""
    rng = np.random.default_rng(seed)
    names = [f"f{j:02d}" for j in range(f - 1)] + ["channel"]
    values = rng.normal(size=(n, f)) * (np.arange(f) + 1)
    data = pd.DataFrame(rng.normal(size=(n, f - 1)), columns=names[:-1])
    data.loc[data.index[::10], "f03"] = np.nan
    data["channel"] = pd.Categorical(rng.choice(["app", "pos", "web"], n), categories=["app", "pos", "web"])
    return Explanation(values, rng.normal(-3, 0.1, n), data, names)


@pytest.fixture(scope="module")
def model_explanation() -> Explanation:
    (X, y), (Xv, yv), (Xt, _) = synthetic(2000, 1), synthetic(600, 2), synthetic(300, 3)
    model = make_model("xgboost", n_estimators=30, max_depth=3, early_stopping_rounds=10, n_jobs=1)
    return explain(model.fit(X, y, Xv, yv), Xt)


def _serialises(chart: alt.TopLevelMixin) -> dict:
    spec = chart.to_dict()
    json.dumps(spec)
    return spec


def test_waterfall_walks_from_base_to_the_margin() -> None:
    expl = _random_explanation()[7]
    chart = waterfall(expl, max_features=6)
    assert isinstance(chart, alt.LayerChart)
    _serialises(chart)
    data = chart.data
    assert list(data["kind"].iloc[[0, -1]]) == ["base", "final"] and len(data) == 6 + 3  # base, 6, others, final
    assert data["end"].iloc[-1] == pytest.approx(expl.margin[0]) and data["start"].iloc[0] == expl.base_values[0]
    steps = data.iloc[1:-1]
    np.testing.assert_allclose(steps["start"].iloc[1:].to_numpy(), steps["end"].iloc[:-1].to_numpy())
    assert steps["label"].iloc[-1] == "19 other features"
    shown = np.abs(steps["contribution"].iloc[:-1].to_numpy())
    assert list(shown) == sorted(shown, reverse=True)  # largest push first
    assert data["probability"].iloc[-1] == pytest.approx(expit(expl.margin[0]))
    assert f"{expit(expl.margin[0]):.1%}" in chart.title


def test_waterfall_labels_show_values_and_colour_by_direction(model_explanation: Explanation) -> None:
    row = model_explanation[0]
    data = waterfall(row).data
    steps = data[data["kind"].isin(["raises", "lowers"])]
    assert ((steps["contribution"] > 0) == (steps["kind"] == "raises")).all()
    top = int(np.argmax(np.abs(row.values[0])))
    assert data["label"].iloc[1].startswith(f"{row.feature_names[top]} = ")
    assert data["end"].iloc[-1] == pytest.approx(row.margin[0], abs=1e-9)


def test_waterfall_refuses_a_batch() -> None:
    with pytest.raises(FraudcoreError, match="one event"):
        waterfall(_random_explanation()[:2])


def test_importance_orders_features_by_mean_absolute_contribution() -> None:
    expl = _random_explanation()
    chart = importance(expl, max_features=10)
    _serialises(chart)
    expected = pd.Series(np.abs(expl.values).mean(axis=0), index=expl.feature_names).sort_values(ascending=False)
    assert list(chart.data["feature"]) == list(expected.index[:10])
    np.testing.assert_allclose(chart.data["mean_abs"], expected.to_numpy()[:10])
    assert chart.to_dict()["encoding"]["y"]["sort"] == list(expected.index[:10])


def test_beeswarm_keeps_the_strongest_features_and_caps_points() -> None:
    expl = _random_explanation(n=600)
    chart = beeswarm(expl, max_features=5, max_points=1000)
    spec = _serialises(chart)
    data = chart.data
    strongest = list(pd.Series(np.abs(expl.values).mean(axis=0), index=expl.feature_names).nlargest(5).index)
    assert spec["encoding"]["y"]["sort"] == strongest and strongest[0] == "channel"
    assert set(data["feature"]) == set(strongest) and len(data) == 1000 and data["row"].nunique() == 200
    j = expl.feature_names.index(strongest[-1])
    rows = data.loc[data["feature"] == strongest[-1], "row"].to_numpy()
    np.testing.assert_allclose(data.loc[data["feature"] == strongest[-1], "contribution"], expl.values[rows, j])
    ranks = data["value_rank"].dropna()
    assert ranks.between(0, 1).all() and ranks.max() == 1.0
    assert data.loc[data["feature"] == "channel", "value"].isin(["app", "pos", "web"]).all()
    with pytest.raises(FraudcoreError, match="max_features and max_points must be at least 1"):
        beeswarm(expl, max_features=0)


def test_beeswarm_colours_missing_values_grey() -> None:
    expl = _random_explanation(n=100)
    chart = beeswarm(expl, max_features=25)
    data = chart.data
    missing = data[(data["feature"] == "f03") & (data["value"] == "missing")]
    assert len(missing) == 10 and missing["value_rank"].isna().all()
    assert chart.to_dict()["encoding"]["color"]["value"] == "lightgray"


def test_dependence_plots_value_against_contribution(model_explanation: Explanation) -> None:
    expl = model_explanation
    chart = dependence(expl, "customer_id__amount_ratio_30d")
    spec = _serialises(chart)
    j = expl.feature_names.index("customer_id__amount_ratio_30d")
    np.testing.assert_allclose(chart.data["contribution"], expl.values[:, j])
    np.testing.assert_allclose(chart.data["value"].astype(float), expl.data.iloc[:, j])
    assert spec["encoding"]["x"]["type"] == "quantitative"
    cat = dependence(expl, "merchant_category")
    assert cat.to_dict()["encoding"]["x"]["type"] == "nominal"
    assert set(cat.data["value"].dropna()) <= {"grocery", "fashion", "electronics", "travel", "gaming"}


def test_dependence_names_missing_values_and_unknown_features() -> None:
    expl = _random_explanation()
    assert "30 missing values not shown" in dependence(expl, "f03").title
    with pytest.raises(FraudcoreError, match="did you mean"):
        dependence(expl, "f3")


def test_charts_refuse_an_empty_explanation() -> None:
    with pytest.raises(FraudcoreError, match="no rows"):
        importance(_random_explanation()[np.zeros(300, dtype=bool)])


def test_waterfall_axis_does_not_force_zero():
    """Typical fraud margins sit near -5: an axis pinned to zero would squeeze every bar into one corner."""
    spec = waterfall(_random_explanation()[3]).to_dict()
    scales = [layer["encoding"]["x"].get("scale") for layer in spec["layer"] if layer["mark"]["type"] == "bar"]
    assert scales == [{"zero": False}]
