"""The numpy statement of the live path's batch features (the sort path), kept as the oracle that
``fraudcore.recent_kernel`` is tested bit-identical against: per entity, history and batch rows sorted by (value,
time, id) with prefix sums, each window two binary searches."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fraudcore.errors import FraudcoreError
from fraudcore.features import FeatureConfig, to_us
from fraudcore.recent_features import Locate, Rows, _EntityPlan, _found, _Plan, _plan, _start, concat_rows


def many_events(held: Rows, batch: Rows, amounts: np.ndarray, config: FeatureConfig,
                n_codes: Mapping[str, int], locate: Locate | None = None) -> np.ndarray:
    """``batch_features`` by the sort path for every entity."""
    plan = _plan(config)
    out = _start(batch, plan)
    if not len(batch.t):
        return out
    for part in plan.entities:
        codes = batch.codes[part.entity]
        found = _found(held, part.entity, np.unique(codes[codes >= 0]), n_codes[part.entity], locate)
        _sorted_columns(out, held, batch, amounts, plan, part, n_codes[part.entity], found)
    return out


class _Groups:
    """One entity's history and batch rows sorted by (value, time, id), prefix sums, and each batch row's place."""

    def __init__(self, held: Rows, batch: Rows, entity: str, n_codes: int, found: np.ndarray) -> None:
        self.rows = np.flatnonzero(batch.codes[entity] >= 0)
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


def _sorted_columns(out: np.ndarray, held: Rows, batch: Rows, amounts: np.ndarray, plan: _Plan, part: _EntityPlan,
                    n_codes: int, found: np.ndarray) -> None:
    """Fill one entity's columns by the sort path (``_Groups``)."""
    g = _Groups(held, batch, part.entity, n_codes, found)
    for j, f in part.features:
        window = to_us(f.window) if f.window is not None else plan.longest
        if f.family == "nb_tx":
            value = g.nb_tx(window)
        elif f.family == "avg_amount":
            value = g.avg_amount(window)
        elif f.family == "amount_ratio":
            mean, amount = g.avg_amount(window), amounts[g.rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(np.isnan(amount) | np.isnan(mean) | (mean == 0), np.nan, amount / mean)
        elif f.family == "secs_since_prev":
            value = g.secs_since_prev(plan.longest)
        else:
            count, share = g.delayed(plan.delay, window)
            value = count if f.family == "nb_tx_delay" else share
        out[g.rows, j] = value
