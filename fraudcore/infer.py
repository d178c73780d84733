"""Infer column roles with plain, explainable rules; every guess carries its reason and can be overridden."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fraudcore.leakage import detect_leakage
from fraudcore.loading import LoadedDataset, qident
from fraudcore.spec import DatasetSpec

LABEL_NAMES = {"class", "label", "is_fraud", "isfraud", "fraud", "tx_fraud", "target", "fraud_label", "y",
               "is_chargeback", "chargeback", "fraud_flag"}
ID_NAMES = {"event_id", "transaction_id", "tx_id", "txn_id", "trans_id", "transactionid", "id", "trans_num",
            "transaction_number"}
ENTITY_WORDS = {"customer", "cust", "card", "terminal", "merchant", "device", "email", "account", "acct", "user",
                "ip", "client", "payer", "payee", "shop", "store", "phone", "address", "member", "cc"}
ENTITY_ALONE = {"email", "device", "ip", "card_number", "cc_num", "account", "phone"}
ID_SUFFIXES = {"id", "key", "hash", "number", "num", "no", "nr", "token"}
TIME_WORDS = {"time", "datetime", "timestamp", "date", "ts", "step", "seconds", "when"}
AMOUNT_WORDS = {"amount", "amt", "tx_amount", "transactionamt", "value"}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")
MAX_CATEGORIES = 1000
# a number written with a decimal comma and/or thousands separators: '24,28', '1.234,56', '1,234.50', '1 234'
FORMATTED_NUMBER = r"[+-]?(\d{1,3}([., ]\d{3})+|\d+)([.,]\d+)?"
FORMATTED_REASON = "numbers written with decimal commas or thousands separators (see the validation problem)"


@dataclass(frozen=True)
class ColumnProfile:
    """What one query learns about a column: type, nulls, distinct values, numeric-as-text share."""

    name: str
    dtype: str
    n_null: int
    n_distinct: int
    numeric_share: float  # share of non-null values that parse as numbers (1.0 for numeric types)
    time_share: float  # share of non-null values that parse as timestamps
    formatted_share: float  # share of non-null values matching FORMATTED_NUMBER (decimal commas, thousands)

    @property
    def is_numeric(self) -> bool:
        return self.dtype.startswith(NUMERIC_TYPES)

    @property
    def is_temporal(self) -> bool:
        return self.dtype.startswith(("TIMESTAMP", "DATE"))

    @property
    def is_text(self) -> bool:
        return self.dtype.startswith("VARCHAR")


def tokens(name: str) -> list[str]:
    """Lower-case words of a column name: 'TX_DATETIME' -> ['tx', 'datetime'], 'cardId' -> ['card', 'id']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def normalise(name: str) -> str:
    return "_".join(tokens(name))


def column_profiles(ds: LoadedDataset) -> dict[str, ColumnProfile]:
    """Profile every column in one DuckDB pass."""
    parts = []
    for col, dtype in ds.columns.items():
        q = qident(col)
        text = dtype.startswith("VARCHAR")
        num = f"avg(CASE WHEN TRY_CAST(trim({q}) AS DOUBLE) IS NULL THEN 0 ELSE 1 END)" if text else "1.0"
        tim = f"avg(CASE WHEN TRY_CAST(trim({q}) AS TIMESTAMP) IS NULL THEN 0 ELSE 1 END)" if text else "0.0"
        fmt = f"avg(CASE WHEN regexp_full_match(trim({q}), '{FORMATTED_NUMBER}') THEN 1 ELSE 0 END)" if text else "0.0"
        parts.append(f"count(*) - count({q}), approx_count_distinct({q}), {num}, {tim}, {fmt}")
    row = ds.con.execute(f"SELECT {', '.join(parts)} FROM {ds.table}").fetchone()
    profiles = {}
    for i, (col, dtype) in enumerate(ds.columns.items()):
        n_null, n_distinct, num, tim, fmt = row[5 * i: 5 * i + 5]
        if dtype.startswith(("TIMESTAMP", "DATE")):
            tim = 1.0
        profiles[col] = ColumnProfile(col, dtype, int(n_null), int(n_distinct or 0), float(num or 0), float(tim or 0),
                                      float(fmt or 0))
    return profiles


def is_amount_name(name: str) -> bool:
    return normalise(name) in AMOUNT_WORDS or bool(set(tokens(name)) & {"amount", "amt"})


def _is_binary(ds: LoadedDataset, col: str) -> bool:
    values = ds.con.execute(f"SELECT DISTINCT lower(CAST({qident(col)} AS VARCHAR)) FROM {ds.table} LIMIT 3").fetchall()
    return {v[0] for v in values if v[0] is not None} <= {"0", "1", "true", "false", "0.0", "1.0"}


def _is_unique(ds: LoadedDataset, col: str) -> bool:
    q = qident(col)
    n, distinct = ds.con.execute(f"SELECT count({q}), count(DISTINCT {q}) FROM {ds.table}").fetchone()
    return n == ds.n_rows and distinct == n


def _pick_label(ds: LoadedDataset, profiles: dict[str, ColumnProfile]) -> str | None:
    named = [c for c in profiles if normalise(c) in LABEL_NAMES]
    fuzzy = [c for c in profiles if "fraud" in tokens(c) and c not in named and "scenario" not in normalise(c)]
    for col in named + fuzzy:
        if profiles[col].n_distinct <= 3 and _is_binary(ds, col):
            return col
    return named[0] if named else None


