"""Reasons analysts can read: the top contributions of an explanation as plain-language sentences per feature family.

Sentences come from each feature's definition (fraudcore.features), using the event's other inputs where they help
("amount 412.50 is 6.2x this customer_id's 30-day average").
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from fraudcore.errors import FraudcoreError
from fraudcore.features import Feature, FeatureConfig, feature_plan, parse_window, window_label

if TYPE_CHECKING:
    from fraudcore.explain import Explanation

__all__ = ["Reason", "number_text", "reason_text", "reasons_frame", "record_reasons", "top_reasons"]

@dataclass(frozen=True)
class Reason:
    """One feature's push on one event's score, with a sentence an analyst can read."""

    feature: str
    value: Any
    contribution: float  # log-odds
    delta_probability: float  # p(margin) - p(margin - contribution)
    direction: Literal["raises", "lowers"]
    text: str


class _Columns(Mapping[str, Any]):
    """Row ``i`` of column arrays as a read-only mapping, without building a dict per row."""

    def __init__(self, columns: dict[str, np.ndarray], i: int) -> None:
        self.columns, self.i = columns, i

    def __getitem__(self, key: str) -> Any:
        return self.columns[key][self.i]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


def _picked(values: np.ndarray, k: int) -> list[int]:
    """Top ``k`` risk-raising features by contribution, then the strongest lowering ones if fewer than ``k`` raise."""
    order = np.argsort(-values, kind="stable")
    raising = [int(j) for j in order[:k] if values[j] > 0]
    if len(raising) == k:
        return raising
    lowering = [int(j) for j in order[::-1][: k - len(raising)] if values[j] < 0]
    return raising + lowering


def top_reasons(expl: Explanation, k: int = 3,
                feature_config: FeatureConfig | Mapping[str, Any] | None = None) -> list[list[Reason]]:
    """Per row, the ``k`` features raising risk most, by contribution; when fewer than ``k`` raise it, the rest
    are the strongest lowering ones (by |contribution|). Zero contributions are never reasons.

    ``feature_config`` (a FeatureConfig, its ``to_dict()`` as saved in model metadata, or None) says what each
    feature means; without it, 'auto' and 'handbook' names are read from the names themselves.
    """
    if k < 1:
        raise FraudcoreError(f"k must be at least 1 (reasons per event); got {k}")
    terms = _glossary(tuple(expl.feature_names), _as_config(feature_config))
    data = expl.data
    categorical = {c for c, dtype in data.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)}
    table = data.to_numpy(dtype=object)
    columns = {c: table[:, j] for j, c in enumerate(data.columns)}
    margin = expl.margin
    return [_row_reasons(expl.values[i], margin[i], _Columns(columns, i), expl.feature_names, categorical, terms, k)
            for i in range(len(expl))]


def record_reasons(values: np.ndarray, base_values: np.ndarray, inputs: Sequence[Mapping[str, Any]],
                   feature_names: list[str], categorical: Collection[str], k: int = 3,
                   feature_config: FeatureConfig | Mapping[str, Any] | None = None) -> list[list[Reason]]:
    """``top_reasons`` from contributions and each row's inputs as a mapping (the one-event path, no DataFrame);
    ``categorical`` names the category columns."""
    if k < 1:
        raise FraudcoreError(f"k must be at least 1 (reasons per event); got {k}")
    terms = _glossary(tuple(feature_names), _as_config(feature_config))
    margin = base_values + values.sum(axis=1)
    categorical = set(categorical)
    return [_row_reasons(values[i], margin[i], row, feature_names, categorical, terms, k)
            for i, row in enumerate(inputs)]


def _row_reasons(values: np.ndarray, margin: float, row: Mapping[str, Any], feature_names: list[str],
                 categorical: set[str], terms: _Glossary, k: int) -> list[Reason]:
    """The top ``k`` reasons of one row."""
    reasons = []
    for j in _picked(values, k):
        name, c = feature_names[j], float(values[j])
        value = None if _missing(row[name]) else row[name]
        value = float(value) if isinstance(value, float | np.floating) else value
        text = _sentence(name, value, row, terms, name in categorical)
        delta = float(expit(margin) - expit(margin - c))
        reasons.append(Reason(name, value, c, delta, "raises" if c > 0 else "lowers", text))
    return reasons


def reasons_frame(expl: Explanation, k: int = 3,
                  feature_config: FeatureConfig | Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Columns reason_1..reason_k of sentences (lowering ones end in "(lowers risk)"; "" where none), one row each."""
    rows = [[r.text if r.direction == "raises" else f"{r.text} (lowers risk)" for r in reasons]
            for reasons in top_reasons(expl, k, feature_config)]
    return pd.DataFrame([row + [""] * (k - len(row)) for row in rows], columns=[f"reason_{i + 1}" for i in range(k)],
                        index=expl.data.index, dtype=object)


