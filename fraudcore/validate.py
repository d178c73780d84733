"""Validate a loaded dataset against its spec: every problem at once, each with column, example rows and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from fraudcore.errors import DataContractError
from fraudcore.features import MAX_AMOUNT
from fraudcore.infer import FORMATTED_NUMBER, column_profiles, is_amount_name
from fraudcore.loading import LoadedDataset, qident
from fraudcore.spec import DatasetSpec

EXAMPLES = 5
BINARY_TEXT = ("0", "1", "true", "false", "0.0", "1.0")


@dataclass(frozen=True)
class Problem:
    """One problem: which column, what kind, a message, example rows (1-based data rows) and values, the fix."""

    column: str | None
    kind: str
    message: str
    fix: str
    severity: Literal["error", "warning"] = "error"
    rows: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    count: int = 0

    def __str__(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        rows = f" (rows {', '.join(map(str, self.rows))}; values {', '.join(self.values)})" if self.rows else ""
        return f"{self.severity.upper()} {where}{self.message}{rows}. Fix: {self.fix}"


@dataclass
class ValidationReport:
    """All problems found; ``ok`` when none is an error."""

    problems: list[Problem]
    n_rows: int

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataContractError(f"{len(self.errors)} problem(s) must be fixed before this data can be used",
                                    self.errors)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "n_rows": self.n_rows, "problems": [asdict(p) for p in self.problems]}


def _examples(ds: LoadedDataset, col: str, condition: str) -> tuple[int, list[int], list[str]]:
    q = qident(col)
    count = ds.con.execute(f"SELECT count(*) FROM {ds.table} WHERE {condition}").fetchone()[0]
    rows = ds.con.execute(
        f"SELECT rowid + 1, CAST({q} AS VARCHAR) FROM {ds.table} WHERE {condition} ORDER BY rowid LIMIT ?",
        [EXAMPLES],
    ).fetchall()
    return int(count), [int(r) for r, _ in rows], [repr(v) for _, v in rows]


def _problem(ds: LoadedDataset, col: str, condition: str, kind: str, message: str, fix: str,
             severity: Literal["error", "warning"] = "error") -> Problem | None:
    count, rows, values = _examples(ds, col, condition)
    if count == 0:
        return None
    return Problem(col, kind, message.format(count=count, n=ds.n_rows), fix, severity, rows, values, count)


def _check_label(ds: LoadedDataset, col: str) -> list[Problem | None]:
    q = qident(col)
    text = f"lower(trim(CAST({q} AS VARCHAR)))"
    return [
        _problem(ds, col, f"{q} IS NOT NULL AND {text} NOT IN {BINARY_TEXT}", "label_not_binary",
                 "label must be 0/1 (or true/false); {count} of {n} rows have other values",
                 "map the label to 1 = fraud, 0 = legitimate, or choose another label column"),
        _problem(ds, col, f"{q} IS NULL", "label_missing", "{count} rows have no label",
                 "fill the label (0 if not known to be fraud) or drop those rows"),
    ]


def _check_time(ds: LoadedDataset, col: str, spec: DatasetSpec) -> list[Problem | None]:
    q = qident(col)
    if spec.time_unit == "seconds":
        cond = f"{q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL"
        fix = "time in seconds must be numeric; clean these values or choose a timestamp column"
    elif ds.columns[col].startswith(("TIMESTAMP", "DATE")):
        cond = "false"
        fix = ""
    else:
        cond = f"{q} IS NOT NULL AND TRY_CAST(trim(CAST({q} AS VARCHAR)) AS TIMESTAMP) IS NULL"
        fix = "use ISO timestamps like 2024-05-01 13:45:00 (or seconds from a start with time unit 'seconds')"
    return [
        _problem(ds, col, cond, "unparseable_time", "{count} of {n} rows have event times that cannot be parsed", fix),
        _problem(ds, col, f"{q} IS NULL", "missing_time", "{count} rows have no event time",
                 "fill the event time or drop those rows"),
    ]


def _check_event_id(ds: LoadedDataset, col: str) -> list[Problem | None]:
    q = qident(col)
    dup = f"{q} IN (SELECT {q} FROM {ds.table} GROUP BY {q} HAVING count(*) > 1)"
    return [
        _problem(ds, col, dup, "duplicate_id", "{count} rows share an event id with another row",
                 "event ids must be unique: remove duplicated rows, or clear the event id role to number rows"),
        _problem(ds, col, f"{q} IS NULL", "missing_id", "{count} rows have no event id",
                 "fill the ids or clear the event id role"),
    ]


def _check_amount(ds: LoadedDataset, col: str) -> list[Problem | None]:
    q = qident(col)
    num = f"TRY_CAST({q} AS DOUBLE)"
    return [
        _problem(ds, col, f"{num} < 0", "negative_amount", "{count} rows have negative amounts",
                 "remove refunds/reversals, or give this column the numeric role instead of amount"),
        _problem(ds, col, f"isinf({num}) OR isnan({num})", "non_finite", "{count} rows have infinite or NaN amounts",
                 "replace them with real amounts or drop those rows"),
        _problem(ds, col, f"NOT isinf({num}) AND {num} > {MAX_AMOUNT:.0f}", "amount_too_large",
                 f"{{count}} rows have amounts above {MAX_AMOUNT:,.0f}, more than features and scoring can hold",
                 "check the unit (cents written as units, a card number in the amount column) or drop those rows"),
        _problem(ds, col, f"{q} IS NULL", "amount_missing", "{count} rows have no amount",
                 "fill them or drop those rows: a model learns what a missing amount means only from such rows, and "
                 "one trained where every event had an amount refuses events without one", severity="warning"),
    ]


def _check_text_numbers(ds: LoadedDataset, col: str) -> Problem | None:
    """Values that are not numbers; when every one is a number in a local format, say so and how to read it."""
    q = qident(col)
    cond = f"{q} IS NOT NULL AND trim({q}) <> '' AND TRY_CAST(trim({q}) AS DOUBLE) IS NULL"
    local, grouped = ds.con.execute(
        f"SELECT bool_and(regexp_full_match(trim({q}), '{FORMATTED_NUMBER}')), "
        f"bool_or(regexp_matches(trim({q}), '[.,].*[.,]|[0-9] [0-9]|^[+-]?[0-9]{{1,3}}[.,][0-9]{{3}}$')) "
        f"FROM {ds.table} WHERE {cond}").fetchone()
    if local and grouped:  # '1.234,56', '1,234.50', '1 234', or '1,200' (a thousand, or 1.2?): no setting is safe
        return _problem(ds, col, cond, "decimal_comma",
                        "numbers are written with thousands separators (or a separator before exactly three digits, "
                        "which reads either way): {count} of {n} values cannot be read as numbers",
                        "re-export the file with plain numbers such as '1234.56' (no thousands separators, '.' as "
                        "the decimal separator)")
    if local:
        return _problem(ds, col, cond, "decimal_comma",
                        "numbers are written with decimal commas: {count} of {n} values cannot be read as numbers",
                        "re-export the file with '.' as the decimal separator, or on the command line load it with "
                        "--decimal , (decimal=',') when ',' is not its delimiter")
    return _problem(ds, col, cond, "number_as_text",
                    "numbers are stored as text: {count} of {n} values are not numbers",
                    "clean these values (decimal commas like '2,5' must be '2.5'; remove currency signs and "
                    "placeholders like 'n/a'), or mark the column ignored")


def _check_unused_amount(ds: LoadedDataset, col: str) -> Problem | None:
    q = qident(col)
    return _problem(ds, col, f"{q} IS NOT NULL AND TRY_CAST(trim(CAST({q} AS VARCHAR)) AS DOUBLE) IS NULL",
                    "amount_not_numeric", "named like an amount, but {count} of {n} values are not numbers, so the "
                    "data has no amount", "clean these values (remove currency signs, write '2.5' not '2,5') and give "
                    "the column the amount role, or mark it ignored if it is not the amount", "warning")


def validate(ds: LoadedDataset, spec: DatasetSpec) -> ValidationReport:
    """Check the data against the spec and collect every problem (never stops at the first)."""
    problems: list[Problem | None] = []
    missing = [c for c in spec.columns if c not in ds.columns and spec.role_of(c) not in ("ignored", "leakage")]
    for col in missing:
        problems.append(Problem(col, "missing_column", "the spec names this column but the data has no such column",
                                "check the file, or remove the column from the spec"))
    present = set(ds.columns)
    profiles = column_profiles(ds)
    for col, prof in profiles.items():
        if prof.n_null == ds.n_rows:
            role_col = spec.role_of(col) not in (None, "ignored", "leakage")
            problems.append(Problem(col, "all_null", "every value is empty",
                                    "drop the column, or mark it ignored" if role_col else "it is ignored",
                                    "error" if role_col else "warning", count=ds.n_rows))
    if spec.label in present:
        problems += _check_label(ds, spec.label)
    if spec.event_time in present:
        problems += _check_time(ds, spec.event_time, spec)
    if spec.event_id in present:
        problems += _check_event_id(ds, spec.event_id)
    if spec.amount in present:
        if profiles[spec.amount].is_text:
            problems.append(_check_text_numbers(ds, spec.amount))
        problems += _check_amount(ds, spec.amount)
    for col in spec.numeric:
        if col in present and profiles[col].is_text:
            problems.append(_check_text_numbers(ds, col))
    if not spec.amount:
        problems += [_check_unused_amount(ds, c) for c, prof in profiles.items() if is_amount_name(c) and prof.is_text]
    for col, why in spec.leakage.items():
        problems.append(Problem(col, "leakage", f"excluded from features: {why}",
                                "keep it excluded; include it only if it is known before the decision",
                                "warning"))
    if not spec.label:
        problems.append(Problem(None, "no_label", "no label column: supervised models cannot be trained",
                                "choose the fraud label column, or use the unsupervised anomaly model", "warning"))
    return ValidationReport([p for p in problems if p is not None], ds.n_rows)
