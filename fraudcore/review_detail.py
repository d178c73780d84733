"""One case opened for review: the event, its live score and reasons, the entities' recent history with scores and
past dispositions, the audit trail, and similar decided cases."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fraudcore.review import DISPOSITION_TEXT, LAST_DISPOSITION_SQL, ReviewError, _case_id, entity_text
from fraudcore.review_similar import SimilarCases, similar_cases
from fraudcore.store import Store
from fraudcore.store_inputs import INPUT_COLUMNS

__all__ = ["CaseDetail", "audit_trail", "case_detail", "entity_history"]



@dataclass
class CaseDetail:
    """Everything the drill-down shows for one case."""

    case: dict[str, Any]
    event: dict[str, Any]
    score: dict[str, Any] | None
    history: dict[str, pd.DataFrame] = field(default_factory=dict)  # 'customer_id=17' -> recent events
    audit: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar: SimilarCases | None = None


def live_scores_sql(columns: str = "score, tier") -> str:
    """SQL for the newest live (non-shadow) score of each event in a CTE named ``ids``, with these columns."""
    return f"""SELECT event_id, {columns} FROM scores
      WHERE NOT coalesce(shadow, false) AND event_id IN (SELECT event_id FROM ids)
      QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY scored_at DESC) = 1"""


def case_detail(store: Store, case_id: int, history_limit: int = 20, similar_k: int = 10,
                similar_pool: int = 5000) -> CaseDetail:
    """The case with its event fields, live score (reasons, model inputs), entity history, audit trail and the
    ``similar_k`` nearest decided cases (0: skip them)."""
    case_id = _case_id(case_id)
    found = store.query(
        f"""WITH last AS ({LAST_DISPOSITION_SQL})
            SELECT c.*, e.event_time, e.label, e.raw, last.disposition, last.decided_by, last.decided_at,
                   last.decision_note
            FROM cases c JOIN events e USING (event_id) LEFT JOIN last USING (case_id) WHERE c.case_id = ?""",
        [case_id])
    if found.empty:
        raise ReviewError(f"there is no case {case_id}; pick one from the review queue")
    row = found.iloc[0].to_dict()
    event = json.loads(row.pop("raw"))
    row["disposition_text"] = DISPOSITION_TEXT.get(row["disposition"]) if row["disposition"] else None
    columns = f"model_id, score, tier, reasons, {INPUT_COLUMNS}, scored_at"
    score = store.query(f"WITH ids AS (SELECT ? AS event_id) {live_scores_sql(columns)}", [row["event_id"]])
    live = None
    if not score.empty:
        features = store.input_rows(score)[0]
        live = score.iloc[0].to_dict()
        live["reasons"] = json.loads(live["reasons"]) if live["reasons"] else []
        live["features"] = features
    similar = similar_cases(store, case_id, k=similar_k, pool=similar_pool) if similar_k > 0 else None
    return CaseDetail(case=_plain(row), event=event, score=live,
                      history=entity_history(store, row["event_id"], limit=history_limit),
                      audit=audit_trail(store, case_id), similar=similar)


def entity_history(store: Store, event_id: str, limit: int = 20) -> dict[str, pd.DataFrame]:
    """Per entity value of the event ('customer_id=17'), its latest ``limit`` events up to this one (newest first)
    with live score, tier, case, status and current disposition; ``this_event`` marks the event itself."""
    if limit < 1:
        raise ReviewError(f"entity history needs limit >= 1; got {limit}")
    event = store.query("SELECT event_time, raw FROM events WHERE event_id = ?", [str(event_id)])
    if event.empty:
        raise ReviewError(f"there is no stored event {event_id!r}")
    raw, at = json.loads(event["raw"].iloc[0]), event["event_time"].iloc[0]
    keys = [f"{e}={entity_text(raw[e])}" for e in store.keys.entities if raw.get(e) is not None]
    if not keys:
        return {}
    found = store.query(  # one query for every entity: the latest ``limit`` events per entity value
        f"""WITH ids AS (SELECT entity_key, event_id, event_time FROM event_entities
                         WHERE entity_key IN ({', '.join('?' * len(keys))}) AND event_time <= ?
                         QUALIFY row_number() OVER (PARTITION BY entity_key
                                                    ORDER BY event_time DESC, event_id DESC) <= ?),
                 live AS ({live_scores_sql()}), last AS ({LAST_DISPOSITION_SQL})
            SELECT ids.entity_key, ids.event_id, ids.event_time, e.amount, live.score, live.tier, c.case_id,
                   c.status, c.assignee, last.disposition, last.decided_by, last.decided_at, e.label,
                   ids.event_id = ? AS this_event
            FROM ids JOIN events e USING (event_id) LEFT JOIN live USING (event_id)
                 LEFT JOIN cases c USING (event_id) LEFT JOIN last USING (case_id)
            ORDER BY ids.entity_key, ids.event_time DESC, ids.event_id DESC""",
        [*keys, at, int(limit), str(event_id)])
    return {key: found[found["entity_key"] == key].drop(columns="entity_key").reset_index(drop=True)
            for key in keys}


def audit_trail(store: Store, case_id: int) -> pd.DataFrame:
    """Every decision row of the case in order, with a readable ``what`` ('assigned to bob', 'confirmed fraud')."""
    trail = store.query('SELECT decision_id, "at", analyst, action, note FROM decisions WHERE case_id = ? '
                        "ORDER BY decision_id", [_case_id(case_id)])
    trail["what"] = [_describe(a) for a in trail["action"]]
    return trail


def _describe(action: str) -> str:
    kind, _, target = action.partition(":")
    if kind == "assign":
        return f"assigned to {target}"
    if kind in DISPOSITION_TEXT:
        return f"decided: {DISPOSITION_TEXT[kind]}"
    return {"claim": "claimed", "release": "released", "reopen": "reopened"}.get(kind, action)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Missing values (NaN, NaT, NA) as None so pages and JSON see one kind of empty."""
    return {k: None if not isinstance(v, list | dict) and pd.isna(v) else v for k, v in row.items()}
