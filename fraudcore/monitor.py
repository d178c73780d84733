"""Monitoring over the workbench store: drift against the model's training reference, alert volumes, realized
precision and label maturity (threshold replay and shadow agreement live in ``monitor_compare``).

Windows are on event time, inclusive at both ends; ``until`` defaults to the newest stored event (the feed's clock)
and ``since`` to 7 days before it. "Live" values of a model are the inputs and scores stored with its scores rows
(``fraudcore.store_inputs``), so drift is measured on exactly what the model saw; feature drift reads a seeded
sample of at most ``MAX_LIVE_ROWS`` of them (``n_live`` says how many), alert influence reads every alert's stored
reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.reference import FeatureReference, ModelReference, as_numbers, ks, load_reference, psi
from fraudcore.store import Store
from fraudcore.store_inputs import HAS_INPUTS, INPUT_COLUMNS

__all__ = ["DRIFT_LEVELS", "TIERS", "alert_volumes", "distribution", "feature_drift", "label_maturity",
           "maturity_summary", "realized_precision", "score_drift", "window"]

TIERS = ("high", "medium", "low")
ALERT_TIERS = ("high", "medium")
DRIFT_LEVELS = ((0.1, "stable"), (0.25, "moderate"), (math.inf, "major"))  # PSI below each bound
MAX_LIVE_ROWS = 20_000  # live rows sampled (reservoir, seeded) for feature drift
DEFAULT_DAYS = 7
_REASONS_TYPE = '[{"feature": "VARCHAR", "contribution": "DOUBLE"}]'
SCORE = "(score)"


def _naive(moment: datetime | pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()


def window(store: Store, since: datetime | None = None, until: datetime | None = None,
           days: float = DEFAULT_DAYS) -> tuple[datetime, datetime]:
    """The (since, until) a monitor call uses: until defaults to the newest event, since to ``days`` before it."""
    if until is None:
        newest = store.query("SELECT max(event_time) AS t FROM events")["t"].iloc[0]
        until = datetime.now(UTC) if pd.isna(newest) else newest
    until = _naive(until)
    since = until - timedelta(days=days) if since is None else _naive(since)
    if since > until:
        raise FraudcoreError(f"the window starts ({since:%Y-%m-%d %H:%M}) after it ends ({until:%Y-%m-%d %H:%M}); "
                             "swap since and until")
    return since, until


def live_inputs(store: Store, model_id: str, names: list[str], since: datetime, until: datetime,
                categorical: Sequence[str] = (), max_rows: int = MAX_LIVE_ROWS) -> pd.DataFrame:
    """The stored model inputs (numbers as floats, ``categorical`` ones as text) of the model's scored events in
    the window, at most ``max_rows`` of them (a seeded reservoir sample)."""
    found = store.query(
        f"SELECT * FROM (SELECT {INPUT_COLUMNS} FROM scores s JOIN events e USING (event_id) "
        f"WHERE s.model_id = ? AND {HAS_INPUTS} AND e.event_time BETWEEN ? AND ?) "
        f"USING SAMPLE reservoir({int(max_rows)} ROWS) REPEATABLE (7)", [model_id, since, until])
    return store.input_frame(found, names, categorical).reset_index(drop=True)


def live_scores(store: Store, model_id: str, since: datetime, until: datetime) -> np.ndarray:
    """Scores the model gave the events in the window."""
    rows = store.query("SELECT s.score FROM scores s JOIN events e USING (event_id) "
                       "WHERE s.model_id = ? AND e.event_time BETWEEN ? AND ?", [model_id, since, until])
    return rows["score"].to_numpy(dtype=float)


def alert_influence(store: Store, model_id: str, since: datetime, until: datetime) -> pd.DataFrame:
    """Per feature, over the model's medium/high alerts in the window: ``alert_share`` (share of alerts where it is
    a risk-raising top reason) and ``alert_influence`` (mean |contribution| in log-odds, 0 where not a reason)."""
    n_alerts = int(store.query(
        "SELECT count(*) AS n FROM scores s JOIN events e USING (event_id) WHERE s.model_id = ? "
        "AND s.tier IN ('high', 'medium') AND e.event_time BETWEEN ? AND ?", [model_id, since, until])["n"].iloc[0])
    found = store.query(
        "SELECT r.feature AS feature, count(*) FILTER (WHERE r.contribution > 0) AS raising, "
        "sum(abs(r.contribution)) AS total FROM (SELECT unnest(from_json(s.reasons, ?)) AS r FROM scores s "
        "JOIN events e USING (event_id) WHERE s.model_id = ? AND s.tier IN ('high', 'medium') "
        "AND s.reasons IS NOT NULL AND e.event_time BETWEEN ? AND ?) GROUP BY 1",
        [_REASONS_TYPE, model_id, since, until])
    if not n_alerts or found.empty:
        return pd.DataFrame({"feature": pd.Series(dtype=object), "alert_share": pd.Series(dtype=float),
                             "alert_influence": pd.Series(dtype=float)})
    return pd.DataFrame({"feature": found["feature"], "alert_share": found["raising"] / n_alerts,
                         "alert_influence": found["total"] / n_alerts})


def drift_level(value: float | None) -> str | None:
    """'stable' (PSI < 0.1), 'moderate' (< 0.25) or 'major'; None when not measured."""
    if value is None or not np.isfinite(value):
        return None
    return next(label for bound, label in DRIFT_LEVELS if value < bound)


def _drift_row(name: str, ref: FeatureReference, values: pd.Series | np.ndarray) -> dict:
    if ref.kind == "numeric":
        values = as_numbers(values)
    shares = ref.live_shares(values)
    n = len(values)
    value = psi(ref.shares, shares) if n else None
    stat, pvalue = ks(ref, values) if n else (None, None)
    present = values[np.isfinite(values)] if ref.kind == "numeric" else None
    return {"feature": name, "kind": ref.kind, "psi": value, "level": drift_level(value), "ks": stat,
            "ks_pvalue": pvalue, "ref_mean": ref.mean,
            "live_mean": float(present.mean()) if present is not None and len(present) else None,
            "ref_missing": ref.missing_share, "live_missing": float(shares[-1]) if n else None, "n_live": n}


def _reference(model_id: str, root: Path | str | None, reference: ModelReference | None) -> ModelReference:
    return reference if reference is not None else load_reference(model_id, root)


def feature_drift(store: Store, model_id: str, since: datetime | None = None, until: datetime | None = None, *,
                  root: Path | str | None = None, reference: ModelReference | None = None) -> pd.DataFrame:
    """PSI and KS of every model input between the training reference and the window's live inputs, ranked by
    how much the input drives the window's alerts (then by PSI)."""
    ref = _reference(model_id, root, reference)
    lo, hi = window(store, since, until)
    names = list(ref.features)
    live = live_inputs(store, model_id, names, lo, hi, [n for n in names if ref.features[n].kind == "categorical"])
    table = pd.DataFrame([_drift_row(n, ref.features[n], live[n]) for n in names])
    table = table.merge(alert_influence(store, model_id, lo, hi), on="feature", how="left")
    table[["alert_share", "alert_influence"]] = table[["alert_share", "alert_influence"]].fillna(0.0)
    table = table.sort_values(["alert_influence", "psi"], ascending=False, kind="stable", na_position="last")
    return table.reset_index(drop=True).rename_axis("rank").reset_index().assign(rank=lambda t: t["rank"] + 1)


