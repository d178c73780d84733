"""Altair charts for the Monitor page; each takes the DataFrame of the ``fraudcore.monitor*`` function it names."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fraudcore.monitor import TIERS

TIER_COLOURS = alt.Scale(domain=list(TIERS), range=["#e45756", "#f58518", "#9ecae9"])
LEVEL_COLOURS = alt.Scale(domain=["stable", "moderate", "major"], range=["#54a24b", "#f58518", "#e45756"])


def drift_chart(drift: pd.DataFrame, top: int = 15) -> alt.Chart:
    """PSI bars of the ``top`` most alert-driving inputs (``feature_drift`` order), coloured by drift level."""
    data = drift.head(top)[["rank", "feature", "psi", "level", "ks", "alert_share", "alert_influence"]]
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("psi:Q", title="PSI (training reference vs live)"),
        y=alt.Y("feature:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None,
                  axis=alt.Axis(labelLimit=320)),  # feature names like customer_id__avg_amount_30d in full
        color=alt.Color("level:N", scale=LEVEL_COLOURS, title="Drift"),
        tooltip=["feature:N", alt.Tooltip("psi:Q", format=".3f"), alt.Tooltip("ks:Q", format=".3f"),
                 alt.Tooltip("alert_share:Q", format=".1%", title="top reason in alerts"),
                 alt.Tooltip("alert_influence:Q", format=".3f", title="mean |contribution| in alerts")],
    )


def distribution_chart(bins: pd.DataFrame, title: str = "") -> alt.Chart:
    """Reference and live shares side by side per bin (``distribution`` output)."""
    long = bins.melt(id_vars=["order", "bin"], value_vars=["reference", "live"], var_name="data", value_name="share")
    return alt.Chart(long, title=title).mark_bar().encode(
        x=alt.X("bin:N", sort=alt.EncodingSortField("order", order="ascending"), title=None),
        xOffset="data:N",
        y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="Share"),
        color=alt.Color("data:N", scale=alt.Scale(domain=["reference", "live"], range=["#9ecae9", "#4c78a8"])),
        tooltip=["bin:N", "data:N", alt.Tooltip("share:Q", format=".2%")],
    )


def alert_volume_chart(volumes: pd.DataFrame, alerts_only: bool = True) -> alt.Chart:
    """Stacked bars of scored events per day and tier (``alert_volumes``); only medium and high by default."""
    data = volumes[volumes["tier"] != "low"] if alerts_only else volumes
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("day:T", title=None),
        y=alt.Y("events:Q", title="Alerts" if alerts_only else "Events"),
        color=alt.Color("tier:N", scale=TIER_COLOURS, sort=list(TIERS)),
        tooltip=["day:T", "tier:N", alt.Tooltip("events:Q", format=",")],
    )


def replay_chart(daily: pd.DataFrame) -> alt.Chart:
    """Alerts per day under the current and the proposed cuts (``threshold_replay(...).daily``)."""
    alerts = daily[daily["tier"] != "low"].groupby(["day", "scenario"], as_index=False)["events"].sum()
    return alt.Chart(alerts).mark_line(point=True).encode(
        x=alt.X("day:T", title=None), y=alt.Y("events:Q", title="Alerts per day"),
        color=alt.Color("scenario:N", scale=alt.Scale(domain=["current", "proposed"], range=["#9ecae9", "#e45756"])),
        tooltip=["day:T", "scenario:N", alt.Tooltip("events:Q", format=",")],
    )


def agreement_chart(crosstab: pd.DataFrame) -> alt.LayerChart:
    """Heat map of events per (champion tier, challenger tier) with the counts written in (``shadow_agreement``)."""
    rows, cols = crosstab.index.name or "champion", crosstab.columns.name or "challenger"
    long = crosstab.rename_axis(index="champion", columns="challenger").stack().rename("events").reset_index()
    long[["champion", "challenger"]] = long[["champion", "challenger"]].astype(str)
    base = alt.Chart(long).encode(x=alt.X("challenger:N", sort=list(TIERS), title=cols),
                                  y=alt.Y("champion:N", sort=list(TIERS), title=rows))
    cells = base.mark_rect().encode(color=alt.Color("events:Q", scale=alt.Scale(scheme="blues"), legend=None),
                                    tooltip=["champion:N", "challenger:N", alt.Tooltip("events:Q", format=",")])
    return cells + base.mark_text().encode(text=alt.Text("events:Q", format=","))
