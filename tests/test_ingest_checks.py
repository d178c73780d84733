"""The fast field checks give exactly what ``Scorer.validate_event`` gives: the same typed values for plain records,
and the contract's own errors (and values) for everything else."""

from __future__ import annotations

import json
import math

import pandas as pd

from fraudcore.ingest_checks import typed_events
from fraudcore.scoring import EventValidationError


def _slow(scorer, record):
    try:
        return scorer.validate_event(record), []
    except EventValidationError as exc:
        return None, list(exc.errors)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if a.keys() != b.keys() or list(a) != list(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if type(x) is not type(y) or x != y:
            return False
    return True


def test_fast_checks_equal_the_contract_on_plain_and_odd_records(scorer, trained):
    plain = json.loads(trained.frame.iloc[:300].drop(columns=["fraud_scenario"]).to_json(orient="records",
                                                                                         date_format="iso"))
    base = plain[0]
    odd = [
        {**base, "amount": 12}, {**base, "amount": None}, {**base, "amount": float("nan")}, {**base, "amount": -1.0},
        {**base, "amount": "12.5"}, {**base, "amount": True}, {**base, "amount": 1e13}, {**base, "amount": math.inf},
        {**base, "customer_id": 7.0}, {**base, "customer_id": 7.5}, {**base, "customer_id": None},
        {**base, "customer_id": float("nan")}, {**base, "customer_id": "C-7"}, {**base, "customer_id": [7]},
        {**base, "customer_id": False}, {**base, "channel": 3}, {**base, "channel": None}, {**base, "channel": 2.5},
        {**base, "channel": True}, {**base, "event_id": 4.0}, {**base, "event_id": "e-1"}, {**base, "event_id": None},
        {**base, "event_time": "2025-01-06T00:05:13Z"}, {**base, "event_time": "2025-01-06T01:05:13+01:00"},
        {**base, "event_time": "2025-01-06"}, {**base, "event_time": ""}, {**base, "event_time": "yesterday"},
        {**base, "event_time": 1736121913}, {**base, "event_time": None}, {**base, "extra": {"nested": [1]}},
        {k: v for k, v in base.items() if k != "amount"}, {k: v for k, v in base.items() if k != "event_time"},
        {k: v for k, v in base.items() if k != "customer_id"}, "not an object", ["a", "list"], None,
    ]
    numeric = scorer.spec.numeric
    if numeric:
        odd += [{**base, numeric[0]: value} for value in (None, 3, float("nan"), math.inf, 1e39, "4", True)]
    records = plain + odd
    fast = typed_events(scorer, records)
    assert len(fast) == len(records)
    for record, (event, errors) in zip(records, fast, strict=True):
        expected, expected_errors = _slow(scorer, record)
        assert _same(event, expected), record
        assert errors == expected_errors, record
    assert sum(event is None for event, _ in fast) >= 10  # the odd ones really were refused
    assert isinstance(fast[0][0][scorer.spec.event_time], pd.Timestamp)
