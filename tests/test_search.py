"""Hyper-parameter search: default first, same trials for the same seed, budget cuts recorded, best configuration
averaged over seeds, best model kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudcore.errors import FraudcoreError
from fraudcore.models import make_model
from fraudcore.search import DEFAULTS, search, trial_plan
from tests.test_models import synthetic

ONE_THREAD = {"n_jobs": 1}


@pytest.fixture(scope="module")
def data() -> tuple:
    (X, y), (Xv, yv) = synthetic(3000, 11), synthetic(1500, 12)
    return X, y, Xv, yv


def _ratio(y: np.ndarray) -> float:
    return float((y == 0).sum() / (y == 1).sum())


def test_zero_minutes_runs_only_the_default(data: tuple) -> None:
    result = search("xgboost", *data, minutes=0, fixed=ONE_THREAD)
    assert len(result.trials) == 1 and result.stopped_by == "budget"
    root = float(f"{math.sqrt(_ratio(data[1])):.4g}")
    assert result.trials[0].params == {**DEFAULTS["xgboost"], "scale_pos_weight": root}
    assert result.best_params["max_depth"] == 6 and result.best_params["random_state"] == 0
    assert result.best_params["n_bags"] == 1
    assert result.trials[0].best_iteration == result.best_model.best_iteration_


def test_same_seed_same_trials_in_the_same_order(data: tuple) -> None:
    first = search("xgboost", *data, minutes=10, seed=3, max_trials=3, fixed=ONE_THREAD)
    second = search("xgboost", *data, minutes=10, seed=3, max_trials=3, fixed=ONE_THREAD)
    assert first.stopped_by == second.stopped_by == "exhausted"
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.valid_ap for t in first.trials] == [t.valid_ap for t in second.trials]
    assert len({str(t.params) for t in first.trials}) == 4  # three configurations, then the best one bagged
    other = trial_plan("xgboost", data[1], seed=4, max_trials=3)
    assert other[0] == first.trials[0].params and other[1:] != [t.params for t in first.trials[1:3]]


def test_best_configuration_is_averaged_over_seeds_as_a_last_trial(data: tuple) -> None:
    X, y, Xv, yv = data
    result = search("xgboost", X, y, Xv, yv, minutes=10, seed=1, max_trials=3, fixed=ONE_THREAD, bags=2)
    singles, bagged = result.trials[:3], result.trials[3]
    chosen = max(singles, key=lambda t: t.valid_ap)
    assert bagged.params == {**chosen.params, "n_bags": 2}
    assert all(t.params.get("n_bags") is None for t in singles)
    assert result.best_params["n_bags"] == 2 and result.best_params["random_state"] == 1
    assert average_precision_score(yv, result.best_model.predict_proba(Xv)) == pytest.approx(bagged.valid_ap)
    assert result.best_model.best_iteration_ == bagged.best_iteration


def test_a_trial_count_runs_exactly_that_many_whatever_the_clock(data: tuple) -> None:
    result = search("xgboost", *data, minutes=1e-6, trials=2, fixed=ONE_THREAD)
    assert result.stopped_by == "exhausted" and len(result.trials) == 3
    assert result.trials[-1].params["n_bags"] == 3
    unbagged = search("logreg", *data, minutes=1e-6, trials=2)
    assert len(unbagged.trials) == 2 and unbagged.stopped_by == "exhausted"
    with pytest.raises(FraudcoreError, match="trials and bags >= 1"):
        search("logreg", *data, trials=0)


def test_tight_budget_skips_averaging_and_says_so(data: tuple) -> None:
    result = search("xgboost", *data, minutes=1e-4, fixed=ONE_THREAD)
    assert len(result.trials) == 1 and result.stopped_by == "budget"
    assert "n_bags" not in result.trials[0].params


def test_best_model_is_the_best_trial_and_its_params_rebuild_it(data: tuple) -> None:
    X, y, Xv, yv = data
    result = search("logreg", X, y, Xv, yv, minutes=10, seed=1, max_trials=4)
    aps = [t.valid_ap for t in result.trials]
    best_ap = average_precision_score(yv, result.best_model.predict_proba(Xv))
    assert best_ap == pytest.approx(max(aps))
    rebuilt = make_model("logreg", **result.best_params).fit(X, y)
    np.testing.assert_array_equal(rebuilt.predict_proba(Xv), result.best_model.predict_proba(Xv))


def test_budget_cuts_the_list_and_says_so(data: tuple) -> None:
    result = search("logreg", *data, minutes=1e-6, max_trials=5)
    assert result.stopped_by == "budget" and len(result.trials) < 5


def test_progress_reports_after_each_trial(data: tuple) -> None:
    calls: list[tuple[float, str]] = []
    result = search("logreg", *data, minutes=10, max_trials=3, progress=lambda f, m: calls.append((f, m)))
    assert len(calls) == len(result.trials) == 3
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "trial 1/3" in calls[0][1]


def test_fraud_weight_is_a_root_of_the_class_ratio(data: tuple) -> None:
    ratio = _ratio(data[1])
    allowed = {float(f"{ratio ** power:.4g}") for power in (0.25, 0.5, 0.75)}
    plan = trial_plan("xgboost", data[1], seed=0, max_trials=12)
    assert len(plan) == 12 and {p["scale_pos_weight"] for p in plan} <= allowed
    assert plan[0]["scale_pos_weight"] == float(f"{math.sqrt(ratio):.4g}")
    assert {p["max_depth"] for p in plan} <= set(range(3, 9))
    assert all(0.05 <= p["learning_rate"] <= 0.2 for p in plan[1:])


def test_anomaly_without_validation_labels_runs_its_default(data: tuple) -> None:
    X, y, Xv, _ = data
    result = search("anomaly", X, y, Xv, None, minutes=10, max_trials=4, fixed=ONE_THREAD)
    assert len(result.trials) == 1 and math.isnan(result.trials[0].valid_ap)
    assert result.trials[0].params == DEFAULTS["anomaly"] and result.stopped_by == "exhausted"


def test_anomaly_with_labels_is_ranked_by_ap(data: tuple) -> None:
    result = search("anomaly", *data, minutes=10, max_trials=2, fixed=ONE_THREAD)
    assert len(result.trials) == 2 and all(np.isfinite(t.valid_ap) for t in result.trials)
    assert result.trials[1].params != result.trials[0].params


def test_supervised_search_needs_fraud_in_validation(data: tuple) -> None:
    X, y, Xv, yv = data
    with pytest.raises(FraudcoreError, match="both fraud and legitimate"):
        search("logreg", X, y, Xv, np.zeros_like(yv))
    with pytest.raises(FraudcoreError, match="unknown model family"):
        search("svm", X, y, Xv, yv)


def test_the_budget_keeps_time_for_refitting_the_chosen_configuration(data: tuple, monkeypatch) -> None:
    import itertools

    from fraudcore import search as search_module

    def trials_run(refit: bool) -> int:
        ticks = itertools.count()  # every reading of the clock is one second later: each trial "takes" 1 s
        monkeypatch.setattr(search_module, "clock", lambda: float(next(ticks)))
        return len(search("logreg", *data, minutes=8.5 / 60, max_trials=4, refit=refit).trials)

    # after trial 1 (clock at 4 s): 4 + 4 (next trial) fits in 8.5 s; + 1 s kept for the refit does not
    assert trials_run(refit=False) > trials_run(refit=True) == 1
