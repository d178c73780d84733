"""Altair charts for the Live page; each takes the DataFrame of the ``fraudcore.live_view`` function it names."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fraudcore.live_view import TIERS

__all__ = ["TIER_COLOURS", "tier_minutes_chart"]

TIER_COLOURS = alt.Scale(domain=list(TIERS), range=["#d62728", "#ff7f0e", "#2ca02c"])


def tier_minutes_chart(counts: pd.DataFrame, alerts_only: bool = False) -> alt.Chart:
    """Stacked bars of live scores per minute (UTC) and tier (``tier_minutes``); only medium and high on request."""
    data = counts[counts["tier"].isin(["high", "medium"])] if alerts_only else counts
    order = {tier: i for i, tier in enumerate(TIERS)}
    data = data.assign(order=data["tier"].map(order).fillna(len(TIERS)))
    title = "Alerts per minute" if alerts_only else "Scored events per minute"
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("minute:T", timeUnit="utcyearmonthdatehoursminutes", title="Minute (UTC)",
                axis=alt.Axis(format="%H:%M", labelAngle=0)),
        y=alt.Y("events:Q", title="Events", stack="zero"),
        color=alt.Color("tier:N", scale=TIER_COLOURS, title="Tier", sort=list(TIERS)),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("minute:T", timeUnit="utchoursminutes", title="minute (UTC)"), "tier:N",
                 alt.Tooltip("events:Q", format=",")],
    ).properties(height=220)
