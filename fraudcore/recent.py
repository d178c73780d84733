"""Recent history for the live path: the stored events of the features' lookback as numpy columns, in step with the
store, and the point-in-time features of a whole batch at once.

The features are the definitions of ``fraudcore.features_online`` (training's, tested equal to the DuckDB batch path)
computed for every event of a batch together: per entity, history and batch rows sorted by (value, time, id) with
prefix sums, so each window is two binary searches. A batch event sees the stored events and the batch's own events
that come before it in (time, id) order.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.features import FeatureConfig, cached_plan, history_lookback, origin_us, to_us
from fraudcore.store import Store

__all__ = ["RecentHistory", "Rows", "batch_features"]

DEFAULT_SLACK = timedelta(days=1)
_FAR_PAST = -(2**62)
_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000


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

    def take(self, rows: np.ndarray | slice) -> Rows:
        """The given rows."""
        return Rows(self.t[rows], self.ids[rows], self.amu[rows], self.known[rows], self.label[rows],
                    {e: c[rows] for e, c in self.codes.items()})


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Rows of ``parts`` one after the other."""
    return Rows(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("t", "ids", "amu", "known", "label")),
                {e: np.concatenate([p.codes[e] for p in parts]) for e in parts[0].codes})


def _micro(amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as integer micro-units (rounded like the online path) and whether each is known."""
    known = ~np.isnan(amounts)
    return np.where(known, np.floor(np.where(known, amounts, 0) * 1e6 + 0.5), 0).astype(np.int64), known


class _Groups:
    """One entity's history and batch rows sorted by (value, time, id), prefix sums, and each batch row's place."""

    def __init__(self, held: Rows, batch: Rows, entity: str, n_codes: int) -> None:
        codes = batch.codes[entity]
        self.rows = np.flatnonzero(codes >= 0)
        wanted = np.zeros(n_codes + 1, dtype=bool)
        wanted[codes[self.rows] + 1] = True
        both = concat_rows([held.take(np.flatnonzero(wanted[held.codes[entity] + 1])), batch.take(self.rows)])
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
                   n_codes: Mapping[str, int]) -> np.ndarray:
    """The features (columns in ``feature_plan`` order) of each batch event from ``held`` history plus the batch
    events before it in (time, id) order; ``amounts`` are the batch's amounts (NaN when unknown)."""
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
            groups[f.entity] = _Groups(held, batch, f.entity, n_codes[f.entity])
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


class RecentHistory:
    """The stored events with time >= ``horizon`` as numpy columns, for one feature config and one store.

    ``sync`` reloads it when the store was written by anyone else (``Store.generation``); ``add`` appends a batch
    the caller wrote; rows older than lookback + slack (and than the latest batch needs) are dropped in steps of a
    quarter lookback, and a late batch reloads what it needs from the store.
    Callers hold ``lock`` from ``sync`` to ``add``.
    """

    def __init__(self, config: FeatureConfig, slack: timedelta = DEFAULT_SLACK) -> None:
        self.config, self.lock = config, threading.RLock()
        self.entities = list(dict.fromkeys([*config.entities, *config.risk_entities]))
        self.lookback_us, self.slack_us = to_us(history_lookback(config)), to_us(slack)
        self.generation: int | None = None
        self._store: weakref.ReferenceType[Store] | None = None
        self._clear()

    def __len__(self) -> int:
        return self._n

    def _clear(self) -> None:
        self._n, self.horizon, self.newest, self._text_ids = 0, _FAR_PAST, _FAR_PAST, False
        self._need = 2**62  # how far back the latest batch needed history
        self._rows = Rows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool),
                          np.empty(0, np.int64), {e: np.empty(0, np.int64) for e in self.entities})
        self._values: dict[str, dict[str, int]] = {e: {} for e in self.entities}
        self._ids: set[Any] = set()

    @property
    def rows(self) -> Rows:
        """The held rows (a view)."""
        return self._rows.take(slice(0, self._n))

    def sync(self, store: Store) -> None:
        """Reload from ``store`` unless this already holds it as of its latest write."""
        if self._store is not None and self._store() is store and self.generation == store.generation:
            return
        self._clear()
        self._store, self.generation = weakref.ref(store), store.generation
        newest = store.query("SELECT epoch_us(max(event_time)) FROM events").iloc[0, 0]
        if not pd.isna(newest):
            self.horizon = int(newest) - self.lookback_us - self.slack_us
            self._load(store, self.horizon, None)

    def invalidate(self) -> None:
        """Reload on the next ``sync``."""
        self.generation = None

    def batch_rows(self, events: Sequence[Mapping[str, Any]]) -> tuple[Rows, np.ndarray]:
        """Validated events as ``Rows`` (value codes assigned) and their amounts."""
        cfg = self.config
        amounts = np.array([np.nan if cfg.amount is None or ev.get(cfg.amount) is None else float(ev[cfg.amount])
                            for ev in events], dtype=float)
        amu, known = _micro(amounts)
        labels = [ev.get(cfg.label) if cfg.label else None for ev in events]
        rows = Rows(np.array([ev[cfg.event_time].value // 1000 for ev in events], dtype=np.int64),
                    self._id_array([ev[cfg.event_id] for ev in events]), amu, known,
                    np.array([0 if v is None or v != v else int(v) for v in labels], dtype=np.int64),
                    {e: self._codes(e, pd.Series([_text(ev.get(e)) for ev in events], dtype=object))
                     for e in self.entities})
        return rows, amounts

    def known(self, store: Store, rows: Rows) -> np.ndarray:
        """Which of these events the store already holds."""
        held = np.fromiter((i in self._ids for i in rows.ids.tolist()), dtype=bool, count=len(rows.t))
        older = ~held & (rows.t < self.horizon)
        if older.any():
            stored = store.known_ids([str(i) for i in rows.ids[older].tolist()])
            held[np.flatnonzero(older)] = [str(i) in stored for i in rows.ids[older].tolist()]
        return held

    def features(self, store: Store, batch: Rows, amounts: np.ndarray) -> np.ndarray:
        """The batch's features (see ``batch_features``), loading older history first for late events."""
        if len(batch.t):
            need = self._need = int(batch.t.min()) - self.lookback_us
            if need < self.horizon:
                self._load(store, need, self.horizon)
                self.horizon = need
        return batch_features(self.rows, batch, amounts, self.config,
                              {e: len(v) for e, v in self._values.items()})

    def add(self, store: Store, batch: Rows, generation_before: int) -> None:
        """Append a batch just written to ``store`` (or reload later if someone else wrote meanwhile)."""
        if store.generation != generation_before + 1 or self.generation != generation_before:
            self.invalidate()
            return
        self.generation = store.generation
        self._append(batch)
        keep_from = min(self.newest - self.lookback_us - self.slack_us, self._need)  # late feeds keep their need
        if keep_from - self.horizon > max(self.slack_us, self.lookback_us // 4):  # drop old rows in big steps
            self._compact(keep_from)

    # ---- internals ------------------------------------------------------------------------------------------

    def _id_array(self, ids: list[Any]) -> np.ndarray:
        if not self._text_ids and all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in ids):
            return np.array(ids, dtype=np.int64)
        if not self._text_ids:  # an id that is not an integer: order every id as text from now on
            self._text_ids = True
            self._rows.ids = np.array([str(i) for i in self._rows.ids.tolist()], dtype=object)
            self._ids = {str(i) for i in self._ids}
        return np.array([str(i) for i in ids], dtype=object)

    def _codes(self, entity: str, texts: pd.Series) -> np.ndarray:
        """Value codes of canonical texts (None: -1), adding unseen values."""
        factor, uniques = pd.factorize(texts, use_na_sentinel=True)
        mapping = self._values[entity]
        lookup = np.array([mapping.setdefault(v, len(mapping)) for v in uniques.tolist()] + [-1], dtype=np.int64)
        return lookup[factor]

    def _load(self, store: Store, since_us: int, until_us: int | None) -> None:
        """Append the stored events with time in [since_us, until_us)."""
        cfg, margin = self.config, 1000  # the time column may round the raw time; filter exactly below
        fields = [cfg.event_id, *self.entities, *([cfg.event_time] if cfg.time_unit == "seconds" else [])]
        frame = store.raw_fields(fields, None if since_us <= _FAR_PAST else _stamp(since_us - margin),
                                 None if until_us is None else _stamp(until_us + margin))
        if frame.empty:
            return
        if cfg.time_unit == "seconds":
            seconds = pd.to_numeric(frame[cfg.event_time], errors="coerce").to_numpy(dtype=float)
            t = np.floor(seconds * 1e6 + 0.5).astype(np.int64) + origin_us(cfg)
        else:
            t = frame["__t"].to_numpy(dtype=np.int64)
        keep = (t >= since_us) & (t < (until_us if until_us is not None else 2**62))
        frame, t = frame[keep], t[keep]
        integral = frame[f"{cfg.event_id}__type"].isin(["UBIGINT", "BIGINT"]).all()
        ids = frame[cfg.event_id].astype(np.int64).tolist() if integral else frame[cfg.event_id].tolist()
        amu, known = _micro(frame["__amount"].to_numpy(dtype=float, na_value=np.nan))
        rows = Rows(t, self._id_array(ids), amu, known,
                    frame["__label"].fillna(0).to_numpy(dtype=np.int64),
                    {e: self._codes(e, _canonical(frame[e], frame[f"{e}__type"])) for e in self.entities})
        self._append(rows)

    def _append(self, rows: Rows) -> None:
        m = len(rows.t)
        if not m:
            return
        if self._n + m > len(self._rows.t):
            grown = max(2 * len(self._rows.t), self._n + m, 1024)
            self._rows = concat_rows([self.rows, _empty_like(rows, grown - self._n)])
        end = slice(self._n, self._n + m)
        for name in ("t", "ids", "amu", "known", "label"):
            getattr(self._rows, name)[end] = getattr(rows, name)
        for e, codes in rows.codes.items():
            self._rows.codes[e][end] = codes
        self._n += m
        self._ids.update(rows.ids.tolist())
        self.newest = max(self.newest, int(rows.t.max()))

    def _compact(self, horizon: int) -> None:
        """Drop rows older than ``horizon`` and the values no kept row uses."""
        kept = self.rows.take(np.flatnonzero(self.rows.t >= horizon))
        for e in self.entities:
            used = np.unique(kept.codes[e])
            used = used[used >= 0]
            texts = np.array(list(self._values[e]), dtype=object)
            self._values[e] = {t: i for i, t in enumerate(texts[used].tolist())}
            remap = np.full(len(texts) + 1, -1, dtype=np.int64)
            remap[used + 1] = np.arange(len(used))
            kept.codes[e] = remap[kept.codes[e] + 1]
        self._ids.difference_update(self.rows.ids[self.rows.t < horizon].tolist())
        self._rows, self._n, self.horizon = kept, len(kept.t), horizon


def _empty_like(rows: Rows, size: int) -> Rows:
    return Rows(np.zeros(size, np.int64), np.zeros(size, rows.ids.dtype), np.zeros(size, np.int64),
                np.zeros(size, bool), np.zeros(size, np.int64), {e: np.full(size, -1, np.int64) for e in rows.codes})


def _text(value: Any) -> str | None:
    """An entity value as the store keys it: integers as digits, text as is, missing as None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _canonical(texts: pd.Series, types: pd.Series) -> pd.Series:
    """Raw JSON values as ``_text`` would write them (a number stored as 7.0 becomes '7')."""
    out = texts.astype(object).where(texts.notna(), None)
    doubles = (types == "DOUBLE").to_numpy()
    if doubles.any():
        out[doubles] = [_text(float(v)) for v in texts[doubles].tolist()]
    return out


def _stamp(us: int) -> pd.Timestamp:
    return pd.Timestamp(us, unit="us")