def _pick_time(profiles: dict[str, ColumnProfile], taken: set[str]) -> tuple[str | None, str, list[str]]:
    timeish = [c for c in profiles if c not in taken and set(tokens(c)) & TIME_WORDS]
    temporal = [c for c in profiles if c not in taken and profiles[c].is_temporal]
    text_times = [c for c in timeish if profiles[c].is_text and profiles[c].time_share >= 0.5]
    numeric = [c for c in timeish if profiles[c].is_numeric]
    for candidates, unit in ((temporal, "timestamp"), (text_times, "timestamp"), (numeric, "seconds")):
        if candidates:
            chosen = sorted(candidates, key=lambda c: ("seconds" not in tokens(c), len(c)))[0] \
                if unit == "seconds" else candidates[0]
            others = [c for c in timeish + temporal if c != chosen]
            return chosen, unit, sorted(set(others))
    return None, "timestamp", []


def _pick_event_id(ds: LoadedDataset, profiles: dict[str, ColumnProfile],
                   taken: set[str]) -> tuple[str | None, dict[str, str]]:
    """The event id by its name, even when values repeat, so validation reports the duplicates.

    A unique id-named column wins; then one whose values are mostly distinct. Every id-named column comes back with
    its reason: the chosen one why it is the id, the others why not (they are ignored rather than fed to a model as
    numbers).
    """
    named = [c for c in profiles if normalise(c) in ID_NAMES and c not in taken]
    shaped = [c for c in named if 2 * profiles[c].n_distinct >= ds.n_rows - profiles[c].n_null > 0]
    unique = next((c for c in shaped if _is_unique(ds, c)), None)
    chosen = unique or (shaped[0] if shaped else None)
    reasons = {c: f"{chosen!r} is the event id" if chosen else "most of its values repeat" for c in named}
    if chosen:
        reasons[chosen] = "named like an event id and unique" if unique else \
            "named like an event id; some values repeat or are empty (see the validation problems)"
    return chosen, reasons


def _is_entity(name: str, profile: ColumnProfile) -> bool:
    toks = tokens(name)
    if profile.dtype.startswith(("FLOAT", "DOUBLE", "DECIMAL")) or profile.n_distinct < 2:
        return False
    if normalise(name) in ENTITY_ALONE:
        return True
    return bool(set(toks) & ENTITY_WORDS) and toks[-1] in ID_SUFFIXES


def infer_spec(ds: LoadedDataset, leakage: bool = True) -> DatasetSpec:
    """Guess every column's role from names, types and values; reasons say why."""
    profiles = column_profiles(ds)
    reasons: dict[str, str] = {}
    label = _pick_label(ds, profiles)
    if label:
        reasons[label] = "named like a fraud label with two values"
    taken = {label} - {None}
    event_time, unit, other_times = _pick_time(profiles, taken)
    if event_time:
        reasons[event_time] = "timestamp column" if unit == "timestamp" else "seconds from a start (numeric time)"
        taken.add(event_time)
    event_id, id_named = _pick_event_id(ds, profiles, taken)
    if event_id:
        reasons[event_id] = id_named.pop(event_id)
        taken.add(event_id)
    amount = next((c for c in profiles if c not in taken and is_amount_name(c)
                   and max(profiles[c].numeric_share, profiles[c].formatted_share) >= 0.9), None)
    if amount:
        reasons[amount] = "named like an amount and numeric" if profiles[amount].numeric_share >= 0.9 else \
            f"named like an amount; {FORMATTED_REASON}"
        taken.add(amount)
    spec = {"entities": [], "categorical": [], "numeric": [], "ignored": []}
    for col, prof in profiles.items():
        if col in taken:
            continue
        role, why = _other_role(col, prof, ds.n_rows, col in other_times)
        if col in id_named and role != "ignored":
            role, why = "ignored", f"named like an event id, but {id_named[col]}; ids are never model inputs"
        spec[role].append(col)
        reasons[col] = why
    result = DatasetSpec(event_id=event_id, event_time=event_time, time_unit=unit, label=label, amount=amount,
                         reasons=reasons, **spec)
    if leakage and label:
        for col, why in detect_leakage(ds, result).items():
            result = result.with_role(col, "leakage", why)
    return result


def _other_role(col: str, prof: ColumnProfile, n_rows: int, is_other_time: bool) -> tuple[str, str]:
    if prof.n_null == n_rows:
        return "ignored", "all values are empty"
    if prof.n_distinct <= 1:
        return "ignored", "constant: one value only"
    if is_other_time:
        return "ignored", "another encoding of the event time"
    if _is_entity(col, prof):
        return "entities", "named like an id of a customer/card/terminal/merchant/device"
    if prof.is_numeric:
        return "numeric", "numeric"
    if prof.is_text and prof.numeric_share >= 0.9:
        return "numeric", "numbers stored as text"
    if prof.is_text and prof.formatted_share >= 0.9:
        return "numeric", FORMATTED_REASON
    if prof.dtype.startswith("BOOLEAN") or prof.n_distinct <= MAX_CATEGORIES:
        return "categorical", f"text with {prof.n_distinct} distinct values"
    return "ignored", f"text with {prof.n_distinct} distinct values: too many for a category (mark it as an entity " \
                      "if it identifies a customer, card or device)"
