"""Model evaluation on a time-ordered window: headline metrics, daily top-k precision, cost, and compact curves.

``y_true`` is 0/1 (1 = fraud) and ``score >= threshold`` alerts. ``event_time`` is datetime-like (tz-aware taken in
UTC) or seconds from an origin; only calendar days with events count. Results are NaN-free dicts (None = undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    confusion_matrix_at_thresholds,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from fraudcore.errors import FraudcoreError

SECONDS_PER_DAY = 86_400
MIN_WINDOW_DAYS = 1 / 24  # a window shorter than an hour counts as an hour: its rate would be noise
DIGITS = 6


@dataclass(frozen=True)
class Sweep:
    """Counts at every distinct score used as the cut, highest cut first (so alerts and recall never decrease)."""

    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_fraud: int
    fraud_amount_caught: np.ndarray | None
    fraud_amount_total: float | None
    n_days: float | None  # days of events in the window (``window_days``)

    @property
    def alerts(self) -> np.ndarray:
        """Events alerted at each cut."""
        return self.tp + self.fp

    @property
    def precision(self) -> np.ndarray:
        """Share of alerts that are fraud (every cut is an observed score, so it alerts at least once)."""
        return self.tp / self.alerts

    @property
    def recall(self) -> np.ndarray:
        """Share of frauds alerted; NaN when the window holds no fraud."""
        return self.tp / self.n_fraud if self.n_fraud else np.full(self.tp.shape, np.nan)

    @property
    def f1(self) -> np.ndarray:
        """Harmonic mean of precision and recall, 2tp / (2tp + fp + fn)."""
        return 2 * self.tp / (self.tp + self.alerts + (self.n_fraud - self.tp))

    @property
    def alerts_per_day(self) -> np.ndarray | None:
        """Mean alerts per day at each cut; None without event times."""
        return None if self.n_days is None else self.alerts / self.n_days

    def amount_caught_share(self) -> np.ndarray | None:
        """Share of the fraud amount alerted at each cut; None without amounts or fraud amount."""
        if self.fraud_amount_caught is None or not self.fraud_amount_total:
            return None
        return self.fraud_amount_caught / self.fraud_amount_total

    def cost(self, review_cost: float) -> np.ndarray | None:
        """Expected cost at each cut: every alert costs a review, every missed fraud costs its amount."""
        if self.fraud_amount_caught is None or self.fraud_amount_total is None:
            return None
        return self.alerts * review_cost + (self.fraud_amount_total - self.fraud_amount_caught)


def evaluate(
    y_true: ArrayLike,
    score: ArrayLike,
    threshold: float,
    *,
    amount: ArrayLike | None = None,
    event_time: ArrayLike | None = None,
    entity: ArrayLike | None = None,
    k: int = 100,
    review_cost: float = 5.0,
) -> dict:
    """Headline and operational metrics of one scored window at one threshold, as a JSON-ready dict.

    ``expected_cost = (tp + fp) * review_cost + sum(amount of missed frauds)``: every alert is reviewed at
    ``review_cost`` whether it turns out fraud or not, and a missed fraud loses its full amount; caught frauds
    lose nothing else. ``precision_at_k`` and ``card_precision_at_k`` divide by ``k`` even on days with fewer
    than ``k`` events or entities (the Fraud Detection Handbook's convention: ``k`` is the daily review budget).
    """
    y, s = _labels_scores(y_true, score)
    a = _amounts(amount, y.size)
    _check_k_cost(k, review_cost)
    day = None if event_time is None else _day_codes(event_time, y.size)
    alert = (s >= threshold).astype(np.int8)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, alert, labels=[0, 1]).ravel())
    n, n_fraud = int(y.size), int(y.sum())
    n_days = None if event_time is None else window_days(event_time, y.size)
    fraud_amount = None if a is None else float(a[y == 1].sum())
    return {
        "threshold": float(threshold),
        "n": n,
        "n_fraud": n_fraud,
        "fraud_rate": n_fraud / n,
        "average_precision": _finite(average_precision_score(y, s)) if n_fraud else None,
        "roc_auc": _finite(roc_auc_score(y, s)) if 0 < n_fraud < n else None,
        "brier": _finite(brier_score_loss(y, s, labels=[0, 1])) if s.min() >= 0 and s.max() <= 1 else None,
        "precision": _finite(precision_score(y, alert, zero_division=np.nan)),
        "recall": _finite(recall_score(y, alert, zero_division=np.nan)),
        "f1": _finite(f1_score(y, alert, zero_division=np.nan)),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "alerts": tp + fp,
        "n_days": n_days,
        "alerts_per_day": None if n_days is None else (tp + fp) / n_days,
        "k": k,
        "precision_at_k": None if day is None else precision_at_k(y, s, day, k),
        "card_precision_at_k": None if day is None or entity is None else
        _finite(card_precision_at_k(y, s, day, entity, k)),
        "review_cost": float(review_cost),
        "amount_caught_share": _finite(a[(y == 1) & (alert == 1)].sum() / fraud_amount) if fraud_amount else None,
        "expected_cost": None if a is None else float((tp + fp) * review_cost + a[(y == 1) & (alert == 0)].sum()),
    }


def precision_at_k(y: np.ndarray, score: np.ndarray, day: np.ndarray, k: int) -> float:
    """Handbook precision top-k: mean over days of (frauds among the day's k top scores, ties in input order) / k."""
    order = np.lexsort((-score, day))
    sorted_day = day[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_day)) + 1]
    rank = np.arange(sorted_day.size) - np.repeat(starts, np.diff(np.r_[starts, sorted_day.size]))
    top = rank < k
    hits = np.bincount(sorted_day[top], weights=y[order][top].astype(float))
    return float(hits[np.unique(sorted_day)].mean() / k)


