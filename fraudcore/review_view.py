"""What the Review queue page shows, shaped from the review modules: the queue table, one case's fields, reasons,
full explanation (from the inputs stored with its score), entity history, similar cases and audit trail.

Nothing here writes: actions are ``fraudcore.review``'s; reads are ``review_queue`` / ``review_detail``'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.explain import Explanation, explain
from fraudcore.review import DISPOSITION_TEXT
from fraudcore.review_similar import SimilarCases
from fraudcore.scoring import Scorer
from fraudcore.store import Store

__all__ = ["OUTCOMES", "age_text", "audit_table", "case_explanation", "case_labels", "case_status_text",
           "decisions_version", "event_fields", "history_frame", "opened_text", "queue_table", "reason_lines",
           "similar_table"]

# what an entity's past event came to, in the order the timeline's legend lists them
OUTCOMES = ("confirmed fraud", "legitimate", "needs more info", "open case", "no case")


def age_text(age: Any) -> str:
    """A duration as an analyst reads it: '< 1 min', '12 min', '5 h', '3 d'."""
    if age is None or (not isinstance(age, str) and pd.isna(age)):
        return ""
    seconds = max(pd.Timedelta(age).total_seconds(), 0.0)
    if seconds < 60:
        return "< 1 min"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def queue_table(page: pd.DataFrame, entities: Sequence[str] = ()) -> pd.DataFrame:
    """One queue page as shown: case, tier, risk, amount, risk x amount, age, status, holder, event time, entities."""
    columns = ["case_id", "tier", "risk", "amount", "exposure", "age", "status", "assignee", "event_time",
               *[e for e in entities if e in page.columns]]
    if page.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = page.reindex(columns=columns).copy()
    table["age"] = [age_text(a) for a in page["age"]]
    table["assignee"] = table["assignee"].fillna("")
    return table.reset_index(drop=True)


def event_fields(event: Mapping[str, Any]) -> pd.DataFrame:
    """The raw event as (field, value) rows, values as text (missing as an empty string)."""
    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return pd.DataFrame({"field": list(event), "value": [text(v) for v in event.values()]})


def reason_lines(reasons: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each stored reason as a sentence: '▲ amount 412.50 is 6.2x … (+3.1%)' (▼ where it lowers the risk)."""
    lines = []
    for reason in reasons:
        arrow = "▲" if reason.get("direction", "raises" if reason.get("contribution", 0) > 0 else "lowers") \
            == "raises" else "▼"
        text = reason.get("text") or f"{reason.get('feature')} = {reason.get('value')}"
        delta = reason.get("delta_probability")
        lines.append(f"{arrow} {text}" + (f" ({delta:+.1%})" if isinstance(delta, int | float) else ""))
    return lines


def case_explanation(scorer: Scorer, features: Mapping[str, Any]) -> Explanation:
    """Every input's contribution to the case's score, from the model inputs stored with it (for a full waterfall)."""
    if not features:
        raise FraudcoreError("this case's score kept no model inputs, so only its top reasons can be shown")
    missing = [n for n in scorer.feature_names if n not in features]
    if missing:
        raise FraudcoreError(f"the stored inputs lack {len(missing)} of model {scorer.model_id}'s inputs (e.g. "
                             f"{missing[:3]}); the case was scored by another model, so only its reasons are shown")
    if not scorer.explainable:
        raise FraudcoreError(f"model {scorer.model_id} ({scorer.metadata.algo}) has no per-feature contributions; "
                             "only the stored reasons can be shown")
    row = {n: (math.nan if features[n] is None else features[n]) for n in scorer.feature_names}
    return explain(scorer.model, [row])


def case_status_text(case: Mapping[str, Any]) -> str:
    """'open, unassigned' / 'pending, held by ana' / 'closed: confirmed fraud (ana)'."""
    status, holder = case.get("status"), case.get("assignee")
    if status == "closed":
        by = f" ({case['decided_by']})" if case.get("decided_by") else ""
        return f"closed: {case.get('disposition_text') or 'decided'}{by}"
    return f"{status}, {'held by ' + holder if holder else 'unassigned'}"


def _outcome(disposition: Any, case_id: Any, status: Any) -> str:
    if isinstance(disposition, str) and disposition in DISPOSITION_TEXT:
        return DISPOSITION_TEXT[disposition]
    if case_id is not None and not pd.isna(case_id):
        return "needs more info" if status == "pending" else "open case"
    return "no case"


def history_frame(history: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The entities' recent events in one frame for the timeline and its table: entity ('customer_id=17'), event,
    time, amount, score, tier, case, ``outcome`` (the case's disposition, 'open case' or 'no case'), this event."""
    columns = ["entity", "event_id", "event_time", "amount", "score", "tier", "case_id", "outcome", "decided_by",
               "this_event"]
    parts = []
    for key, frame in history.items():
        if frame.empty:
            continue
        part = frame.assign(entity=key)
        part["outcome"] = [_outcome(d, c, s) for d, c, s in zip(frame["disposition"], frame["case_id"],
                                                                frame["status"], strict=True)]
        parts.append(part.reindex(columns=columns))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = pd.concat(parts, ignore_index=True)
    table["case_id"] = table["case_id"].astype("Int64")
    table["this_event"] = table["this_event"].astype(bool)
    return table


def similar_table(similar: SimilarCases | None) -> pd.DataFrame:
    """The nearest decided cases as shown: case, distance, tier, risk, amount, decision, by whom and when."""
    columns = ["case_id", "distance", "tier", "risk", "amount", "decision", "decided_by", "decided_at"]
    if similar is None or similar.neighbours.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = similar.neighbours.assign(decision=[DISPOSITION_TEXT.get(d, d) for d in similar.neighbours["disposition"]])
    return table.reindex(columns=columns).reset_index(drop=True)


def audit_table(trail: pd.DataFrame) -> pd.DataFrame:
    """The audit trail as shown: when, who, what (readable) and the note, oldest first."""
    columns = ["at", "analyst", "what", "note"]
    if trail.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = trail.reindex(columns=columns).copy()
    table["note"] = table["note"].fillna("")
    return table.reset_index(drop=True)


def opened_text(opened_at: datetime | None, now: datetime | None = None) -> str:
    """How long ago the case was opened ('3 h ago')."""
    if opened_at is None:
        return ""
    from fraudcore.review import _utcnow

    return f"{age_text(pd.Timestamp(now or _utcnow()) - pd.Timestamp(opened_at))} ago"


def case_labels(page: pd.DataFrame) -> dict[int, str]:
    """Case id -> a short label for a picker: '#154 · high · 91% × 583.81'."""
    return {int(c): f"#{int(c)} · {t} · {r:.0%} × {a:,.2f}" if pd.notna(a) else f"#{int(c)} · {t} · {r:.0%}"
            for c, t, r, a in zip(page["case_id"], page["tier"], page["risk"], page["amount"], strict=True)}


def decisions_version(store: Store) -> int:
    """The newest decision id (0 when none): a cache key that changes whenever any case is acted on."""
    found = store.query("SELECT coalesce(max(decision_id), 0) AS v FROM decisions")
    return int(found["v"].iloc[0])
