"""Review cases: the actions on them as an append-only decision log, and the case state derived from it.

``decisions`` is the source of truth: every claim, release, assignment, disposition and reopening is one row
(analyst, time, action, note). ``cases.status`` / ``cases.assignee`` are the current state folded from those rows,
updated in the same transaction as the row they follow from; ``derive_states`` folds the log again to check them.
The queue is ``fraudcore.review_queue``; the drill-down ``review_detail``; the labels export ``review_export``.

States: ``open`` (undecided), ``pending`` (last disposition was "needs more info"), ``closed`` (confirmed fraud or
legitimate). Any non-closed case may be held by one analyst (``assignee``). Rules:

- claim: a non-closed case nobody holds;            release: only by the analyst who holds it;
- assign: anyone may hand a non-closed case to an analyst (a lead's reassignment);
- decide: by the holder, or by anyone on an unheld case (they become the holder); confirmed fraud / legitimate close
  the case and set the event's label (1 / 0); needs more info (a note is required) keeps it pending with its holder;
- reopen (a note is required): a closed case becomes open and unheld, and its event's label is cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from fraudcore.errors import FraudcoreError
from fraudcore.store import CASE_TIERS, Store

__all__ = ["ACTIVE", "DISPOSITIONS", "STATUSES", "CaseState", "ReviewError", "assign", "claim", "decide",
           "derive_states", "entity_text", "next_state", "open_cases", "release", "reopen", "state_mismatches"]

DISPOSITIONS: dict[str, int | None] = {"confirmed_fraud": 1, "legitimate": 0, "needs_info": None}  # -> label
DISPOSITION_TEXT = {"confirmed_fraud": "confirmed fraud", "legitimate": "legitimate", "needs_info": "needs more info"}
FINAL = ("confirmed_fraud", "legitimate")
STATUSES = ("open", "pending", "closed")
ACTIVE = ("open", "pending")
MAX_NOTE = 4000

# the latest disposition-or-reopen per case; ``disposition`` is null after a reopening
LAST_DISPOSITION_SQL = f"""SELECT case_id, nullif(arg_max(action, decision_id), 'reopen') AS disposition,
    arg_max(analyst, decision_id) AS decided_by, arg_max("at", decision_id) AS decided_at,
    arg_max_null(note, decision_id) AS decision_note, max(decision_id) AS last_decision
  FROM decisions WHERE action IN ({', '.join(repr(a) for a in [*DISPOSITIONS, 'reopen'])}) GROUP BY case_id"""


class ReviewError(FraudcoreError):
    """A review action that is not allowed in the case's current state (or names no case); says what to do."""


@dataclass(frozen=True)
class CaseState:
    """A case's current state after an action: status, who holds it, and the decision row that made it so."""

    case_id: int
    status: str
    assignee: str | None
    decision_id: int | None = None


# ---- actions --------------------------------------------------------------------------------------------------

def claim(store: Store, case_id: int, analyst: str, note: str | None = None) -> CaseState:
    """Take an unheld, undecided case; a ReviewError names the holder when someone was first."""
    return _act(store, case_id, _who(analyst), "claim", note)


def release(store: Store, case_id: int, analyst: str, note: str | None = None) -> CaseState:
    """Give back a case this analyst holds, so others can claim it."""
    return _act(store, case_id, _who(analyst), "release", note)


def assign(store: Store, case_id: int, to: str, by: str, note: str | None = None) -> CaseState:
    """Hand a non-closed case to analyst ``to`` (recorded as done ``by`` someone)."""
    return _act(store, case_id, _who(by), f"assign:{_who(to)}", note)


def decide(store: Store, case_id: int, analyst: str, disposition: str, note: str | None = None) -> CaseState:
    """Record a disposition (confirmed_fraud, legitimate, needs_info) with a note; final ones set the event label."""
    if disposition not in DISPOSITIONS:
        raise ReviewError(f"unknown disposition {disposition!r} for case {case_id}; choose one of "
                          f"{', '.join(DISPOSITIONS)}")
    if disposition == "needs_info" and not (note or "").strip():
        raise ReviewError(f"case {case_id}: 'needs more info' needs a note saying what information is missing")
    return _act(store, case_id, _who(analyst), disposition, note)


def reopen(store: Store, case_id: int, analyst: str, note: str) -> CaseState:
    """Reopen a closed case (a note says why): it becomes open and unheld, and its event's label is cleared."""
    if not (note or "").strip():
        raise ReviewError(f"case {case_id}: reopening needs a note saying why the disposition is withdrawn")
    return _act(store, case_id, _who(analyst), "reopen", note)


def next_state(case_id: int, status: str, assignee: str | None, action: str, analyst: str) -> tuple[str, str | None]:
    """The (status, assignee) after ``action`` by ``analyst``; ReviewError when the action is not allowed."""
    kind, _, target = action.partition(":")
    if kind == "reopen":
        if status != "closed":
            raise ReviewError(f"case {case_id} is {status}, not closed; only a closed case can be reopened")
        return "open", None
    if status == "closed":
        raise ReviewError(f"case {case_id} is already closed; reopen it (with a note saying why) to act on it again")
    if kind == "claim":
        if assignee == analyst:
            raise ReviewError(f"case {case_id} is already claimed by you ({analyst}); decide it or release it")
        if assignee is not None:
            raise ReviewError(f"case {case_id} is already claimed by {assignee}; pick another case, or ask "
                              f"{assignee} to release it (or have it assigned to you)")
        return status, analyst
    if kind == "release":
        if assignee is None:
            raise ReviewError(f"case {case_id} is not claimed by anyone, so there is nothing to release")
        if assignee != analyst:
            raise ReviewError(f"case {case_id} is held by {assignee}, not {analyst}; only {assignee} can release it "
                              "(or assign it to someone else)")
        return status, None
    if kind == "assign":
        if target == assignee:
            raise ReviewError(f"case {case_id} is already assigned to {target}")
        return status, target
    if kind in DISPOSITIONS:
        if assignee not in (None, analyst):
            raise ReviewError(f"case {case_id} is held by {assignee}; only {assignee} can decide it (ask them to "
                              f"release it, or have it assigned to {analyst})")
        return ("pending" if DISPOSITIONS[kind] is None else "closed"), analyst
    raise ReviewError(f"unknown action {action!r} on case {case_id}; use claim, release, assign, decide or reopen")


