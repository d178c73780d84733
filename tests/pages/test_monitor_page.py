"""Monitor page over a real store of the champion's live scores: what to do without a champion or live events; drift
numbers that grow after shifted events are injected; threshold replay following its sliders; realized precision
after a review decision; a retrained challenger compared, shadowed and promoted (logged)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import review, runtime
from fraudcore.config import get_paths
from fraudcore.dataset import open_dataset
from fraudcore.inputs import model_inputs
from fraudcore.monitor import maturity_summary
from fraudcore.monitor_compare import threshold_replay
from fraudcore.registry import champion_id, promote
from fraudcore.scoring import Scorer
from tests.conftest import REPO
from tests.pages.conftest import open_page

PAGE = str(REPO / "pages" / "monitor.py")
LIVE_EVENTS = 3000
LABEL_DELAY = timedelta(days=2)  # events older than this before the newest one carry their label


@pytest.fixture(scope="module")
def inputs(trained, scorer) -> pd.DataFrame:
    """The session model's last events with their batch features (equal to the live path's, tested elsewhere)."""
    opened = open_dataset(trained.parquet, spec=scorer.spec)
    return model_inputs(opened, "none", feature_config=scorer.feature_config).frame.iloc[-LIVE_EVENTS:]


def live_batch(trained, scorer: Scorer, inputs: pd.DataFrame, amount_factor: float = 1.0,
               prefix: str = "", shadow: Scorer | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw events (labels only on mature ones) and their scores with model inputs and reasons for alerts, as the
    ingest path stores them; ``shadow`` adds a challenger's scores rows for the same events."""
    X = inputs[scorer.feature_names].assign(amount=lambda f: f["amount"] * amount_factor)
    records = X.to_dict("records")
    frames = []
    for model, is_shadow in [(scorer, False), *([(shadow, True)] if shadow else [])]:
        scored = model.score_inputs(X)
        alerts = np.flatnonzero(scored["tier"].to_numpy() != "low")
        reasons: list = [None] * len(records)
        for i, found in zip(alerts, model.reasons([records[i] for i in alerts], 3), strict=True):
            reasons[i] = found
        frames.append(pd.DataFrame({"event_id": [f"{prefix}{e}" for e in inputs["event_id"]],
                                    "model_id": model.model_id, "score": scored["score"].to_numpy(),
                                    "tier": scored["tier"].to_numpy(), "reasons": reasons, "features": records,
                                    "shadow": is_shadow}))
    events = trained.frame.set_index("event_id").loc[inputs["event_id"]].reset_index().drop(columns="fraud_scenario")
    events["event_id"] = [f"{prefix}{e}" for e in events["event_id"]]
    events["amount"] = events["amount"] * amount_factor
    mature = events["event_time"] <= events["event_time"].max() - LABEL_DELAY
    events["is_fraud"] = events["is_fraud"].astype("Int64").where(mature)
    return events, pd.concat(frames, ignore_index=True)


@pytest.fixture
def champion(trained):
    """The session model copied into this test's artifacts and promoted."""
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test", why="the monitor page needs a champion")
    yield runtime.current().scorer()
    runtime.shutdown()


@pytest.fixture
def store(trained, champion, inputs):
    """The process's store holding the champion's live traffic."""
    opened = runtime.current().store(champion)
    opened.write_batch(*live_batch(trained, champion, inputs))
    return opened


def page(analyst: str | None = "ana") -> AppTest:
    return open_page(PAGE, analyst, timeout=90)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table showing this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_without_a_champion_the_page_says_what_to_do():
    at = page().run()
    assert not at.exception
    assert "no champion model to monitor yet" in at.info[0].value and "Train page" in at.info[0].value
    runtime.shutdown()


def test_without_live_events_the_page_says_to_start_the_feed(champion):
    at = page().run()
    assert not at.exception
    assert any("No live events scored by `score-xgb`" in i.value and "Live page" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "psi" in d.value.columns]


def test_drift_numbers_grow_after_shifted_events_are_injected(trained, champion, store, inputs):
    at = page().run()
    assert not at.exception, at.exception
    before = table(at, "psi").set_index("feature")
    assert len(before) == len(champion.feature_names) and before["rank"].tolist() == list(range(1, len(before) + 1))
    assert before["alert_influence"].is_monotonic_decreasing  # ranked by how much each input drives alerts
    assert before.loc["amount", "level"] == "stable"
    score_psi = float(metrics(at)["Score PSI"])
    major = int(metrics(at)["Inputs with major drift"])

    store.write_batch(*live_batch(trained, champion, inputs, amount_factor=10.0, prefix="x"))
    at.run()
    assert not at.exception
    after = table(at, "psi").set_index("feature")
    assert after.loc["amount", "n_live"] == 2 * before.loc["amount", "n_live"]
    assert after.loc["amount", "psi"] > before.loc["amount", "psi"] + 0.25 and after.loc["amount", "level"] == "major"
    assert after.loc["amount", "ks"] > before.loc["amount", "ks"]
    assert after.loc["tx_hour", "psi"] == pytest.approx(before.loc["tx_hour", "psi"], abs=1e-9)  # untouched input
    assert float(metrics(at)["Score PSI"]) > score_psi
    assert int(metrics(at)["Inputs with major drift"]) > major


