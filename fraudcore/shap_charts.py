"""Altair charts of an Explanation: one event's waterfall, and the beeswarm, importance and dependence of a batch.

Every chart carries its data as a DataFrame (``chart.data``) with plain column names, so tests and pages can read
what is drawn; contributions are in log-odds, probabilities appear in titles and tooltips.
"""

from __future__ import annotations

import difflib

import altair as alt
import numpy as np
import pandas as pd
from scipy.special import expit

from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation
from fraudcore.reasons import number_text

__all__ = ["beeswarm", "dependence", "importance", "waterfall"]

RAISES, LOWERS, NEUTRAL = "#d62728", "#1f77b4", "#7f7f7f"
MAX_POINTS = 5000  # Altair embeds data in the spec; it refuses more than 5,000 rows unless told otherwise


FULL_NAMES = alt.Axis(labelLimit=320)  # feature names like customer_id__avg_amount_30d, not cut at 180 px

def _display(value: object) -> str:
    """A value as it reads in a label: numbers with few digits, missing as 'missing'."""
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating | int | np.integer) and not isinstance(value, bool | np.bool_):
        return number_text(value)
    return str(value)


def _mean_abs(expl: Explanation) -> pd.Series:
    """Mean |contribution| per feature, largest first."""
    if len(expl) == 0:
        raise FraudcoreError("the explanation has no rows; explain at least one event before charting it")
    values = pd.Series(np.abs(expl.values).mean(axis=0), index=expl.feature_names, name="mean_abs")
    return values.sort_values(ascending=False, kind="stable")


def waterfall(expl_row: Explanation, max_features: int = 12) -> alt.LayerChart:
    """One event: base value, each feature's push (largest first; the rest summed), and the final log-odds."""
    if len(expl_row) != 1:
        raise FraudcoreError(f"a waterfall draws one event; got {len(expl_row)} rows, pass expl[i]")
    values, base = expl_row.values[0], float(expl_row.base_values[0])
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[:max_features], order[max_features:]
    data = expl_row.data.iloc[0]
    steps = [(f"{expl_row.feature_names[j]} = {_display(data.iloc[j])}", expl_row.feature_names[j], values[j])
             for j in shown]
    if len(rest):
        steps.append((f"{len(rest)} other features", "other", float(values[rest].sum())))
    rows, level = [{"label": "base value", "feature": "base", "kind": "base", "contribution": 0.0,
                    "start": base, "end": base}], base
    for label, feature, contribution in steps:
        rows.append({"label": label, "feature": feature, "kind": "raises" if contribution > 0 else "lowers",
                     "contribution": float(contribution), "start": level, "end": level + float(contribution)})
        level += float(contribution)
    margin = float(expl_row.margin[0])
    rows.append({"label": "prediction", "feature": "prediction", "kind": "final", "contribution": margin - base,
                 "start": base, "end": margin})
    frame = pd.DataFrame(rows)
    frame["step"] = np.arange(len(frame))
    frame["probability"] = expit(frame["end"])
    title = (f"fraud probability {expit(margin):.1%} (log-odds {margin:+.2f}) from a base of "
             f"{expit(base):.1%} ({base:+.2f})")
    y = alt.Y("label:N", sort=alt.EncodingSortField("step", order="ascending"), title=None, axis=FULL_NAMES)
    color = alt.Color("kind:N", scale=alt.Scale(domain=["raises", "lowers", "base", "final"],
                                                range=[RAISES, LOWERS, NEUTRAL, NEUTRAL]), legend=None)
    tooltip = [alt.Tooltip("label:N", title="step"), alt.Tooltip("contribution:Q", format="+.3f"),
               alt.Tooltip("end:Q", title="log-odds after", format="+.3f"),
               alt.Tooltip("probability:Q", title="probability after", format=".1%")]
    bars = alt.Chart().mark_bar().encode(x=alt.X("start:Q", title="log-odds (margin)", scale=alt.Scale(zero=False)),
                                         x2="end:Q", y=y,
                                         color=color, tooltip=tooltip)
    ends = alt.FieldOneOfPredicate(field="kind", oneOf=["base", "final"])
    ticks = alt.Chart().mark_tick(thickness=3, size=18).encode(x="end:Q", y=y, color=color, tooltip=tooltip) \
        .transform_filter(ends)
    rule = alt.Chart().mark_rule(strokeDash=[4, 4], color=NEUTRAL).encode(x="start:Q") \
        .transform_filter(alt.FieldEqualPredicate(field="kind", equal="base"))
    return alt.layer(bars, ticks, rule, data=frame, title=title)