def card_precision_at_k(y: np.ndarray, score: np.ndarray, day: np.ndarray, entity: ArrayLike, k: int) -> float:
    """Handbook card precision top-k: day by day, rank entities by their max score and take the share of the top k
    with a fraud that day; as in the handbook, entities already caught (a fraud in an earlier day's top k) are left
    out of later days, since their card is blocked once detected. Events without an entity are no card to review
    and are left out (NaN when none has one)."""
    ent = pd.Series(np.asarray(entity).ravel())
    if ent.size != y.size:
        raise FraudcoreError(f"entity has {ent.size} values but y_true has {y.size}; pass one entity per event")
    known = ent.notna().to_numpy()
    if not known.any():
        return float("nan")
    frame = pd.DataFrame({"day": day, "entity": ent.to_numpy(), "score": score, "y": y})[known]
    cards = frame.groupby(["day", "entity"], sort=True).agg(score=("score", "max"), y=("y", "max")).reset_index()
    caught: set = set()
    per_day = []
    for _, today in cards.groupby("day", sort=True):
        today = today[~today["entity"].isin(caught)]
        top = today.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.loc[top["y"] > 0, "entity"]
        per_day.append(len(hits) / k)
        caught.update(hits)
    return float(np.mean(per_day))


def sweep(
    y_true: ArrayLike, score: ArrayLike, *, amount: ArrayLike | None = None, event_time: ArrayLike | None = None
) -> Sweep:
    """Confusion counts, fraud amount caught and day count at every distinct score used as the cut."""
    y, s = _labels_scores(y_true, score)
    a = _amounts(amount, y.size)
    _, fp, _, tp, thresholds = confusion_matrix_at_thresholds(y, s)
    caught, total = None, None
    if a is not None:
        fraud_scores, fraud_amounts = s[y == 1], a[y == 1]
        order = np.argsort(fraud_scores, kind="stable")
        below = np.r_[0.0, np.cumsum(fraud_amounts[order])]
        total = float(below[-1])
        caught = np.clip(total - below[np.searchsorted(fraud_scores[order], thresholds, side="left")], 0.0, None)
    n_days = None if event_time is None else window_days(event_time, y.size)
    return Sweep(thresholds, tp.astype(np.int64), fp.astype(np.int64), int(y.sum()), caught, total, n_days)


