"""Review queue page over a real store of scored live events: the queue in order with tier counts and pages; a case
claimed, decided with a note (it leaves the open queue, the audit trail shows both actions, the label is set);
refused actions shown as errors; the drill-down's reasons, waterfall, entity history and similar cases."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import review, runtime
from fraudcore.config import get_paths
from fraudcore.dataset import open_dataset
from fraudcore.inputs import model_inputs
from fraudcore.registry import promote
from fraudcore.review_queue import TIER_ORDER
from tests.conftest import REPO
from tests.pages.conftest import open_page

PAGE = str(REPO / "pages" / "review.py")
LIVE_EVENTS = 1600


@pytest.fixture(scope="module")
def live_batch(trained, scorer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The session model's last events as live traffic: raw events (no label) and their scores with the model
    inputs and, for alerts, exact reasons (as the ingest path writes them)."""
    opened = open_dataset(trained.parquet, spec=scorer.spec)
    inputs = model_inputs(opened, "none", feature_config=scorer.feature_config).frame.iloc[-LIVE_EVENTS:]
    X = inputs[scorer.feature_names]
    scored = scorer.score_inputs(X)
    records = X.to_dict("records")
    alerts = np.flatnonzero(scored["tier"].to_numpy() != "low")
    reasons: list = [None] * len(records)
    for i, found in zip(alerts, scorer.reasons([records[i] for i in alerts], 3), strict=True):
        reasons[i] = found
    events = trained.frame.set_index("event_id").loc[inputs["event_id"]].reset_index() \
        .drop(columns=["is_fraud", "fraud_scenario"])
    scores = pd.DataFrame({"event_id": inputs["event_id"].to_numpy(), "model_id": scorer.model_id,
                           "score": scored["score"].to_numpy(), "tier": scored["tier"].to_numpy(),
                           "reasons": reasons, "features": records})
    return events, scores


@pytest.fixture
def store(trained, live_batch):
    """The session model promoted in this test's artifacts, and the process's store holding the live batch."""
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test", why="the review page needs a champion")
    workbench = runtime.current()
    opened = workbench.store(workbench.scorer())
    opened.write_batch(*live_batch)
    yield opened
    runtime.shutdown()


def page(analyst: str | None = "ana") -> AppTest:
    return open_page(PAGE, analyst, timeout=60)


def queue_table(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "exposure" in d.value.columns)


def audit(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "what" in d.value.columns)


def open_case(at: AppTest, case_id: int) -> AppTest:
    return at.selectbox(key="rq_case").set_value(case_id).run()


def test_an_empty_queue_says_where_cases_come_from():
    at = page().run()
    assert not at.exception
    assert "No cases match these filters" in at.info[0].value and "Live page" in at.info[0].value
    assert at.selectbox(key="rq_case").options == []
    runtime.shutdown()


def test_queue_is_sorted_counted_and_paged(store):
    n_cases = int(store.query("SELECT count(*) AS n FROM cases")["n"].iloc[0])
    by_tier = store.query("SELECT tier, count(*) AS n FROM cases GROUP BY 1").set_index("tier")["n"].to_dict()
    assert n_cases > 50 and by_tier.get("high", 0) > 0  # more than one page, and both tiers
    at = page().run()
    assert not at.exception
    table = queue_table(at)
    assert len(table) == 50
    rank = table["tier"].map({t: i for i, t in enumerate(TIER_ORDER)})
    assert rank.is_monotonic_increasing  # high first
    for _, part in table.groupby("tier"):
        assert part["exposure"].is_monotonic_decreasing  # then risk x amount, largest first
    assert np.allclose(table["exposure"], table["risk"] * table["amount"])
    tiers = at.segmented_control(key="rq_tier")
    assert tiers.format_func("all") == f"All · {n_cases:,}"
    assert tiers.format_func("high") == f"High · {by_tier['high']:,}"

    at.pagination[0].set_value(2).run()
    second = queue_table(at)
    assert len(second) == min(50, n_cases - 50) and not set(second["case_id"]) & set(table["case_id"])
    assert any(f"showing 51–{50 + len(second)}" in c.value for c in at.caption)

    at.segmented_control(key="rq_tier").set_value("high").run()
    high = queue_table(at)
    assert len(high) == by_tier["high"] and set(high["tier"]) == {"high"}
    assert not at.pagination  # one page of high cases
    at.segmented_control(key="rq_tier").set_value("all")
    at.selectbox(key="rq_status").set_value("Any status").run()
    assert at.pagination[0].value == 1 and queue_table(at)["case_id"].tolist() == table["case_id"].tolist()


