"""Point-in-time entity features: one declarative definition, read by the batch (DuckDB) and online paths.

Order rule shared by both paths: events are ordered by (event_time, event_id); an event sees the same-entity
events before it in that order plus itself, never later ones (not even later events with the same timestamp).
Risk windows look only at events at least ``label_delay`` old, whose labels are known (unknown labels count as 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from fraudcore.errors import FraudcoreError
from fraudcore.spec import DatasetSpec

Family = Literal[
    "nb_tx", "avg_amount", "amount_ratio", "secs_since_prev", "nb_tx_delay", "risk", "hour", "dow", "weekend", "night"
]
CALENDAR_PARTS = ("hour", "dow", "weekend", "night")
Window = timedelta | str
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)


MAX_AMOUNT = 1e12  # batch features hold amounts as integer micro-units: larger amounts overflow them


def parse_window(value: Window) -> timedelta:
    """A window as a positive timedelta, from a timedelta or text such as '1h', '7d', '30d'."""
    if isinstance(value, timedelta):
        td = value
    else:
        match = _WINDOW_RE.match(str(value))
        if not match:
            raise FraudcoreError(f"window {value!r} is not understood; write e.g. '30s', '1h', '7d' or a timedelta")
        td = timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    if td <= timedelta(0) or td % timedelta(microseconds=1):
        raise FraudcoreError(f"window {value!r} must be a positive whole number of microseconds")
    return td


def window_label(td: timedelta) -> str:
    """Short label of a window, in its largest whole unit: '1h', '7d', '90s'."""
    for unit, size in (("d", timedelta(days=1)), ("h", timedelta(hours=1)), ("m", timedelta(minutes=1))):
        if td % size == timedelta(0):
            return f"{td // size}{unit}"
    return f"{td.total_seconds():g}s"


def to_us(td: timedelta) -> int:
    """A timedelta as integer microseconds."""
    return td // timedelta(microseconds=1)


def _window_tuple(value: Window | tuple[Window, ...]) -> tuple[timedelta, ...]:
    """Windows as a sorted tuple of distinct timedeltas (a single window is accepted too)."""
    items = (value,) if isinstance(value, (str, timedelta)) else tuple(value)
    return tuple(sorted({parse_window(w) for w in items}))


@dataclass(frozen=True)
class FeatureConfig:
    """Which point-in-time features to compute over which columns; windows are normalised to sorted timedeltas.

    ``entities`` get counts, mean amounts, the amount ratio (over the longest window) and recency;
    ``risk_entities`` (None: the entities when there is a label) get delayed counts and fraud shares.
    """

    event_id: str
    event_time: str
    amount: str | None
    label: str | None
    entities: tuple[str, ...]
    windows: tuple[Window, ...] = ("1h", "1d", "7d", "30d")
    risk_windows: tuple[Window, ...] = ("1d", "7d", "30d")
    label_delay: Window = "7d"
    risk_entities: tuple[str, ...] | None = None
    calendar: bool | tuple[str, ...] = True
    amount_ratio: bool = True
    recency: bool = True
    naming: Literal["auto", "handbook"] = "auto"
    time_unit: Literal["timestamp", "seconds"] = "timestamp"
    time_origin: datetime = datetime(1970, 1, 1)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "entities", tuple(self.entities))
        set_(self, "windows", _window_tuple(self.windows))
        set_(self, "risk_windows", _window_tuple(self.risk_windows))
        set_(self, "label_delay", parse_window(self.label_delay))
        risk = self.entities if self.risk_entities is None and self.label else tuple(self.risk_entities or ())
        if risk and not self.label:
            raise FraudcoreError("risk features need a label column; set label= or risk_entities=()")
        set_(self, "risk_entities", tuple(risk))
        parts = CALENDAR_PARTS if self.calendar is True else tuple(self.calendar or ())
        unknown = set(parts) - set(CALENDAR_PARTS)
        if unknown:
            raise FraudcoreError(f"unknown calendar parts {sorted(unknown)}; choose from {CALENDAR_PARTS}")
        set_(self, "calendar", tuple(parts))
        if self.entities and not self.windows:
            raise FraudcoreError("give at least one window for the entity features")
        if self.risk_entities and not self.risk_windows:
            raise FraudcoreError("give at least one risk window for the risk features")
        names = feature_names(self)
        if len(set(names)) != len(names):
            raise FraudcoreError(f"feature names collide ({names}); use naming='auto' or separate the entity lists")

    @property
    def columns(self) -> list[str]:
        """Raw columns the features read."""
        cols = [self.event_id, self.event_time, self.amount, self.label, *self.entities, *self.risk_entities]
        return list(dict.fromkeys(c for c in cols if c))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, for model metadata; ``from_dict`` reads it back."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("windows", "risk_windows"):
            data[key] = [window_label(w) for w in data[key]]
        data["label_delay"] = window_label(self.label_delay)
        data["time_origin"] = self.time_origin.isoformat()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """The config described by ``to_dict``'s output."""
        data = dict(data, time_origin=datetime.fromisoformat(data.get("time_origin", "1970-01-01T00:00:00")))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def from_spec(cls, spec: DatasetSpec, preset: str = "auto") -> FeatureConfig:
        """The preset's features for a dataset spec ('handbook': entities[0] = customer, entities[1] = terminal)."""
        if not spec.event_id or not spec.event_time:
            raise FraudcoreError("the dataset spec needs an event_id and an event_time column for features")
        common = dict(event_id=spec.event_id, event_time=spec.event_time, amount=spec.amount, label=spec.label,
                      time_unit=spec.time_unit, time_origin=spec.time_origin)
        if preset == "auto":
            return cls(entities=tuple(spec.entities), **common)
        if preset == "handbook":
            if len(spec.entities) < 2 or not spec.amount or not spec.label:
                raise FraudcoreError("the handbook preset needs amount, label and two entities (customer, terminal)")
            customer, terminal = _handbook_entities(list(spec.entities))
            return cls(entities=(customer,), risk_entities=(terminal,), windows=("1d", "7d", "30d"),
                       calendar=("weekend", "night"), amount_ratio=False, recency=False, naming="handbook", **common)
        raise FraudcoreError(f"unknown feature preset {preset!r}; choose 'auto' or 'handbook'")