def curves(
    y_true: ArrayLike,
    score: ArrayLike,
    *,
    amount: ArrayLike | None = None,
    review_cost: float = 5.0,
    max_points: int = 200,
) -> dict:
    """PR curve, ROC curve and a threshold sweep, each cut to at most ``max_points`` points, ends kept.

    ``pr`` follows scikit-learn (thresholds increasing, one fewer threshold than points, last point precision 1 /
    recall 0); ``roc`` has fpr/tpr increasing; ``sweep`` runs from the highest cut down (alerts increasing), with
    ``amount_caught_share`` and ``cost`` None without ``amount``. Points are spread half evenly and half densely
    towards the few-alerts end, where operating thresholds sit.
    """
    y, s = _labels_scores(y_true, score)
    _check_k_cost(1, review_cost)
    if max_points < 3:
        raise FraudcoreError(f"max_points must be at least 3 (both ends and one more); got {max_points}")
    n_fraud = int(y.sum())
    if n_fraud in (0, y.size):
        raise FraudcoreError(f"curves need both fraud and legitimate events; this window has {n_fraud} of {y.size}")
    precision, recall, pr_thresholds = precision_recall_curve(y, s, drop_intermediate=True)
    pr_idx = _pick(pr_thresholds.size, max_points - 1, dense_end=True)
    pr_points = np.r_[pr_idx, pr_thresholds.size]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
    roc_idx = _pick(fpr.size, max_points, dense_end=False)
    table = sweep(y, s, amount=amount)
    idx = _pick(table.threshold.size, max_points, dense_end=False)
    share, cost = table.amount_caught_share(), table.cost(review_cost)
    return {
        "n": int(y.size),
        "n_fraud": n_fraud,
        "pr": {
            "precision": _rounded(precision[pr_points]),
            "recall": _rounded(recall[pr_points]),
            "thresholds": _rounded(pr_thresholds[pr_idx]),
        },
        "roc": {"fpr": _rounded(fpr[roc_idx]), "tpr": _rounded(tpr[roc_idx])},
        "sweep": {
            "threshold": _rounded(table.threshold[idx]),
            "precision": _rounded(table.precision[idx]),
            "recall": _rounded(table.recall[idx]),
            "f1": _rounded(table.f1[idx]),
            "alerts": [int(v) for v in table.alerts[idx]],
            "amount_caught_share": None if share is None else _rounded(share[idx]),
            "cost": None if cost is None else _rounded(cost[idx]),
        },
    }