def score_drift(store: Store, model_id: str, since: datetime | None = None, until: datetime | None = None, *,
                root: Path | str | None = None, reference: ModelReference | None = None) -> pd.DataFrame:
    """One row: PSI and KS of the model's live scores in the window against its out-of-sample reference scores."""
    ref = _reference(model_id, root, reference)
    lo, hi = window(store, since, until)
    return pd.DataFrame([_drift_row(SCORE, ref.score, live_scores(store, model_id, lo, hi))])


def distribution(store: Store, model_id: str, feature: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, *, root: Path | str | None = None,
                 reference: ModelReference | None = None) -> pd.DataFrame:
    """Reference and live shares per bin of one input (None: the score), in bin order, for a drift chart."""
    ref = _reference(model_id, root, reference)
    lo, hi = window(store, since, until)
    if feature is None:
        part, values = ref.score, live_scores(store, model_id, lo, hi)
    elif feature in ref.features:
        part = ref.features[feature]
        cats = [feature] if part.kind == "categorical" else []
        values = live_inputs(store, model_id, [feature], lo, hi, cats)[feature]
    else:
        raise FraudcoreError(f"model {model_id!r} has no input {feature!r}; pick one of {list(ref.features)[:8]}...")
    return pd.DataFrame({"order": range(len(part.shares)), "bin": part.labels, "reference": part.shares,
                         "live": part.live_shares(values)})


