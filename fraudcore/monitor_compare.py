"""What-ifs over stored scores: the queue under other cut points (threshold replay) and a shadow challenger's
agreement with the champion. A fraud is "confirmed" when its event carries label 1, however that was learned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.evaluate import window_days
from fraudcore.monitor import ALERT_TIERS, TIERS, window
from fraudcore.store import Store

__all__ = ["ShadowAgreement", "ThresholdReplay", "shadow_agreement", "threshold_replay", "tiers_at"]


@dataclass(frozen=True)
class ThresholdReplay:
    """``summary``: one row per scenario (current, proposed) with its cuts, events per tier, alerts, confirmed frauds
    caught and missed, false alarms and precision; ``daily``: events per day, scenario and tier;
    ``moves``: events per (current tier, proposed tier)."""

    summary: pd.DataFrame
    daily: pd.DataFrame
    moves: pd.DataFrame


@dataclass(frozen=True)
class ShadowAgreement:
    """``crosstab``: events per champion tier (rows) and challenger tier (columns); ``alerts``: per model, the
    alerts it raised, those only it raised and the confirmed frauds among them; ``agreement``: share of events
    with the same tier; ``alert_agreement``: share with the same alert / no-alert decision."""

    crosstab: pd.DataFrame
    alerts: pd.DataFrame
    agreement: float | None
    alert_agreement: float | None
    events: int


def tiers_at(score: np.ndarray, medium: float, high: float) -> np.ndarray:
    """Tier per score for these cuts: score >= high is 'high', >= medium 'medium', else 'low' (as assign_tiers)."""
    if high < medium:
        raise FraudcoreError(f"the high cut ({high}) must be >= the medium cut ({medium}); raise high or lower medium")
    s = np.asarray(score, dtype=float)
    return np.where(s >= high, "high", np.where(s >= medium, "medium", "low"))


def _current_cuts(model_id: str, root: Path | str | None) -> tuple[float, float]:
    from fraudcore.registry import load_metadata

    tiers = load_metadata(model_id, root).tiers
    return tiers.medium.threshold, tiers.high.threshold


def _scenario(name: str, medium: float, high: float, tier: np.ndarray, label: pd.Series, n_days: float) -> dict:
    alerted = np.isin(tier, ALERT_TIERS)
    fraud = (label == 1).fillna(False).to_numpy(dtype=bool)
    legit = (label == 0).fillna(False).to_numpy(dtype=bool)
    caught, false_alarms = int((alerted & fraud).sum()), int((alerted & legit).sum())
    counts = {t: int((tier == t).sum()) for t in TIERS}
    return {"scenario": name, "medium_cut": medium, "high_cut": high, "events": int(tier.size), **counts,
            "alerts": int(alerted.sum()), "alerts_per_day": float(alerted.sum()) / n_days if n_days else None,
            "frauds": int(fraud.sum()), "caught": caught, "missed": int((~alerted & fraud).sum()),
            "false_alarms": false_alarms, "unlabelled_alerts": int((alerted & label.isna().to_numpy()).sum()),
            "precision": caught / (caught + false_alarms) if caught + false_alarms else None}


def threshold_replay(store: Store, model_id: str, medium: float, high: float, since: datetime | None = None,
                     until: datetime | None = None, *, current: tuple[float, float] | None = None,
                     root: Path | str | None = None) -> ThresholdReplay:
    """How the queue would have looked over the stored events the model scored in the window with cuts (medium,
    high), next to its current cuts (``current`` or the registry's tier policy): tier counts, alerts per day,
    confirmed frauds caught and missed, false alarms, per day and overall."""
    lo, hi = window(store, since, until)
    rows = store.query(
        "SELECT s.event_id, any_value(s.score) AS score, any_value(CAST(e.event_time AS DATE)) AS day, "
        "any_value(e.event_time) AS event_time, "
        "any_value(e.label) AS label FROM scores s JOIN events e USING (event_id) WHERE s.model_id = ? "
        "AND e.event_time BETWEEN ? AND ? GROUP BY s.event_id ORDER BY day, s.event_id", [model_id, lo, hi])
    cur_medium, cur_high = current if current is not None else _current_cuts(model_id, root)
    label = rows["label"].astype("Int64")
    n_days = window_days(rows["event_time"]) if len(rows) else 0.0  # as Compare counts them
    tiers = {"current": tiers_at(rows["score"].to_numpy(), cur_medium, cur_high),
             "proposed": tiers_at(rows["score"].to_numpy(), medium, high)}
    summary = pd.DataFrame([_scenario("current", cur_medium, cur_high, tiers["current"], label, n_days),
                            _scenario("proposed", medium, high, tiers["proposed"], label, n_days)])
    days = sorted(rows["day"].unique())
    grid = pd.MultiIndex.from_product([days, list(tiers), list(TIERS)], names=["day", "scenario", "tier"])
    long = pd.concat([pd.DataFrame({"day": rows["day"], "scenario": name, "tier": t}) for name, t in tiers.items()])
    daily = long.groupby(["day", "scenario", "tier"]).size().reindex(grid, fill_value=0).rename("events")
    moves = pd.crosstab(pd.Categorical(tiers["current"], TIERS), pd.Categorical(tiers["proposed"], TIERS),
                        rownames=["current"], colnames=["proposed"], dropna=False)
    return ThresholdReplay(summary, daily.reset_index(), moves)


def shadow_agreement(store: Store, champion_id: str, challenger_id: str, since: datetime | None = None,
                     until: datetime | None = None) -> ShadowAgreement:
    """Agreement of a shadow challenger with the champion on the events both scored in the window."""
    lo, hi = window(store, since, until)
    rows = store.query(
        "SELECT c.event_id, any_value(c.tier) AS champion, any_value(h.tier) AS challenger, "
        "any_value(e.label) AS label FROM scores c JOIN scores h ON h.event_id = c.event_id AND h.model_id = ? "
        "AND h.shadow JOIN events e ON e.event_id = c.event_id WHERE c.model_id = ? AND NOT coalesce(c.shadow, false) "
        "AND e.event_time BETWEEN ? AND ? GROUP BY c.event_id", [challenger_id, champion_id, lo, hi])
    crosstab = pd.crosstab(pd.Categorical(rows["champion"], TIERS), pd.Categorical(rows["challenger"], TIERS),
                           rownames=[f"champion {champion_id}"], colnames=[f"challenger {challenger_id}"],
                           dropna=False)
    alerted = {role: rows[role].isin(ALERT_TIERS).to_numpy() for role in ("champion", "challenger")}
    fraud = (rows["label"].astype("Int64") == 1).fillna(False).to_numpy(dtype=bool)
    alerts = pd.DataFrame([
        {"role": role, "model_id": model, "alerts": int(alerted[role].sum()),
         "high": int((rows[role] == "high").sum()), "medium": int((rows[role] == "medium").sum()),
         "only_this_model": int((alerted[role] & ~alerted[other]).sum()),
         "confirmed_frauds": int((alerted[role] & fraud).sum())}
        for role, model, other in (("champion", champion_id, "challenger"),
                                   ("challenger", challenger_id, "champion"))])
    n = len(rows)
    return ShadowAgreement(crosstab, alerts, float((rows["champion"] == rows["challenger"]).mean()) if n else None,
                           float((alerted["champion"] == alerted["challenger"]).mean()) if n else None, n)
