"""Benchmarks behind ``python -m fraudcore bench …``; results go to docs/benchmarks.md with the command and machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from fraudcore.config import PROJECT_ROOT
from fraudcore.errors import FraudcoreError

HANDBOOK_RAW = PROJECT_ROOT.parent / "shared" / "data" / "handbook_raw.parquet"


def machine() -> dict:
    """What the numbers were measured on."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}


def run(what: str, rows: int = 1_000_000, data: str | None = None) -> dict:
    """Run one benchmark and return its figures with the machine description."""
    if what == "generate":
        from fraudcore.simulate import bench_generate

        return {"bench": what, **bench_generate(rows=rows), **machine()}
    if what == "features":
        from fraudcore.features_batch import bench_features

        path = Path(data) if data else HANDBOOK_RAW
        if not path.exists():
            raise FraudcoreError(f"{path} not found: pass --data PATH (a CSV/Parquet with an id, time and entities)")
        return {"bench": what, **bench_features(path), **machine()}
    raise FraudcoreError(f"unknown benchmark {what!r}; choose generate or features")