def alert_volumes(store: Store, days: int = 30, until: datetime | None = None) -> pd.DataFrame:
    """Live (non-shadow) scored events per calendar day and tier over the last ``days`` days (zeros included)."""
    if days < 1:
        raise FraudcoreError(f"days must be at least 1; got {days}")
    _, hi = window(store, None, until)
    first = (pd.Timestamp(hi).normalize() - pd.Timedelta(days=days - 1)).to_pydatetime()
    end = pd.Timestamp(hi).normalize().to_pydatetime() + timedelta(days=1)
    return store.query(
        "WITH d AS (SELECT CAST(range AS DATE) AS day FROM range(CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), "
        "INTERVAL 1 DAY)), t AS (SELECT unnest(['high', 'medium', 'low']) AS tier, unnest([0, 1, 2]) AS o), "
        "c AS (SELECT CAST(e.event_time AS DATE) AS day, s.tier, count(DISTINCT s.event_id) AS n FROM scores s "
        "JOIN events e USING (event_id) WHERE NOT coalesce(s.shadow, false) AND e.event_time >= ? "
        "AND e.event_time < ? GROUP BY ALL) "
        "SELECT d.day, t.tier, coalesce(c.n, 0)::BIGINT AS events FROM d CROSS JOIN t LEFT JOIN c "
        "ON c.day = d.day AND c.tier = t.tier ORDER BY d.day, t.o", [first, end, first, end])


def _wilson(hits: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (95 % by default); None without trials."""
    if not n:
        return None, None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def realized_precision(store: Store, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    """Per case tier (and all): cases, decided (event labelled), confirmed fraud, precision = confirmed / decided
    with a 95 % Wilson interval; all cases when no window is given."""
    lo, hi = (datetime.min, datetime.max) if since is None and until is None else window(store, since, until)
    counts = store.query(
        "SELECT c.tier, count(*) AS cases, count(e.label) AS decided, count(*) FILTER (WHERE e.label = 1) AS "
        "confirmed FROM cases c JOIN events e USING (event_id) WHERE e.event_time BETWEEN ? AND ? GROUP BY 1",
        [lo, hi]).set_index("tier")
    rows = []
    for tier in (*ALERT_TIERS, "all"):
        part = counts if tier == "all" else counts.loc[counts.index == tier]
        cases, decided, confirmed = (int(part[c].sum()) for c in ("cases", "decided", "confirmed"))
        low, high = _wilson(confirmed, decided)
        rows.append({"tier": tier, "cases": cases, "decided": decided, "confirmed": confirmed,
                     "precision": confirmed / decided if decided else None, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def label_maturity(store: Store, label_delay_days: float = 7.0, now: datetime | None = None,
                   days: int | None = None) -> pd.DataFrame:
    """Per calendar day: events, those old enough to have labels (event time <= now - delay), labelled ones and
    the shares; ``now`` defaults to the newest event, ``days`` limits to the last days."""
    if label_delay_days < 0:
        raise FraudcoreError(f"label_delay_days must be >= 0; got {label_delay_days}")
    _, now = window(store, None, now)
    cutoff = now - timedelta(days=label_delay_days)
    first = datetime.min if days is None else pd.Timestamp(now).normalize().to_pydatetime() - timedelta(days=days - 1)
    return store.query(
        "SELECT *, mature / n AS mature_share, labelled / n AS labelled_share FROM (SELECT CAST(event_time AS DATE) "
        "AS day, count(*) AS n, count(*) FILTER (WHERE event_time <= ?) AS mature, count(label) AS labelled "
        "FROM events WHERE event_time >= ? AND event_time <= ? GROUP BY 1) ORDER BY day",
        [cutoff, first, now]).rename(columns={"n": "events"})


def maturity_summary(store: Store, label_delay_days: float = 7.0, now: datetime | None = None) -> dict:
    """Overall label maturity: events, mature events (old enough to be labelled), their share, labelled events,
    and the share of mature events that carry a label."""
    _, now = window(store, None, now)
    cutoff = now - timedelta(days=label_delay_days)
    row = store.query(
        "SELECT count(*) AS events, count(*) FILTER (WHERE event_time <= ?) AS mature, count(label) AS labelled, "
        "count(label) FILTER (WHERE event_time <= ?) AS mature_labelled FROM events WHERE event_time <= ?",
        [cutoff, cutoff, now]).iloc[0]
    events, mature = int(row["events"]), int(row["mature"])
    return {"now": now, "cutoff": cutoff, "label_delay_days": label_delay_days, "events": events, "mature": mature,
            "mature_share": mature / events if events else None, "labelled": int(row["labelled"]),
            "labelled_share_of_mature": int(row["mature_labelled"]) / mature if mature else None}