@dataclass(frozen=True)
class Feature:
    """One output column: its name, family, entity column and window."""

    name: str
    family: Family
    entity: str | None = None
    window: timedelta | None = None


def _handbook_entities(entities: list[str]) -> tuple[str, str]:
    """The handbook's customer (its spending features) and terminal (its fraud risk) among the entities, by name
    (customer/card/account/user; terminal/merchant/shop/store), else in the order given."""
    def named(words: tuple[str, ...], among: list[str]) -> str | None:
        return next((e for e in among if any(w in e.lower() for w in words)), None)

    terminal = named(("terminal", "merchant", "shop", "store"), entities)
    rest = [e for e in entities if e != terminal]
    customer = named(("customer", "card", "account", "user"), rest) or rest[0]
    return customer, terminal or next(e for e in rest if e != customer)


def handbook_spec() -> DatasetSpec:
    """Roles of the Fraud Detection Handbook's raw transactions file."""
    return DatasetSpec(
        event_id="TRANSACTION_ID", event_time="TX_DATETIME", amount="TX_AMOUNT", label="TX_FRAUD",
        entities=["CUSTOMER_ID", "TERMINAL_ID"], ignored=["TX_TIME_SECONDS", "TX_TIME_DAYS"],
        leakage={"TX_FRAUD_SCENARIO": "derived from the label"},
    )


def _feature_name(config: FeatureConfig, family: Family, entity: str | None, window: timedelta | None) -> str:
    """The column name of one feature under the config's naming scheme."""
    if config.naming == "handbook":
        if window is not None and window % timedelta(days=1):
            raise FraudcoreError(f"handbook naming needs whole-day windows, got {window_label(window)}")
        days = f"{window // timedelta(days=1)}DAY_WINDOW" if window is not None else ""
        handbook = {"nb_tx": f"NB_TX_{days}", "avg_amount": f"AVG_AMOUNT_{days}",
                    "amount_ratio": f"AMOUNT_RATIO_{days}", "secs_since_prev": "SECS_SINCE_PREV",
                    "nb_tx_delay": f"NB_TX_{days}", "risk": f"RISK_{days}", "hour": "TX_HOUR", "dow": "TX_DOW",
                    "weekend": "TX_DURING_WEEKEND", "night": "TX_DURING_NIGHT"}
        return f"{entity}_{handbook[family]}" if entity else handbook[family]
    if entity is None:
        return {"hour": "tx_hour", "dow": "tx_dow", "weekend": "tx_during_weekend", "night": "tx_during_night"}[family]
    suffix = f"_{window_label(window)}" if window is not None else ""
    return f"{entity}__{family}{suffix}"


def feature_plan(config: FeatureConfig) -> list[Feature]:
    """Every feature the config produces, in output order: calendar, entity velocity, delayed risk."""
    return list(cached_plan(config))


@lru_cache(maxsize=64)
def cached_plan(config: FeatureConfig) -> tuple[Feature, ...]:
    """``feature_plan`` built once per config (the online path reads it for every event)."""
    specs: list[tuple[Family, str | None, timedelta | None]] = [(p, None, None) for p in config.calendar]
    for entity in config.entities:
        for w in config.windows:
            specs.append(("nb_tx", entity, w))
            if config.amount:
                specs.append(("avg_amount", entity, w))
        if config.amount and config.amount_ratio:
            specs.append(("amount_ratio", entity, config.windows[-1]))
        if config.recency:
            specs.append(("secs_since_prev", entity, None))
    for entity in config.risk_entities or ():
        for w in config.risk_windows:
            specs += [("nb_tx_delay", entity, w), ("risk", entity, w)]
    return tuple(Feature(_feature_name(config, f, e, w), f, e, w) for f, e, w in specs)


def feature_names(config: FeatureConfig) -> list[str]:
    """Names of the feature columns the config produces, in output order."""
    return [f.name for f in feature_plan(config)]


def history_lookback(config: FeatureConfig) -> timedelta:
    """How far back an event's features look; older history never changes them."""
    spans = list(config.windows[-1:]) if config.entities else []
    if config.risk_entities:
        spans.append(config.label_delay + config.risk_windows[-1])
    return max(spans, default=timedelta(0))


def origin_us(config: FeatureConfig) -> int:
    """Microseconds from the Unix epoch to the config's time origin (used when time_unit is 'seconds')."""
    origin = config.time_origin
    if origin.tzinfo is not None:
        origin = origin.astimezone(UTC).replace(tzinfo=None)
    return to_us(origin - datetime(1970, 1, 1))
