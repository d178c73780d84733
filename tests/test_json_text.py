"""The live path's JSON: orjson where it can, the standard library where orjson refuses, the same values either way."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fraudcore.json_text import dumps, loads


def test_dumps_writes_the_values_json_reads_back_with_missing_numbers_as_null() -> None:
    event = {"id": np.int64(7), "amount": np.float64(12.5), "ratio": float("nan"), "peak": float("inf"),
             "when": "2025-01-30T08:04:10.000000", "tags": ["a", 1, None], "tiny": 1e-7, "sum": 0.1 + 0.2}
    text = dumps(event)
    assert json.loads(text) == {"id": 7, "amount": 12.5, "ratio": None, "peak": None,
                                "when": "2025-01-30T08:04:10.000000", "tags": ["a", 1, None], "tiny": 1e-7,
                                "sum": 0.30000000000000004}


def test_dumps_falls_back_for_integers_past_64_bits_and_keeps_nan_as_null() -> None:
    text = dumps({"big": 2**70, "gone": float("-inf"), "nested": [{"x": float("nan")}]})
    assert json.loads(text) == {"big": 2**70, "gone": None, "nested": [{"x": None}]}


def test_dumps_uses_default_for_other_objects() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    assert json.loads(dumps({"o": Odd()}, default=str)) == {"o": "odd!"}


def test_loads_reads_what_the_standard_library_reads_and_refuses_the_rest() -> None:
    assert loads(b'{"events": [{"a": 1.5}], "next": "c1"}') == {"events": [{"a": 1.5}], "next": "c1"}
    value = loads(b'{"a": NaN}')  # a feed writing Python's json with NaN: read, as before
    assert math.isnan(value["a"])
    with pytest.raises(ValueError):
        loads(b"<html>busy</html>")


def test_loads_keeps_integers_past_64_bits_exact() -> None:
    big = 123456789012345678901234567890  # orjson alone reads this as a float (another id once rounded)
    page = loads(f'{{"events": [{{"event_id": {big}, "amount": 1.5}}], "next": "c"}}'.encode())
    assert page["events"][0]["event_id"] == big and isinstance(page["events"][0]["event_id"], int)
    assert loads(str(2**64 - 1)) == 2**64 - 1