# ---- plain-language sentences, one small function per feature family -------------------------------------------

_AUTO_RE = re.compile(r"^(?P<entity>.+?)__(?P<family>nb_tx_delay|nb_tx|avg_amount|amount_ratio|secs_since_prev|risk)"
                      r"(?:_(?P<window>\d+[smhdw]))?$")
_HANDBOOK_RE = re.compile(r"^(?P<entity>.+)_(?P<family>NB_TX|AVG_AMOUNT|AMOUNT_RATIO|RISK)_(?P<days>\d+)DAY_WINDOW$")
_CALENDAR = {"tx_hour": "hour", "tx_dow": "dow", "tx_during_weekend": "weekend", "tx_during_night": "night",
             "TX_HOUR": "hour", "TX_DOW": "dow", "TX_DURING_WEEKEND": "weekend", "TX_DURING_NIGHT": "night"}
_AMOUNT_NAMES = ("amount", "tx_amount")
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _Glossary:
    """What each column means: its feature definition, who plays the amount, the label delay and the lookbacks."""

    features: dict[str, Feature]
    by_role: dict[tuple[str, str | None, timedelta | None], str]
    amount: str | None
    label_delay: timedelta | None
    lookback: dict[str, timedelta]


def _as_config(feature_config: Any) -> FeatureConfig | None:
    """A FeatureConfig from itself, its ``to_dict`` form (model metadata) or None."""
    if feature_config is None or isinstance(feature_config, FeatureConfig):
        return feature_config
    if isinstance(feature_config, Mapping):
        try:
            return _config_from_json(json.dumps(dict(feature_config), sort_keys=True))
        except (TypeError, ValueError, FraudcoreError) as exc:
            raise FraudcoreError(f"feature_config is not a FeatureConfig.to_dict() record ({exc}); pass the model "
                                 "metadata's features['config'] or None") from exc
    raise FraudcoreError(f"feature_config must be a FeatureConfig, its to_dict() or None; got {type(feature_config)}")


@lru_cache(maxsize=16)
def _config_from_json(text: str) -> FeatureConfig:
    """The FeatureConfig of a ``to_dict`` record (as JSON text, so the same record is read once)."""
    return FeatureConfig.from_dict(json.loads(text))


def _parsed(name: str) -> Feature | None:
    """The feature a column name stands for under the 'auto' or 'handbook' naming, when it follows one."""
    if name in _CALENDAR:
        return Feature(name, _CALENDAR[name])  # type: ignore[arg-type]
    if match := _AUTO_RE.match(name):
        window = parse_window(match["window"]) if match["window"] else None
        return Feature(name, match["family"], match["entity"], window)  # type: ignore[arg-type]
    if match := _HANDBOOK_RE.match(name):
        return Feature(name, match["family"].lower(), match["entity"], timedelta(days=int(match["days"])))  # type: ignore[arg-type]
    if name.endswith("_SECS_SINCE_PREV"):
        return Feature(name, "secs_since_prev", name.removesuffix("_SECS_SINCE_PREV"))
    return None


