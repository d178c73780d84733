"""Exact path-dependent TreeSHAP for an XGBoost booster, from per-leaf tables built once per model.

The same values as XGBoost's ``pred_contribs`` (Lundberg et al.'s TreeSHAP, the ``shap.TreeExplainer`` algorithm):
for a leaf with value ``v`` whose path splits on the distinct features ``P`` (``d`` of them), feature ``i`` gets

    v · (o_i − z_i) · Σ_{S ⊆ P∖{i}} |S|!(d−|S|−1)!/d! · Π_{j∈S} o_j · Π_{j∈P∖S∖{i}} z_j

where ``z_j`` is the product of the cover fractions of the path's splits on ``j`` and ``o_j`` is 1 when the row
follows the path at every split on ``j`` (else 0). As ``o`` is 0/1, the sum depends only on which of the path's
features the row follows — a bit mask — so each leaf's contributions are tabulated per mask when the model
loads (``d·2^d`` numbers per leaf, ~11 MB for a default model of 279 trees), and explaining a row is one pass of
split tests and one lookup of ``d`` adjacent numbers per leaf (the idea of FastTreeSHAP v2, Yang 2021), compiled
with numba.

The tables are checked against the booster's own ``pred_contribs`` on probe rows around every split when they are
built. A booster they do not cover (multi-class, several trees per round, paths with more than
``MAX_PATH_FEATURES`` distinct features, a failed check) makes ``TreeTables.build`` return None, and callers keep
using ``pred_contribs``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xgboost as xgb

from fraudcore.treepredict import binary_trees
from fraudcore.treeshap_kernels import (
    WALK_CATEGORICAL,
    WALK_DEFAULT_LEFT,
    WALK_FEATURE,
    WALK_LEAF,
    WALK_MAX_DEPTH,
    WALK_MAX_FEATURES,
    WALK_POSITION,
    explain_rows,
    walk_rows,
)

__all__ = ["MAX_PATH_FEATURES", "TreeTables"]

MAX_PATH_FEATURES = 10  # beyond this many distinct features on one path the tables grow past ~5k numbers per leaf
PARALLEL_ROWS = 256  # from this many rows a batch is split across threads (the kernel releases the GIL)
WALK_ROWS = 8  # up to this many rows walk each tree once per row (treeshap_kernels.walk_rows), not three passes
CHUNK_ROWS = 256  # rows per kernel call (bounds its work arrays: nodes × rows booleans, leaves × rows masks)
MAX_THREADS = 8
CHECK_TOLERANCE = 1e-3  # log-odds; XGBoost and the table hold float32, sums here are float64


class TreeTables:
    """Per-leaf TreeSHAP tables of the first ``n_trees`` trees of a booster; ``contributions`` explains rows."""

    def __init__(self, arrays: dict[str, np.ndarray], base: float, n_features: int) -> None:
        self.arrays, self.base, self.n_features = arrays, float(base), n_features

    @classmethod
    def build(cls, booster: xgb.Booster, n_trees: int, feature_types: list[str] | None = None) -> TreeTables | None:
        """Tables for the first ``n_trees`` trees of a binary:logistic booster, verified against ``pred_contribs``
        on probe rows; None when the booster is outside what they cover."""
        found = binary_trees(booster, n_trees)
        if found is None:
            return None
        trees, score, n_features = found
        built = _flatten(trees)
        if built is None:
            return None
        arrays, expected = built
        tables = cls(arrays, math.log(score / (1.0 - score)) + expected, n_features)
        return tables if tables._agrees(booster, n_trees, feature_types) else None

    def contributions(self, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact SHAP values (n, f) and base values (n,) in log-odds for the model matrix ``A`` (NaN = missing)."""
        A = np.ascontiguousarray(A, dtype=np.float64)
        threads = min(os.cpu_count() or 1, MAX_THREADS) if len(A) >= PARALLEL_ROWS else 1
        if threads == 1:
            return self._rows(A), np.full(len(A), self.base)
        parts = np.array_split(np.arange(len(A)), threads)
        with ThreadPoolExecutor(threads) as pool:
            values = list(pool.map(lambda rows: self._rows(A[rows]), parts))
        return np.concatenate(values), np.full(len(A), self.base)

    def _rows(self, A: np.ndarray) -> np.ndarray:
        out = np.zeros((len(A), self.n_features))
        a = self.arrays
        if len(A) <= WALK_ROWS and len(a["walk"]):
            walk_rows(A, a["roots"], a["walk"], a["threshold"], a["category_row"], a["right_codes"], a["leaf_word"],
                  a["position_feature"], a["table"], out)
            return out
        for start in range(0, len(A), CHUNK_ROWS):
            self._chunk(np.ascontiguousarray(A[start:start + CHUNK_ROWS]), out[start:start + CHUNK_ROWS])
        return out

    def _chunk(self, A: np.ndarray, out: np.ndarray) -> None:
        a = self.arrays
        explain_rows(A, a["internal"], a["feature"], a["threshold"], a["default_left"], a["category_row"],
                 a["right_codes"], a["slot_node"], a["slot_left"], a["slot_bit"], a["position_feature"], a["offset"],
                 a["n_positions"], a["table"], out)

    def _agrees(self, booster: xgb.Booster, n_trees: int, feature_types: list[str] | None) -> bool:
        """The booster's own pred_contribs on probe rows around every split equals these tables' values."""
        probe = self._probe_rows()
        dmatrix = xgb.DMatrix(probe, feature_names=booster.feature_names, feature_types=feature_types,
                              enable_categorical=feature_types is not None, nthread=1)
        single = booster.copy()
        single.set_param({"nthread": 1})
        want = single.predict(dmatrix, pred_contribs=True, iteration_range=(0, n_trees))
        values, base = self.contributions(probe)
        return bool(np.abs(values - want[:, :-1]).max() <= CHECK_TOLERANCE
                    and np.abs(base - want[:, -1]).max() <= CHECK_TOLERANCE)

    def _probe_rows(self, n: int = 64, seed: int = 0) -> np.ndarray:
        """Rows whose values sit on, just below and just above the split thresholds (categories in and out of the
        split sets), with some values missing."""
        rng, a = np.random.default_rng(seed), self.arrays
        internal = a["internal"]
        feature, threshold, category = a["feature"][internal], a["threshold"][internal], a["category_row"][internal]
        codes = np.flatnonzero(a["right_codes"].any(axis=0)).astype(np.float64)
        A = np.full((n, self.n_features), np.nan)
        for f in range(self.n_features):
            mine = feature == f
            if np.any(category[mine] >= 0):
                pool = np.concatenate([codes, codes + 1, [0.0]])
            elif np.any(mine):
                t = threshold[mine].astype(np.float64)
                pool = np.concatenate([t, np.nextafter(t.astype(np.float32), np.float32(-np.inf)), t + 1e-3])
            else:
                continue
            A[:, f] = rng.choice(pool, size=n)
        A[rng.random(A.shape) < 0.1] = np.nan
        A[0] = np.nan
        return A