def test_claim_and_decide_a_case_then_see_the_audit_trail(store):
    at = page().run()
    case_id = int(queue_table(at)["case_id"].iloc[0])
    open_case(at, case_id)
    assert not at.exception
    assert any("open, unassigned" in m.value for m in at.markdown)
    at.button(key="rq_claim").click().run()
    assert not at.exception
    assert any(f"You claimed case {case_id}" in s.value for s in at.success)
    assert any("open, held by ana" in m.value for m in at.markdown)
    assert at.button(key="rq_claim").disabled and not at.button(key="rq_release").disabled

    at.radio(key="rq_disposition").set_value("confirmed_fraud")
    at.text_area(key="rq_note").input("card used in three countries within an hour")
    next(b for b in at.button if b.label == "Record decision").click().run()
    assert not at.exception
    assert any("recorded **confirmed fraud**" in s.value for s in at.success)
    assert any("closed: confirmed fraud (ana)" in m.value for m in at.markdown)
    trail = audit(at)
    assert trail["what"].tolist() == ["claimed", "decided: confirmed fraud"]
    assert trail["analyst"].tolist() == ["ana", "ana"]
    assert trail["note"].iloc[1] == "card used in three countries within an hour"
    assert case_id not in set(queue_table(at)["case_id"])  # it left the open queue
    event_id = store.query("SELECT event_id FROM cases WHERE case_id = ?", [case_id])["event_id"].iloc[0]
    assert store.query("SELECT label FROM events WHERE event_id = ?", [event_id])["label"].iloc[0] == 1

    at.selectbox(key="rq_status").set_value("Closed").run()
    assert queue_table(at)["case_id"].tolist() == [case_id]
    at.selectbox(key="rq_holder").set_value("Me").run()  # ana's cases: the one she decided
    assert queue_table(at)["case_id"].tolist() == [case_id]
    assert at.text_area(key="rq_reopen_note") is not None  # a closed case offers reopening instead


def test_refused_actions_are_errors_and_the_page_stays_up(store):
    at = page().run()
    case_id = int(queue_table(at)["case_id"].iloc[0])
    review.claim(store, case_id, "bob")  # someone else was first
    open_case(at, case_id)
    assert any("held by bob" in m.value for m in at.markdown)
    at.radio(key="rq_disposition").set_value("legitimate")
    next(b for b in at.button if b.label == "Record decision").click().run()
    assert not at.exception
    assert any("held by bob; only bob can decide it" in e.value for e in at.error)
    at.text_input(key="rq_assign_to").input("ana")
    at.button(key="rq_assign").click().run()
    assert any(f"Case {case_id} is assigned to ana" in s.value for s in at.success)
    at.radio(key="rq_disposition").set_value("needs_info")
    next(b for b in at.button if b.label == "Record decision").click().run()
    assert any("needs a note" in e.value for e in at.error)  # needs more info without a note
    assert audit(at)["what"].tolist() == ["claimed", "assigned to ana"]


def test_an_analyst_name_is_asked_before_any_action(store):
    at = page(analyst=None).run()
    assert at.selectbox(key="rq_holder").options == ["Anyone", "Unassigned"]  # no "Me" without a name
    open_case(at, int(queue_table(at)["case_id"].iloc[0]))
    assert not at.exception
    assert not [b for b in at.button if b.key == "rq_claim"]
    assert any("Type your name" in i.value for i in at.info)
    at.text_input(key="review_analyst").input("cara").run()
    assert at.session_state["analyst"] == "cara"
    at.button(key="rq_claim").click().run()
    assert any("held by cara" in m.value for m in at.markdown)


def test_drill_down_shows_reasons_waterfall_history_and_similar_cases(store, live_batch):
    events, scores = live_batch
    cases = store.query("SELECT case_id, event_id FROM cases ORDER BY case_id")
    for i, case_id in enumerate(cases["case_id"].iloc[:6]):  # six decided cases to compare with
        review.decide(store, int(case_id), "dan", "confirmed_fraud" if i < 4 else "legitimate", "seen before")
    at = page().run()
    case_id = int(queue_table(at)["case_id"].iloc[0])  # an open case: the decided ones left the open queue
    event_id = int(cases.set_index("case_id").loc[case_id, "event_id"])  # stored as text; the frames hold ints
    open_case(at, case_id)
    assert not at.exception
    stored = scores.set_index("event_id").loc[event_id]
    assert {m.label: m.value for m in at.metric}["Fraud probability"] == f"{stored['score']:.1%}"
    reasons = next(m.value for m in at.markdown if m.value.startswith("- "))
    assert all(r["text"] in reasons for r in stored["reasons"])
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # waterfall and history timeline
    assert "fraud probability" in charts[0].proto.spec and "recent history" in charts[1].proto.spec
    fields = next(d.value for d in at.dataframe if list(d.value.columns) == ["field", "value"])
    assert fields.set_index("field").loc["event_id", "value"] == str(event_id)
    history = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    customer = events.set_index("event_id").loc[event_id, "customer_id"]
    assert f"customer_id={customer}" in set(history["entity"]) and history["this_event"].sum() == \
        len(set(history["entity"]))
    assert any(m.value.startswith("**") and "of 6 similar cases were confirmed fraud" in m.value
               for m in at.markdown)
    similar = next(d.value for d in at.dataframe if "decision" in d.value.columns)
    assert len(similar) == 6 and (similar["decision"] == "confirmed fraud").sum() == 4


def test_inside_the_app_the_sidebar_name_is_used(store, monkeypatch):
    """Through the router with the shared sidebar (its 'analyst' input), on the review page and then the monitor."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert at.text_input(key="review_analyst") is not None  # no name yet: the page asks for it
    at.sidebar.text_input(key="analyst").input("eve").run()
    assert not at.exception and not [t for t in at.text_input if t.key == "review_analyst"]
    open_case(at, int(queue_table(at)["case_id"].iloc[0]))
    at.button(key="rq_claim").click().run()
    assert not at.exception
    assert any("open, held by eve" in m.value for m in at.markdown)
    at.switch_page("pages/monitor.py").run()
    assert not at.exception
    assert any(t.label == "Drift" for t in at.tabs) and any("psi" in d.value.columns for d in at.dataframe)
