"""What the Monitor page shows beyond ``fraudcore.monitor*`` and ``monitor_charts``: whether there is live traffic to
monitor, the cut points the threshold replay offers, replay and retrain figures side by side, and the label maturity
chart. Reads only; the page's actions are ``shadow`` / ``retrain`` / ``registry`` calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from fraudcore.store import Store

__all__ = ["DRIFT_COLUMNS", "LiveStatus", "cut_grid", "drift_levels", "drift_table", "live_status", "maturity_chart",
           "moves_table", "precision_metrics", "promote_anyway", "replay_deltas", "replay_table",
           "retrain_history_table", "retrain_table", "score_shift", "shadow_candidates"]

DRIFT_COLUMNS = ["rank", "feature", "alert_share", "alert_influence", "psi", "level", "ks", "ks_pvalue", "ref_mean",
                 "live_mean", "ref_missing", "live_missing", "n_live"]
# cut points a replay slider offers: fine steps where fraud scores crowd (near 0), coarser above
_GRID = np.unique(np.round(np.concatenate([np.arange(1, 10) * 1e-4, np.arange(1, 10) * 1e-3, np.arange(1, 10) * 1e-2,
                                           np.arange(0.1, 1.0, 0.025), [0.99, 0.995, 0.999]]), 6))


@dataclass(frozen=True)
class LiveStatus:
    """How many stored events a model scored live, and the first and last event time (None without events)."""

    events: int
    first: datetime | None = None
    last: datetime | None = None


def live_status(store: Store, model_id: str) -> LiveStatus:
    """How many stored events the model scored live (not in shadow), and the event-time range they cover."""
    row = store.query("SELECT count(*) AS n, min(e.event_time) AS first, max(e.event_time) AS last FROM scores s "
                      "JOIN events e USING (event_id) WHERE s.model_id = ? AND NOT coalesce(s.shadow, false)",
                      [model_id]).iloc[0]
    events = int(row["n"])
    if not events:
        return LiveStatus(0)
    return LiveStatus(events, pd.Timestamp(row["first"]).to_pydatetime(), pd.Timestamp(row["last"]).to_pydatetime())


def score_shift(store: Store, model_id: str, since: datetime, until: datetime) -> dict[str, Any]:
    """The score's drift row (``monitor.score_drift``) as a dict: psi, level, ks, means, live count."""
    from fraudcore.monitor import score_drift

    return score_drift(store, model_id, since, until).iloc[0].to_dict()


def cut_grid(current: Sequence[float]) -> list[float]:
    """Sorted cut points for a replay slider: a fixed probability grid plus the model's current cuts (exactly)."""
    return sorted({*(float(v) for v in _GRID), *(float(c) for c in current)})


def drift_levels(drift: pd.DataFrame) -> dict[str, int]:
    """How many inputs are at each drift level (stable, moderate, major; unmeasured ones are left out)."""
    counts = drift["level"].value_counts()
    return {level: int(counts.get(level, 0)) for level in ("stable", "moderate", "major")}


def drift_table(drift: pd.DataFrame) -> pd.DataFrame:
    """The drift table as shown, in the rank order of ``feature_drift`` (by alert influence)."""
    return drift.reindex(columns=DRIFT_COLUMNS).reset_index(drop=True)


