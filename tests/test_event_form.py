"""The single-event form: fields from the model's schema, prefilled from a sample row, and the event they give back
scores exactly like the row itself."""

from __future__ import annotations

import pytest

from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.event_form import EventSource, event_from_form, explain_event, form_fields, sample_candidates
from fraudcore.scoring import EventValidationError, Scorer
from fraudcore.training import TrainRequest, train
from tests.conftest import raw_event


@pytest.fixture(scope="module")
def source(trained, scorer) -> EventSource:
    return EventSource(trained.parquet, scorer)


def test_fields_follow_the_roles_of_the_model_schema(scorer):
    fields = {f.name: f for f in form_fields(scorer)}
    assert list(fields)[:3] == ["event_id", "event_time", "amount"]
    assert {n: f.kind for n, f in fields.items()} == {
        "event_id": "id", "event_time": "time", "amount": "number", "customer_id": "id", "card_id": "id",
        "terminal_id": "id", "device_id": "id", "merchant_category": "category", "channel": "category",
        "country": "category"}
    assert fields["channel"].options == ("ecom", "pos")  # the categories seen in training
    assert "is_fraud" not in fields and "fraud_scenario" not in fields
    assert all(f.default is None for f in fields.values())  # no sample: empty


def test_sample_prefills_the_fields(trained, scorer):
    event = raw_event(trained, 9_000)
    fields = {f.name: f for f in form_fields(scorer, event)}
    assert fields["amount"].default == pytest.approx(event["amount"])
    assert fields["event_time"].default == str(event["event_time"])
    assert fields["customer_id"].default == str(event["customer_id"]) and fields["customer_id"].integer
    assert fields["device_id"].integer is False
    odd = form_fields(scorer, {**event, "channel": "atm"})
    assert next(f for f in odd if f.name == "channel").options == ("ecom", "pos", "atm")  # kept, shown as typed


def test_form_values_become_the_raw_event(scorer):
    fields = form_fields(scorer, {"event_id": 7, "customer_id": 12, "device_id": "dev-1", "amount": 3.5})
    values = {"event_id": " 7 ", "customer_id": "12", "device_id": "dev-1", "amount": 3.5, "channel": "",
              "event_time": "2025-01-03 10:00:00", "terminal_id": "  "}
    event = event_from_form(fields, values)
    assert event["event_id"] == 7 and event["customer_id"] == 12 and event["device_id"] == "dev-1"
    assert event["channel"] is None and event["terminal_id"] is None and event["card_id"] is None
    with pytest.raises(EventValidationError) as caught:
        event_from_form(fields, {"customer_id": "12a", "event_id": "x"})
    assert [e["field"] for e in caught.value.errors] == ["event_id", "customer_id"]
    assert caught.value.errors[1]["message"] == "this dataset's customer_id values are whole numbers; got '12a'"
    assert event_from_form(fields, {"device_id": "12a"})["device_id"] == "12a"  # text ids stay text


def test_sampled_event_through_the_form_scores_like_the_row(source, scorer):
    event, label = source.sample(seed=3)
    assert label in (0, 1) and "is_fraud" not in event
    assert event["event_id"] in set(source.frame["event_id"].iloc[int(len(source) * 0.2):])  # later part
    fields = form_fields(scorer, event)
    from_form = event_from_form(fields, {f.name: "" if f.default is None and f.kind != "number" else f.default
                                         for f in fields})
    direct = scorer.score_event(event, history=source.history)
    typed = scorer.score_event(from_form, history=source.history)
    assert typed.score == pytest.approx(direct.score) and typed.tier == direct.tier
    assert typed.features == pytest.approx(direct.features, nan_ok=True)
    assert direct.features["customer_id__nb_tx_30d"] > 0  # the history makes velocity meaningful
    assert source.sample(seed=3)[0] == event and source.sample(seed=4)[0]["event_id"] != event["event_id"]


def test_explanation_adds_up_to_the_score(source, scorer):
    scored = scorer.score_event(source.sample(seed=5)[0], history=source.history)
    expl = explain_event(scorer, scored)
    assert len(expl) == 1 and float(expl.probability[0]) == pytest.approx(scored.score, rel=1e-5)
    top = max(scored.reasons, key=lambda r: r["contribution"])
    assert expl.values[0][expl.feature_names.index(top["feature"])] == pytest.approx(top["contribution"], rel=1e-5)


def test_a_dataset_without_the_models_columns_is_refused(tmp_path, trained, scorer):
    narrow = tmp_path / "narrow.parquet"
    trained.frame.drop(columns=["card_id", "amount"]).to_parquet(narrow)
    with pytest.raises(ModelArtifactError, match=r"needs columns this data lacks: .*card_id"):
        EventSource(narrow, scorer)


def test_sample_candidates_prefer_the_active_dataset(tmp_path, trained, scorer):
    active = tmp_path / "active.parquet"
    active.write_bytes(b"x")
    assert sample_candidates(active, scorer) == [active, trained.parquet]
    assert sample_candidates(tmp_path / "gone.parquet", scorer) == [trained.parquet]
    assert sample_candidates(trained.parquet, scorer) == [trained.parquet]


def test_models_without_contributions_say_so(tmp_path, trained, source):
    train(trained.parquet, TrainRequest(model_id="iso", algo="anomaly", search_minutes=0), root=tmp_path)
    anomaly = Scorer.load("iso", tmp_path)
    scored = anomaly.score_event(source.sample(seed=1)[0], history=anomaly.frame_history(source.frame))
    assert 0 <= scored.score <= 1 and scored.reasons == []
    with pytest.raises(FraudcoreError, match="no per-feature contributions; pick an xgboost or logreg model"):
        explain_event(anomaly, scored)


def test_values_the_model_cannot_take_are_named_before_scoring(trained, scorer):
    fields = form_fields(scorer, raw_event(trained, 9_000))
    values = {f.name: f.default for f in fields} | {"amount": 1e300}
    with pytest.raises(EventValidationError) as caught:
        scorer.score_event(event_from_form(fields, values))
    assert caught.value.errors == [{"field": "amount",
                                    "message": "amount 1e+300 is too large; amounts up to 1e+12 can be scored"}]
