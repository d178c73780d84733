"""Role inference and the leakage guard, on the real ULB and handbook files and on synthetic frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudcore.infer import infer_spec, tokens
from fraudcore.loading import load_dataset, load_frame
from fraudcore.validate import validate


def test_tokens_split_names_the_way_people_write_them():
    assert tokens("TX_DATETIME") == ["tx", "datetime"]
    assert tokens("cardId") == ["card", "id"]
    assert tokens("Customer ID") == ["customer", "id"]


@pytest.mark.realdata
def test_ulb_roles(shared_data):
    spec = infer_spec(load_dataset(shared_data / "ulb_creditcard.parquet"))
    assert (spec.event_time, spec.time_unit, spec.label, spec.amount) == ("Time", "seconds", "Class", "Amount")
    assert spec.numeric == [f"V{i}" for i in range(1, 29)]
    assert spec.entities == [] and spec.leakage == {} and spec.event_id is None


@pytest.mark.realdata
def test_handbook_roles_and_scenario_leak(shared_data):
    ds = load_dataset(shared_data / "handbook_raw.parquet")
    spec = infer_spec(ds)
    assert spec.event_id == "TRANSACTION_ID" and spec.event_time == "TX_DATETIME"
    assert spec.label == "TX_FRAUD" and spec.amount == "TX_AMOUNT"
    assert spec.entities == ["CUSTOMER_ID", "TERMINAL_ID"]
    assert set(spec.ignored) == {"TX_TIME_SECONDS", "TX_TIME_DAYS"}
    assert list(spec.leakage) == ["TX_FRAUD_SCENARIO"]
    assert "TX_FRAUD_SCENARIO" not in spec.feature_columns
    report = validate(ds, spec)
    assert report.ok
    assert [p.column for p in report.warnings] == ["TX_FRAUD_SCENARIO"]


def _synthetic(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fraud = (rng.random(n) < 0.05).astype(int)
    return pd.DataFrame({
        "txn_id": np.arange(n),
        "created_at": pd.date_range("2024-01-01", periods=n, freq="min"),
        "cardId": rng.integers(0, 300, n),
        "merchant_id": rng.integers(0, 50, n),
        "merchant_category": rng.choice(["grocery", "fuel", "travel"], n),
        "amount": rng.gamma(2.0, 30.0, n).round(2),
        "velocity": rng.normal(size=n) + fraud,  # informative but not perfect
        "code_x": np.where(fraud == 1, rng.integers(1, 4, n), 0),  # label-derived under an innocent name
        "post_review_score": fraud * 10 + rng.random(n),  # perfect on its own
        "notes": [f"free text {i}" for i in range(n)],
        "empty": [None] * n,
        "is_fraud": fraud,
    })


def test_synthetic_roles_reasons_and_leaks():
    spec = infer_spec(load_frame(_synthetic()))
    assert (spec.event_id, spec.event_time, spec.label, spec.amount) == ("txn_id", "created_at", "is_fraud", "amount")
    assert spec.entities == ["cardId", "merchant_id"]
    assert spec.categorical == ["merchant_category"]
    assert spec.numeric == ["velocity"]
    assert set(spec.ignored) == {"notes", "empty"}
    assert set(spec.leakage) == {"code_x", "post_review_score"}
    assert "separate fraud" in spec.leakage["code_x"] and "ROC AUC" in spec.leakage["post_review_score"]
    assert all(col in spec.reasons for col in spec.columns)


def test_overriding_a_role_moves_the_column():
    spec = infer_spec(load_frame(_synthetic()))
    changed = spec.with_role("code_x", "categorical").with_role("notes", "entity")
    assert "code_x" in changed.categorical and "code_x" not in changed.leakage
    assert "notes" in changed.entities and "notes" not in changed.ignored
    assert changed.reasons["notes"] == "set by the analyst"


def test_spec_round_trips_through_json(tmp_path):
    spec = infer_spec(load_frame(_synthetic()))
    assert type(spec).load(spec.save(tmp_path / "spec.json")) == spec


def test_simulator_roles_and_scenario_leak_even_when_renamed():
    from fraudcore.simulate import generate

    frame = generate(rows=30_000, seed=3)
    spec = infer_spec(load_frame(frame))
    assert (spec.event_id, spec.event_time, spec.label, spec.amount) == ("event_id", "event_time", "is_fraud", "amount")
    assert spec.entities == ["customer_id", "card_id", "terminal_id", "device_id"]
    assert spec.categorical == ["merchant_category", "channel", "country"]
    assert list(spec.leakage) == ["fraud_scenario"]
    renamed = infer_spec(load_frame(frame.rename(columns={"fraud_scenario": "pattern"})))
    assert list(renamed.leakage) == ["pattern"] and "separate fraud" in renamed.leakage["pattern"]


def test_duplicated_event_ids_keep_the_id_role_and_are_reported():
    frame = _synthetic(200).rename(columns={"txn_id": "event_id"})
    frame.loc[[12, 13], "event_id"] = 12
    frame["id"] = frame["event_id"] * 7  # a second id-named column: never a model input
    ds = load_frame(frame)
    spec = infer_spec(ds, leakage=False)
    assert spec.event_id == "event_id" and "repeat" in spec.reasons["event_id"]
    assert "event_id" not in spec.feature_columns and "id" not in spec.feature_columns
    assert "id" in spec.ignored and "'event_id' is the event id" in spec.reasons["id"]
    dup = [p for p in validate(ds, spec).errors if p.kind == "duplicate_id"]
    assert len(dup) == 1 and dup[0].column == "event_id" and dup[0].rows == [13, 14] and dup[0].values == ["'12'"] * 2


def test_id_named_column_whose_values_mostly_repeat_is_ignored_not_numeric():
    frame = _synthetic(200).assign(txn_id=lambda f: f["txn_id"] % 3)
    spec = infer_spec(load_frame(frame), leakage=False)
    assert spec.event_id is None and "txn_id" in spec.ignored and "txn_id" not in spec.numeric
    assert "most of its values repeat" in spec.reasons["txn_id"]