@lru_cache(maxsize=64)
def _glossary(names: tuple[str, ...], config: FeatureConfig | None) -> _Glossary:
    """Meanings of ``names``: the config's plan where given, else read from the names themselves."""
    features = {n: f for n in names if (f := _parsed(n)) is not None}
    risky = {f.entity for f in features.values() if f.family == "risk"}
    for name, f in features.items():  # handbook NB_TX of a risk entity is the delayed count
        if f.family == "nb_tx" and f.entity in risky and _HANDBOOK_RE.match(name):
            features[name] = Feature(name, "nb_tx_delay", f.entity, f.window)
    if config is not None:
        features.update({f.name: f for f in feature_plan(config)})
    amount = config.amount if config is not None else next((n for n in names if n.lower() in _AMOUNT_NAMES), None)
    lookback: dict[str, timedelta] = {}
    for f in features.values():
        if f.entity and f.window and f.family != "risk" and f.family != "nb_tx_delay":
            lookback[f.entity] = max(f.window, lookback.get(f.entity, f.window))
    if config is not None and config.windows:
        lookback.update({e: config.windows[-1] for e in config.entities})
    by_role = {(f.family, f.entity, f.window): n for n, f in features.items()}
    return _Glossary(features, by_role, amount, config.label_delay if config else None, lookback)


def _missing(value: Any) -> bool:
    """None, NA and NaN read as missing."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _sibling(row: Mapping[str, Any], terms: _Glossary, family: str, entity: str | None = None,
             window: timedelta | None = None) -> Any:
    """Another feature of the same row by role (None when absent or missing)."""
    name = terms.by_role.get((family, entity, window))
    value = row.get(name) if name is not None else None
    return None if _missing(value) else value


def _plural(n: float, word: str) -> str:
    return f"{n:,.0f} {word}{'' if round(n) == 1 else 's'}"


def _span(td: timedelta, style: Literal["label", "adjective", "words"] = "label") -> str:
    """'7d', '7-day' or '7 days' for a window."""
    label = window_label(td)
    if style == "label" or label[-1] not in _UNIT_WORDS:
        return label
    n, word = int(label[:-1]), _UNIT_WORDS[label[-1]]
    return f"{n}-{word}" if style == "adjective" else _plural(n, word)


def _duration(seconds: float) -> str:
    """Seconds in the unit that reads best: '40 s', '12 min', '5.3 h', '3.2 d'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} d"


def _delayed_window(f: Feature, terms: _Glossary) -> str:
    ending = f"ending {_span(terms.label_delay, 'words')} ago" if terms.label_delay else "before the label delay"
    return f"the {_span(f.window)} window {ending} (labels known then)" if f.window else f"the window {ending}"


def _no_entity(entity: str | None, row: Mapping[str, Any], terms: _Glossary) -> bool:
    """Whether the event has no value for ``entity`` (a POS payment has no device): its counts are missing. A
    present entity's counts never are (they include the event itself; delayed ones are 0 without history)."""
    counts = [n for (family, e, _), n in terms.by_role.items() if e == entity and family in ("nb_tx", "nb_tx_delay")
              and n in row]
    return bool(counts) and all(_missing(row[n]) for n in counts)


def _absent(entity: str | None) -> str:
    return f"the event has no {entity} (nothing to compare with)"


