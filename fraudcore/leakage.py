"""Leakage guard: find columns derived from the label, or that predict it almost perfectly on their own."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from fraudcore.loading import LoadedDataset, qident
from fraudcore.spec import DatasetSpec

LABEL_DERIVED_WORDS = ("scenario", "fraud_type", "fraud_reason", "chargeback_reason", "fraud_category")
PURITY = 0.99  # precision and recall of "the value says fraud" above which a column is label-derived
AUC_LIMIT = 0.99  # single-column ROC AUC (either direction) above which a column is too good to be true
SAMPLE_ROWS = 200_000
MAX_GROUPS = 50


def detect_leakage(ds: LoadedDataset, spec: DatasetSpec) -> dict[str, str]:
    """Columns that must not be features, with the reason; empty when there is no label."""
    if not spec.label:
        return {}
    found: dict[str, str] = {}
    candidates = list(spec.numeric) + list(spec.categorical)
    for col in candidates + [c for c in spec.ignored if _named_like_label(c)]:
        if _named_like_label(col):
            found[col] = "named like a label-derived column (fraud scenario/type); known only after investigation"
    label = qident(spec.label)
    for col in candidates:
        if col in found:
            continue
        reason = _group_purity(ds, col, label)
        if reason:
            found[col] = reason
    sample = _sample(ds, [c for c in spec.numeric if c not in found], spec.label)
    for col, reason in _auc_leaks(sample, spec.label).items():
        found.setdefault(col, reason)
    return found


def _named_like_label(col: str) -> bool:
    lowered = col.lower()
    return any(word in lowered for word in LABEL_DERIVED_WORDS)


def _group_purity(ds: LoadedDataset, col: str, label: str) -> str | None:
    q = qident(col)
    n_groups = ds.con.execute(f"SELECT approx_count_distinct({q}) FROM {ds.table}").fetchone()[0]
    if not n_groups or n_groups > MAX_GROUPS:
        return None
    rows = ds.con.execute(
        f"SELECT count(*), sum(TRY_CAST({label} AS INTEGER)) FROM {ds.table} "
        f"WHERE TRY_CAST({label} AS INTEGER) IS NOT NULL GROUP BY {q}"
    ).fetchall()
    counts = np.array([(n, f or 0) for n, f in rows], dtype=float)
    if len(counts) < 2 or counts[:, 1].sum() == 0:
        return None
    flagged = counts[:, 1] / counts[:, 0] > 0.5
    caught = counts[flagged, 1].sum()
    precision = caught / max(counts[flagged, 0].sum(), 1)
    recall = caught / counts[:, 1].sum()
    if precision >= PURITY and recall >= PURITY:
        return (f"its values separate fraud from legitimate almost perfectly (precision {precision:.3f}, recall "
                f"{recall:.3f}): derived from the label")
    return None


def _sample(ds: LoadedDataset, columns: list[str], label: str):
    if not columns:
        return None
    cols = ", ".join(f"TRY_CAST({qident(c)} AS DOUBLE) AS {qident(c)}" for c in columns)
    q = qident(label)
    return ds.con.execute(
        f"SELECT {cols}, TRY_CAST({q} AS INTEGER) AS {q} FROM {ds.table} "
        f"WHERE TRY_CAST({q} AS INTEGER) IS NOT NULL USING SAMPLE reservoir({int(SAMPLE_ROWS)} ROWS) REPEATABLE (1)"
    ).df()


def _auc_leaks(sample, label: str) -> dict[str, str]:
    if sample is None or sample[label].nunique() < 2:
        return {}
    found = {}
    y = sample[label].to_numpy()
    for col in sample.columns.drop(label):
        x = sample[col].to_numpy(dtype=float)
        ok = np.isfinite(x)
        if ok.sum() < 100 or len(np.unique(y[ok])) < 2:
            continue
        auc = roc_auc_score(y[ok], x[ok])
        strength = max(auc, 1 - auc)
        if strength >= AUC_LIMIT:
            found[col] = f"predicts the label almost perfectly on its own (ROC AUC {strength:.4f}): likely leakage"
    return found
