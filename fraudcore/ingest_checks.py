"""Field checks for a page of records, fast where a record is plain: the same typed values as
``Scorer.validate_event`` for records whose fields already have the expected JSON types (text time, integer or
text ids, finite numbers in range, text categories), without a function call per field; every other record goes
through ``validate_event`` itself, so its errors (and any unusual value) are exactly the contract's.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

from fraudcore.event_fields import MAX_NUMBER, typed_time
from fraudcore.features import MAX_AMOUNT
from fraudcore.registry import required_columns
from fraudcore.scoring import EventValidationError, Scorer

__all__ = ["text_errors", "typed_events"]

_PLANS: weakref.WeakKeyDictionary[Scorer, _Plan | None] = weakref.WeakKeyDictionary()


class _Plan:
    """What the fast path checks for one model: each field with one role, the required ones."""

    def __init__(self, scorer: Scorer) -> None:
        spec = scorer.spec
        self.time, self.event_id, self.amount = spec.event_time, spec.event_id, spec.amount
        self.numeric, self.categorical, self.entities = list(spec.numeric), list(spec.categorical), scorer.entities
        self.required = frozenset(c for c in required_columns(scorer.metadata) if c != spec.event_id)
        self.unit, self.origin = spec.time_unit, spec.time_origin
        self.amount_required = scorer.amount_required

    @classmethod
    def of(cls, scorer: Scorer) -> _Plan | None:
        """The plan, or None where the fast path does not apply (a field with two roles, times in seconds)."""
        if scorer not in _PLANS:
            spec = scorer.spec
            roles = [spec.event_time, spec.event_id, spec.amount, *spec.numeric, *spec.categorical, *scorer.entities]
            named = [r for r in roles if r]
            simple = len(named) == len(set(named)) and spec.time_unit == "timestamp" and bool(spec.event_time)
            _PLANS[scorer] = cls(scorer) if simple and spec.event_id else None
        return _PLANS[scorer]


def typed_events(scorer: Scorer, records: Sequence[Any]) -> list[tuple[dict | None, list[dict[str, str]]]]:
    """Per record, the typed event and no errors, or None and the field errors, as ``validate_event`` gives them."""
    plan = _Plan.of(scorer)
    out = []
    for record in records:
        event = _fast(plan, record) if plan is not None and type(record) is dict else None
        if event is None:
            try:
                event, errors = scorer.validate_event(record), []
            except EventValidationError as exc:
                event, errors = None, list(exc.errors)
        else:
            errors = []
        out.append((event, errors))
    return out


def text_errors(record: Any) -> list[dict[str, str]]:
    """Field errors for text that is not valid Unicode anywhere in a record (names and values, nested ones too): an
    unpaired UTF-16 surrogate such as ``"\\ud800"``, which JSON's escapes can carry but UTF-8 cannot. Stored, such
    text could not be read back (the store's JSON reader refuses it), so it is refused before anything is kept. The
    field is named with the bad characters escaped."""
    if type(record) is not dict:
        return []
    errors = []
    for name, value in record.items():
        if not _valid_text(name) or not _valid_values(value):
            field = name if _valid_text(name) else str(name).encode("utf-8", "backslashreplace").decode("ascii")
            errors.append({"field": field, "message": "holds text that is not valid Unicode (an unpaired UTF-16 "
                                                      "surrogate escape such as \\ud800); send valid UTF-8 text"})
    return errors


def _valid_text(value: Any) -> bool:
    if type(value) is not str or value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_values(value: Any) -> bool:
    if type(value) is str:
        return _valid_text(value)
    if isinstance(value, dict):
        return all(_valid_text(k) and _valid_values(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_valid_values(v) for v in value)
    return True


def _fast(plan: _Plan, record: dict) -> dict | None:
    """The typed event of a plain record, or None (then the full check decides)."""
    if not plan.required.issubset(record):
        return None
    when, event_id = record.get(plan.time), record.get(plan.event_id)
    if type(when) is not str or type(event_id) not in (int, str):
        return None
    out = dict(record)
    try:
        out[plan.time] = typed_time(when, plan.unit, plan.origin)
    except (TypeError, ValueError, OverflowError):
        return None
    if plan.amount is not None and plan.amount in record:
        value = record[plan.amount]
        if value is None and not plan.amount_required:
            out[plan.amount] = math.nan
        elif type(value) in (float, int) and 0 <= value <= MAX_AMOUNT and math.isfinite(value):
            out[plan.amount] = float(value)
        else:
            return None
    for name in plan.numeric:
        if name in record:
            value = record[name]
            if value is None:
                out[name] = math.nan
            elif type(value) in (float, int) and math.isfinite(value) and abs(value) <= MAX_NUMBER:
                out[name] = float(value)
            else:
                return None
    for name in plan.categorical:
        if name in record:
            value = record[name]
            if type(value) is int:
                out[name] = str(value)
            elif value is not None and type(value) is not str:
                return None
    for name in plan.entities:
        if name in record:
            value = record[name]
            if type(value) is float and value.is_integer():
                out[name] = int(value)
            elif value is not None and type(value) not in (int, str):
                return None
    return out