def _act(store: Store, case_id: int, analyst: str, action: str, note: str | None) -> CaseState:
    """Check the action against the case's state and write the decision, the new state and any label at once."""
    case_id = _case_id(case_id)
    if note is not None and len(note) > MAX_NOTE:
        raise ReviewError(f"case {case_id}: the note has {len(note)} characters; keep it under {MAX_NOTE}")
    labels = action in FINAL or action == "reopen"  # the event's label changes: live features must see it
    with store.transaction(events_changed=labels) as con:  # the store's lock: a racing claim sees the first one's row
        row = con.execute("SELECT status, assignee, event_id FROM cases WHERE case_id = ?", [case_id]).fetchone()
        if row is None:
            raise ReviewError(f"there is no case {case_id}; pick one from the review queue")
        status, assignee = next_state(case_id, row[0], row[1], action, analyst)
        (decision_id,) = con.execute('INSERT INTO decisions (case_id, analyst, "at", action, note) '
                                     "VALUES (?, ?, ?, ?, ?) RETURNING decision_id",
                                     [case_id, analyst, _utcnow(), action, note or None]).fetchone()
        con.execute("UPDATE cases SET status = ?, assignee = ? WHERE case_id = ?", [status, assignee, case_id])
        if action in FINAL:
            con.execute("UPDATE events SET label = ? WHERE event_id = ?", [DISPOSITIONS[action], row[2]])
        elif action == "reopen":
            con.execute("UPDATE events SET label = NULL WHERE event_id = ?", [row[2]])
    return CaseState(case_id, status, assignee, int(decision_id))


# ---- derived state --------------------------------------------------------------------------------------------

def derive_states(store: Store, case_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """(case_id, status, assignee) folded from the decision log alone (cases without decisions are open, unheld)."""
    if case_ids is not None and not len(case_ids):
        return pd.DataFrame({"case_id": pd.Series(dtype="int64"), "status": pd.Series(dtype=object),
                             "assignee": pd.Series(dtype=object)})
    where, params = ("", []) if case_ids is None else \
        (f"WHERE case_id IN ({', '.join('?' * len(case_ids))})", [_case_id(c) for c in case_ids])
    cases = store.query(f"SELECT case_id FROM cases {where} ORDER BY case_id", params)
    log = store.query(f"SELECT case_id, analyst, action FROM decisions {where} ORDER BY case_id, decision_id", params)
    state = {int(c): ("open", None) for c in cases["case_id"]}
    for case_id, analyst, action in log.itertuples(index=False):
        state[int(case_id)] = next_state(int(case_id), *state.get(int(case_id), ("open", None)), action, analyst)
    return pd.DataFrame({"case_id": list(state), "status": [s for s, _ in state.values()],
                         "assignee": [a for _, a in state.values()]})


def state_mismatches(store: Store) -> pd.DataFrame:
    """Cases whose stored status/assignee differ from the decision log's (empty when all agree)."""
    derived = derive_states(store)
    stored = store.query("SELECT case_id, status, assignee FROM cases ORDER BY case_id")
    both = stored.merge(derived, on="case_id", suffixes=("_stored", "_derived"))
    same = (both["status_stored"] == both["status_derived"]) & \
        (both["assignee_stored"].fillna("\0") == both["assignee_derived"].fillna("\0"))
    return both[~same].reset_index(drop=True)


def open_cases(store: Store, tiers: Sequence[str] = CASE_TIERS) -> int:
    """Open a case for every stored event whose live score's tier is in ``tiers`` and has none yet (after the case
    tiers are widened, or for scores written without cases); returns how many were opened."""
    tiers = list(tiers)
    if not tiers:
        raise ReviewError("open_cases needs at least one tier (e.g. medium, high)")
    with store.transaction() as con:
        (opened,) = con.execute(
            f"""INSERT INTO cases (event_id, tier, risk, amount, opened_at)
                SELECT s.event_id, s.tier, s.score, e.amount, ? FROM scores s JOIN events e USING (event_id)
                WHERE NOT coalesce(s.shadow, false) AND s.tier IN ({', '.join('?' * len(tiers))})
                  AND s.event_id NOT IN (SELECT event_id FROM cases)
                QUALIFY row_number() OVER (PARTITION BY s.event_id ORDER BY s.scored_at DESC) = 1""",
            [_utcnow(), *tiers]).fetchone()
    return int(opened)


# ---- helpers --------------------------------------------------------------------------------------------------

def entity_text(value: Any) -> str:
    """An entity value the way the store keys it ('7' for 7 or 7.0)."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _who(analyst: str) -> str:
    if not isinstance(analyst, str) or not analyst.strip():
        raise ReviewError("every review action needs the analyst's name; set it in the sidebar")
    if len(analyst.strip()) > 100:
        raise ReviewError(f"the analyst name {analyst[:20]!r}... is longer than 100 characters; shorten it")
    return analyst.strip()


def _case_id(case_id: Any) -> int:
    try:
        return int(case_id)
    except (TypeError, ValueError):
        raise ReviewError(f"case ids are whole numbers; got {case_id!r}") from None


def _naive(moment: datetime) -> datetime:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