def beeswarm(expl: Explanation, max_features: int = 15, max_points: int = MAX_POINTS) -> alt.Chart:
    """Each event's contribution per feature (strongest features on top), coloured by the value's rank.

    At most ``max_points`` points in all: rows are sampled (fixed seed) when there are more. Categorical values
    are ranked in their category order; missing values are grey.
    """
    if max_features < 1 or max_points < 1:
        raise FraudcoreError(f"max_features and max_points must be at least 1; got {max_features} and {max_points}")
    ranked = _mean_abs(expl).head(max_features)
    features = list(ranked.index)
    n_rows = min(len(expl), max(1, max_points // len(features)))
    rows = np.sort(np.random.default_rng(0).choice(len(expl), n_rows, replace=False)) if n_rows < len(expl) \
        else np.arange(len(expl))
    position = {name: j for j, name in enumerate(expl.feature_names)}
    jitter = np.random.default_rng(1).uniform(-1, 1, size=(len(rows), len(features)))
    parts = []
    for k, name in enumerate(features):
        column = expl.data[name].iloc[rows]
        codes = column.cat.codes.where(column.cat.codes >= 0) if isinstance(column.dtype, pd.CategoricalDtype) \
            else pd.to_numeric(column, errors="coerce")
        parts.append(pd.DataFrame({
            "feature": name, "contribution": expl.values[rows, position[name]],
            "value": [_display(v) for v in column], "value_rank": codes.rank(pct=True).to_numpy(),
            "jitter": jitter[:, k], "row": rows}))
    frame = pd.concat(parts, ignore_index=True)
    color = alt.when("isValid(datum.value_rank)").then(
        alt.Color("value_rank:Q", title="value (rank)", scale=alt.Scale(domain=[0, 1], range=[LOWERS, RAISES]))
    ).otherwise(alt.value("lightgray"))
    return alt.Chart(frame, title=f"contributions of the {len(features)} strongest features ({n_rows:,} events)") \
        .mark_circle(size=14, opacity=0.6).encode(
            x=alt.X("contribution:Q", title="contribution (log-odds)"),
            y=alt.Y("feature:N", sort=features, title=None, axis=FULL_NAMES), yOffset=alt.YOffset("jitter:Q"),
            color=color, tooltip=["feature:N", "value:N", alt.Tooltip("contribution:Q", format="+.3f")])


def importance(expl: Explanation, max_features: int = 20) -> alt.Chart:
    """Mean |contribution| per feature, largest first."""
    ranked = _mean_abs(expl).head(max_features)
    frame = pd.DataFrame({"feature": ranked.index, "mean_abs": ranked.to_numpy()})
    return alt.Chart(frame, title=f"mean |contribution| over {len(expl):,} events").mark_bar(color=RAISES).encode(
        x=alt.X("mean_abs:Q", title="mean |contribution| (log-odds)"),
        y=alt.Y("feature:N", sort=list(frame["feature"]), title=None, axis=FULL_NAMES),
        tooltip=["feature:N", alt.Tooltip("mean_abs:Q", format=".4f")])


def dependence(expl: Explanation, feature: str, max_points: int = MAX_POINTS) -> alt.Chart:
    """A feature's value against its contribution, one point per event (sampled to ``max_points``)."""
    if feature not in expl.feature_names:
        near = difflib.get_close_matches(feature, expl.feature_names, n=3)
        raise FraudcoreError(f"feature {feature!r} is not in this explanation" +
                             (f"; did you mean {near}?" if near else f"; it has {expl.feature_names[:10]}…"))
    rows = np.arange(len(expl))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(0).choice(len(expl), max_points, replace=False))
    column = expl.data[feature].iloc[rows]
    categorical = not pd.api.types.is_numeric_dtype(column)
    frame = pd.DataFrame({"value": column.astype(object).where(column.notna(), None).to_numpy(),
                          "contribution": expl.values[rows, expl.feature_names.index(feature)],
                          "probability": expl.probability[rows]})
    missing = int(frame["value"].isna().sum())
    title = f"{feature}: value against contribution" + (f" ({missing:,} missing values not shown)" if missing else "")
    x = alt.X("value:N", title=feature) if categorical else alt.X("value:Q", title=feature)
    return alt.Chart(frame, title=title).mark_circle(size=18, opacity=0.6).encode(
        x=x, y=alt.Y("contribution:Q", title="contribution (log-odds)"),
        color=alt.Color("contribution:Q", scale=alt.Scale(domainMid=0, range=[LOWERS, "#dddddd", RAISES]),
                        legend=None),
        tooltip=[alt.Tooltip("value", title=feature), alt.Tooltip("contribution:Q", format="+.3f"),
                 alt.Tooltip("probability:Q", format=".1%")])
