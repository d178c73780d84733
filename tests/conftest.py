"""Shared fixtures: every test runs with FRAUDCORE_* pointing into its own tmp folder; real data is optional."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point data, artifacts and the DuckDB file into tmp so no test touches a user's files."""
    root = tmp_path / "workbench"
    monkeypatch.setenv("FRAUDCORE_DATA", str(root / "data"))
    monkeypatch.setenv("FRAUDCORE_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("FRAUDCORE_DB", str(root / "data" / "workbench.duckdb"))
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the project (../shared/data); tests using them skip, saying why, when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available: {SHARED_DATA} is absent (they sit beside the project in CI)")
    return SHARED_DATA


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path
