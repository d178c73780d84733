"""Shared fixtures: every test runs with FRAUDCORE_* pointing into its own tmp folder; real data is optional."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from fraudcore import runtime
from fraudcore.registry import promote
from fraudcore.scoring import Scorer
from fraudcore.simulate import generate, world_for_rows
from fraudcore.training import TrainRequest, train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point data, artifacts and the DuckDB file into tmp so no test touches a user's files."""
    root = tmp_path / "workbench"
    monkeypatch.setenv("FRAUDCORE_DATA", str(root / "data"))
    monkeypatch.setenv("FRAUDCORE_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("FRAUDCORE_DB", str(root / "data" / "workbench.duckdb"))
    # an app started by a test (AppTest or a real server, which inherits the environment) must not train a champion
    # on 250k demo rows behind the test's back; tests of the first run switch it on with a small dataset
    monkeypatch.setenv("FRAUDCORE_FIRST_RUN", "off")
    monkeypatch.setenv("FRAUDCORE_DEMO_ROWS", "8000")
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the project (../shared/data); tests using them skip, saying why, when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available: {SHARED_DATA} is absent (they sit beside the project in CI)")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(timeout_s: float = 60) -> Iterator[tuple[str, int]]:
    """`streamlit run app.py` on a free loopback port with this test's environment; yields (base URL, port)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited early: {proc.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app did not answer /api/health within {timeout_s} s") from None
                time.sleep(0.5)
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ---- one small scoring model per session, shared by the scoring and batch tests ----------------------------------

MODEL_ID = "score-xgb"


@dataclass(frozen=True)
class Trained:
    """A small model trained once per session, its registry and the events it was trained on."""

    root: Path
    model_id: str
    frame: pd.DataFrame
    parquet: Path


_TRAINED: list[Trained] = []


def train_once(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The shared small model, trained the first time any test module asks for it."""
    if not _TRAINED:
        folder = tmp_path_factory.mktemp("scoring")
        frame = generate(rows=12_000, world=world_for_rows(12_000, seed=5, days=10))
        parquet = folder / "events.parquet"
        frame.to_parquet(parquet, index=False)
        train(parquet, TrainRequest(model_id=MODEL_ID, search_minutes=0), root=folder / "artifacts")
        _TRAINED.append(Trained(folder / "artifacts", MODEL_ID, frame, parquet))
    return _TRAINED[0]


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    return train_once(tmp_path_factory)


@pytest.fixture(scope="module")
def scorer(trained) -> Scorer:
    return Scorer.load(trained.model_id, trained.root)


def raw_event(trained: Trained, i: int) -> dict:
    """Row ``i`` as a raw event the way a caller would send it (no label, no leakage column)."""
    return trained.frame.drop(columns=["is_fraud", "fraud_scenario"]).iloc[i].to_dict()


@pytest.fixture
def champion_workbench(trained, isolated_paths):
    """The process workbench over this test's paths, with the session model copied in and promoted to champion;
    shut down afterwards (threads stopped, the DuckDB file released)."""
    artifacts = isolated_paths / "artifacts"
    shutil.copytree(trained.root, artifacts, dirs_exist_ok=True)
    promote(trained.model_id, artifacts)
    yield runtime.current()
    runtime.shutdown()
