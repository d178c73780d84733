"""Point-in-time features of a whole batch from numpy columns: the definitions of ``fraudcore.features_online``
(training's, tested equal to the DuckDB batch path) computed for every event of a batch together; a batch event sees
the history rows and the batch's own events that come before it in (time, id) order.

``batch_features`` runs the compiled kernel of ``fraudcore.recent_kernel`` per entity (the held rows of the batch's
values found through ``locate``). The sort path (``_many_events``: per entity, history and batch rows sorted by
(value, time, id) with prefix sums, each window two binary searches) is the numpy statement of the same definitions;
the kernel is tested bit-identical to it, and a batch of one event to the online path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fraudcore.errors import FraudcoreError
from fraudcore.features import Feature, FeatureConfig, cached_plan, to_us
from fraudcore.recent_kernel import FAMILIES, PATHS, entity_columns

__all__ = ["Rows", "batch_features", "concat_rows", "micro_units"]

_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
SCAN_EVENTS = 4  # a group out of time order with at most this many batch events is scanned, not sorted: scan and
# sort break even at 4 (1k rows) to 8 (10k-100k rows) events of a group in random order
_NONE = np.empty(0, dtype=np.int64)
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
    return _features(held, batch, amounts, config, n_codes, locate)[0]


def _features(held: Rows, batch: Rows, amounts: np.ndarray, config: FeatureConfig, n_codes: Mapping[str, int],
              locate: Locate | None = None, scan_events: int = SCAN_EVENTS) -> tuple[np.ndarray, dict[str, int]]:
    """``batch_features`` by the compiled kernel, and how many groups took each of its paths (``PATHS``)."""
    plan = _plan(config)
    out, paths = _start(batch, plan), np.zeros(len(PATHS), dtype=np.int64)
    h_t, h_amu, h_known, h_label = _c(held.t), _c(held.amu), _c(held.known, np.bool_), _c(held.label)
    b_t, b_amu, b_known, b_label = _c(batch.t), _c(batch.amu), _c(batch.known, np.bool_), _c(batch.label)
    amounts = _c(amounts, np.float64)
    for part in plan.entities:
        codes = _c(batch.codes[part.entity])
        values = np.unique(codes[codes >= 0])
        if not len(values):
            continue
        found = _found(held, part.entity, values, n_codes[part.entity], locate)
        held_ids, found_ids, batch_ids = _comparable_ids(held, batch, found)
        paths += entity_columns(out, part.columns, part.families, part.slots, plan.windows, plan.risk_windows,
                                plan.delay, found, held_ids, found_ids, _c(held.codes[part.entity]), h_t, h_amu,
                                h_known, h_label, codes, b_t, batch_ids, b_amu, b_known, b_label, amounts, values,
                                scan_events)
    return out, dict(zip(PATHS, paths.tolist(), strict=True))


def _many_events(held: Rows, batch: Rows, amounts: np.ndarray, config: FeatureConfig,
                 n_codes: Mapping[str, int], locate: Locate | None = None) -> np.ndarray:
    """``batch_features`` by the sort path for every entity (the reference the kernel is tested against)."""
    plan = _plan(config)
    out = _start(batch, plan)
    if not len(batch.t):
        return out
    for part in plan.entities:
        codes = batch.codes[part.entity]
        found = _found(held, part.entity, np.unique(codes[codes >= 0]), n_codes[part.entity], locate)
        _sorted_columns(out, held, batch, amounts, plan, part, n_codes[part.entity], found)
    return out


@dataclass(frozen=True, eq=False)
class _EntityPlan:
    """One entity's features: (output column, feature) pairs, and as the kernel's arrays."""

    entity: str
    features: tuple[tuple[int, Feature], ...]
    columns: np.ndarray
    families: np.ndarray
    slots: np.ndarray  # the feature's window: its index in the config's windows (risk windows for delayed ones)


@dataclass(frozen=True, eq=False)
class _Plan:
    calendar: tuple[tuple[int, str], ...]
    entities: tuple[_EntityPlan, ...]
    windows: np.ndarray
    risk_windows: np.ndarray
    delay: int
    longest: int


@lru_cache(maxsize=64)
def _plan(config: FeatureConfig) -> _Plan:
    """The feature plan of ``config`` grouped by entity, windows in microseconds (built once per config)."""
    plan, by_entity = cached_plan(config), {}
    for j, f in enumerate(plan):
        if f.entity is not None:
            by_entity.setdefault(f.entity, []).append((j, f))
    windows, risk_windows = list(config.windows), list(config.risk_windows)

    def slot(f: Feature) -> int:
        if f.family in ("nb_tx_delay", "risk"):
            return risk_windows.index(f.window)
        return len(windows) - 1 if f.window is None else windows.index(f.window)

    def arrays(features: list[tuple[int, Feature]]) -> tuple[np.ndarray, ...]:
        return tuple(np.array(v, dtype=np.int64) for v in zip(*[(j, FAMILIES[f.family], slot(f)) for j, f in features],
                                                              strict=True))

    return _Plan(tuple((j, f.family) for j, f in enumerate(plan) if f.entity is None),
                 tuple(_EntityPlan(e, tuple(fs), *arrays(fs)) for e, fs in by_entity.items()),
                 np.array([to_us(w) for w in windows], dtype=np.int64),
                 np.array([to_us(w) for w in risk_windows], dtype=np.int64), to_us(config.label_delay),
                 to_us(windows[-1]) if windows else 0)


def _start(batch: Rows, plan: _Plan) -> np.ndarray:
    """The output with its calendar columns filled and every entity column missing."""
    out = np.full((len(batch.t), len(plan.calendar) + sum(len(p.features) for p in plan.entities)), np.nan)
    if plan.calendar and len(batch.t):
        calendar = _calendar(batch.t)
        for j, family in plan.calendar:
            out[:, j] = calendar[family]
    return out


def _c(values: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """``values`` as a contiguous array of ``dtype`` (no copy when it is one): the kernel's argument types."""
    return np.ascontiguousarray(values, dtype=dtype)


def _found(held: Rows, entity: str, values: np.ndarray, n_codes: int, locate: Locate | None) -> np.ndarray:
    """Positions of the held rows whose ``entity`` code is one of ``values``."""
    if locate is not None:  # an index over the held rows: no scan of every one
        return _c(locate(entity, values))
    wanted = np.zeros(n_codes + 1, dtype=bool)
    wanted[values + 1] = True
    return np.flatnonzero(wanted[held.codes[entity] + 1])


def _comparable_ids(held: Rows, batch: Rows, found: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids as integers in the ids' order, for the kernel: the held ids by position (integer ids) or one per ``found``
    row (other ids, e.g. text: ranks among the rows whose time is a batch event's, as ids only break ties of time),
    and the batch's."""
    if held.ids.dtype.kind == "i" and batch.ids.dtype.kind == "i":
        return _c(held.ids), _NONE, _c(batch.ids)
    held_ids = held.ids[found]
    tied = np.flatnonzero(np.isin(held.t[found], batch.t))
    ranks = np.unique(np.concatenate([held_ids[tied], batch.ids]), return_inverse=True)[1].astype(np.int64)
    found_ids = np.zeros(len(found), dtype=np.int64)
    found_ids[tied] = ranks[:len(tied)]
    return _NONE, found_ids, _c(ranks[len(tied):])


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
