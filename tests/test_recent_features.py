"""A batch of one event takes the scalar path of the recent-history features: the same numbers as the grouped path."""

from __future__ import annotations

import numpy as np
import pytest

from fraudcore.features import FeatureConfig
from fraudcore.recent_features import Rows, _many_events, _one_event, micro_units

_DAY = 86_400_000_000


def _rows(rng: np.random.Generator, n: int, start: int, ids: np.ndarray) -> Rows:
    t = start + np.sort(rng.integers(0, 40 * _DAY, size=n))
    t[5:40:3] = t[4:39:3]  # same-time neighbours: the (time, id) order decides who comes first
    amounts = rng.gamma(2.0, 40.0, size=n).round(2)
    amounts[rng.random(n) < 0.1] = np.nan  # unknown amounts
    amu, known = micro_units(amounts)
    codes = {"card": rng.integers(-1, 6, size=n), "terminal": rng.integers(0, 4, size=n)}
    return Rows(t, ids, amu, known, (rng.random(n) < 0.2).astype(np.int64), codes)


@pytest.mark.parametrize("text_ids", [False, True])
def test_one_event_equals_the_grouped_path(text_ids: bool) -> None:
    rng = np.random.default_rng(7)
    config = FeatureConfig(event_id="id", event_time="t", amount="amount", label="fraud",
                           entities=("card", "terminal"))
    n = 600
    ids = np.arange(n) * 2
    held = _rows(rng, n, 0, np.array([f"e{i:06d}" for i in ids], dtype=object) if text_ids else ids)
    checked = 0
    for i in range(0, n, 7):  # events at (or between) held times, some tied with a held row, some unknown values
        event = held.take(np.array([i]))
        event.ids = event.ids + ("x" if text_ids else 1)
        amount = np.nan if i % 5 == 0 else 12.5 + i
        event.amu, event.known = micro_units(np.array([amount]))
        if i % 11 == 0:
            event.codes["card"] = np.array([-1])  # no card: its features are missing
        located = lambda entity, codes: np.flatnonzero(np.isin(held.codes[entity], codes))  # noqa: E731
        one = _one_event(held, event, amount, config, located if i % 2 else None)
        many = _many_events(held, event, np.array([amount]), config, {"card": 6, "terminal": 4})
        np.testing.assert_array_equal(one, many)
        checked += int(np.isfinite(one).sum())
    assert checked > 1000  # real numbers were compared, not only missing ones