def _flatten(trees: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], float] | None:
    """Nodes, leaf paths and subset-sum tables of ``trees`` as flat arrays, and the sum of the trees' expected values;
    None if a path has too many distinct features."""
    feature, threshold, default_left, category_row, categories, internal = [], [], [], [], [], []
    walk, roots, paired = [], [], True  # walk: one packed word per node for walk_rows (see treeshap_kernels)
    leaves: list[tuple[float, list[int], list[bool], list[int], list[float], list[int]]] = []
    expected = 0.0
    for tree in trees:
        left, right, cover = tree["left_children"], tree["right_children"], tree["sum_hessian"]
        split_at, split = tree["split_conditions"], tree["split_indices"]
        sets = dict(zip(tree["categories_nodes"], zip(tree["categories_segments"], tree["categories_sizes"],
                                                      strict=True), strict=True))
        first = len(feature)
        roots.append(first)
        for node in range(len(left)):
            is_split = left[node] != -1
            # walk_rows needs the right child right after the left one, the feature in 16 bits of the node word
            paired &= not is_split or (right[node] == left[node] + 1 and split[node] < WALK_MAX_FEATURES)
            walk.append(0)
            feature.append(split[node] if is_split else 0)
            threshold.append(split_at[node] if is_split else 0.0)
            default_left.append(bool(tree["default_left"][node]))
            category_row.append(-1)
            if is_split:
                internal.append(first + node)
                if tree["split_type"][node] == 1:
                    start, size = sets.get(node, (0, 0))
                    category_row[-1] = len(categories)
                    categories.append(tree["categories"][start:start + size])
        expected += _mean_value(0, left, right, cover, split_at)
        stack: list[tuple[int, list[int], list[bool], list[int], list[float], list[int]]] = [(0, [], [], [], [], [])]
        while stack:
            node, nodes, sides, positions, zeros, feats = stack.pop()
            if left[node] == -1:
                if len(feats) > MAX_PATH_FEATURES:
                    return None
                walk[first + node] = WALK_LEAF | len(leaves)
                paired &= len(nodes) < WALK_MAX_DEPTH  # and its stack holds every open branch of the path
                leaves.append((split_at[node], nodes, sides, positions, zeros, feats))
                continue
            f = split[node]
            walk[first + node] = (first + left[node]) | (f << WALK_FEATURE) | \
                ((feats.index(f) if f in feats else len(feats)) << WALK_POSITION) | \
                (WALK_DEFAULT_LEFT if tree["default_left"][node] else 0) | \
                (WALK_CATEGORICAL if tree["split_type"][node] == 1 else 0)
            for child, is_left in ((left[node], True), (right[node], False)):
                fraction = cover[child] / cover[node]
                p = feats.index(f) if f in feats else len(feats)
                z = [*zeros, 1.0] if p == len(feats) else zeros.copy()
                z[p] *= fraction
                stack.append((child, [*nodes, first + node], [*sides, is_left], [*positions, p], z,
                              feats if p < len(feats) else [*feats, f]))
    width = max((max(c) + 1 for c in categories if c), default=1)
    right_codes = np.zeros((max(len(categories), 1), width), dtype=np.bool_)
    for row, codes in enumerate(categories):
        right_codes[row, codes] = True
    arrays = {"internal": np.asarray(internal, dtype=np.int64), "feature": np.asarray(feature, dtype=np.int64),
              "threshold": np.asarray(threshold, dtype=np.float32), "default_left": np.asarray(default_left, bool),
              "category_row": np.asarray(category_row, dtype=np.int64), "right_codes": right_codes,
              "walk": np.asarray(walk if paired else [], dtype=np.int64), "roots": np.asarray(roots, dtype=np.int64)}
    arrays |= _leaf_arrays(leaves)
    arrays["leaf_word"] = (arrays["offset"] << 4) | arrays["n_positions"]
    return arrays, expected


