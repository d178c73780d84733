"""Point-in-time features of a whole batch from numpy columns: the definitions of ``fraudcore.features_online``
(training's, tested equal to the DuckDB batch path) computed for every event of a batch together. Per entity, history
and batch rows are sorted by (value, time, id) with prefix sums, so each window is two binary searches; a batch event
sees the history rows and the batch's own events that come before it in (time, id) order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fraudcore.errors import FraudcoreError
from fraudcore.features import FeatureConfig, cached_plan, to_us
from fraudcore.features_online import EntityWindows, step_values

__all__ = ["Rows", "batch_features", "concat_rows", "micro_units"]

_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
Locate = Callable[[str, np.ndarray], np.ndarray]  # (entity, value codes) -> positions of the held rows with them


@dataclass
class Rows:
    """Events as the columns the features read: time (µs since the epoch), id, amount in micro-units (0 when unknown),
    whether the amount is known, the label (unknown as 0) and per entity a value code (-1 when missing)."""

    t: np.ndarray
    ids: np.ndarray
    amu: np.ndarray
    known: np.ndarray
    label: np.ndarray
    codes: dict[str, np.ndarray]

    def take(self, rows: np.ndarray | slice, entities: Sequence[str] | None = None) -> Rows:
        """The given rows (with the codes of ``entities`` only, when given)."""
        codes = self.codes if entities is None else {e: self.codes[e] for e in entities}
        return Rows(self.t[rows], self.ids[rows], self.amu[rows], self.known[rows], self.label[rows],
                    {e: c[rows] for e, c in codes.items()})


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Rows of ``parts`` one after the other."""
    return Rows(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("t", "ids", "amu", "known", "label")),
                {e: np.concatenate([p.codes[e] for p in parts]) for e in parts[0].codes})