def _labels_scores(y_true: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int8 0/1 and scores as finite floats, or a FraudcoreError saying what is wrong."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.size == 0:
        raise FraudcoreError("y_true is empty; evaluation needs at least one labelled event")
    if y.size != s.size:
        raise FraudcoreError(f"y_true has {y.size} values but score has {s.size}; pass one score per event")
    try:
        yf = y.astype(float)
    except (TypeError, ValueError) as exc:
        raise FraudcoreError(f"y_true must be 0/1 (1 = fraud) with no missing values: {exc}") from exc
    if np.isnan(yf).any():
        raise FraudcoreError(f"y_true has {int(np.isnan(yf).sum())} missing labels; drop unlabelled events first")
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        raise FraudcoreError(f"y_true must be 0/1 (1 = fraud); found {np.unique(y[bad])[:5].tolist()}")
    if not np.isfinite(s).all():
        raise FraudcoreError(f"score has {int((~np.isfinite(s)).sum())} NaN or infinite values; score every event")
    return yf.astype(np.int8), s


def _amounts(amount: ArrayLike | None, n: int) -> np.ndarray | None:
    """Amounts as non-negative finite floats, one per event, or None."""
    if amount is None:
        return None
    a = np.asarray(amount, dtype=float).ravel()
    if a.size != n:
        raise FraudcoreError(f"amount has {a.size} values but y_true has {n}; pass one amount per event")
    if not np.isfinite(a).all() or (a < 0).any():
        raise FraudcoreError("amount must be finite and non-negative for every event; fill or drop the others")
    return a


def _day_codes(event_time: ArrayLike, n: int) -> np.ndarray:
    """Calendar day of each event as codes 0..days-1 (seconds count from day 0; tz-aware times in UTC)."""
    times = _times(event_time, n)
    if isinstance(times, np.ndarray):
        return pd.factorize(np.floor(times / SECONDS_PER_DAY), sort=True)[0]
    return pd.factorize(times.dt.floor("D"), sort=True)[0]


def window_days(event_time: ArrayLike, n: int | None = None) -> float:
    """How many days of events the window holds: what "alerts per day" divides by. The dates from the first to the
    last, with the two end dates counted in part: a split cut mid-day makes a 1.2-day window touch 2 dates, and
    counting both whole let an alert budget of 100 a day pass ~170. An end date counts as its events over a typical
    day's (the median over the dates between, each at most 1) or, with no typical day to compare with, as the part
    of the date the events cover (from the first event on, up to the last); dates without a time of day count whole.
    """
    times = _times(event_time, np.size(event_time) if n is None else n)
    if not isinstance(times, np.ndarray):
        naive = times.dt.tz_localize(None) if times.dt.tz is not None else times  # UTC already
        times = (naive - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype=float)
    if not times.size:
        return MIN_WINDOW_DAYS
    day = np.floor(times / SECONDS_PER_DAY)
    first, last = day.min(), day.max()
    if first == last:
        return 1.0
    counts = np.bincount((day - first).astype(np.int64))
    typical = float(np.median(counts[1:-1])) if len(counts) > 2 else 0.0
    if typical > 0:
        ends = min(1.0, counts[0] / typical) + min(1.0, counts[-1] / typical)
    elif not np.any(times % SECONDS_PER_DAY):  # dates only: each a whole day
        ends = 2.0
    else:  # the part of the first date from its first event, and of the last date up to its last event
        ends = 1 - (times.min() - first * SECONDS_PER_DAY) / SECONDS_PER_DAY + \
            (times.max() - last * SECONDS_PER_DAY) / SECONDS_PER_DAY
    return max(float(last - first - 1) + ends, MIN_WINDOW_DAYS)


def _times(event_time: ArrayLike, n: int) -> np.ndarray | pd.Series:
    """Seconds (a float array) or datetimes in UTC (a Series) of every event; FraudcoreError when one is missing."""
    t = pd.Series(event_time) if isinstance(event_time, (pd.Series, pd.Index)) else pd.Series(np.ravel(event_time))
    if t.size != n:
        raise FraudcoreError(f"event_time has {t.size} values but y_true has {n}; pass one time per event")
    if pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t):
        seconds = t.to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(seconds).all():
            raise FraudcoreError("event_time has missing or infinite values; every event needs a time")
        return seconds
    try:
        times = pd.to_datetime(t)
    except (TypeError, ValueError) as exc:
        raise FraudcoreError(f"event_time must be datetimes or seconds: {exc}") from exc
    if times.isna().any():
        raise FraudcoreError(f"event_time has {int(times.isna().sum())} missing values; every event needs a time")
    return times.dt.tz_convert("UTC") if times.dt.tz is not None else times


def _check_k_cost(k: int, review_cost: float) -> None:
    """Reject a non-positive k or a negative or non-finite review cost."""
    if k < 1:
        raise FraudcoreError(f"k must be at least 1 (alerts reviewed per day); got {k}")
    if not np.isfinite(review_cost) or review_cost < 0:
        raise FraudcoreError(f"review_cost must be a finite number >= 0; got {review_cost}")


def _pick(n: int, budget: int, *, dense_end: bool) -> np.ndarray:
    """At most ``budget`` sorted indices into range(n), both ends kept, half even and half geometric from one end."""
    if n <= budget:
        return np.arange(n)
    n_even = max(2, budget // 2)
    even = np.rint(np.linspace(0, n - 1, n_even)).astype(np.int64)
    offsets = np.rint(np.geomspace(1, n, budget - n_even)).astype(np.int64) - 1 if budget - n_even >= 2 else []
    dense = (n - 1 - np.asarray(offsets, dtype=np.int64)) if dense_end else np.asarray(offsets, dtype=np.int64)
    return np.unique(np.r_[even, dense])


def _rounded(values: np.ndarray) -> list[float]:
    """Plain floats rounded to DIGITS."""
    return [round(float(v), DIGITS) for v in values]


def _finite(value: float) -> float | None:
    """A plain float, or None when it is NaN or infinite."""
    value = float(value)
    return value if np.isfinite(value) else None
