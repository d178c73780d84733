"""The compiled (numba) kernels of fraudcore.treeshap: the three-pass batch kernel and the one-walk-per-row kernel
for a few rows. Both add each leaf's tabulated contributions in ``_flatten``'s leaf order, so they give the same sums
bit for bit (tests/test_treeshap.py)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["WALK_CATEGORICAL", "WALK_DEFAULT_LEFT", "WALK_FEATURE", "WALK_INDEX", "WALK_LEAF", "WALK_MAX_DEPTH",
           "WALK_MAX_FEATURES", "WALK_POSITION", "WALK_STACK", "explain_rows", "walk_rows"]

# walk_rows' node word: the left child's node (the right one follows it) or, with WALK_LEAF, the leaf's index in
# bits 0-31; default side, categorical split, the feature's position on the path and the feature above them
WALK_INDEX, WALK_LEAF, WALK_DEFAULT_LEFT, WALK_CATEGORICAL = (1 << 32) - 1, 1 << 32, 1 << 33, 1 << 34
WALK_POSITION, WALK_FEATURE = 36, 40
WALK_MAX_FEATURES = 1 << 16  # the feature field's size
WALK_STACK = 256
WALK_MAX_DEPTH = WALK_STACK - 1  # a depth-first walk keeps at most depth + 1 entries on its stack


@numba.njit(cache=True, nogil=True)
def explain_rows(A, internal, feature, threshold, default_left, category_row, right_codes, slot_node, slot_left,
                 slot_bit, position_feature, offset, n_positions, table, out):  # pragma: no cover
    """Add each leaf's tabulated contributions to ``out`` for every row of ``A`` (see fraudcore.treeshap).

    Three passes, each a tight loop: the split tests of every node, then which path features each row follows at
    each leaf (slot by slot over all leaves; padding slots have bit 0), then the table lookups — kept apart so the
    lookups, which go wherever a row's masks point, overlap in the memory system instead of waiting in turn."""
    n, width = A.shape[0], right_codes.shape[1]
    goes_left = np.zeros((len(feature), n), dtype=np.bool_)
    for node in internal:
        f, row = feature[node], category_row[node]
        for r in range(n):
            x = np.float32(A[r, f])
            if x != x:
                goes_left[node, r] = default_left[node]
            elif row >= 0:
                goes_left[node, r] = not (0 <= x < width and right_codes[row, int(x)])
            else:
                goes_left[node, r] = x < threshold[node]
    leaves = len(offset)
    masks = np.empty((leaves, n), dtype=np.int32)
    for leaf in range(leaves):
        masks[leaf, :] = (1 << n_positions[leaf]) - 1
    for k in range(slot_node.shape[0]):
        for leaf in range(leaves):
            node, side, bit = slot_node[k, leaf], slot_left[k, leaf], slot_bit[k, leaf]
            for r in range(n):  # branch-free: which side a row takes is data, not a pattern to predict
                masks[leaf, r] &= ~(bit * (goes_left[node, r] != side))
    for leaf in range(leaves):
        d = n_positions[leaf]
        for r in range(n):
            start = offset[leaf] + masks[leaf, r] * d
            for p in range(d):
                out[r, position_feature[leaf, p]] += table[start + p]


@numba.njit(cache=True, nogil=True)
def walk_rows(A, roots, walk, threshold, category_row, right_codes, leaf_word, position_feature, table,
              out):  # pragma: no cover
    """``explain_rows`` for a few rows: each row walks every tree once, depth first, carrying the mask of path features
    it follows (the child on the side the row does not take clears its split's bit), and adds each leaf's tabulated
    contributions when it reaches it. Leaves come in ``_flatten``'s order, so the sums are those of ``explain_rows``,
    bit for bit; the work is one visit per node instead of one per path slot of every leaf, and a node is one packed
    word (``WALK_*``) and its threshold, so a row touches little memory besides the tables."""
    width = right_codes.shape[1]
    stack_node = np.empty(WALK_STACK, dtype=np.int64)
    stack_mask = np.empty(WALK_STACK, dtype=np.int64)
    for r in range(A.shape[0]):
        for root in roots:
            top = 0
            stack_node[0], stack_mask[0] = root, -1
            while top >= 0:
                node, mask = stack_node[top], stack_mask[top]
                top -= 1
                word = walk[node]
                if word & WALK_LEAF:
                    packed = leaf_word[word & WALK_INDEX]
                    d = packed & 15
                    start = (packed >> 4) + (mask & ((1 << d) - 1)) * d
                    for p in range(d):
                        out[r, position_feature[word & WALK_INDEX, p]] += table[start + p]
                    continue
                x = np.float32(A[r, (word >> WALK_FEATURE) & 0xFFFF])
                if x != x:
                    goes_left = (word & WALK_DEFAULT_LEFT) != 0
                elif word & WALK_CATEGORICAL:
                    goes_left = not (0 <= x < width and right_codes[category_row[node], int(x)])
                else:
                    goes_left = x < threshold[node]
                bit = 1 << ((word >> WALK_POSITION) & 15)
                left = word & WALK_INDEX
                top += 1  # pushed left then right, so the right subtree is walked first, as _flatten listed it
                stack_node[top], stack_mask[top] = left, mask if goes_left else mask & ~bit
                top += 1
                stack_node[top], stack_mask[top] = left + 1, mask & ~bit if goes_left else mask