def micro_units(amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as integer micro-units (rounded like the online path) and whether each is known."""
    known = ~np.isnan(amounts)
    return np.where(known, np.floor(np.where(known, amounts, 0) * 1e6 + 0.5), 0).astype(np.int64), known


class _Groups:
    """One entity's history and batch rows sorted by (value, time, id), prefix sums, and each batch row's place."""

    def __init__(self, held: Rows, batch: Rows, entity: str, n_codes: int, locate: Locate | None = None) -> None:
        codes = batch.codes[entity]
        self.rows = np.flatnonzero(codes >= 0)
        if locate is not None:  # an index over the held rows: no scan of every one
            found = locate(entity, np.unique(codes[self.rows]))
        else:
            wanted = np.zeros(n_codes + 1, dtype=bool)
            wanted[codes[self.rows] + 1] = True
            found = np.flatnonzero(wanted[held.codes[entity] + 1])
        both = concat_rows([held.take(found, [entity]), batch.take(self.rows, [entity])])
        n_held = len(both.t) - len(self.rows)
        start = int(both.t.min()) if len(both.t) else 0
        rel = both.t - start
        span = int(rel.max()) + 2 if len(rel) else 2
        codes = both.codes[entity]
        if n_codes >= 2**62 // span:  # keys (code, time) must fit 64 bits: renumber the values present
            codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)
            if len(codes) and int(codes.max()) >= 2**62 // span:
                raise FraudcoreError("a batch spans too long a time for its entity values; send smaller batches")
        key = codes * span + rel
        order = np.lexsort((both.ids, key))
        self.key, self.t = key[order], both.t[order]
        zero = np.zeros(1, dtype=np.int64)
        self.c_amu = np.concatenate([zero, np.cumsum(both.amu[order])])
        self.c_known = np.concatenate([zero, np.cumsum(both.known[order], dtype=np.int64)])
        self.c_label = np.concatenate([zero, np.cumsum(both.label[order])])
        place = np.empty(len(order), dtype=np.int64)
        place[order] = np.arange(len(order))
        self.p = place[n_held:]  # rows before a batch event in its group: [group start, p)
        self.base = key[n_held:] - rel[n_held:]
        self.t0, self.rel0 = both.t[n_held:], rel[n_held:]
        self.amu0, self.known0 = both.amu[n_held:], both.known[n_held:].astype(np.int64)

    def first_after(self, back_us: int) -> np.ndarray:
        """Per batch event: the first sorted position of its group with time > t0 - back_us."""
        return np.searchsorted(self.key, self.base + np.maximum(self.rel0 - back_us, -1), "right")

    def nb_tx(self, window_us: int) -> np.ndarray:
        return (self.p - self.first_after(window_us) + 1).astype(float)

    def avg_amount(self, window_us: int) -> np.ndarray:
        lo = self.first_after(window_us)
        total = self.c_amu[self.p] - self.c_amu[lo] + self.amu0
        count = self.c_known[self.p] - self.c_known[lo] + self.known0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total.astype(float) / 1e6 / count, np.nan)

    def secs_since_prev(self, span_us: int) -> np.ndarray:
        has = self.p > self.first_after(span_us)
        previous = self.t[np.maximum(self.p - 1, 0)]
        return np.where(has, (self.t0 - previous).astype(float) / 1e6, np.nan)

    def delayed(self, delay_us: int, window_us: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.first_after(delay_us + window_us), self.first_after(delay_us)
        count = hi - lo
        frauds = (self.c_label[hi] - self.c_label[lo]).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return count.astype(float), np.where(count > 0, frauds / count, 0.0)


def _calendar(t: np.ndarray) -> dict[str, np.ndarray]:
    hour = (t // _HOUR_US) % 24
    dow = (t // _DAY_US + 3) % 7  # 1970-01-01 was a Thursday
    return {"hour": hour.astype(float), "dow": dow.astype(float), "weekend": (dow >= 5).astype(float),
            "night": (hour <= 6).astype(float)}


def batch_features(held: Rows, batch: Rows, amounts: np.ndarray, config: FeatureConfig,
                   n_codes: Mapping[str, int], locate: Locate | None = None) -> np.ndarray:
    """The features (columns in ``feature_plan`` order) of each batch event from ``held`` history plus the batch
    events before it in (time, id) order; ``amounts`` are the batch's amounts (NaN when unknown). ``locate(entity,
    codes)``, when given, returns the held rows with those value codes (else every held row is scanned)."""
    if len(batch.t) == 1:  # one event (an API call, a quiet feed): scalar arithmetic instead of grouped arrays
        return _one_event(held, batch, float(amounts[0]), config, locate)
    return _many_events(held, batch, amounts, config, n_codes, locate)


def _many_events(held: Rows, batch: Rows, amounts: np.ndarray, config: FeatureConfig,
                 n_codes: Mapping[str, int], locate: Locate | None = None) -> np.ndarray:
    plan = cached_plan(config)
    out = np.full((len(batch.t), len(plan)), np.nan)
    if not len(batch.t):
        return out
    calendar, groups = _calendar(batch.t), {}
    longest = to_us(config.windows[-1]) if config.windows else 0
    delay = to_us(config.label_delay)
    for j, f in enumerate(plan):
        if f.entity is None:
            out[:, j] = calendar[f.family]
            continue
        if f.entity not in groups:
            groups[f.entity] = _Groups(held, batch, f.entity, n_codes[f.entity], locate)
        g = groups[f.entity]
        window = to_us(f.window) if f.window is not None else longest
        if f.family == "nb_tx":
            value = g.nb_tx(window)
        elif f.family == "avg_amount":
            value = g.avg_amount(window)
        elif f.family == "amount_ratio":
            mean, amount = g.avg_amount(window), amounts[g.rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(np.isnan(amount) | np.isnan(mean) | (mean == 0), np.nan, amount / mean)
        elif f.family == "secs_since_prev":
            value = g.secs_since_prev(longest)
        else:
            count, share = g.delayed(delay, window)
            value = count if f.family == "nb_tx_delay" else share
        out[g.rows, j] = value
    return out


def _one_event(held: Rows, batch: Rows, amount: float, config: FeatureConfig,
               locate: Locate | None = None) -> np.ndarray:
    """``batch_features`` of a batch of one event: the online path's per-entity running sums over the held rows
    before it (``features_online.step_values``; the same numbers as the grouped path: tests/test_recent_features.py)."""
    t0, id0 = int(batch.t[0]), batch.ids[0]

    def windows(entity: str) -> EntityWindows | None:
        code = int(batch.codes[entity][0])
        if code < 0:
            return None
        rows = locate(entity, np.array([code])) if locate is not None else \
            np.flatnonzero(held.codes[entity] == code)
        t = held.t[rows]
        rows = rows[(t < t0) | ((t == t0) & (held.ids[rows] < id0))]
        return EntityWindows(held.t[rows], held.amu[rows], held.known[rows], held.label[rows], t0,
                             int(batch.amu[0]), int(batch.known[0]))

    return np.array([step_values(config, t0, amount, windows)], dtype=float)
