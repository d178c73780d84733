"""Altair charts of one review case: the entities' recent history on a timeline (score over time, coloured by how
each past case was decided), from ``review_view.history_frame``. The chart's data is a plain DataFrame."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.review_view import OUTCOMES

__all__ = ["OUTCOME_COLOURS", "history_timeline"]

OUTCOME_COLOURS = {"confirmed fraud": "#d62728", "legitimate": "#2ca02c", "needs more info": "#ff7f0e",
                   "open case": "#1f77b4", "no case": "#bbbbbb"}


def history_timeline(history: pd.DataFrame, tier_cuts: tuple[float, float] | None = None) -> alt.FacetChart:
    """Score against event time, one row per entity value; colour is the outcome of each event's case, the case
    being reviewed is a larger diamond; dashed lines mark the (medium, high) cuts when given."""
    if history.empty:
        raise FraudcoreError("there is no history to draw: the event has no stored entity values")
    frame = history.reindex(columns=["entity", "event_id", "event_time", "amount", "score", "tier", "case_id",
                                     "outcome", "this_event"]).copy()
    frame["marker"] = frame["this_event"].map({True: "this case", False: "past event"})
    frame["case_id"] = frame["case_id"].astype(object).where(frame["case_id"].notna(), None)
    x = alt.X("event_time:T", title="event time")
    y = alt.Y("score:Q", title="fraud score", scale=alt.Scale(domain=[0, 1]))
    points = alt.Chart().mark_point(filled=True, opacity=0.85).encode(
        x=x, y=y,
        color=alt.Color("outcome:N", title="outcome", scale=alt.Scale(domain=list(OUTCOMES),
                                                                      range=[OUTCOME_COLOURS[o] for o in OUTCOMES])),
        shape=alt.Shape("marker:N", title=None, scale=alt.Scale(domain=["past event", "this case"],
                                                                range=["circle", "diamond"])),
        size=alt.Size("marker:N", legend=None, scale=alt.Scale(domain=["past event", "this case"], range=[60, 260])),
        tooltip=[alt.Tooltip("event_time:T", title="time", format="%Y-%m-%d %H:%M"), "event_id:N",
                 alt.Tooltip("amount:Q", format=",.2f"), alt.Tooltip("score:Q", format=".3f"), "tier:N",
                 "case_id:N", "outcome:N"])
    layers = [points]
    if tier_cuts is not None:
        for name, cut in zip(("medium", "high"), tier_cuts, strict=True):
            layers.insert(0, alt.Chart().mark_rule(strokeDash=[4, 4], color="#999999").encode(
                y=alt.datum(float(cut)), tooltip=alt.value(f"{name} cut {cut:.3f}")))
    return alt.layer(*layers, data=frame).properties(height=140, width=640).facet(
        row=alt.Row("entity:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        title="recent history of this event's entities")