def _nb_tx(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None:
        return _absent(f.entity) if _no_entity(f.entity, row, terms) else \
            f"{f.entity} has no history in the last {_span(f.window)}"
    return f"{f.entity} made {_plural(v, 'transaction')} in the last {_span(f.window)}"


def _avg_amount(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None:
        return _absent(f.entity) if _no_entity(f.entity, row, terms) else \
            f"{f.entity} has no known amounts in the last {_span(f.window)}"
    return f"{f.entity}'s average amount over the last {_span(f.window)} is {v:,.2f}"


def _amount_ratio(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    average = f"this {f.entity}'s {_span(f.window, 'adjective')} average" if f.window else f"this {f.entity}'s average"
    if v is None:
        return _absent(f.entity) if _no_entity(f.entity, row, terms) else f"no amount to compare with {average}"
    amount = row.get(terms.amount) if terms.amount else None
    mean = _sibling(row, terms, "avg_amount", f.entity, f.window)
    if _missing(amount) and mean is not None:
        amount = v * mean
    subject = "the amount" if _missing(amount) else f"amount {float(amount):,.2f}"
    return f"{subject} is {v:,.1f}× {average}" if v >= 0.95 else f"{subject} is {v:.2f}× {average}"


def _secs_since_prev(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None and _no_entity(f.entity, row, terms):
        return _absent(f.entity)
    if v is None:
        span = terms.lookback.get(f.entity or "")
        return f"no earlier transaction by this {f.entity} in {_span(span)}" if span else \
            f"no earlier transaction by this {f.entity} (no history)"
    return f"{'only ' if v < 3600 else ''}{_duration(v)} since this {f.entity}'s previous transaction"


def _nb_tx_delay(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None and _no_entity(f.entity, row, terms):
        return _absent(f.entity)
    if v is None or round(v) == 0:
        return f"{f.entity} had no transactions in {_delayed_window(f, terms)}"
    return f"{f.entity} had {_plural(v, 'transaction')} in {_delayed_window(f, terms)}"


def _risk(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    count = _sibling(row, terms, "nb_tx_delay", f.entity, f.window)
    if v is None and _no_entity(f.entity, row, terms):
        return _absent(f.entity)
    if v is None or (count is not None and round(count) == 0):
        return f"{f.entity} had no transactions in {_delayed_window(f, terms)}, so no known fraud"
    share = 100 * v
    pct = f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"
    detail = f" ({v * count:,.0f} of {count:,.0f} transactions)" if count is not None else ""
    return f"{f.entity} had {pct} fraud{detail} in {_delayed_window(f, terms)}"


def _clock(hour: Any) -> str:
    return f"at {int(hour) % 24:02d}:00 UTC"  # calendar features read event times in UTC


def _hour(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None:
        return "time of day unknown"
    return f"{_clock(v)}, during the night" if int(v) <= 6 else _clock(v)


def _night(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    hour = _sibling(row, terms, "hour")
    if v is None:
        return "time of day unknown"
    if v >= 0.5:
        return f"{_clock(hour)}, during the night" if hour is not None else "during the night (00:00–06:59 UTC)"
    return f"{_clock(hour)}, outside the night hours" if hour is not None else \
        "outside the night hours (07:00–23:59 UTC)"


def _day_name(dow: Any) -> str:
    return _DAYS[int(dow) % 7]


def _weekend(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    dow = _sibling(row, terms, "dow")
    if v is None:
        return "day of week unknown"
    kind = "a weekend day" if v >= 0.5 else "a weekday"
    return f"on a {_day_name(dow)}, {kind}" if dow is not None else f"on {kind.replace(' day', '')}"


def _dow(f: Feature, v: Any, row: Mapping[str, Any], terms: _Glossary) -> str:
    if v is None:
        return "day of week unknown"
    return f"on a {_day_name(v)}" + (", a weekend day" if int(v) % 7 >= 5 else "")


_FAMILY_TEXT = {"nb_tx": _nb_tx, "avg_amount": _avg_amount, "amount_ratio": _amount_ratio,
                "secs_since_prev": _secs_since_prev, "nb_tx_delay": _nb_tx_delay, "risk": _risk, "hour": _hour,
                "night": _night, "weekend": _weekend, "dow": _dow}


def reason_text(feature: str, value: Any, row: Mapping[str, Any],
                feature_config: FeatureConfig | Mapping[str, Any] | None = None, *, categorical: bool = False) -> str:
    """A plain-language sentence for ``feature`` = ``value``, using the row's other inputs where they help.

    ``categorical`` marks a categorical column whose value is missing (a text value is read as a category anyway).
    """
    terms = _glossary(tuple(dict.fromkeys([*row.keys(), feature])), _as_config(feature_config))
    return _sentence(feature, value, row, terms, categorical)


def _sentence(feature: str, value: Any, row: Mapping[str, Any], terms: _Glossary, categorical: bool) -> str:
    """The sentence for one feature, its meaning looked up in ``terms``."""
    value = None if _missing(value) else value
    f = terms.features.get(feature)
    if f is not None and (value is None or isinstance(value, int | float | np.number)):
        return _FAMILY_TEXT[f.family](f, value, row, terms)
    if feature == terms.amount and not isinstance(value, str):
        return f"{feature} is missing" if value is None else f"{feature} is {float(value):,.2f}"
    if categorical or isinstance(value, str):
        return f"{feature} is unknown (missing or not seen in training)" if value is None else f"{feature} is {value}"
    if value is None:
        return f"{feature} is missing"
    return f"{feature} = {number_text(value)}" if isinstance(value, int | float | np.number) else f"{feature} = {value}"


def number_text(value: float) -> str:
    """A number as an analyst reads it: whole numbers in full with separators (65,255, not 6.526e+04), others
    with two decimals, small ones to three significant digits."""
    v = float(value)
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
