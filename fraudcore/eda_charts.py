"""Altair charts for the exploratory aggregations in ``fraudcore.eda`` (each takes that function's DataFrame)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fraudcore.eda import FRAUD, LEGIT

CLASS_COLOURS = alt.Scale(domain=[LEGIT, FRAUD], range=["#4c78a8", "#e45756"])


def class_balance_chart(df: pd.DataFrame) -> alt.Chart:
    """Bars of events per class, labelled with their share."""
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("events:Q", title="Events"),
        y=alt.Y("class:N", title=None, sort=[LEGIT, FRAUD]),
        color=alt.Color("class:N", scale=CLASS_COLOURS, legend=None),
        tooltip=["class:N", alt.Tooltip("events:Q", format=","), alt.Tooltip("share:Q", format=".3%")],
    ).properties(height=120)


def fraud_over_time_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Events per period (bars) with the fraud rate (line) on its own axis."""
    base = alt.Chart(df).encode(x=alt.X("period:T", title=None))
    tooltip = ["period:T", alt.Tooltip("events:Q", format=","), alt.Tooltip("frauds:Q", format=","),
               alt.Tooltip("fraud_rate:Q", format=".3%")]
    bars = base.mark_bar(opacity=0.35, color="#4c78a8").encode(y=alt.Y("events:Q", title="Events"), tooltip=tooltip)
    line = base.mark_line(point=True, color="#e45756").encode(
        y=alt.Y("fraud_rate:Q", title="Fraud rate", axis=alt.Axis(format="%")), tooltip=tooltip)
    return alt.layer(bars, line).resolve_scale(y="independent")


def _class_histogram(df: pd.DataFrame, x_title: str, x_field: str = "bin_start", end_field: str = "bin_end",
                     log_x: bool = False) -> alt.Chart:
    tooltip = ["class:N", alt.Tooltip(f"{x_field}:Q", format=",.2f"), alt.Tooltip(f"{end_field}:Q", format=",.2f"),
               alt.Tooltip("events:Q", format=","), alt.Tooltip("share:Q", format=".2%")]
    return alt.Chart(df).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X(f"{x_field}:Q", title=x_title, scale=alt.Scale(type="log") if log_x else alt.Undefined),
        x2=f"{end_field}:Q",
        y=alt.Y("share:Q", title="Share within class", stack=None, axis=alt.Axis(format="%")),
        color=alt.Color("class:N", scale=CLASS_COLOURS, title="Class"),
        tooltip=tooltip,
    )


def amount_by_class_chart(df: pd.DataFrame) -> alt.Chart:
    """Overlaid per-class histograms of the amount on a log axis."""
    return _class_histogram(df, "Amount (log scale)", "amount_from", "amount_to", log_x=True)


def feature_separation_chart(df: pd.DataFrame) -> alt.Chart:
    """Average precision per column (best first), with ROC AUC and KS in the tooltip."""
    return alt.Chart(df).mark_bar(color="#e45756").encode(
        x=alt.X("average_precision:Q", title="Average precision (column alone)"),
        y=alt.Y("column:N", sort="-x", title=None),
        tooltip=["column:N", alt.Tooltip("average_precision:Q", format=".4f"), alt.Tooltip("roc_auc:Q", format=".4f"),
                 alt.Tooltip("ks:Q", format=".3f"), "direction:N"],
    )


def distribution_by_class_chart(df: pd.DataFrame, column: str) -> alt.Chart:
    """A numeric column's per-class histograms, or a categorical column's top values coloured by fraud rate."""
    if "value" not in df.columns:
        return _class_histogram(df, column)
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("events:Q", title="Events"),
        y=alt.Y("value:N", sort="-x", title=column),
        color=alt.Color("fraud_rate:Q", title="Fraud rate", scale=alt.Scale(scheme="orangered"),
                        legend=alt.Legend(format="%")),
        tooltip=["value:N", alt.Tooltip("events:Q", format=","), alt.Tooltip("frauds:Q", format=","),
                 alt.Tooltip("fraud_rate:Q", format=".3%")],
    )


def missing_values_chart(df: pd.DataFrame) -> alt.Chart:
    """Share of missing values per column (columns with none are left out of the chart)."""
    return alt.Chart(df[df["missing"] > 0]).mark_bar(color="#f58518").encode(
        x=alt.X("share:Q", title="Share missing", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("column:N", sort="-x", title=None),
        tooltip=["column:N", alt.Tooltip("missing:Q", format=","), alt.Tooltip("share:Q", format=".2%")],
    )
