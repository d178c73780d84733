"""Model metadata: the strict-JSON record saved beside every model (schema, features, split, tiers, metrics, hashes).

Also what the record is checked against: library versions, a data fingerprint, and the raw columns a model needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fraudcore.errors import ModelArtifactError
from fraudcore.spec import DatasetSpec
from fraudcore.thresholds import ThresholdChange, TierPolicy

METADATA_FILE = "metadata.json"
CARD_FILE = "card.md"
CHAMPION_FILE = "champion.json"
RESERVED_NAMES = frozenset({METADATA_FILE, CARD_FILE, CHAMPION_FILE})
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
FORMAT_VERSION = 2  # 2: metadata.json carries its seal (``seal_of``); 1: written before seals
READABLE_FORMATS = (1, 2)
SPLIT_KINDS = ("time", "random", "dates")
_DISTRIBUTIONS = {"numpy": "numpy", "pandas": "pandas", "sklearn": "scikit-learn", "xgboost": "xgboost",
                  "duckdb": "duckdb", "pydantic": "pydantic"}


def check_name(name: str, what: str = "model id") -> str:
    """``name`` if it is a safe single path part (letters, digits, - _ .; starts alphanumeric; no '..')."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name or name in RESERVED_NAMES:
        raise ModelArtifactError(
            f"{what} {name!r} is not allowed: use 1-128 letters, digits, '-', '_' or '.', starting with a letter "
            f"or digit, without '..' or '/', and not one of {sorted(RESERVED_NAMES)}"
        )
    return name


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (numpy scalars, tuples, datetimes, pydantic models converted); NaN refused."""
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), where)
    if hasattr(value, "to_dict") and not isinstance(value, (dict, pd.Series, pd.DataFrame)):
        return _jsonable(value.to_dict(), where)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(list(value))]
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; metadata is strict JSON, so store None (or a string) instead")
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"{where} holds a {type(value).__name__}, which is not JSON; store numbers, text, lists or dicts")


class ModelMetadata(BaseModel):
    """Everything recorded with a trained model: data, features, parameters, split, tiers, metrics, files."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    model_id: str
    algo: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    created_by: str | None = None
    dataset: dict = Field(description='{"source", "fingerprint", "n_rows", "spec": DatasetSpec, ...}')
    features: dict = Field(default_factory=dict, description='{"config": dict | None, "matrix": dict, "names": [...]}')
    params: dict = Field(default_factory=dict)
    search: dict | None = None
    split: dict = Field(description='{"kind": "time" | "random" | "dates", "label": text, ...windows...}')
    tiers: TierPolicy
    metrics: dict = Field(description='{"valid": evaluate(...), "test": evaluate(...)}')
    curves: dict = Field(default_factory=dict)
    libraries: dict[str, str] = Field(default_factory=lambda: library_versions())
    files: dict[str, str] = Field(default_factory=dict, description="model file name -> sha256")
    tier_log: list[ThresholdChange] = Field(default_factory=list)
    sealed: str | None = Field(default=None, description="sha256 of everything else in this file, written by "
                               "to_json: a hand edit is refused on load (None: written before seals existed)")

    @field_validator("format_version")
    @classmethod
    def _readable(cls, value: int) -> int:
        if value not in READABLE_FORMATS:
            raise ValueError(f"format_version {value} is not one this fraudcore reads ({READABLE_FORMATS})")
        return value

    @field_validator("model_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        try:
            return check_name(value)
        except ModelArtifactError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("features", "params", "search", "metrics", "curves", mode="before")
    @classmethod
    def _plain_json(cls, value: Any, info: Any) -> Any:
        return None if value is None else _jsonable(value, info.field_name)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, value: Any) -> dict:
        value = dict(value)
        missing = [k for k in ("source", "fingerprint", "n_rows", "spec") if k not in value]
        if missing:
            raise ValueError(f"dataset lacks {missing}; record source, fingerprint, n_rows and spec")
        spec = value["spec"]
        value["spec"] = (spec if isinstance(spec, DatasetSpec) else DatasetSpec.model_validate(spec)).model_dump(
            mode="json")
        return _jsonable(value, "dataset")

    @field_validator("split", mode="before")
    @classmethod
    def _split(cls, value: Any) -> dict:
        value = _jsonable(value, "split")
        if value.get("kind") not in SPLIT_KINDS or not isinstance(value.get("label"), str):
            raise ValueError(f"split needs kind in {SPLIT_KINDS} and a human label; got {value}")
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            try:
                check_name(name, "model file name")
            except ModelArtifactError as exc:
                raise ValueError(str(exc)) from None
            if not _SHA256_RE.match(digest):
                raise ValueError(f"files[{name!r}] is not a sha256 hex digest: {digest!r}")
        return value

    @property
    def spec(self) -> DatasetSpec:
        """The dataset spec the model was trained under."""
        return DatasetSpec.model_validate(self.dataset["spec"])

    @property
    def feature_names(self) -> list[str]:
        """Model input columns, in order."""
        return list(self.features.get("names") or [])

    def to_json(self) -> str:
        """Strict JSON text of this metadata, sealed: ``sealed`` = ``seal_of`` the rest, as written."""
        data = self.model_dump(mode="json", exclude={"sealed"})
        return json.dumps({**data, "sealed": seal_of(data)}, indent=2, ensure_ascii=False, allow_nan=False)


