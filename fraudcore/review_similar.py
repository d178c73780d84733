"""Similar past cases: the nearest decided cases by the model inputs their live scores used, and how they ended.

Numeric inputs are standardised over the compared cases (a missing value sits at the mean); a categorical input
adds one standard unit when it differs. Only the latest ``pool`` decided cases are compared, so the cost is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudcore.review import FINAL, LAST_DISPOSITION_SQL, _case_id
from fraudcore.store import Store
from fraudcore.store_inputs import HAS_INPUTS, INPUT_COLUMNS

__all__ = ["SimilarCases", "similar_cases"]

_POOL_SQL = f"""WITH last AS ({LAST_DISPOSITION_SQL}),
  decided AS (SELECT c.case_id, c.event_id, c.tier, c.risk, c.amount, last.disposition, last.decided_by,
                     last.decided_at, last.last_decision
              FROM last JOIN cases c USING (case_id)
              WHERE last.disposition IN ({', '.join(repr(d) for d in FINAL)}) AND c.case_id <> ?
              ORDER BY last.last_decision DESC LIMIT ?),
  live AS (SELECT event_id, {INPUT_COLUMNS} FROM scores
           WHERE NOT coalesce(shadow, false) AND {HAS_INPUTS} AND event_id IN (SELECT event_id FROM decided)
           QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY scored_at DESC) = 1)
SELECT decided.*, live.* EXCLUDE (event_id) FROM decided JOIN live USING (event_id) ORDER BY last_decision DESC"""


@dataclass
class SimilarCases:
    """The nearest decided cases (nearest first) with their dispositions, and a one-line summary."""

    neighbours: pd.DataFrame
    summary: str
    confirmed_fraud: int = 0
    compared: int = 0  # decided cases with model inputs that were compared
    features: list[str] = field(default_factory=list)


def similar_cases(store: Store, case_id: int, k: int = 10, pool: int = 5000) -> SimilarCases:
    """The ``k`` decided cases (among the latest ``pool``) whose model inputs are nearest this case's."""
    case_id = _case_id(case_id)
    mine = store.query(f"""SELECT {INPUT_COLUMNS} FROM scores
                           WHERE event_id = (SELECT event_id FROM cases WHERE case_id = ?)
                             AND NOT coalesce(shadow, false) AND {HAS_INPUTS}
                           ORDER BY scored_at DESC LIMIT 1""", [case_id])
    if mine.empty:
        return SimilarCases(_empty(), "this case's score kept no model inputs, so it cannot be compared")
    query = store.input_rows(mine)[0]
    decided = store.query(_POOL_SQL, [case_id, int(pool)])
    if decided.empty:
        return SimilarCases(_empty(), "no decided cases with model inputs to compare with yet")
    rows = store.input_rows(decided)
    distance, names = feature_distances(query, rows)
    nearest = np.argsort(distance, kind="stable")[:k]
    found = decided.iloc[nearest].drop(columns="last_decision").reset_index(drop=True)
    found.insert(1, "distance", distance[nearest])
    fraud = int((found["disposition"] == "confirmed_fraud").sum())
    summary = f"{fraud} of {len(found)} similar case{'s' if len(found) != 1 else ''} " \
              f"{'were' if len(found) != 1 else 'was'} confirmed fraud"
    return SimilarCases(found, summary, fraud, len(decided), names)


def feature_distances(query: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """Euclidean distance of each row's inputs to ``query``'s: numbers standardised over the rows (missing at the
    mean), categories 0 when equal and 1 when not; returns the distances and the inputs used."""
    numeric = [n for n, v in query.items() if v is None or _is_number(v)]
    categorical = [n for n, v in query.items() if isinstance(v, str)]
    squared = np.zeros(len(rows))
    used = []
    if numeric:
        table = np.array([[_number(r.get(n)) for n in numeric] for r in rows], dtype=float).reshape(len(rows), -1)
        target = np.array([_number(query[n]) for n in numeric], dtype=float)
        keep = ~np.all(np.isnan(table), axis=0) & ~np.isnan(target)  # inputs known for this case and some others
        table, target = table[:, keep], target[keep]
        used += [n for n, kept in zip(numeric, keep, strict=True) if kept]
        mean = np.nanmean(table, axis=0) if table.size else np.zeros(0)
        std = np.nanstd(table, axis=0) if table.size else np.zeros(0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        z = np.nan_to_num((table - mean) / std, nan=0.0)
        squared += ((z - (target - mean) / std) ** 2).sum(axis=1)
    for name in categorical:
        squared += np.array([r.get(name) != query[name] for r in rows], dtype=float)
        used.append(name)
    return np.sqrt(squared), used


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)  # booleans count as 0 / 1


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else np.nan


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["case_id", "distance", "event_id", "tier", "risk", "amount", "disposition",
                                 "decided_by", "decided_at"])
