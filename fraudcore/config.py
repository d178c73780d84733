"""Where things live: data folder, artifacts folder, DuckDB file — one place, environment overridable.

Defaults are relative to the project root (``data/``, ``artifacts/``, ``data/workbench.duckdb``);
``FRAUDCORE_DATA``, ``FRAUDCORE_ARTIFACTS`` and ``FRAUDCORE_DB`` override them. The environment is read
on every call so that tests and deployments can point a process elsewhere without import-order tricks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_DATA = "FRAUDCORE_DATA"
ENV_ARTIFACTS = "FRAUDCORE_ARTIFACTS"
ENV_DB = "FRAUDCORE_DB"

DEMO_DATASET_NAME = "demo_transactions.parquet"
DEMO_ROWS = 250_000
DEMO_SEED = 7


@dataclass(frozen=True)
class Paths:
    """Resolved locations of the workbench's files."""

    data: Path
    artifacts: Path
    db: Path

    @property
    def demo_dataset(self) -> Path:
        return self.data / DEMO_DATASET_NAME

    @property
    def uploads(self) -> Path:
        return self.data / "uploads"

    def ensure(self) -> Paths:
        """Create the data and artifacts folders (and the DB's folder) if missing."""
        for folder in (self.data, self.artifacts, self.db.parent):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def get_paths() -> Paths:
    """Current paths, honouring the FRAUDCORE_* environment variables."""
    data = _from_env(ENV_DATA, PROJECT_ROOT / "data")
    artifacts = _from_env(ENV_ARTIFACTS, PROJECT_ROOT / "artifacts")
    db = _from_env(ENV_DB, data / "workbench.duckdb")
    return Paths(data=data, artifacts=artifacts, db=db)
