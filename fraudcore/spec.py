"""The dataset spec: which column plays which role, named once and saved with everything derived from the data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPEC_VERSION = 1

Role = Literal[
    "event_id", "event_time", "label", "amount", "entity", "categorical", "numeric", "ignored", "leakage"
]
SINGLE_ROLES = ("event_id", "event_time", "label", "amount")
LIST_ROLES = {"entity": "entities", "categorical": "categorical", "numeric": "numeric", "ignored": "ignored"}


class DatasetSpec(BaseModel):
    """Roles of a dataset's columns. Features are ``amount`` + ``numeric`` + ``categorical``; nothing else."""

    model_config = ConfigDict(extra="forbid")

    version: int = SPEC_VERSION
    event_id: str | None = None
    event_time: str | None = None
    time_unit: Literal["timestamp", "seconds"] = "timestamp"
    time_origin: datetime = datetime(1970, 1, 1)
    label: str | None = None
    amount: str | None = None
    entities: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list)
    leakage: dict[str, str] = Field(default_factory=dict, description="column -> why it is excluded")
    reasons: dict[str, str] = Field(default_factory=dict, description="column -> why it got its role")

    @field_validator("time_origin")
    @classmethod
    def _naive(cls, value: datetime) -> datetime:
        """Times are naive everywhere: an origin with a zone keeps its wall time, as the typed view has always read
        it (models trained on such a spec counted seconds from that wall time)."""
        return value.replace(tzinfo=None)

    @model_validator(mode="after")
    def _one_role_per_column(self) -> DatasetSpec:
        seen: dict[str, str] = {}
        for column, role in self._assignments():
            if column in seen and seen[column] != role:
                raise ValueError(
                    f"column {column!r} is given two roles ({seen[column]} and {role}); give each column one role"
                )
            seen[column] = role
        return self

    def _assignments(self) -> list[tuple[str, str]]:
        pairs = [(getattr(self, r), r) for r in SINGLE_ROLES if getattr(self, r)]
        for role, attr in LIST_ROLES.items():
            pairs += [(c, role) for c in getattr(self, attr)]
        pairs += [(c, "leakage") for c in self.leakage]
        return pairs

    def role_of(self, column: str) -> Role | None:
        """The role of ``column``, or None if the spec does not mention it."""
        for col, role in self._assignments():
            if col == column:
                return role  # type: ignore[return-value]
        return None

    @property
    def columns(self) -> list[str]:
        """Every column the spec mentions, in role order."""
        return [c for c, _ in self._assignments()]

    @property
    def feature_columns(self) -> list[str]:
        """Raw columns usable as model features: amount, numeric and categorical (never label, id, leakage)."""
        cols = [self.amount] if self.amount else []
        return cols + list(self.numeric) + list(self.categorical)

    def with_role(self, column: str, role: Role, reason: str = "set by the analyst") -> DatasetSpec:
        """A copy where ``column`` has ``role`` (removed from its previous role)."""
        data = self.model_dump()
        for single in SINGLE_ROLES:
            if data[single] == column:
                data[single] = None
        for attr in LIST_ROLES.values():
            data[attr] = [c for c in data[attr] if c != column]
        data["leakage"].pop(column, None)
        if role in SINGLE_ROLES:
            data[role] = column
        elif role == "leakage":
            data["leakage"][column] = reason
        else:
            data[LIST_ROLES[role]].append(column)
        data["reasons"][column] = reason
        return DatasetSpec.model_validate(data)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> DatasetSpec:
        return cls.model_validate(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> DatasetSpec:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
