"""Point-in-time features of a whole batch from numpy columns: the definitions of ``fraudcore.features_online``
(training's, tested equal to the DuckDB batch path) computed for every event of a batch together; a batch event sees
the history rows and the batch's own events that come before it in (time, id) order.

``batch_features`` runs the compiled kernel of ``fraudcore.recent_kernel`` per entity (the held rows of the batch's
values found through ``locate``). tests/recent_reference.py states the same definitions in numpy (per entity,
history and batch rows sorted by (value, time, id) with prefix sums, each window two binary searches); the kernel is
tested bit-identical to it, and a batch of one event to the online path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

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
