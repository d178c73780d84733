"""Compiled (numba) core of the live path's batch features: one entity's feature columns for a whole batch.

Each batch event's group — the held rows and batch events with its value code — is gathered into contiguous arrays.
A group in time order (the usual case: the history is appended as time goes on) gets prefix sums, and each of its
events takes a few binary searches per window, plus a look at the rows tied with it in time (a tie in (time, id)
puts held rows first, then batch order, as the sort path does). A group out of order is sorted first, unless it
has only a few batch events: then one pass per event over the group is cheaper than the sort. Either way the sums
are integers (amounts in micro-units) and the columns take the same float operations as the sort path
(tests/recent_reference.py), so the numbers are bit-identical to it (tests/test_recent_features.py).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["FAMILIES", "PATHS", "entity_columns", "warm_up"]

FAMILIES = {"nb_tx": 0, "avg_amount": 1, "amount_ratio": 2, "secs_since_prev": 3, "nb_tx_delay": 4, "risk": 5}
PATHS = ("in_order", "sorted", "scanned")  # how the groups were read: entity_columns counts each
_NB_TX, _AVG_AMOUNT, _AMOUNT_RATIO, _SECS_SINCE_PREV, _NB_TX_DELAY, _RISK = range(6)
_NEVER = -(2**62)


@numba.njit(cache=True, nogil=True)
def entity_columns(out, columns, families, slots, windows, risk_windows, delay, found, held_ids, found_ids,
                   held_codes, held_t, held_amu, held_known, held_label, codes, batch_t, batch_ids, batch_amu,
                   batch_known, batch_label, amounts, values, scan_events):  # pragma: no cover
    """Fill ``out[b, columns[f]]`` (feature ``f`` of family ``families[f]`` over window ``slots[f]`` of ``windows``,
    or of ``risk_windows`` for delayed ones) for each batch event ``b`` with ``codes[b] >= 0``; how many groups took
    each of ``PATHS`` (groups out of time order with at most ``scan_events`` batch events are scanned).

    ``found``: the held rows whose code is in ``values`` (the batch's distinct codes, sorted). Ids are integers in
    the ids' order, read only for rows of equal time: ``batch_ids``, and ``held_ids`` (by held position) or, when
    given, ``found_ids`` (one per found row)."""
    start, t, src, seq, amu, known, label = _gather(found, held_codes, held_t, held_amu, held_known, held_label,
                                                    codes, batch_t, batch_amu, batch_known, batch_label, values)
    ids = (found, held_ids, found_ids, batch_ids)
    n_groups = len(values)
    paths, in_order = np.zeros(3, np.int64), np.ones(n_groups, np.bool_)
    for g in range(n_groups):
        s, e = start[g], start[g + 1]
        for i in range(s + 1, e):
            if t[i] < t[i - 1]:
                in_order[g] = False
                break
        if in_order[g]:
            paths[0] += 1
        elif _events(seq, s, e) > scan_events:
            order, spare = _order(t[s:e]), np.empty(e - s, np.int64)
            _permute(t, s, order, spare)
            _permute(src, s, order, spare)
            _permute(seq, s, order, spare)
            _permute(amu, s, order, spare)
            _permute(known, s, order, spare)
            _permute(label, s, order, spare)
            in_order[g] = True
            paths[1] += 1
        else:
            paths[2] += 1
    c_amu, c_known, c_label = np.zeros(len(t) + 1, np.int64), np.zeros(len(t) + 1, np.int64), \
        np.zeros(len(t) + 1, np.int64)
    for i in range(len(t)):
        c_amu[i + 1], c_known[i + 1], c_label[i + 1] = c_amu[i] + amu[i], c_known[i] + known[i], c_label[i] + label[i]
    n_windows, n_risk = len(windows), len(risk_windows)
    count, total, n_known = np.zeros(n_windows, np.int64), np.zeros(n_windows, np.int64), np.zeros(n_windows, np.int64)
    d_count, d_label = np.zeros(n_risk, np.int64), np.zeros(n_risk, np.int64)
    for g in range(n_groups):
        s, e = start[g], start[g + 1]
        for i in range(s, e):
            b = seq[i]
            if b < 0:
                continue
            if in_order[g]:
                latest = _search(i, s, e, t, src, seq, ids, amu, known, c_amu, c_known, c_label, windows,
                                 risk_windows, delay, count, total, n_known, d_count, d_label)
            else:
                latest = _scan(i, s, e, t, src, seq, ids, amu, known, label, windows, risk_windows, delay, count,
                               total, n_known, d_count, d_label)
            t0 = t[i]
            for f in range(len(columns)):
                family, k, col = families[f], slots[f], columns[f]
                if family == _NB_TX:
                    out[b, col] = float(count[k] + 1)
                elif family in (_AVG_AMOUNT, _AMOUNT_RATIO):
                    units, n = total[k] + amu[i], n_known[k] + known[i]
                    mean = float(units) / 1e6 / float(n) if n > 0 else np.nan
                    if family == _AVG_AMOUNT:
                        out[b, col] = mean
                    else:
                        amount = amounts[b]
                        out[b, col] = np.nan if np.isnan(amount) or np.isnan(mean) or mean == 0 else amount / mean
                elif family == _SECS_SINCE_PREV:
                    out[b, col] = float(t0 - latest) / 1e6 if count[k] > 0 else np.nan
                elif family == _NB_TX_DELAY:
                    out[b, col] = float(d_count[k])
                else:
                    out[b, col] = float(d_label[k]) / float(d_count[k]) if d_count[k] > 0 else 0.0
    return paths


@numba.njit(cache=True, nogil=True)
def _gather(found, held_codes, held_t, held_amu, held_known, held_label, codes, batch_t, batch_amu, batch_known,
            batch_label, values):  # pragma: no cover
    """Group starts and each group's rows, held then batch, as contiguous columns; ``seq`` is -1 for a held row and
    the batch position for a batch row, ``src`` a held row's place in ``found``."""
    n_groups, n_batch, n_found = len(values), len(batch_t), len(found)
    start = np.zeros(n_groups + 1, np.int64)
    found_group, batch_group = np.full(n_found, -1, np.int64), np.full(n_batch, -1, np.int64)
    last, g = np.int64(-1), -1
    for i in range(n_found):
        code = held_codes[found[i]]
        if code != last:  # found rows come mostly grouped by value: one search per run
            last, g = code, _after(values, 0, n_groups, code - 1)
            g = g if g < n_groups and values[g] == code else -1
        if g >= 0:
            found_group[i] = g
            start[g + 1] += 1
    for b in range(n_batch):
        if codes[b] >= 0:
            batch_group[b] = _after(values, 0, n_groups, codes[b] - 1)
            start[batch_group[b] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    n = start[-1]
    t, src, seq = np.empty(n, np.int64), np.full(n, -1, np.int64), np.empty(n, np.int64)
    amu, known, label = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    fill, place = np.empty(n_groups, np.int64), np.empty(n_found, np.int64)
    for g in range(n_groups):
        fill[g] = start[g]
    for i in range(n_found):
        g = found_group[i]
        place[i] = n  # n: not gathered
        if g >= 0:
            place[i], fill[g] = fill[g], fill[g] + 1
    for i in range(n_found):  # one column at a time: independent loads, which the memory system overlaps
        if place[i] < n:
            t[place[i]] = held_t[found[i]]
    for i in range(n_found):
        if place[i] < n:
            amu[place[i]] = held_amu[found[i]]
    for i in range(n_found):
        if place[i] < n:
            known[place[i]] = np.int64(held_known[found[i]])
    for i in range(n_found):
        if place[i] < n:
            label[place[i]] = held_label[found[i]]
    for i in range(n_found):
        if place[i] < n:
            src[place[i]], seq[place[i]] = i, -1
    for b in range(n_batch):
        g = batch_group[b]
        if g >= 0:
            k = fill[g]
            t[k], seq[k], amu[k], label[k] = batch_t[b], b, batch_amu[b], batch_label[b]
            known[k] = np.int64(batch_known[b])
            fill[g] = k + 1
    return start, t, src, seq, amu, known, label


@numba.njit(cache=True, nogil=True)
def _search(i, s, e, t, src, seq, ids, amu, known, c_amu, c_known, c_label, windows, risk_windows, delay, count,
            total, n_known, d_count, d_label):  # pragma: no cover
    """Window sums of the event at row ``i`` of the time-ordered group [s, e); the latest time before it."""
    t0, b = t[i], seq[i]
    first_tie, after_tie = _after(t, s, e, t0 - 1), _after(t, s, e, t0)
    tied, tied_amu, tied_known = 0, 0, 0
    for j in range(first_tie, after_tie):  # same time: before the event when its (id, seq) is smaller
        if j != i and _tie_before(j, b, src, seq, ids):
            tied, tied_amu, tied_known = tied + 1, tied_amu + amu[j], tied_known + known[j]
    for k in range(len(windows)):
        lo = _after(t, s, first_tie, t0 - windows[k])
        count[k] = first_tie - lo + tied
        total[k] = c_amu[first_tie] - c_amu[lo] + tied_amu
        n_known[k] = c_known[first_tie] - c_known[lo] + tied_known
    due = t0 - delay
    hi = _after(t, s, first_tie, due)
    for k in range(len(risk_windows)):
        lo = _after(t, s, hi, due - risk_windows[k])
        d_count[k], d_label[k] = hi - lo, c_label[hi] - c_label[lo]
    return t0 if tied else (t[first_tie - 1] if first_tie > s else np.int64(_NEVER))


@numba.njit(cache=True, nogil=True)
def _scan(i, s, e, t, src, seq, ids, amu, known, label, windows, risk_windows, delay, count, total, n_known, d_count,
          d_label):  # pragma: no cover
    """``_search`` by one pass over a group in any order."""
    t0, b, due = t[i], seq[i], t[i] - delay
    for k in range(len(windows)):
        count[k], total[k], n_known[k] = 0, 0, 0
    for k in range(len(risk_windows)):
        d_count[k], d_label[k] = 0, 0
    latest = np.int64(_NEVER)
    for r in range(s, e):  # branch-free: whether a row counts is data, not a pattern to predict
        tr = t[r]
        before = tr < t0 or (tr == t0 and r != i and _tie_before(r, b, src, seq, ids))
        for k in range(len(windows)):
            m = np.int64(before & (tr > t0 - windows[k]))
            count[k] += m
            total[k] += m * amu[r]
            n_known[k] += m * known[r]
        latest = max(latest, tr if before else latest)
        old = tr <= due
        for k in range(len(risk_windows)):
            m = np.int64(old & (tr > due - risk_windows[k]))
            d_count[k] += m
            d_label[k] += m * label[r]
    return latest


@numba.njit(cache=True, nogil=True)
def _after(a, lo, hi, x):  # pragma: no cover
    """The first index in [lo, hi) of the ascending ``a`` whose value is above ``x`` (``hi`` when none is)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _events(seq, s, e):  # pragma: no cover
    """How many batch events the rows [s, e) hold."""
    n = 0
    for i in range(s, e):
        n += seq[i] >= 0
    return n


@numba.njit(cache=True, nogil=True)
def _order(keys):  # pragma: no cover
    """The stable permutation that sorts ``keys``: a merge sort of its ascending runs (a history out of order only
    here and there costs little more than one pass; written out, as numba's np.argsort takes a second to compile)."""
    n = len(keys)
    key, order = keys.copy(), np.arange(n)
    key_to, order_to = np.empty(n, np.int64), np.empty(n, np.int64)
    runs, r = np.zeros(n + 1, np.int64), 0  # run p is [runs[p], runs[p + 1]), for p < r
    for i in range(1, n):
        if keys[i] < keys[i - 1]:
            r += 1
            runs[r] = i
    r += 1
    runs[r] = n
    while r > 1:
        merged = 0
        for p in range(0, r, 2):
            lo, mid, hi = runs[p], runs[p + 1], runs[min(p + 2, r)]
            i, j = lo, mid
            for k in range(lo, hi):
                if i < mid and (j >= hi or key[i] <= key[j]):
                    key_to[k], order_to[k] = key[i], order[i]
                    i += 1
                else:
                    key_to[k], order_to[k] = key[j], order[j]
                    j += 1
            runs[merged] = lo
            merged += 1
        runs[merged] = n
        r = merged
        key, key_to, order, order_to = key_to, key, order_to, order
    return order


@numba.njit(cache=True, nogil=True)
def _permute(column, s, order, spare):  # pragma: no cover
    """Put ``column[s + order[k]]`` at ``s + k``."""
    for k in range(len(order)):
        spare[k] = column[s + order[k]]
    for k in range(len(order)):
        column[s + k] = spare[k]


@numba.njit(cache=True, nogil=True)
def _tie_before(j, b, src, seq, ids):  # pragma: no cover
    """Whether row ``j``, at the same time as batch event ``b``, comes before it: a smaller id, or the same id and
    held (held rows first) or earlier in the batch."""
    found, held_ids, found_ids, batch_ids = ids
    if seq[j] >= 0:  # a batch row
        other = batch_ids[seq[j]]
        return other < batch_ids[b] or (other == batch_ids[b] and seq[j] < b)
    other = found_ids[src[j]] if len(found_ids) else held_ids[found[src[j]]]
    return other <= batch_ids[b]


def warm_up() -> None:
    """Load the kernel from numba's cache (or compile it, the first time on a machine: seconds), so the first live
    batch does not wait for it."""
    one, none, flag = np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(1, np.bool_)
    entity_columns(np.zeros((1, 1)), none, none, none, one, one, 0, none, one, none, one, one, one, flag, one, one,
                   one, one, one, flag, one, np.zeros(1), one, 0)