def _mean_value(node: int, left: list[int], right: list[int], cover: list[float], value: list[float]) -> float:
    """The cover-weighted mean leaf value under ``node`` (XGBoost's node mean; at the root, the tree's expectation)."""
    if left[node] == -1:
        return float(value[node])
    lo, hi = left[node], right[node]
    return (_mean_value(lo, left, right, cover, value) * cover[lo]
            + _mean_value(hi, left, right, cover, value) * cover[hi]) / cover[node]


def _leaf_arrays(leaves: list[tuple]) -> dict[str, np.ndarray]:
    """Per-leaf arrays padded to the deepest path, and the flat table: per leaf, for each mask of followed path
    features (2^d of them), each position's contribution v · (o_p − z_p) · Σ… (see the module), side by side."""
    n = len(leaves)
    depth = max((len(leaf[1]) for leaf in leaves), default=0) or 1
    width = max((len(leaf[5]) for leaf in leaves), default=0) or 1
    out = {"slot_node": np.zeros((depth, n), dtype=np.int32), "slot_left": np.zeros((depth, n), dtype=np.bool_),
           "slot_bit": np.zeros((depth, n), dtype=np.int32), "n_slots": np.zeros(n, dtype=np.int32),
           "position_feature": np.zeros((n, width), dtype=np.int32), "offset": np.zeros(n, dtype=np.int64),
           "n_positions": np.zeros(n, dtype=np.int32)}
    value, zero = np.array([leaf[0] for leaf in leaves], dtype=np.float64), np.zeros((n, width))
    for i, (_, nodes, sides, positions, zeros, feats) in enumerate(leaves):
        k, d = len(nodes), len(feats)
        out["slot_node"][:k, i], out["slot_left"][:k, i] = nodes, sides
        out["slot_bit"][:k, i] = np.left_shift(1, np.asarray(positions, dtype=np.int32))
        out["position_feature"][i, :d], zero[i, :d] = feats, zeros
        out["n_slots"][i], out["n_positions"][i] = k, d
    chunks, start = [np.zeros(1)], 1  # entry 0 is never read; it keeps the table non-empty
    for d in range(1, width + 1):
        rows = np.flatnonzero(out["n_positions"] == d)
        if not len(rows):
            continue
        sums = _subset_sums(zero[rows, :d])  # (leaves, d, 2^(d-1)), indexed by the mask without position p
        masks = np.arange(1 << d)
        blocks = np.empty((len(rows), 1 << d, d))
        for p in range(d):
            bit = (masks >> p) & 1
            others = (masks & ((1 << p) - 1)) | ((masks >> (p + 1)) << p)
            blocks[:, :, p] = value[rows, None] * (bit[None, :] - zero[rows, p, None]) * sums[:, p, others]
        out["offset"][rows] = start + np.arange(len(rows)) * blocks[0].size
        chunks.append(blocks.reshape(-1))
        start += blocks.size
    out["table"] = np.concatenate(chunks).astype(np.float32)  # XGBoost's own precision; half the memory to reach
    return out


def _subset_sums(zero: np.ndarray) -> np.ndarray:
    """For leaves with ``d`` distinct path features (zero fractions ``zero``, shape (n, d)): for each position i and
    each subset M of the other positions (a bit mask over them, in order), Σ_{S⊆M} w(|S|, d) Π_{j∉S, j≠i} z_j."""
    n, d = zero.shape
    m = d - 1
    members = ((np.arange(1 << m)[:, None] >> np.arange(m)) & 1).astype(bool)  # (2^m, m)
    weight = np.array([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in members.sum(1)])
    out = np.empty((n, d, 1 << m))
    for i in range(d):
        others = np.delete(zero, i, axis=1)
        term = weight * np.prod(np.where(members[None], 1.0, others[:, None, :]), axis=2)  # (n, 2^m)
        cube = term.reshape((n,) + (2,) * m)
        for axis in range(1, m + 1):  # the zeta transform: sum over every subset of each mask
            cube = np.cumsum(cube, axis=axis)
        out[:, i] = cube.reshape(n, 1 << m)
    return out
