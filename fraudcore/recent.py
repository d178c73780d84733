"""Recent history for the live path: the stored events of the features' lookback as numpy columns, in step with the
store, plus the events prepared but not committed yet (pending), so the next batch sees them and dedupe knows them.

Features for a whole batch come from ``fraudcore.recent_features`` (the definitions of ``fraudcore.features_online``).
The store writer keeps a history in step: a commit of rows the history already holds moves its generation along with
the store's (``advance``) and turns pending rows into stored ones (``settle``); a failed write drops them
(``release``) and the history reloads. Any other write to the events (labels, another writer) makes it reload, and
a reload puts the still-pending rows back.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.features import FeatureConfig, history_lookback, origin_us, to_us
from fraudcore.recent_features import Rows, batch_features, concat_rows, micro_units
from fraudcore.store import Store

__all__ = ["RecentHistory", "Rows", "batch_features"]

DEFAULT_SLACK = timedelta(days=1)
_FAR_PAST = -(2**62)
FEW_CODES = 8  # up to this many values, the rows appended since the index was built are scanned by comparison


class RecentHistory:
    """The stored events with time >= ``horizon`` and the pending ones, as numpy columns, for one feature config and
    one store.

    ``sync`` reloads it when the store was written by anyone else (``Store.generation``); ``hold`` appends a batch
    about to be written (pending until the store writer ``settle``s or ``release``s it); ``add`` appends a batch the
    caller just wrote itself. Rows older than lookback + slack (and than the latest batch needs) are dropped in steps
    of a quarter lookback, and a late batch reloads what it needs from the store.
    Callers hold ``lock`` from ``sync`` to ``hold`` / ``add``.
    """

    def __init__(self, config: FeatureConfig, slack: timedelta = DEFAULT_SLACK,
                 on_reload: Callable[[], None] | None = None) -> None:
        self.config, self.lock, self.on_reload = config, threading.RLock(), on_reload  # on_reload: after each reload
        self.entities = list(dict.fromkeys([*config.entities, *config.risk_entities]))
        self.lookback_us, self.slack_us = to_us(history_lookback(config)), to_us(slack)
        self.generation: int | None = None
        self._store: weakref.ReferenceType[Store] | None = None
        self._pending: dict[int, Rows] = {}  # token -> rows held but not committed yet
        self._pending_lock, self._tokens = threading.Lock(), itertools.count(1)
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
        self._index: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # entity -> held rows by code (see _locate)

    @property
    def rows(self) -> Rows:
        """The held rows (a view)."""
        return self._rows.take(slice(0, self._n))

    def sync(self, store: Store) -> None:
        """Reload from ``store`` unless this already holds it as of its latest write (pending rows stay)."""
        if self._store is not None and self._store() is store and store.in_step(self.generation):
            return
        with store.exclusive() as generation:  # no commit between reading the generation and the rows
            with self._pending_lock:
                pending = {token: self._portable(rows) for token, rows in self._pending.items()}
            self._clear()
            try:
                newest = store.query("SELECT epoch_us(max(event_time)) FROM events").iloc[0, 0]
                if not pd.isna(newest):
                    self.horizon = int(newest) - self.lookback_us - self.slack_us
                    self._load(store, self.horizon, None)
                failed = None
            except Exception as exc:  # not loaded: scoring without the history would be silently wrong
                self._clear()
                failed = exc
            self._store, self.generation = weakref.ref(store), None if failed else generation
        rebuilt = {token: self._rebuild(*portable) for token, portable in pending.items()}
        with self._pending_lock:
            self._pending.update({t: rows for t, rows in rebuilt.items() if t in self._pending})
        for rows in rebuilt.values():  # committed since the load or not: the load did not see them
            self._append_new(rows)
        if failed is not None:
            raise failed  # the next sync tries again
        if self.on_reload is not None:
            self.on_reload()

    def hold(self, rows: Rows) -> int:
        """Append rows about to be written (pending: the next batch sees them, dedupe knows their ids); a token
        for the store writer's ``settle`` / ``release``."""
        self._append(rows)
        with self._pending_lock:
            token = next(self._tokens)
            self._pending[token] = rows
        self._maybe_compact()
        return token

    def advance(self, before: int, after: int) -> None:
        """The store moved from generation ``before`` to ``after`` by writing rows this already holds."""
        if self.generation == before:
            self.generation = after

    def settle(self, token: int) -> None:
        """The pending rows of ``token`` are committed (stored rows now)."""
        with self._pending_lock:
            self._pending.pop(token, None)

    def release(self, token: int) -> None:
        """The pending rows of ``token`` were not written: forget them (reload on the next ``sync``)."""
        with self._pending_lock:
            self._pending.pop(token, None)
            self.generation = None

    def invalidate(self) -> None:
        """Reload on the next ``sync``."""
        self.generation = None

    def batch_rows(self, events: Sequence[Mapping[str, Any]]) -> tuple[Rows, np.ndarray]:
        """Validated events as ``Rows`` (value codes assigned) and their amounts."""
        cfg = self.config
        amounts = np.array([np.nan if cfg.amount is None or ev.get(cfg.amount) is None else float(ev[cfg.amount])
                            for ev in events], dtype=float)
        amu, known = micro_units(amounts)
        labels = [ev.get(cfg.label) if cfg.label else None for ev in events]
        rows = Rows(np.array([ev[cfg.event_time].value // 1000 for ev in events], dtype=np.int64),
                    self._id_array([ev[cfg.event_id] for ev in events]), amu, known,
                    np.array([0 if v is None or v != v else int(v) for v in labels], dtype=np.int64),
                    {e: self._codes(e, [_text(ev.get(e)) for ev in events])
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
                              {e: len(v) for e, v in self._values.items()}, self._locate)

    def add(self, store: Store, batch: Rows, generation_before: int) -> None:
        """Append a batch just written to ``store`` (or reload later if someone else wrote meanwhile)."""
        if store.generation != generation_before + 1 or self.generation != generation_before:
            self.invalidate()
            return
        self.generation = store.generation
        self._append(batch)
        self._maybe_compact()

    # ---- internals ------------------------------------------------------------------------------------------

    def _id_array(self, ids: list[Any]) -> np.ndarray:
        if not self._text_ids and all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in ids):
            return np.array(ids, dtype=np.int64)
        if not self._text_ids:  # an id that is not an integer: order every id as text from now on
            self._text_ids = True
            self._rows.ids = np.array([str(i) for i in self._rows.ids.tolist()], dtype=object)
            self._ids = {str(i) for i in self._ids}
        return np.array([str(i) for i in ids], dtype=object)

    def _codes(self, entity: str, texts: pd.Series | list) -> np.ndarray:
        """Value codes of canonical texts (None: -1), adding unseen values."""
        mapping = self._values[entity]
        if isinstance(texts, list) and len(texts) <= 64:  # a few: dict lookups beat a factorize
            return np.array([-1 if t is None else mapping.setdefault(t, len(mapping)) for t in texts], dtype=np.int64)
        factor, uniques = pd.factorize(pd.Series(texts, dtype=object), use_na_sentinel=True)
        lookup = np.array([mapping.setdefault(v, len(mapping)) for v in uniques.tolist()] + [-1], dtype=np.int64)
        return lookup[factor]

    def _load(self, store: Store, since_us: int, until_us: int | None) -> None:
        """Append the stored events with time in [since_us, until_us) not held yet (and pending ones in a range)."""
        if until_us is not None:
            with self._pending_lock:
                pending = list(self._pending.values())
            for rows in pending:
                self._append_new(rows.take(np.flatnonzero((rows.t >= since_us) & (rows.t < until_us))))
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
        amu, known = micro_units(frame["__amount"].to_numpy(dtype=float, na_value=np.nan))
        rows = Rows(t, self._id_array(ids), amu, known,
                    frame["__label"].fillna(0).to_numpy(dtype=np.int64),
                    {e: self._codes(e, _canonical(frame[e], frame[f"{e}__type"])) for e in self.entities})
        self._append_new(rows)

    def _locate(self, entity: str, codes: np.ndarray) -> np.ndarray:
        """Positions of the held rows whose ``entity`` code is in ``codes`` (sorted, distinct): binary searches in
        an index by code, rebuilt once the rows appended since outgrow an eighth of it, plus a scan of those."""
        order, sorted_codes = self._index.get(entity, (None, None))
        if order is None or self._n - len(order) > max(4096, len(order) // 8):
            column = self._rows.codes[entity][:self._n]
            order = np.argsort(column, kind="stable")
            sorted_codes = column[order]
            self._index[entity] = (order, sorted_codes)
        lo = np.searchsorted(sorted_codes, codes, "left")
        counts = np.searchsorted(sorted_codes, codes, "right") - lo
        found = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
        tail = self._rows.codes[entity][len(order):self._n]
        if len(codes) <= FEW_CODES:  # a few values (a live page, an API call): comparisons beat isin's set-up
            hit = tail == codes[0] if len(codes) else np.zeros(len(tail), dtype=bool)
            for code in codes[1:].tolist():
                hit |= tail == code
        else:
            hit = np.isin(tail, codes)
        return np.concatenate([found, len(order) + np.flatnonzero(hit)])

    def _append_new(self, rows: Rows) -> None:
        """Append the rows whose id is not held yet."""
        if self._n and len(rows.t):
            rows = self._compatible(rows)
            rows = rows.take(np.fromiter((i not in self._ids for i in rows.ids.tolist()), dtype=bool,
                                         count=len(rows.t)))
        self._append(rows)

    def _compatible(self, rows: Rows) -> Rows:
        """Rows whose ids are of the held kind (text ids turn every id into text)."""
        if rows.ids.dtype == object and not self._text_ids:
            self._id_array(rows.ids.tolist())
        if self._text_ids and rows.ids.dtype != object:
            rows = Rows(rows.t, np.array([str(i) for i in rows.ids.tolist()], dtype=object), rows.amu, rows.known,
                        rows.label, rows.codes)
        return rows

    def _portable(self, rows: Rows) -> tuple[Rows, dict[str, list]]:
        """Rows with their entity values as text (codes change when the history reloads)."""
        texts = {e: [*self._values[e], None] for e in self.entities}
        return rows, {e: [texts[e][c] for c in rows.codes[e].tolist()] for e in self.entities}

    def _rebuild(self, rows: Rows, values: dict[str, list]) -> Rows:
        """Portable rows coded with the current values."""
        return self._compatible(Rows(rows.t, rows.ids, rows.amu, rows.known, rows.label,
                                     {e: self._codes(e, values[e]) for e in self.entities}))

    def _maybe_compact(self) -> None:
        keep_from = min(self.newest - self.lookback_us - self.slack_us, self._need)  # late feeds keep their need
        if keep_from - self.horizon > max(self.slack_us, self.lookback_us // 4):  # drop old rows in big steps
            self._compact(keep_from)

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
        """Drop rows older than ``horizon`` and the values no kept (or pending) row uses."""
        kept = self.rows.take(np.flatnonzero(self.rows.t >= horizon))
        with self._pending_lock:
            for e in self.entities:
                pending = [rows.codes[e] for rows in self._pending.values()]
                used = np.unique(np.concatenate([kept.codes[e], *pending]))
                used = used[used >= 0]
                texts = np.array(list(self._values[e]), dtype=object)
                self._values[e] = {t: i for i, t in enumerate(texts[used].tolist())}
                remap = np.full(len(texts) + 1, -1, dtype=np.int64)
                remap[used + 1] = np.arange(len(used))
                kept.codes[e] = remap[kept.codes[e] + 1]
                for rows in self._pending.values():
                    rows.codes[e] = remap[rows.codes[e] + 1]
        self._ids.difference_update(self.rows.ids[self.rows.t < horizon].tolist())
        self._rows, self._n, self.horizon, self._index = kept, len(kept.t), horizon, {}


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
