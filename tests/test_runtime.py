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


def test_loading_a_model_freezes_the_heap_and_closing_unfreezes_it(trained, isolated_paths):
    """The objects alive once a model is loaded leave the collector's full collections (gc.freeze); closing the
    workbench hands them back, so nothing stays frozen after it."""
    import gc

    artifacts = isolated_paths / "artifacts"
    shutil.copytree(trained.root, artifacts, dirs_exist_ok=True)
    promote(trained.model_id, artifacts)
    gc.unfreeze()
    wb = runtime.current()
    assert gc.get_freeze_count() == 0
    scorer = wb.scorer()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the libraries and the model's objects
    history = wb.history(scorer)
    assert history.on_reload is runtime.freeze_heap
    wb.close()
    assert gc.get_freeze_count() == 0


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


def test_close_stops_the_poller_before_the_writer_which_commits_what_it_was_handed(isolated_paths):
    import pandas as pd

    from fraudcore.store import EventKeys, Store, frames_batch

    wb = runtime.current()
    events = pd.DataFrame({"event_id": [1, 2], "event_time": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    handed = []

    class Poller:  # its last page reaches the writer while the app shuts down
        def stop(self):
            handed.append(wb.writer().submit(frames_batch(events, None, EventKeys())))

    wb.services["poller"] = Poller()
    assert wb.writer().running and wb.services["writer"] is wb.writer()
    runtime.shutdown()
    assert handed and handed[0].done.is_set() and handed[0].error is None
    with Store.open(isolated_paths / "data" / "workbench.duckdb", read_only=True) as store:
        assert store.stats()["events"] == 2
