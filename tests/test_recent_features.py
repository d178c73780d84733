"""The live path's batch features: the compiled kernel gives the sort path's numbers bit for bit (every way it reads
a group), and one event's features equal the online path's."""

from __future__ import annotations

import numpy as np
import pytest

from fraudcore.features import FeatureConfig, feature_names
from fraudcore.features_online import EntityWindows, step_values
from fraudcore.recent_features import SCAN_EVENTS, Rows, _features, batch_features, micro_units
from fraudcore.recent_kernel import _order
from tests.recent_reference import many_events

_HOUR, _DAY = 3_600_000_000, 86_400_000_000
_ENTITIES = {"card": 6, "terminal": 4, "device": 30}  # value codes 0..n-1 (cards and devices also miss some)
_BASE = dict(event_id="id", event_time="t", amount="amount", label="fraud")
CONFIGS = {
    "default": FeatureConfig(**_BASE, entities=("card", "terminal")),
    "custom": FeatureConfig(**_BASE, entities=("card", "device"), windows=("2h", "3d", "10d"),
                            risk_windows=("12h", "9d"), label_delay="2d", risk_entities=("terminal", "device"),
                            calendar=("night", "dow")),
    "handbook": FeatureConfig(**_BASE, entities=("card",), risk_entities=("terminal",), windows=("1d", "7d", "30d"),
                              calendar=("weekend", "night"), amount_ratio=False, recency=False),
    "no amount or label": FeatureConfig(event_id="id", event_time="t", amount=None, label=None,
                                        entities=("terminal", "device"), windows=("6h", "5d")),
}


def _ids(numbers: np.ndarray, text: bool) -> np.ndarray:
    return np.array([f"e{i:06d}" for i in numbers], dtype=object) if text else numbers.astype(np.int64)


def _codes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"card": rng.integers(-1, 6, size=n), "terminal": rng.integers(0, 4, size=n),
            "device": rng.integers(-1, 30, size=n)}


def _rows(rng: np.random.Generator, t: np.ndarray, ids: np.ndarray) -> tuple[Rows, np.ndarray]:
    """Rows at times ``t`` with ids ``ids``: amounts (a tenth unknown), labels and entity codes drawn at random."""
    n = len(t)
    amounts = rng.gamma(2.0, 40.0, size=n).round(2)
    amounts[rng.random(n) < 0.1] = np.nan
    amu, known = micro_units(amounts)
    return Rows(t, ids, amu, known, (rng.random(n) < 0.2).astype(np.int64), _codes(rng, n)), amounts