def replay_deltas(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per replay figure: label, the proposed value and its change against the current cuts (for st.metric)."""
    by = summary.set_index("scenario")
    now, new = by.loc["current"], by.loc["proposed"]
    out = []
    for column, label in (("alerts", "Alerts"), ("high", "High"), ("medium", "Medium"), ("caught", "Frauds caught"),
                          ("missed", "Frauds missed"), ("false_alarms", "False alarms")):
        out.append({"label": label, "value": f"{int(new[column]):,}", "delta": int(new[column] - now[column]),
                    "inverse": column in ("alerts", "high", "medium", "missed", "false_alarms")})
    for column, label in (("precision", "Precision (labelled alerts)"), ("alerts_per_day", "Alerts per day")):
        value, before = new[column], now[column]
        known = value is not None and not pd.isna(value)
        fmt = "{:.1%}" if column == "precision" else "{:,.1f}"
        delta = (value - before) if known and before is not None and not pd.isna(before) else None
        out.append({"label": label, "value": fmt.format(value) if known else "—",
                    "delta": None if delta is None else (f"{delta:+.1%}" if column == "precision" else
                                                         f"{delta:+,.1f}"),
                    "inverse": column == "alerts_per_day"})
    return out


def shadow_candidates(models: Sequence[dict], champion: str | None) -> list[str]:
    """Models (``registry.list_models`` rows) that can score in shadow: loadable ones other than the champion."""
    return [m["model_id"] for m in models if m.get("error") is None and m["model_id"] != champion]


def retrain_table(report: Any) -> pd.DataFrame:
    """Champion and challenger on the retrain's comparison window, one row each (a ``RetrainReport``)."""
    rows = []
    for role, metrics in (("champion", report.champion), ("challenger", report.challenger)):
        rows.append({"role": role, "model_id": metrics.model_id, "events": metrics.events, "frauds": metrics.frauds,
                     "average_precision": metrics.average_precision, "roc_auc": metrics.roc_auc,
                     "alerts compared": metrics.volume, "precision_at_volume": metrics.precision_at_volume,
                     "recall_at_volume": metrics.recall_at_volume})
    return pd.DataFrame(rows)


def maturity_chart(maturity: pd.DataFrame, cutoff: datetime | None = None) -> alt.LayerChart:
    """Per day: events (bars) and, on the right axis, the share old enough to be labelled and the share labelled
    (``monitor.label_maturity``); a rule marks the label-delay cutoff when given."""
    shares = maturity.melt(id_vars=["day"], value_vars=["mature_share", "labelled_share"], var_name="share",
                           value_name="value")
    shares["share"] = shares["share"].map({"mature_share": "old enough to be labelled", "labelled_share": "labelled"})
    bars = alt.Chart(maturity).mark_bar(color="#dddddd").encode(
        x=alt.X("day:T", title=None), y=alt.Y("events:Q", title="Events"),
        tooltip=["day:T", alt.Tooltip("events:Q", format=","), alt.Tooltip("mature:Q", format=","),
                 alt.Tooltip("labelled:Q", format=",")])
    lines = alt.Chart(shares).mark_line(point=True).encode(
        x="day:T", y=alt.Y("value:Q", title="Share of the day's events", axis=alt.Axis(format="%"),
                           scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("share:N", title=None, scale=alt.Scale(domain=["old enough to be labelled", "labelled"],
                                                               range=["#4c78a8", "#e45756"])),
        tooltip=["day:T", "share:N", alt.Tooltip("value:Q", format=".1%")])
    layers = [bars, lines]
    if cutoff is not None:
        layers.append(alt.Chart(pd.DataFrame({"cutoff": [pd.Timestamp(cutoff)]})).mark_rule(strokeDash=[4, 4])
                      .encode(x="cutoff:T", tooltip=[alt.Tooltip("cutoff:T", title="labels expected up to")]))
    return alt.layer(*layers).resolve_scale(y="independent").properties(title="label maturity per day")


def precision_metrics(precision: pd.DataFrame) -> list[dict[str, str]]:
    """Per tier of ``monitor.realized_precision``: a metric label, value and the counts behind it."""
    return [{"label": f"{row.tier.title()} precision",
             "value": "—" if row.precision is None or pd.isna(row.precision) else f"{row.precision:.1%}",
             "help": f"{row.confirmed:,} confirmed fraud of {row.decided:,} decided ({row.cases:,} cases)"}
            for row in precision.itertuples(index=False)]


def replay_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The replay's two scenarios side by side: one row per figure, a column per scenario."""
    table = summary.set_index("scenario").T.astype(float)
    return table.rename_axis("figure").reset_index().rename_axis(None, axis=1)


def retrain_history_table(reports: Sequence[Any]) -> pd.DataFrame:
    """Past retrains (``retrain.retrain_history``), newest first: when, who, the two models and the verdict."""
    return pd.DataFrame([{"at": r.created_at, "by": r.created_by, "champion": r.champion_id,
                          "challenger": r.challenger_id, "better": r.better, "promoted": r.promoted}
                         for r in reports], columns=["at", "by", "champion", "challenger", "better", "promoted"])


def promote_anyway(report: Any, who: str, root: Path | str | None = None) -> Any:
    """Promote a retrained challenger that did not beat the champion (an analyst's explicit choice, logged)."""
    from fraudcore.retrain import promote_challenger

    return promote_challenger(report, who, root, force=True)


def moves_table(moves: pd.DataFrame) -> pd.DataFrame:
    """The replay's tier moves (``ThresholdReplay.moves``) as a plain table: a row per current tier, a column per
    proposed tier, counts of events."""
    table = pd.DataFrame(moves.to_numpy(), index=[str(i) for i in moves.index],
                         columns=[str(c) for c in moves.columns])
    return table.rename_axis("current \\ proposed").reset_index()