def seal_of(data: dict) -> str:
    """sha256 of a metadata JSON object without its ``sealed`` key, as stored (so fields added to the format later
    do not change the seal of a file written before them)."""
    rest = {k: v for k, v in data.items() if k != "sealed"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model depends on (``"not installed"`` when absent)."""
    from fraudcore import __version__

    found = {"python": platform.python_version(), "fraudcore": __version__}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            found[key] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            found[key] = "not installed"
    return found


def library_differences(metadata: ModelMetadata) -> dict[str, tuple[str, str]]:
    """Libraries whose version now differs from training time: name -> (at training, now)."""
    now = library_versions()
    return {k: (v, now.get(k, "not installed")) for k, v in metadata.libraries.items() if now.get(k) != v}


def data_fingerprint(frame_or_path: pd.DataFrame | str | Path | Any) -> str:
    """sha256 over column names and dtypes, row count and a per-row content hash; paths and LoadedDatasets are read
    through ``fraudcore.loading`` first, so a file and the frame the workbench loads from it agree."""
    frame = frame_or_path
    if isinstance(frame, (str, Path)):
        from fraudcore.loading import load_dataset

        frame = load_dataset(frame)
    if not isinstance(frame, pd.DataFrame):
        frame = frame.frame()
    digest = hashlib.sha256(b"fraudcore-data-fingerprint-v1\n")
    schema = [[str(c), str(t)] for c, t in frame.dtypes.items()]
    digest.update(json.dumps({"columns": schema, "rows": len(frame)}).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def required_columns(metadata: ModelMetadata, *, with_label: bool = False) -> list[str]:
    """Raw columns scoring needs: the spec's feature columns plus those the feature config reads (label only if
    ``with_label``: history labels come from the store, not from the events being scored)."""
    from fraudcore.loading import ROW_ID

    config = metadata.features.get("config") or {}
    roles = [config.get("event_id"), config.get("event_time"), config.get("amount")]
    roles += [config.get("label")] if with_label else []
    roles += list(config.get("entities") or []) + list(config.get("risk_entities") or [])
    wanted = [*metadata.spec.feature_columns, *roles]
    return list(dict.fromkeys(c for c in wanted if c and c != ROW_ID))


def check_input_schema(metadata: ModelMetadata, columns: Iterable[str], *, with_label: bool = False) -> None:
    """ModelArtifactError naming each raw column the model needs that ``columns`` lacks, with its role."""
    have = set(columns)
    missing = [c for c in required_columns(metadata, with_label=with_label) if c not in have]
    if missing:
        spec = metadata.spec
        named = ", ".join(f"{c} ({spec.role_of(c) or 'feature input'})" for c in missing)
        raise ModelArtifactError(f"model {metadata.model_id!r} needs columns this data lacks: {named}; rename or "
                                 "map them in the dataset spec, or use a model trained on this schema")