def _history(rng: np.random.Generator, n: int, text_ids: bool, shuffled: bool, grid: int = 1) -> Rows:
    """``n`` events over 40 days at multiples of ``grid`` µs (a whole hour puts rows right on window edges; some
    events at the same time, ids deciding their order), in time order or shuffled (a history reloaded from the store
    comes in any order)."""
    t = np.sort(rng.integers(0, 40 * _DAY // grid, size=n)) * grid
    t[5::3] = t[4:-1:3]
    held, _ = _rows(rng, t, _ids(np.arange(n) * 2, text_ids))
    return held.take(rng.permutation(n)) if shuffled else held


def _batch(rng: np.random.Generator, held: Rows, size: int, text_ids: bool, grid: int = 1) -> tuple[Rows, np.ndarray]:
    """``size`` events: late ones among the held times, some at a held row's time, some sharing a time with each
    other, the rest after the history; ids interleave with the held ones (odd numbers)."""
    t = rng.integers(0, 45 * _DAY // grid, size=size) * grid
    same = rng.random(size) < 0.3
    t[same] = rng.choice(held.t, size=int(same.sum()))
    if size > 3:
        t[1::4] = t[0:-1:4]  # batch events at the same time as each other
    batch, amounts = _rows(rng, t, _ids(rng.integers(0, len(held.t), size=size) * 2 + 1, text_ids))
    return batch, amounts


def _locate(held: Rows, rng: np.random.Generator):
    """An index over the held rows answering in any order (not grouped by value)."""
    def locate(entity: str, codes: np.ndarray) -> np.ndarray:
        return rng.permutation(np.flatnonzero(np.isin(held.codes[entity], codes)))
    return locate


@pytest.mark.parametrize("text_ids", [False, True])
@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_kernel_equals_the_sort_path(config_name: str, text_ids: bool) -> None:
    config, rng = CONFIGS[config_name], np.random.default_rng(11)
    compared, paths_seen = 0, dict.fromkeys(("in_order", "sorted", "scanned"), 0)
    for trial, size in enumerate([1, 2, 8, 300] * 4):
        grid = _HOUR if trial % 8 >= 4 else 1  # times on whole hours: rows right on window and delay edges
        held = _history(rng, 900, text_ids, shuffled=trial >= 8, grid=grid)
        batch, amounts = _batch(rng, held, size, text_ids, grid)
        locate = _locate(held, rng) if trial % 2 else None
        reference = many_events(held, batch, amounts, config, _ENTITIES, locate)
        for scan_events in (0, SCAN_EVENTS, 10**6):  # out-of-order groups: sorted, either, scanned
            out, paths = _features(held, batch, amounts, config, _ENTITIES, locate, scan_events)
            np.testing.assert_array_equal(out, reference)
            paths_seen = {k: v + paths[k] for k, v in paths_seen.items()}
        assert out.shape == (size, len(feature_names(config)))
        compared += int(np.isfinite(reference).sum())
    assert compared > 6000  # real numbers were compared, not only missing ones
    assert min(paths_seen.values()) > 0  # every way of reading a group was exercised


def test_ties_of_time_and_id_follow_the_sort_path() -> None:
    """A batch event with the very (time, id) of a held row or of another batch event: held rows come first, then
    batch order."""
    rng, config = np.random.default_rng(3), CONFIGS["default"]
    held = _history(rng, 400, text_ids=False, shuffled=False)
    pick = rng.choice(len(held.t), size=40)
    batch, amounts = _rows(rng, held.t[pick], held.ids[pick].copy())
    batch.ids[1::2], batch.t[1::2] = batch.ids[0:-1:2], batch.t[0:-1:2]
    reference = many_events(held, batch, amounts, config, _ENTITIES)
    for scan_events in (0, 10**6):
        shuffled = held.take(rng.permutation(len(held.t)))
        np.testing.assert_array_equal(_features(held, batch, amounts, config, _ENTITIES, None, scan_events)[0],
                                      reference)
        np.testing.assert_array_equal(_features(shuffled, batch, amounts, config, _ENTITIES, None, scan_events)[0],
                                      many_events(shuffled, batch, amounts, config, _ENTITIES))
    assert np.isfinite(reference).sum() > 500


def test_a_heavy_value_out_of_order_is_sorted_once_for_many_events_and_scanned_for_a_few() -> None:
    """A terminal with 20k held rows in no particular order (a reload): a page of 50 of its events sorts the group
    once; 2 events scan it (cheaper than the sort); both give the sort path's numbers."""
    rng, config = np.random.default_rng(5), FeatureConfig(**_BASE, entities=("terminal",))
    held = _history(rng, 20_000, text_ids=False, shuffled=True)
    held.codes["terminal"][:] = 0
    for size, path in ((50, "sorted"), (SCAN_EVENTS // 2, "scanned")):
        batch, amounts = _batch(rng, held, size, text_ids=False)
        batch.codes["terminal"][:] = 0
        out, paths = _features(held, batch, amounts, config, _ENTITIES)
        np.testing.assert_array_equal(out, many_events(held, batch, amounts, config, _ENTITIES))
        assert paths[path] >= 1 and paths["sorted" if path == "scanned" else "scanned"] == 0
        assert np.isfinite(out).sum() > 10 * size


def test_a_page_after_a_history_in_time_order_needs_no_sort() -> None:
    rng, config = np.random.default_rng(9), CONFIGS["default"]
    held = _history(rng, 2000, text_ids=False, shuffled=False)
    t = np.sort(held.t[-1] + rng.integers(1, 3_600_000_000, size=64))
    batch, amounts = _rows(rng, t, _ids(np.arange(64) * 2 + 10**6, False))
    out, paths = _features(held, batch, amounts, config, _ENTITIES)
    np.testing.assert_array_equal(out, many_events(held, batch, amounts, config, _ENTITIES))
    assert paths["in_order"] > 0 and paths["sorted"] == paths["scanned"] == 0
    np.testing.assert_array_equal(batch_features(held, batch, amounts, config, _ENTITIES), out)


def test_empty_batches_and_entities_without_values() -> None:
    rng, config = np.random.default_rng(1), CONFIGS["custom"]
    held = _history(rng, 300, text_ids=False, shuffled=False)
    batch, amounts = _batch(rng, held, 5, text_ids=False)
    empty = batch.take(np.arange(0))
    assert batch_features(held, empty, amounts[:0], config, _ENTITIES).shape == (0, len(feature_names(config)))
    batch.codes["device"][:] = -1  # no device: its features are missing, the others are not
    out = batch_features(held, batch, amounts, config, _ENTITIES)
    np.testing.assert_array_equal(out, many_events(held, batch, amounts, config, _ENTITIES))
    device = [i for i, name in enumerate(feature_names(config)) if name.startswith("device__")]
    assert np.isnan(out[:, device]).all() and np.isfinite(out).sum() > 20


@pytest.mark.parametrize("text_ids", [False, True])
def test_one_event_equals_the_online_path(text_ids: bool) -> None:
    """A batch of one event has the online path's numbers (``features_online.step_values`` over the held rows before
    it), the definitions training uses."""
    rng = np.random.default_rng(7)
    config = CONFIGS["default"]
    held = _history(rng, 600, text_ids, shuffled=False)
    checked = 0
    for i in range(0, 600, 7):  # events at (or between) held times, some tied with a held row, some unknown values
        event = held.take(np.array([i]))
        event.ids = event.ids + ("x" if text_ids else 1)
        amount = np.nan if i % 5 == 0 else 12.5 + i
        event.amu, event.known = micro_units(np.array([amount]))
        if i % 11 == 0:
            event.codes["card"] = np.array([-1])  # no card: its features are missing
        t0, id0 = int(event.t[0]), event.ids[0]

        def windows(entity: str, event: Rows = event, t0: int = t0, id0: object = id0) -> EntityWindows | None:
            code = int(event.codes[entity][0])
            if code < 0:
                return None
            rows = np.flatnonzero(held.codes[entity] == code)
            t = held.t[rows]
            rows = rows[(t < t0) | ((t == t0) & (held.ids[rows] < id0))]
            return EntityWindows(held.t[rows], held.amu[rows], held.known[rows], held.label[rows], t0,
                                 int(event.amu[0]), int(event.known[0]))

        online = np.array([step_values(config, t0, amount, windows)])
        np.testing.assert_array_equal(batch_features(held, event, np.array([amount]), config, _ENTITIES), online)
        checked += int(np.isfinite(online).sum())
    assert checked > 1000


def test_the_kernels_sort_is_numpys_stable_argsort() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 7, 1001):
        nearly = np.sort(rng.integers(0, 10**6, size=n))
        nearly[rng.random(n) < 0.05] = 0  # a history in order but for a few late rows
        for keys in (rng.integers(0, 10**12, size=n), rng.integers(0, 5, size=n), nearly, np.arange(n)[::-1].copy()):
            np.testing.assert_array_equal(_order(keys), np.argsort(keys, kind="stable"))