def test_threshold_replay_follows_the_sliders(champion, store):
    at = page().run()
    medium_cut, high_cut = champion.tiers.medium.threshold, champion.tiers.high.threshold
    stored = store.query("SELECT count(*) FILTER (WHERE tier <> 'low') AS alerts FROM scores")["alerts"].iloc[0]
    assert metrics(at)["Alerts"] == f"{stored:,}"  # the current cuts replay the queue as it was
    high = at.select_slider(key=f"mon_high|{champion.model_id}")
    assert high.value == high_cut
    at.select_slider(key=f"mon_medium|{champion.model_id}").set_value(0.05)
    at.run()
    assert not at.exception
    expected = threshold_replay(store, champion.model_id, 0.05, high_cut).summary.set_index("scenario")
    proposed, current = expected.loc["proposed"], expected.loc["current"]
    assert proposed["alerts"] < current["alerts"]  # a higher review cut sends fewer events to review
    figures = metrics(at)
    assert figures["Alerts"] == f"{int(proposed['alerts']):,}"
    assert figures["Frauds missed"] == f"{int(proposed['missed']):,}"
    delta = next(m for m in at.metric if m.label == "Alerts").proto.delta
    assert delta == f"{int(proposed['alerts'] - current['alerts'])}"
    moves = table(at, "current \\ proposed").set_index("current \\ proposed")
    assert moves.loc["medium", "low"] == current["medium"] - proposed["medium"]  # cases that would no longer open

    at.select_slider(key=f"mon_high|{champion.model_id}").set_value(0.01).run()  # below the medium cut
    assert not at.exception
    assert any("must be >= the medium cut" in e.value for e in at.error)
    assert medium_cut < 0.05


def test_realized_precision_counts_a_review_decision(champion, store):
    at = page().run()
    before = table(at, "ci_low").set_index("tier")
    open_case = store.query("SELECT c.case_id FROM cases c JOIN events e USING (event_id) WHERE e.label IS NULL "
                            "AND c.tier = 'high' ORDER BY c.case_id LIMIT 1")["case_id"]
    assert len(open_case) == 1
    review.decide(store, int(open_case.iloc[0]), "ana", "confirmed_fraud", "confirmed with the cardholder")
    at.run()
    after = table(at, "ci_low").set_index("tier")
    assert after.loc["high", "decided"] == before.loc["high", "decided"] + 1
    assert after.loc["high", "confirmed"] == before.loc["high", "confirmed"] + 1
    assert metrics(at)["High precision"] == f"{after.loc['high', 'precision']:.1%}"
    assert metrics(at)["Labelled (of those)"] == "—"  # the live events are younger than the 7-day label delay
    at.number_input(key="mon_delay").set_value(1.0).run()
    expected = maturity_summary(store, 1.0)
    assert 0 < expected["labelled_share_of_mature"] < 1
    assert metrics(at)["Labelled (of those)"] == f"{expected['labelled_share_of_mature']:.1%}"
    assert metrics(at)["Old enough to be labelled"] == f"{expected['mature_share']:.1%}"


def test_retrain_compare_shadow_and_promote(trained, champion, store, inputs):
    at = page().run()
    at.number_input(key="mon_retrain_minutes").set_value(0.0)
    at.checkbox(key="mon_retrain_original").check()  # the few stored labels alone are too few to tune tiers on
    next(b for b in at.button if b.label == "Retrain from labels").click().run()
    job = runtime.current().jobs.get(at.session_state["mon_retrain_job"])
    assert job is not None and job.wait(180), "the retrain did not finish within 180 s"
    assert job.status == "done", job.detail
    at.run()
    assert not at.exception
    report = job.result
    assert any(f"`{report.challenger_id}`" in m.value and "than `score-xgb`" in m.value for m in at.markdown)
    compared = table(at, "precision_at_volume")
    assert compared["role"].tolist() == ["champion", "challenger"]
    assert compared["events"].nunique() == 1  # both scored on the same window

    at.selectbox(key="mon_shadow_pick").set_value(report.challenger_id)
    at.text_input(key="mon_shadow_why").input("retrained on labels").run()
    at.button(key="mon_shadow_set").click().run()
    assert any("scores the live feed in shadow" in s.value for s in at.success)
    challenger = runtime.current().scorer(report.challenger_id)
    store.write_batch(*live_batch(trained, champion, inputs.iloc[-500:], prefix="s", shadow=challenger))
    at.run()
    figures = metrics(at)
    assert figures["Events scored by both"] == "500"
    assert table(at, "only_this_model")["model_id"].tolist() == ["score-xgb", report.challenger_id]
    at.button(key="mon_shadow_clear").click().run()
    assert any(f"Stopped shadow scoring with `{report.challenger_id}`" in s.value for s in at.success)
    assert any("No challenger scores the feed in shadow" in i.value for i in at.info)

    if not report.better:  # promoting a challenger that did not win needs the analyst to say so
        assert at.button(key="mon_promote").disabled
        at.checkbox(key="mon_promote_anyway").check().run()
    at.button(key="mon_promote").click().run()
    assert not at.exception
    assert champion_id() == report.challenger_id
    record = json.loads((get_paths().artifacts / "champion.json").read_text())
    assert record["by"] == "ana" and record["previous"] == "score-xgb" and "retrain from labels" in record["why"]
    assert any(f"`{report.challenger_id}` is the champion now" in s.value for s in at.success)
