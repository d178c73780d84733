"""The process's workbench: one store handle, scorers kept per model, services stopped on close, keyed by paths."""

from __future__ import annotations

import shutil

import pytest

from fraudcore import runtime
from fraudcore.errors import ModelArtifactError
from fraudcore.registry import promote


@pytest.fixture(autouse=True)
def closed_after():
    yield
    runtime.shutdown()


def test_current_is_one_per_paths_and_owns_the_store(isolated_paths, monkeypatch):
    wb = runtime.current()
    assert runtime.current() is wb
    store = wb.store()
    assert wb.store() is store and store.path == wb.paths.db
    monkeypatch.setenv("FRAUDCORE_DB", str(isolated_paths / "other.duckdb"))
    other = runtime.current()
    assert other is not wb and other.paths.db.name == "other.duckdb"
    assert not wb.store_is_open()  # the previous workbench was closed when the paths changed


def test_scorer_is_kept_and_follows_the_champion(trained, isolated_paths, monkeypatch):
    artifacts = isolated_paths / "artifacts"
    shutil.copytree(trained.root, artifacts, dirs_exist_ok=True)
    wb = runtime.current()
    with pytest.raises(ModelArtifactError, match="promote"):
        wb.scorer()
    promote(trained.model_id, artifacts)
    scorer = wb.scorer()
    assert scorer.model_id == trained.model_id and wb.scorer() is scorer
    store = wb.store(scorer)
    assert store.keys.event_id == scorer.spec.event_id and set(store.keys.entities) == set(scorer.entities)


def test_close_stops_services():
    stopped = []

    class Service:
        def stop(self):
            stopped.append(True)

    wb = runtime.current()
    wb.services["poller"] = Service()
    wb.store()
    runtime.shutdown()
    assert stopped == [True] and not wb.store_is_open()
