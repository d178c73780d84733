"""What the Monitor page shows beyond fraudcore.monitor*: live status, replay cut points and figures, drift and
precision summaries, retrain tables, the label maturity chart, and promoting a challenger that did not win."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import pandas as pd
import pytest

from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError
from fraudcore.monitor import label_maturity, realized_precision
from fraudcore.monitor_compare import threshold_replay
from fraudcore.monitor_view import (
    DRIFT_COLUMNS,
    cut_grid,
    drift_levels,
    drift_table,
    live_status,
    maturity_chart,
    moves_table,
    precision_metrics,
    promote_anyway,
    replay_deltas,
    replay_table,
    retrain_history_table,
    retrain_table,
    shadow_candidates,
)
from fraudcore.registry import ModelMetadata, champion_id, promote
from fraudcore.retrain import RetrainReport, WindowMetrics
from fraudcore.store import Store

DAY0 = datetime(2025, 3, 1)


@pytest.fixture
def store(isolated_paths):
    """Ten events of model m over two days (scores 0.05 … 0.95, every third labelled fraud, even ones legitimate),
    plus shadow scores of model c for the first four."""
    with Store.open() as opened:
        ids = [f"e{i}" for i in range(10)]
        labels = pd.array([1 if i % 3 == 0 else (0 if i % 2 == 0 else None) for i in range(10)], dtype="Int64")
        events = pd.DataFrame({"event_id": ids, "event_time": [DAY0 + timedelta(hours=5 * i) for i in range(10)],
                               "amount": 10.0, "label": labels})
        score = [0.05 + 0.1 * i for i in range(10)]
        live = pd.DataFrame({"event_id": ids, "model_id": "m", "score": score,
                             "tier": ["high" if s >= 0.8 else "medium" if s >= 0.5 else "low" for s in score]})
        shadow = pd.DataFrame({"event_id": ids[:4], "model_id": "c", "score": 0.9, "tier": "high", "shadow": True})
        opened.write_batch(events, pd.concat([live, shadow], ignore_index=True))
        yield opened


def test_live_status_counts_live_scores_only(store):
    status = live_status(store, "m")
    assert status.events == 10 and status.first == DAY0 and status.last == DAY0 + timedelta(hours=45)
    assert live_status(store, "c").events == 0  # shadow scores are not live traffic
    assert live_status(store, "nobody") == type(status)(0)


def test_cut_grid_holds_the_current_cuts_exactly():
    grid = cut_grid((0.0019179910887032747, 0.15037))
    assert grid == sorted(set(grid)) and 0.0019179910887032747 in grid and 0.15037 in grid
    assert grid[0] > 0 and grid[-1] < 1 and len(grid) > 50


def test_replay_figures_against_the_current_cuts(store):
    replay = threshold_replay(store, "m", 0.3, 0.8, current=(0.5, 0.8))
    figures = {f["label"]: f for f in replay_deltas(replay.summary)}
    # scores .05 .15 … .95: medium at .3 alerts on 7 events (e3–e9), at .5 on 5 (e5–e9); high (.8) on e8, e9
    assert figures["Alerts"]["value"] == "7" and figures["Alerts"]["delta"] == 2 and figures["Alerts"]["inverse"]
    assert figures["High"]["delta"] == 0 and figures["Medium"]["value"] == "5"
    # frauds: e0 e3 e6 e9; legitimate: e2 e4 e8 → caught e3 e6 e9 (was e6 e9), false alarms e4 e8 (was e8)
    assert figures["Frauds caught"]["value"] == "3" and figures["Frauds caught"]["delta"] == 1
    assert figures["Frauds missed"]["value"] == "1" and figures["False alarms"]["delta"] == 1
    assert figures["Precision (labelled alerts)"]["value"] == "60.0%"
    assert figures["Precision (labelled alerts)"]["delta"] == f"{0.6 - 2 / 3:+.1%}"
    table = replay_table(replay.summary).set_index("figure")
    assert table.loc["alerts"].tolist() == [5.0, 7.0] and list(table.columns) == ["current", "proposed"]
    moves = moves_table(replay.moves).set_index("current \\ proposed")
    assert moves.loc["low", "medium"] == 2 and moves.to_numpy().sum() == 10


def test_drift_and_precision_summaries():
    drift = pd.DataFrame({"rank": [1, 2, 3, 4], "feature": list("abcd"), "level": ["major", "stable", None, "major"],
                          "psi": [0.4, 0.01, None, 0.3], "extra": 1})
    assert drift_levels(drift) == {"stable": 1, "moderate": 0, "major": 2}
    assert drift_table(drift).columns.tolist() == DRIFT_COLUMNS
    precision = pd.DataFrame({"tier": ["high", "all"], "cases": [4, 6], "decided": [3, 0], "confirmed": [2, 0],
                              "precision": [2 / 3, None]})
    assert precision_metrics(precision) == [
        {"label": "High precision", "value": "66.7%", "help": "2 confirmed fraud of 3 decided (4 cases)"},
        {"label": "All precision", "value": "—", "help": "0 confirmed fraud of 0 decided (6 cases)"}]


def test_realized_precision_metrics_of_a_store(store):
    figures = {f["label"]: f["value"] for f in precision_metrics(realized_precision(store))}
    # cases: medium e5 e6 e7, high e8 e9; decided e6 (fraud) e8 (legit) e9 (fraud)
    assert figures == {"High precision": "50.0%", "Medium precision": "100.0%", "All precision": "66.7%"}


def test_shadow_candidates():
    models = [{"model_id": "a", "error": None}, {"model_id": "champ", "error": None}, {"model_id": "b", "error": "x"}]
    assert shadow_candidates(models, "champ") == ["a"]
    assert shadow_candidates(models, None) == ["a", "champ"]


def report(champion: str = "score-xgb", challenger: str = "score-copy", better: bool = False) -> RetrainReport:
    def metrics(model_id: str, ap: float) -> WindowMetrics:
        return WindowMetrics(model_id=model_id, events=100, frauds=5, average_precision=ap, roc_auc=0.9, volume=10,
                             precision_at_volume=0.3, recall_at_volume=0.6, event_ids_sha256="0" * 64)

    return RetrainReport(champion_id=champion, challenger_id=challenger, training_data="x.parquet", rows=500,
                         frauds=5, from_store=500, from_original=0, window_start=DAY0, window_end=DAY0,
                         champion=metrics(champion, 0.5), challenger=metrics(challenger, 0.4), better=better,
                         reasons=["average precision 0.4000 vs champion 0.5000 (not better by more than 0)"],
                         created_by="ana")


def test_retrain_tables():
    table = retrain_table(report())
    assert table["role"].tolist() == ["champion", "challenger"]
    assert table["average_precision"].tolist() == [0.5, 0.4] and table["alerts compared"].tolist() == [10, 10]
    history = retrain_history_table([report(better=True), report()])
    assert history[["better", "promoted"]].to_dict("records") == [{"better": True, "promoted": False},
                                                                  {"better": False, "promoted": False}]
    assert retrain_history_table([]).columns.tolist() == ["at", "by", "champion", "challenger", "better", "promoted"]


def test_promote_anyway_is_logged_and_checks_the_champion(trained):
    artifacts = get_paths().ensure().artifacts
    shutil.copytree(trained.root / trained.model_id, artifacts / trained.model_id)
    shutil.copytree(trained.root / trained.model_id, artifacts / "score-copy")
    meta = json.loads((artifacts / "score-copy" / "metadata.json").read_text())
    copy = ModelMetadata.model_validate({**meta, "model_id": "score-copy", "sealed": None})
    (artifacts / "score-copy" / "metadata.json").write_text(copy.to_json())  # written as training writes it
    promote(trained.model_id, who="test", why="start")
    with pytest.raises(FraudcoreError, match="champion changed"):
        promote_anyway(report(champion="another"), who="ana")
    assert champion_id() == trained.model_id
    done = promote_anyway(report(), who="ana")
    assert done.promoted and champion_id() == "score-copy"
    record = json.loads((artifacts / "champion.json").read_text())
    assert record["by"] == "ana" and record["previous"] == trained.model_id
    assert record["why"].startswith("retrain from labels, promoted although not better: average precision 0.4000")


def test_maturity_chart_layers(store):
    maturity = label_maturity(store, label_delay_days=1.0, now=DAY0 + timedelta(days=2))
    chart = maturity_chart(maturity, cutoff=DAY0 + timedelta(days=1))
    spec = chart.to_dict()
    assert len(spec["layer"]) == 3 and spec["resolve"]["scale"]["y"] == "independent"
    lines = chart.layer[1].data
    assert set(lines["share"]) == {"old enough to be labelled", "labelled"} and len(lines) == 2 * len(maturity)
    assert len(maturity_chart(maturity).to_dict()["layer"]) == 2
