"""What the Review queue page shows: queue rows, event fields, reasons as sentences, the full explanation of a case
from its stored inputs, entity history with outcomes and its timeline chart, similar cases and the audit trail."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from fraudcore.errors import FraudcoreError
from fraudcore.review import claim, decide
from fraudcore.review_charts import history_timeline
from fraudcore.review_detail import audit_trail, entity_history
from fraudcore.review_queue import queue
from fraudcore.review_similar import similar_cases
from fraudcore.review_view import (
    age_text,
    audit_table,
    case_explanation,
    case_labels,
    case_status_text,
    decisions_version,
    event_fields,
    history_frame,
    queue_table,
    reason_lines,
    similar_table,
)
from fraudcore.store import EventKeys, Store

T0 = datetime(2024, 3, 1)


@pytest.fixture
def store(tmp_path):
    """Six events at terminal T1: five of customer 1 (e3–e5 open cases) and one of customer 2 (e6, a case)."""
    with Store.open(tmp_path / "view.duckdb", keys=EventKeys(entities=("customer_id", "terminal_id"))) as opened:
        rows = [("e1", 0, 10.0, 1, "low", 0.01), ("e2", 1, 20.0, 1, "low", 0.02), ("e3", 2, 30.0, 1, "medium", 0.3),
                ("e4", 3, 40.0, 1, "high", 0.8), ("e5", 4, 50.0, 1, "high", 0.9), ("e6", 5, 60.0, 2, "medium", 0.4)]
        events = pd.DataFrame({"event_id": [r[0] for r in rows],
                               "event_time": [T0 + timedelta(hours=r[1]) for r in rows],
                               "amount": [r[2] for r in rows], "customer_id": [r[3] for r in rows],
                               "terminal_id": "T1", "channel": "web"})
        scores = pd.DataFrame({"event_id": events["event_id"], "model_id": "m", "score": [r[5] for r in rows],
                               "tier": [r[4] for r in rows],
                               "features": [{"amount": r[2], "channel": "web"} for r in rows]})
        opened.write_batch(events, scores)
        yield opened


def case_of(store: Store, event_id: str) -> int:
    return int(store.query("SELECT case_id FROM cases WHERE event_id = ?", [event_id])["case_id"].iloc[0])


def test_age_text():
    assert age_text(pd.Timedelta(seconds=30)) == "< 1 min"
    assert age_text(pd.Timedelta(minutes=12, seconds=50)) == "12 min"
    assert age_text(pd.Timedelta(hours=47)) == "47 h"
    assert age_text(pd.Timedelta(days=3, hours=5)) == "3 d"
    assert age_text(pd.Timedelta(seconds=-5)) == "< 1 min"  # clock skew never shows a negative age
    assert age_text(None) == "" and age_text(pd.NaT) == ""


def test_queue_table_and_labels(store):
    page = queue(store)
    table = queue_table(page, store.keys.entities)
    assert table.columns.tolist() == ["case_id", "tier", "risk", "amount", "exposure", "age", "status", "assignee",
                                      "event_time", "customer_id", "terminal_id"]
    assert table["tier"].tolist() == ["high", "high", "medium", "medium"]
    assert table["age"].map(type).eq(str).all() and (table["assignee"] == "").all()
    labels = case_labels(page)
    assert labels[case_of(store, "e5")] == f"#{case_of(store, 'e5')} · high · 90% × 50.00"
    empty = queue_table(page.iloc[:0], store.keys.entities)
    assert empty.empty and empty.columns.tolist() == table.columns.tolist()


def test_event_fields_and_reason_lines():
    fields = event_fields({"event_id": 7, "amount": 12.5, "note": None, "gap": math.nan, "tags": ["a"], "c": "x"})
    assert fields["value"].tolist() == ["7", "12.5", "", "", '["a"]', "x"]
    lines = reason_lines([
        {"feature": "amount", "contribution": 1.2, "direction": "raises", "delta_probability": 0.031,
         "text": "amount is 412.50"},
        {"feature": "tx_hour", "contribution": -0.4, "direction": "lowers", "delta_probability": -0.002,
         "text": "at 14:00"},
        {"feature": "n_tx", "value": 3, "contribution": 0.1}])  # an old reason without a sentence
    assert lines == ["▲ amount is 412.50 (+3.1%)", "▼ at 14:00 (-0.2%)", "▲ n_tx = 3"]


def test_case_explanation_adds_up_to_the_stored_score(scorer, trained):
    event = trained.frame.drop(columns=["is_fraud", "fraud_scenario"]).iloc[-1].to_dict()
    scored = scorer.score_event(event, scorer.frame_history(trained.frame.iloc[:-1]))
    stored = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in scored.features.items()}
    expl = case_explanation(scorer, stored)  # the inputs as the store keeps them (JSON: NaN as null)
    assert expl.feature_names == scorer.feature_names
    assert float(expl.margin[0]) == pytest.approx(float(logit(scored.score)), abs=1e-4)
    with pytest.raises(FraudcoreError, match="kept no model inputs"):
        case_explanation(scorer, {})
    with pytest.raises(FraudcoreError, match="lack 1 of model"):
        case_explanation(scorer, {k: v for k, v in stored.items() if k != "amount"})


def test_status_history_similar_and_audit(store):
    e3, e4, e5 = (case_of(store, e) for e in ("e3", "e4", "e5"))
    decide(store, e3, "ana", "confirmed_fraud", "stolen card")
    decide(store, e4, "bob", "needs_info", "waiting for the bank")
    claim(store, e5, "cara")
    frame = history_frame(entity_history(store, "e5"))
    customer = frame[frame["entity"] == "customer_id=1"].set_index("event_id")
    assert customer["outcome"].to_dict() == {"e5": "open case", "e4": "needs more info", "e3": "confirmed fraud",
                                             "e2": "no case", "e1": "no case"}
    assert customer["this_event"].to_dict()["e5"] and customer["this_event"].sum() == 1
    assert set(frame["entity"]) == {"customer_id=1", "terminal_id=T1"}
    assert history_frame({}).empty and "outcome" in history_frame({}).columns

    case = {"status": "closed", "assignee": "ana", "decided_by": "ana", "disposition_text": "confirmed fraud"}
    assert case_status_text(case) == "closed: confirmed fraud (ana)"
    assert case_status_text({"status": "pending", "assignee": "bob"}) == "pending, held by bob"
    assert case_status_text({"status": "open", "assignee": None}) == "open, unassigned"

    shown = similar_table(similar_cases(store, e5))
    assert shown.columns.tolist() == ["case_id", "distance", "tier", "risk", "amount", "decision", "decided_by",
                                      "decided_at"]
    assert shown["decision"].tolist() == ["confirmed fraud"]  # needs more info is not a final decision
    assert similar_table(None).empty

    trail = audit_table(audit_trail(store, e4))
    assert trail.to_dict("records")[0] | {"at": None} == {"at": None, "analyst": "bob",
                                                         "what": "decided: needs more info",
                                                         "note": "waiting for the bank"}
    assert audit_table(audit_trail(store, case_of(store, "e6"))).columns.tolist() == ["at", "analyst", "what", "note"]


def test_decisions_version_moves_with_every_action(store):
    assert decisions_version(store) == 0
    claim(store, case_of(store, "e5"), "ana")
    first = decisions_version(store)
    decide(store, case_of(store, "e5"), "ana", "legitimate")
    assert decisions_version(store) > first > 0


def test_history_timeline_draws_every_event_with_its_outcome(store):
    decide(store, case_of(store, "e3"), "ana", "legitimate")
    frame = history_frame(entity_history(store, "e5"))
    chart = history_timeline(frame, tier_cuts=(0.2, 0.7))
    spec = chart.to_dict()
    data = chart.data
    assert len(data) == len(frame) and set(data["marker"]) == {"this case", "past event"}
    assert (data.loc[data["event_id"] == "e3", "outcome"] == "legitimate").all()
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers] == \
        ["rule", "rule", "point"]
    assert spec["facet"]["row"]["field"] == "entity"
    assert len(history_timeline(frame).to_dict()["spec"]["layer"]) == 1
    with pytest.raises(FraudcoreError, match="no history"):
        history_timeline(history_frame({}))
    assert np.isclose(data["score"].max(), 0.9)
