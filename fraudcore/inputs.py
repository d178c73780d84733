"""Model inputs from an opened dataset: typed rows plus point-in-time features, in (time, id) order.

Training, evaluation and batch scoring all build their frames here, so a model always sees the same columns
computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
import pandas as pd

from fraudcore.dataset import OpenedDataset
from fraudcore.errors import DataContractError
from fraudcore.features import FeatureConfig, feature_names, window_label
from fraudcore.features_batch import build_features
from fraudcore.infer import tokens
from fraudcore.loading import qident, typed_spec
from fraudcore.spec import DatasetSpec

FeatureMode = Literal["auto", "none", "handbook"]
CARD_WORDS = ("card", "pan", "cc", "customer", "account", "user")


@dataclass
class ModelInputs:
    """Rows in time order with their features, plus the columns the model and the metrics need."""

    frame: pd.DataFrame
    spec: DatasetSpec  # the typed spec: time is a timestamp, there is always an event id
    feature_config: FeatureConfig | None
    numeric: list[str]
    categorical: list[str]

    @property
    def feature_columns(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def times(self) -> pd.Series | None:
        return self.frame[self.spec.event_time] if self.spec.event_time else None

    @property
    def y(self) -> np.ndarray | None:
        if not self.spec.label:
            return None
        return self.frame[self.spec.label].to_numpy(dtype=np.int8)

    @property
    def amount(self) -> np.ndarray | None:
        return self.frame[self.spec.amount].to_numpy(dtype=float) if self.spec.amount else None

    @property
    def card_entity(self) -> str | None:
        """The entity used for card precision@k: a card-like key if there is one, else the first entity."""
        for word in CARD_WORDS:
            for entity in self.spec.entities:
                if word in tokens(entity):
                    return entity
        return self.spec.entities[0] if self.spec.entities else None

    @property
    def entity_values(self) -> np.ndarray | None:
        return self.frame[self.card_entity].to_numpy() if self.card_entity else None


def feature_config_for(spec: DatasetSpec, mode: FeatureMode, label_delay_days: float = 0.0) -> FeatureConfig | None:
    """The feature builder's config for this data, or None when the columns themselves are the features."""
    if mode == "none" or not spec.event_time or (mode == "auto" and not spec.entities):
        return None
    config = FeatureConfig.from_spec(typed_spec(spec), mode)
    if label_delay_days > 0:
        delay = timedelta(seconds=round(label_delay_days * 86_400))  # 0.5 days: '12h' (windows are whole units)
        config = FeatureConfig.from_dict({**config.to_dict(), "label_delay": window_label(delay)})
    return config


def model_inputs(opened: OpenedDataset, mode: FeatureMode = "auto", feature_config: FeatureConfig | None = None,
                 label_delay_days: float = 0.0) -> ModelInputs:
    """Typed rows (+ features) ordered by time and id; ``feature_config`` (a saved model's) wins over ``mode``."""
    spec = opened.spec
    tspec = typed_spec(spec)
    view = opened.data.typed_view(spec)
    config = feature_config if feature_config is not None else feature_config_for(spec, mode, label_delay_days)
    if config is not None:
        frame = build_features(opened.data.con, view, config).df()
        generated = feature_names(config)
    else:
        order = ", ".join(qident(c) for c in (tspec.event_time, tspec.event_id) if c)
        frame = opened.data.con.execute(f"SELECT * FROM {view}" + (f" ORDER BY {order}" if order else "")).df()
        generated = []
    if tspec.label and frame[tspec.label].isna().any():
        raise DataContractError(f"label column {tspec.label!r} has empty or non-0/1 values; validate the data first")
    numeric = ([tspec.amount] if tspec.amount else []) + list(tspec.numeric) + generated
    return ModelInputs(frame.reset_index(drop=True), tspec, config, numeric, list(tspec.categorical))
