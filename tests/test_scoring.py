"""Scorer: loading (champion by default), event validation, online scoring with history, frames, reasons."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from fraudcore.config import get_paths
from fraudcore.errors import DataContractError, ModelArtifactError
from fraudcore.features import feature_names
from fraudcore.registry import promote
from fraudcore.scoring import EventValidationError, FrameHistory, Scorer
from tests.conftest import raw_event


def test_load_uses_the_champion_and_says_when_there_is_none(trained):
    shutil.copytree(trained.root / trained.model_id, get_paths().artifacts / trained.model_id)
    with pytest.raises(ModelArtifactError, match="no champion"):
        Scorer.load()
    promote(trained.model_id, who="test", why="scoring test")
    loaded = Scorer.load()
    assert loaded.model_id == trained.model_id
    assert loaded.feature_config is not None and loaded.tiers.high.threshold >= loaded.tiers.medium.threshold


def test_score_inputs_matches_the_model(scorer, trained):
    from fraudcore.features_batch import build_features_frame

    X = build_features_frame(trained.frame.iloc[:500], scorer.feature_config)[scorer.feature_names]
    out = scorer.score_inputs(X)
    assert list(out.columns) == ["score", "tier", "model_id"]
    np.testing.assert_allclose(out["score"], scorer.model.predict_proba(X), rtol=0, atol=1e-12)
    assert set(out["tier"]) <= {"high", "medium", "low"} and (out["model_id"] == trained.model_id).all()
    high = out["score"] >= scorer.tiers.high.threshold
    assert (out.loc[high, "tier"] == "high").all() and not (out.loc[~high, "tier"] == "high").any()


def test_validate_event_collects_every_bad_field(scorer, trained):
    event = raw_event(trained, 100)
    event.update(event_time="not a time", amount=-5, channel=["pos"], customer_id={"id": 1})
    del event["terminal_id"]
    with pytest.raises(EventValidationError) as caught:
        scorer.validate_event(event)
    fields = {e["field"] for e in caught.value.errors}
    assert fields == {"event_time", "amount", "channel", "customer_id", "terminal_id"}
    assert isinstance(caught.value, DataContractError)
    messages = {e["field"]: e["message"] for e in caught.value.errors}
    assert ">= 0" in messages["amount"] and "missing" in messages["terminal_id"]
    assert "terminal_id" in str(caught.value)


@pytest.mark.parametrize("amount", [float("inf"), "abc", True])
def test_validate_event_refuses_unusable_amounts(scorer, trained, amount):
    with pytest.raises(EventValidationError) as caught:
        scorer.validate_event({**raw_event(trained, 3), "amount": amount})
    assert [e["field"] for e in caught.value.errors] == ["amount"]


def test_validate_event_normalises_types(scorer, trained):
    event = {**raw_event(trained, 10), "event_time": "2025-01-08T10:00:00+01:00", "amount": " 12.5",
             "event_id": 77.0, "country": "DE", "merchant_category": 5}
    event.pop("device_id")
    event["device_id"] = None
    out = scorer.validate_event(event)
    assert out["event_time"] == pd.Timestamp("2025-01-08 09:00:00") and out["event_time"].tzinfo is None
    assert out["amount"] == 12.5 and out["event_id"] == 77 and isinstance(out["event_id"], int)
    assert out["merchant_category"] == "5" and out["device_id"] is None


def test_frame_history_returns_only_matching_entities_in_the_window(trained):
    history = FrameHistory(trained.frame)
    row = trained.frame.iloc[6000]
    until = row["event_time"].to_pydatetime()
    since = until - pd.Timedelta(days=2)
    got = history.history({"customer_id": int(row["customer_id"]), "card_id": str(row["card_id"])}, since, until)
    f = trained.frame
    expected = f[((f.customer_id == row.customer_id) | (f.card_id == row.card_id))
                 & (f.event_time >= since) & (f.event_time <= until)]
    assert len(got) > 1 and sorted(got["event_id"]) == sorted(expected["event_id"])


def test_score_event_gives_score_tier_reasons_and_inputs(scorer, trained):
    history = scorer.frame_history(trained.frame)
    scored = scorer.score_event(raw_event(trained, 9000), history, k=4)
    assert 0 <= scored.score <= 1 and scored.tier in {"high", "medium", "low"}
    assert scored.event_id == int(trained.frame["event_id"].iloc[9000]) and scored.model_id == trained.model_id
    assert len(scored.reasons) == 4 and all(r["text"] and r["feature"] in scored.features for r in scored.reasons)
    assert list(scored.features) == scorer.feature_names
    assert scored.features["customer_id__nb_tx_30d"] >= 1
    data = json.loads(json.dumps(scored.to_dict()))
    assert data["score"] == scored.score and len(data["reasons"]) == 4


def test_score_event_equals_the_model_on_batch_features(scorer, trained):
    """The online path (history + online features + numpy) reproduces the batch (DuckDB) features and score."""
    from fraudcore.features_batch import build_features_frame

    batch = build_features_frame(trained.frame, scorer.feature_config)
    history = scorer.frame_history(trained.frame)
    rows = [50, 2500, 7000, 11_999]
    scored = scorer.score_events([raw_event(trained, i) for i in rows], history)
    expected = scorer.model.predict_proba(batch.iloc[rows][scorer.feature_names])
    np.testing.assert_allclose([s.score for s in scored], expected, rtol=0, atol=1e-6)
    generated = feature_names(scorer.feature_config)
    for s, i in zip(scored, rows, strict=True):
        online = np.array([s.features[n] for n in generated], dtype=float)
        offline = batch.iloc[i][generated].to_numpy(dtype=float, na_value=np.nan)
        np.testing.assert_allclose(online, offline, rtol=1e-12, atol=1e-9)


def test_score_event_without_history_or_id(scorer, trained):
    event = raw_event(trained, 500)
    del event["event_id"]
    scored = scorer.score_event(event)
    assert scored.event_id is None and 0 <= scored.score <= 1
    assert scored.features["customer_id__nb_tx_30d"] == 1  # first seen: only itself
    assert np.isnan(scored.features["customer_id__secs_since_prev"])


def test_score_events_reports_every_bad_event_by_position(scorer, trained):
    good = raw_event(trained, 1)
    with pytest.raises(EventValidationError) as caught:
        scorer.score_events([good, {**good, "amount": -1}, {**good, "event_time": None}])
    assert [e["field"] for e in caught.value.errors] == ["[1].amount", "[2].event_time"]


def test_score_event_with_seconds_history_timeline(trained):
    seconds = trained.frame.assign(t=(trained.frame["event_time"] - pd.Timestamp("2025-01-01")).dt.total_seconds())
    history = FrameHistory(seconds, "t", time_unit="seconds", time_origin=pd.Timestamp("2025-01-01").to_pydatetime())
    row = trained.frame.iloc[3000]
    got = history.history({"customer_id": row["customer_id"]}, row["event_time"] - pd.Timedelta(days=30),
                          row["event_time"])
    assert len(got) >= 1 and got["event_id"].max() == row["event_id"]


class _PlainHistory:
    """A HistorySource that is not a FrameHistory, so the scorer takes its general (DataFrame) path."""

    def __init__(self, inner: FrameHistory) -> None:
        self.inner = inner

    def history(self, entities, since, until):
        return self.inner.history(entities, since, until)


def test_in_memory_fast_paths_equal_the_general_paths(scorer, trained):
    """FrameHistory numpy features and record reasons give the same features, scores and reasons as the frame path."""
    from dataclasses import asdict

    from fraudcore.explain import explain, top_reasons

    history = scorer.frame_history(trained.frame)
    plain = _PlainHistory(history)
    assert history.arrays(scorer.feature_config) is not None  # the fast path applies
    picks = np.random.default_rng(3).choice(len(trained.frame), 300, replace=False)
    events = [raw_event(trained, int(i)) for i in picks]
    for event in events[:20]:  # no id: the event comes after every history row at its time
        del event["event_id"]
    for event in events[20:40]:  # ids sent as text for integer columns
        event["customer_id"], event["terminal_id"] = str(event["customer_id"]), str(event["terminal_id"])
    for event in events[40:60]:  # text that int() reads but is not all digits
        event["customer_id"] = f"+{event['customer_id']}"
    valid = [scorer.validate_event(e) for e in events]
    fast = [{**v, **scorer.features(v, history)} for v in valid]
    slow = [{**v, **scorer.features(v, plain)} for v in valid]
    for f, s in zip(fast, slow, strict=True):
        np.testing.assert_array_equal([f[n] for n in scorer.feature_names], [s[n] for n in scorer.feature_names])
    np.testing.assert_array_equal(scorer.score_records(fast)[0], scorer.score_records(slow)[0])
    general = [[asdict(r) for r in row] for row in top_reasons(explain(scorer._event_model, slow), 3,
                                                                scorer.feature_config)]
    assert scorer.reasons(fast, 3) == general
    assert [r["text"] for row in scorer.reasons(fast, 5) for r in row] == \
        [r.text for row in top_reasons(explain(scorer.model, slow), 5, scorer.feature_config) for r in row]


def test_the_fast_path_compares_entity_values_as_the_frame_path_does(scorer, trained):
    """A float entity column against digit text (the frame path finds no equal rows) and text int() refuses."""
    frame = trained.frame.assign(customer_id=trained.frame["customer_id"].astype(float))
    history = scorer.frame_history(frame)
    assert history.arrays(scorer.feature_config) is not None
    events = [raw_event(trained, int(i)) for i in range(11_000, 11_040)]
    for k, event in enumerate(events):
        event["customer_id"] = str(event["customer_id"]) if k % 2 else "²"
    for event in (scorer.validate_event(e) for e in events):
        fast, slow = scorer.features(event, history), scorer.features(event, _PlainHistory(history))
        np.testing.assert_array_equal(list(fast.values()), list(slow.values()))


def test_the_frame_path_orders_a_text_id_against_integer_ids(scorer, trained):
    history = _PlainHistory(scorer.frame_history(trained.frame))
    event = scorer.validate_event(raw_event(trained, 9000))  # its own row is in the history, at the same time
    as_text = {**event, "event_id": str(event["event_id"])}
    assert isinstance(as_text["event_id"], str)
    assert scorer.features(as_text, history) == scorer.features(event, history)


def test_ids_sent_as_text_score_like_the_numbers_they_spell(trained, scorer):
    history = scorer.frame_history(trained.frame)
    event = raw_event(trained, 5000)
    as_text = {**event, "event_id": str(event["event_id"]), "customer_id": str(event["customer_id"])}
    assert scorer.score_event(as_text, history).score == scorer.score_event(event, history).score
    odd = {**event, "event_id": "web-5000"}  # cannot be ordered against integer ids: placed after same-time rows
    assert 0.0 <= scorer.score_event(odd, history).score <= 1.0


def test_a_missing_amount_is_refused_when_training_never_saw_one(scorer, trained):
    assert scorer.amount_required  # the simulator gives every event an amount
    event = raw_event(trained, 0)
    with pytest.raises(EventValidationError) as caught:
        scorer.validate_event({**event, "amount": None})
    assert [e["field"] for e in caught.value.errors] == ["amount"]
    assert "trained on events that all had an amount" in caught.value.errors[0]["message"]
    lenient = Scorer(scorer.model, scorer.metadata)  # a model whose training data had missing amounts
    assert not lenient.amount_required and math.isnan(lenient.validate_event({**event, "amount": None})["amount"])


def test_a_time_origin_with_a_zone_keeps_its_wall_time():
    from datetime import datetime

    from fraudcore.event_fields import typed_time
    from fraudcore.spec import DatasetSpec

    spec = DatasetSpec.model_validate({"event_time": "Time", "time_unit": "seconds",
                                       "time_origin": "2013-09-01T02:00:00+02:00"})
    assert spec.time_origin == datetime(2013, 9, 1, 2)  # every event was refused when the origin kept its zone
    assert typed_time(90.5, spec.time_unit, spec.time_origin) == pd.Timestamp("2013-09-01 02:01:30.5")
