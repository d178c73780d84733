"""Model charts: each builds valid Vega-Lite carrying the data and encodings the pages rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudcore import model_charts
from fraudcore.comparison import Window
from fraudcore.split import SplitPlan
from fraudcore.timeline import split_preview
from fraudcore.tuning import sweep_frame, what_if


def _window() -> Window:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(np.int8)
    score = np.clip(y * 0.5 + rng.random(400) * 0.5, 0, 1)
    times = np.datetime64("2025-01-01") + (np.arange(400) * 600).astype("timedelta64[s]")
    return Window("valid", np.arange(400), y, score, amount=rng.uniform(1, 100, 400), times=times)


def _layers(chart) -> list[dict]:
    spec = chart.to_dict()
    return spec.get("layer", [spec])


def test_timeline_chart_draws_bands_under_the_volume():
    w = _window()
    preview = split_preview(pd.DataFrame({"time": w.times, "label": w.y}), SplitPlan(delay_days=0.1))
    bands, bars = _layers(model_charts.timeline_chart(preview))
    assert bands["mark"]["type"] == "rect" and bands["encoding"]["x2"]["field"] == "end"
    assert bands["encoding"]["color"]["field"] == "band" and bars["encoding"]["y"]["field"] == "events"
    assert bands["encoding"]["color"]["scale"]["domain"] == ["train", "validation", "test", "label-delay gap"]


def test_curve_charts_colour_one_line_per_model():
    pr = pd.DataFrame({"model": ["a", "a", "b", "b"], "recall": [0, 1, 0, 1], "precision": [1, 0.1, 1, 0.2],
                       "ap": [0.5, 0.5, 0.6, 0.6]})
    spec = model_charts.pr_chart(pr).to_dict()
    assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["x"]["field"] == "recall"
    roc = pd.DataFrame({"model": ["a", "a"], "fpr": [0, 1], "tpr": [0, 1], "auc": [0.5, 0.5]})
    chance, lines = _layers(model_charts.roc_chart(roc))
    assert lines["encoding"]["color"]["field"] == "model" and chance["mark"]["strokeDash"] == [4, 4]


def test_what_if_charts_show_the_cuts_and_counts():
    w = _window()
    result = what_if(w, 0.8, 0.4)
    cells, text = _layers(model_charts.confusion_chart(result.confusion))
    assert text["encoding"]["text"]["field"] == "events" and cells["mark"]["type"] == "rect"
    tiers = model_charts.tiers_chart(result.tiers).to_dict()
    assert tiers["encoding"]["column"]["field"] == "class"
    chart = model_charts.threshold_chart(sweep_frame(w), high=0.8, medium=0.4)
    spec = chart.to_dict()
    rules = spec["layer"][1]
    cut_data = next(v for k, v in spec["datasets"].items() if rules["data"]["name"] == k)
    assert sorted((row["threshold"], row["cut"]) for row in cut_data) == [(0.4, "review (medium)"),
                                                                          (0.8, "block (high)")]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["precision", "recall"]


def test_trials_chart_marks_the_best_trial():
    spec = model_charts.trials_chart([{"valid_ap": 0.3, "seconds": 1.0}, {"valid_ap": 0.5, "seconds": 2.0}]).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert [r["best"] for r in rows] == [False, True]
