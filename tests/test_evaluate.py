"""Evaluation metrics against scikit-learn or hand-computed values on tiny windows; curves are compact and monotone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from fraudcore.errors import FraudcoreError
from fraudcore.evaluate import curves, evaluate, sweep, window_days

# Two days, three or four events each; entities A..F. Rows: (time, entity, score, fraud).
TOPK_ROWS = [
    ("2024-01-01 08:00", "A", 0.90, 0),
    ("2024-01-01 09:00", "A", 0.85, 0),
    ("2024-01-01 12:00", "B", 0.80, 1),
    ("2024-01-01 23:59", "C", 0.30, 0),
    ("2024-01-02 00:01", "D", 0.20, 1),
    ("2024-01-02 10:00", "D", 0.60, 0),
    ("2024-01-02 11:00", "E", 0.50, 0),
    ("2024-01-02 12:00", "F", 0.40, 1),
]


@pytest.fixture
def topk() -> pd.DataFrame:
    return pd.DataFrame(TOPK_ROWS, columns=["time", "entity", "score", "y"]).assign(
        time=lambda d: pd.to_datetime(d.time)
    )


@pytest.fixture
def random_window() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = (rng.random(5000) < 0.05).astype(int)
    score = 1 / (1 + np.exp(-rng.normal(-1.0 + 2.0 * y, 1.0)))
    amount = rng.gamma(2.0, 40.0, size=y.size)
    return y, score, amount


def _evaluate_topk(frame: pd.DataFrame, k: int, **kw: object) -> dict:
    return evaluate(frame.y, frame.score, 0.5, event_time=frame.time, entity=frame.entity, k=k, **kw)


def test_precision_at_k_two_days_by_hand(topk: pd.DataFrame) -> None:
    # k=2. Day 1 top-2 scores 0.90 (legit), 0.85 (legit) -> 0/2. Day 2 top-2 0.60 (legit), 0.50 (legit) -> 0/2.
    assert _evaluate_topk(topk, 2)["precision_at_k"] == 0.0
    # k=3. Day 1 adds 0.80 (fraud) -> 1/3. Day 2 adds 0.40 (fraud) -> 1/3. Mean 1/3.
    assert _evaluate_topk(topk, 3)["precision_at_k"] == pytest.approx(1 / 3)
    # k=5 exceeds each day's events; the handbook still divides by k: day 1 1/5, day 2 2/5 -> 0.3.
    assert _evaluate_topk(topk, 5)["precision_at_k"] == pytest.approx(0.3)


def test_card_precision_at_k_two_days_by_hand(topk: pd.DataFrame) -> None:
    # Day 1 cards by max score: A 0.90 (no fraud), B 0.80 (fraud), C 0.30 (no fraud).
    # Day 2 cards: D 0.60 (fraud that day, on its 0.20 event), E 0.50 (none), F 0.40 (fraud).
    # k=2: day 1 {A, B} -> 1/2; day 2 {D, E} -> 1/2; mean 0.5 (while transaction precision@2 is 0).
    assert _evaluate_topk(topk, 2)["card_precision_at_k"] == pytest.approx(0.5)
    # k=3: day 1 {A, B, C} -> 1/3; day 2 {D, E, F} -> 2/3; mean 0.5.
    assert _evaluate_topk(topk, 3)["card_precision_at_k"] == pytest.approx(0.5)
    # k=1: day 1 {A} -> 0; day 2 {D} -> 1; mean 0.5.
    assert _evaluate_topk(topk, 1)["card_precision_at_k"] == pytest.approx(0.5)


def test_card_precision_leaves_out_events_without_a_card(topk: pd.DataFrame) -> None:
    # B's fraud (day 1, 0.80) has no card: day 1 cards {A 0.90, C 0.30} -> 0/2; day 2 {D, E} -> 1/2; mean 0.25.
    unknown = topk.assign(entity=topk.entity.where(topk.entity != "B", None))
    assert _evaluate_topk(unknown, 2)["card_precision_at_k"] == pytest.approx(0.25)
    assert _evaluate_topk(topk.assign(entity=None), 2)["card_precision_at_k"] is None  # no card at all


def test_card_precision_leaves_out_cards_caught_on_earlier_days() -> None:
    # Day 1: card A (fraud, 0.9) and B (legit, 0.8). k=1 -> A caught, 1/1.
    # Day 2: A again (fraud, 0.95) is left out because it was caught; B (legit, 0.7) tops the day -> 0/1.
    # Mean 0.5; without the removal day 2 would count A again and the mean would be 1.0.
    frame = pd.DataFrame({
        "time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02 10:00", "2024-01-02 11:00"]),
        "entity": ["A", "B", "A", "B"], "score": [0.9, 0.8, 0.95, 0.7], "y": [1, 0, 1, 0]})
    assert _evaluate_topk(frame, 1)["card_precision_at_k"] == pytest.approx(0.5)


def test_top_k_accepts_seconds(topk: pd.DataFrame) -> None:
    seconds = (topk.time - pd.Timestamp("2024-01-01")).dt.total_seconds().to_numpy()
    result = evaluate(topk.y, topk.score, 0.5, event_time=seconds, entity=topk.entity, k=3)
    assert result["n_days"] == pytest.approx(28 / 24)  # from 08:00 on day 1 to 12:00 on day 2
    assert result["precision_at_k"] == pytest.approx(1 / 3)
    assert result["card_precision_at_k"] == pytest.approx(0.5)


def test_tz_aware_times_are_split_into_utc_days() -> None:
    # 23:30 and 00:30 UTC fall on two UTC days but on the same Tokyo day (08:30 and 09:30 on Jan 2).
    utc = pd.Series(pd.to_datetime(["2024-01-01 23:30", "2024-01-02 00:30"]).tz_localize("UTC"))
    result = evaluate([1, 0], [0.9, 0.8], 0.5, event_time=utc.dt.tz_convert("Asia/Tokyo"), k=1)
    assert result["n_days"] == pytest.approx(1 / 24)  # an hour apart: the shortest window counted
    assert result["alerts_per_day"] == pytest.approx(48.0)
    assert result["precision_at_k"] == 0.5  # day 1: 1/1, day 2: 0/1 (UTC calendar days)


def test_top_k_needs_event_time_and_card_needs_entity(topk: pd.DataFrame) -> None:
    without_time = evaluate(topk.y, topk.score, 0.5, entity=topk.entity, k=2)
    assert without_time["precision_at_k"] is None and without_time["card_precision_at_k"] is None
    without_entity = evaluate(topk.y, topk.score, 0.5, event_time=topk.time, k=2)
    assert without_entity["precision_at_k"] == 0.0 and without_entity["card_precision_at_k"] is None


def test_headline_metrics_match_sklearn(random_window: tuple) -> None:
    y, score, _ = random_window
    result = evaluate(y, score, 0.5)
    pred = (score >= 0.5).astype(int)
    assert result["average_precision"] == pytest.approx(metrics.average_precision_score(y, score))
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, score))
    assert result["brier"] == pytest.approx(metrics.brier_score_loss(y, score))
    assert result["precision"] == pytest.approx(metrics.precision_score(y, pred))
    assert result["recall"] == pytest.approx(metrics.recall_score(y, pred))
    assert result["f1"] == pytest.approx(metrics.f1_score(y, pred))
    tn, fp, fn, tp = metrics.confusion_matrix(y, pred).ravel()
    assert result["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert (result["n"], result["n_fraud"]) == (5000, int(y.sum()))
    assert result["fraud_rate"] == pytest.approx(y.mean())
    assert result["alerts"] == tp + fp


def test_threshold_is_inclusive() -> None:
    result = evaluate([1, 0, 0], [0.5, 0.49, 0.2], 0.5)
    assert result["confusion"] == {"tn": 2, "fp": 0, "fn": 0, "tp": 1}


def test_cost_amount_and_alerts_per_day_by_hand() -> None:
    y = [1, 1, 0, 0, 1]
    score = [0.9, 0.4, 0.8, 0.1, 0.6]
    amount = [100.0, 50.0, 20.0, 30.0, 10.0]
    times = pd.to_datetime(
        ["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-02 09:00", "2024-03-02 10:00", "2024-03-02 11:00"]
    )
    result = evaluate(y, score, 0.5, amount=amount, event_time=times, review_cost=5.0)
    # Alerts: 0.9 (fraud 100), 0.8 (legit), 0.6 (fraud 10) -> tp 2, fp 1; missed fraud 0.4 (50).
    assert result["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 2}
    assert result["expected_cost"] == pytest.approx(3 * 5.0 + 50.0)  # every alert reviewed + missed amount
    assert result["amount_caught_share"] == pytest.approx(110 / 160)
    assert result["alerts_per_day"] == pytest.approx(3 / (25 / 24))  # 3 alerts over 25 hours
    assert result["review_cost"] == 5.0


def test_undefined_metrics_are_none_and_json_is_nan_free() -> None:
    result = evaluate([0, 0, 0], [3.0, -1.0, 7.0], 100.0, amount=[1.0, 2.0, 3.0])
    assert result["average_precision"] is None
    assert result["roc_auc"] is None
    assert result["brier"] is None  # anomaly scores outside [0, 1] are not probabilities
    assert result["precision"] is None and result["recall"] is None and result["f1"] is None
    assert result["amount_caught_share"] is None
    assert result["expected_cost"] == 0.0
    assert json.loads(json.dumps(result, allow_nan=False)) == result


@pytest.mark.parametrize(
    ("y", "score", "kwargs", "message"),
    [
        ([0, 1], [0.1], {}, "one score per event"),
        ([0, 2], [0.1, 0.2], {}, "0/1"),
        ([0, 1], [0.1, np.nan], {}, "NaN"),
        ([0, 1], [0.1, 0.2], {"amount": [1.0, -3.0]}, "non-negative"),
        ([0, 1], [0.1, 0.2], {"event_time": [None, "2024-01-01"]}, "missing"),
        ([0, 1], [0.1, 0.2], {"k": 0}, "k must be"),
        ([], [], {}, "empty"),
    ],
)
def test_bad_inputs_raise_clear_errors(y: list, score: list, kwargs: dict, message: str) -> None:
    with pytest.raises(FraudcoreError, match=message):
        evaluate(y, score, 0.5, **kwargs)


def test_sweep_matches_sklearn_precision_recall_curve(random_window: tuple) -> None:
    y, score, amount = random_window
    table = sweep(y, score, amount=amount)
    precision, recall, thresholds = metrics.precision_recall_curve(y, score)
    np.testing.assert_allclose(table.threshold, thresholds[::-1])
    np.testing.assert_allclose(table.precision, precision[:-1][::-1])
    np.testing.assert_allclose(table.recall, recall[:-1][::-1])
    caught = np.array([amount[(y == 1) & (score >= t)].sum() for t in table.threshold[::97]])
    np.testing.assert_allclose(table.fraud_amount_caught[::97], caught)


def test_curves_are_compact_monotone_and_keep_ends(random_window: tuple) -> None:
    y, score, amount = random_window
    out = curves(y, score, amount=amount, max_points=50)
    pr, roc, sw = out["pr"], out["roc"], out["sweep"]
    assert len(pr["precision"]) == len(pr["recall"]) <= 50
    assert len(pr["thresholds"]) == len(pr["precision"]) - 1
    assert pr["recall"][0] == 1.0 and (pr["precision"][-1], pr["recall"][-1]) == (1.0, 0.0)
    assert np.all(np.diff(pr["recall"]) <= 0) and np.all(np.diff(pr["thresholds"]) > 0)
    assert len(roc["fpr"]) == len(roc["tpr"]) <= 50
    assert (roc["fpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    lengths = {len(v) for v in sw.values()}
    assert len(lengths) == 1 and lengths.pop() <= 50
    assert sw["threshold"][0] == round(score.max(), 6) and sw["threshold"][-1] == round(score.min(), 6)
    assert np.all(np.diff(sw["threshold"]) < 0) and np.all(np.diff(sw["alerts"]) >= 0)
    assert np.all(np.diff(sw["recall"]) >= 0) and np.all(np.diff(sw["amount_caught_share"]) >= 0)
    assert sw["alerts"][-1] == y.size and sw["recall"][-1] == 1.0 and sw["amount_caught_share"][-1] == 1.0
    assert sw["alerts"][:3] == [1, 2, 3]  # dense where operating cuts sit (few alerts)
    assert all(v == round(v, 6) for v in pr["precision"] + roc["tpr"] + sw["cost"])
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_curves_small_input_keeps_every_point_and_costs_by_hand() -> None:
    y, score, amount = [1, 0, 1, 0], [0.9, 0.7, 0.4, 0.1], [100.0, 5.0, 20.0, 5.0]
    out = curves(y, score, amount=amount, review_cost=2.0)
    precision, _, thresholds = metrics.precision_recall_curve(y, score, drop_intermediate=True)
    assert out["pr"]["precision"] == pytest.approx(precision.tolist())
    assert out["pr"]["thresholds"] == pytest.approx(thresholds.tolist())
    assert out["sweep"]["threshold"] == [0.9, 0.7, 0.4, 0.1]
    # cost = alerts * 2 + missed fraud: 1*2+20, 2*2+20, 3*2+0, 4*2+0
    assert out["sweep"]["cost"] == [22.0, 24.0, 6.0, 8.0]
    assert out["sweep"]["amount_caught_share"] == pytest.approx([100 / 120, 100 / 120, 1.0, 1.0])
    assert curves(y, score)["sweep"]["cost"] is None


def test_curves_refuse_single_class_and_tiny_max_points() -> None:
    with pytest.raises(FraudcoreError, match="both fraud and legitimate"):
        curves([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(FraudcoreError, match="max_points"):
        curves([0, 1], [0.1, 0.2], max_points=2)


def test_alerts_per_day_divide_by_the_days_of_events_not_the_dates_touched() -> None:
    # A validation window cut mid-day: 28 hours over two calendar dates, 100 alerts. Counting 2 dates would report
    # 50 a day, so a budget of 50 a day would let ~86 a day through.
    times = pd.date_range("2024-06-01 14:00", "2024-06-02 18:00", periods=100)
    result = evaluate(np.ones(100, dtype=int), np.full(100, 0.9), 0.5, event_time=times)
    assert result["n_days"] == pytest.approx(28 / 24)  # 10 hours of day 1, 18 of day 2
    assert sweep(np.ones(100, dtype=int), np.full(100, 0.9), event_time=times).n_days == result["n_days"]


@pytest.mark.parametrize(("times", "days"), [
    (pd.date_range("2024-01-01", periods=7 * 24, freq="h"), 7.0),  # round the clock
    (pd.to_datetime([f"2024-01-0{d} {h:02d}:00" for d in range(1, 8) for h in range(9, 18)]), 7.0),  # 09-17 only
    (pd.to_datetime([f"2024-01-0{d}" for d in range(1, 8)] * 3), 7.0),  # dates without a time of day
    (pd.date_range("2024-06-01 12:00", "2024-06-04 12:00", freq="10min"), 3.0),  # cut mid-day: half days at the ends
    (pd.to_datetime(["2024-01-01 10:00"] * 1000 + ["2024-01-02 10:00"] + ["2024-01-03 10:00"] * 1000), 3.0),  # uneven
    (pd.date_range("2024-01-01 10:00", periods=100, freq="88h"), 100 * 88 / 24),  # sparse: most dates empty
    (pd.to_datetime(["2024-01-01"] * 10 + ["2024-01-02"] + ["2024-01-03"] * 10), 3.0),  # dates only, uneven
    (pd.to_datetime(["2024-01-01 10:00"]), 1.0),  # one date: one day, whatever the hour
])
def test_window_days_count_days_of_events(times, days) -> None:
    assert window_days(times) == pytest.approx(days, rel=0.015)
