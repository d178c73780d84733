"""Altair charts for training and comparing models: split timeline, PR / ROC overlays, threshold what-if."""

from __future__ import annotations

import altair as alt
import pandas as pd

from fraudcore.timeline import BAND_ORDER, SplitPreview

BAND_COLOURS = dict(zip(BAND_ORDER, ["#4c78a8", "#f58518", "#e45756", "#bab0ac", "#dddddd", "#72b7b2"], strict=True))
TIER_COLOURS = alt.Scale(domain=["high", "medium", "low"], range=["#e45756", "#f58518", "#54a24b"])
CONFUSION_COLOURS = alt.Scale(scheme="blues")
MINUTE = "%Y-%m-%d %H:%M"
MODEL_COLOURS = alt.Scale(scheme="tableau10")


def timeline_chart(preview: SplitPreview) -> alt.LayerChart:
    """Events per period as bars over coloured bands for train, validation, test and the gaps between them."""
    present = [b for b in BAND_ORDER if b in set(preview.bands["band"])]
    colours = alt.Scale(domain=present, range=[BAND_COLOURS[b] for b in present])
    bands = alt.Chart(preview.bands).mark_rect(opacity=0.3).encode(
        x=alt.X("start:T", title=None), x2="end:T",
        color=alt.Color("band:N", scale=colours, title="Part", sort=present),
        tooltip=["band:N", alt.Tooltip("start:T", format=MINUTE), alt.Tooltip("end:T", format=MINUTE),
                 alt.Tooltip("rows:Q", format=","), alt.Tooltip("frauds:Q", format=",")],
    )
    bars = alt.Chart(preview.volume).mark_bar(color="#555555", opacity=0.7).encode(
        x=alt.X("period:T", title=None), y=alt.Y("events:Q", title="Events per period"),
        tooltip=[alt.Tooltip("period:T", format=MINUTE), alt.Tooltip("events:Q", format=","),
                 alt.Tooltip("frauds:Q", format=",")],
    )
    return alt.layer(bands, bars).properties(height=220)


def pr_chart(df: pd.DataFrame) -> alt.Chart:
    """Precision against recall, one line per model (legend carries average precision)."""
    return alt.Chart(df).mark_line(interpolate="step-after").encode(
        x=alt.X("recall:Q", title="Recall", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("precision:Q", title="Precision", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title="Model", scale=MODEL_COLOURS), order="recall:Q",
        tooltip=["model:N", alt.Tooltip("ap:Q", title="average precision", format=".4f"),
                 alt.Tooltip("recall:Q", format=".3f"), alt.Tooltip("precision:Q", format=".3f")],
    ).properties(title="Precision-recall", height=320)


def roc_chart(df: pd.DataFrame) -> alt.LayerChart:
    """True against false positive rate, one line per model, with the chance diagonal."""
    lines = alt.Chart(df).mark_line().encode(
        x=alt.X("fpr:Q", title="False positive rate", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="True positive rate (recall)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title="Model", scale=MODEL_COLOURS), order="fpr:Q",
        tooltip=["model:N", alt.Tooltip("auc:Q", title="ROC AUC", format=".4f"), alt.Tooltip("fpr:Q", format=".4f"),
                 alt.Tooltip("tpr:Q", format=".3f")],
    )
    chance = alt.Chart(pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})).mark_line(
        strokeDash=[4, 4], color="#999999").encode(x="fpr:Q", y="tpr:Q")
    return alt.layer(chance, lines).properties(title="ROC", height=320)


def confusion_chart(df: pd.DataFrame) -> alt.LayerChart:
    """The 2 x 2 confusion matrix at the review cut as a labelled heat map (columns actual, decision, events)."""
    base = alt.Chart(df).encode(x=alt.X("decision:N", title="Decision", sort=["alert", "no alert"],
                                        axis=alt.Axis(labelAngle=0, orient="top")),
                                y=alt.Y("actual:N", title="Actual", sort=["fraud", "legit"]))
    cells = base.mark_rect().encode(color=alt.Color("events:Q", scale=CONFUSION_COLOURS, legend=None),
                                    tooltip=["actual:N", "decision:N", alt.Tooltip("events:Q", format=",")])
    half = float(df["events"].max()) / 2
    text = base.mark_text(fontSize=16, fontWeight="bold").encode(
        text=alt.Text("events:Q", format=","),
        color=alt.condition(alt.datum.events > half, alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(title="Confusion matrix (alert = review or block)", height=160)


def tiers_chart(df: pd.DataFrame) -> alt.Chart:
    """Frauds and legitimate events per tier (columns tier, action, frauds, legit), side by side."""
    long = df.melt(id_vars=["tier", "action"], value_vars=["frauds", "legit"], var_name="class", value_name="count")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("count:Q", title="Events"), y=alt.Y("tier:N", sort=["high", "medium", "low"], title=None),
        color=alt.Color("tier:N", scale=TIER_COLOURS, legend=None),
        column=alt.Column("class:N", title=None, sort=["frauds", "legit"]),
        tooltip=["tier:N", "action:N", "class:N", alt.Tooltip("count:Q", format=",")],
    ).resolve_scale(x="independent").properties(title="Events per tier", height=110, width=220)


def threshold_chart(df: pd.DataFrame, high: float, medium: float) -> alt.LayerChart:
    """Precision and recall against the cut, with the medium and high cuts drawn as labelled rules."""
    long = df.melt(id_vars=["threshold"], value_vars=["precision", "recall"], var_name="measure", value_name="value")
    lines = alt.Chart(long).mark_line().encode(
        x=alt.X("threshold:Q", title="Cut (score)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("value:Q", title="Share", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("measure:N", title=None,
                        scale=alt.Scale(domain=["precision", "recall"], range=["#4c78a8", "#54a24b"])),
        tooltip=[alt.Tooltip("threshold:Q", format=".4f"), "measure:N", alt.Tooltip("value:Q", format=".3f")],
    )
    cuts = pd.DataFrame({"threshold": [medium, high], "cut": ["review (medium)", "block (high)"],
                         "colour": ["#f58518", "#e45756"]})
    rules = alt.Chart(cuts).mark_rule(strokeWidth=2, strokeDash=[6, 3]).encode(
        x="threshold:Q", color=alt.Color("colour:N", scale=None),
        tooltip=["cut:N", alt.Tooltip("threshold:Q", format=".4f")])
    labels = alt.Chart(cuts).mark_text(align="left", dx=4, dy=-4, y=0).encode(
        x="threshold:Q", text="cut:N", color=alt.Color("colour:N", scale=None))
    return alt.layer(lines, rules, labels).properties(title="Precision and recall by cut", height=260)


def trials_chart(trials: list[dict]) -> alt.Chart:
    """Validation average precision of each search trial, the best one highlighted."""
    df = pd.DataFrame([{"trial": i + 1, "valid_ap": t.get("valid_ap"), "seconds": t.get("seconds")}
                       for i, t in enumerate(trials)])
    best = df["valid_ap"].max() if df["valid_ap"].notna().any() else None
    df["best"] = df["valid_ap"] == best
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("trial:O", title="Trial"), y=alt.Y("valid_ap:Q", title="Validation AP"),
        color=alt.Color("best:N", scale=alt.Scale(domain=[True, False], range=["#e45756", "#4c78a8"]), legend=None),
        tooltip=["trial:O", alt.Tooltip("valid_ap:Q", format=".4f"), alt.Tooltip("seconds:Q", format=".1f")],
    ).properties(title="Search trials", height=180)
