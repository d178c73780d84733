"""First run: what is missing, doing it once (generate, train, promote), and one background job per workbench."""

from __future__ import annotations

import shutil
import threading

import pandas as pd
import pytest

from fraudcore import first_run
from fraudcore.config import DEMO_ROWS, get_paths
from fraudcore.errors import FraudcoreError
from fraudcore.registry import champion_id, list_models, load_model, promote
from fraudcore.runtime import Workbench


@pytest.fixture(autouse=True)
def small_demo(monkeypatch):
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "8000")
    monkeypatch.delenv(first_run.ENV_FIRST_RUN)  # the suite switches automatic first runs off; these tests need them


@pytest.mark.parametrize(("value", "rows"), [("", DEMO_ROWS), ("8000", 8000), ("20_000", 20_000), ("1,500", 1500)])
def test_demo_rows_from_the_environment(monkeypatch, value, rows):
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, value)
    assert first_run.demo_rows() == rows


@pytest.mark.parametrize("value", ["0", "-5", "many", "1e5"])
def test_bad_demo_rows_say_how_to_fix_them(monkeypatch, value):
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, value)
    with pytest.raises(FraudcoreError, match=r"FRAUDCORE_DEMO_ROWS .* positive number of rows"):
        first_run.demo_rows()


def test_automatic_start_can_be_switched_off(monkeypatch):
    assert first_run.auto_start()
    monkeypatch.setenv(first_run.ENV_FIRST_RUN, "off")
    assert not first_run.auto_start()


def test_run_generates_trains_and_promotes_once():
    paths = get_paths().ensure()
    assert first_run.plan(paths) == first_run.FirstRunPlan(generate=True, train=True)
    seen: list[tuple[float, str]] = []
    done = first_run.run(paths, lambda fraction, message: seen.append((fraction, message)))
    model_id = done["trained"]
    assert done == {"generated_rows": 8000, "trained": model_id, "promoted": model_id}
    assert len(pd.read_parquet(paths.demo_dataset)) == 8000
    assert not [p for p in paths.data.iterdir() if p.name.endswith(".tmp")]  # written atomically
    assert champion_id(paths.artifacts) == model_id
    meta = load_model(model_id, paths.artifacts)[1]
    assert meta.algo == "xgboost" and meta.created_by == "first-run"
    assert seen[0][1].startswith("Generating the demo dataset (8,000 events)")
    assert any(m.startswith("Training the default champion") for _, m in seen)
    assert seen[-1] == (1.0, "The workbench is ready")
    assert not first_run.plan(paths).needed

    again = first_run.run(paths)
    assert again == {"generated_rows": None, "trained": None, "promoted": None}
    assert [m["model_id"] for m in list_models(paths.artifacts)] == [model_id]


def test_existing_models_are_respected(trained):
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    assert first_run.plan(paths) == first_run.FirstRunPlan(generate=True, train=False)  # not ours: not promoted
    promote(trained.model_id, paths.artifacts, who="analyst")
    done = first_run.run(paths)
    assert done["generated_rows"] == 8000 and done["trained"] is None
    assert champion_id(paths.artifacts) == trained.model_id


def test_a_first_run_model_left_unpromoted_is_promoted_not_retrained():
    paths = get_paths().ensure()
    first_run.run(paths)
    model_id = champion_id(paths.artifacts)
    (paths.artifacts / "champion.json").unlink()  # e.g. the process died between training and promoting
    assert first_run.plan(paths) == first_run.FirstRunPlan(generate=False, train=False, promote=model_id)
    assert first_run.run(paths)["promoted"] == model_id
    assert champion_id(paths.artifacts) == model_id and len(list_models(paths.artifacts)) == 1


def test_a_damaged_champion_pointer_is_not_trained_over():
    paths = get_paths().ensure()
    (paths.artifacts / "champion.json").write_text("{not json", encoding="utf-8")
    paths.demo_dataset.write_bytes(b"placeholder")
    assert not first_run.plan(paths).needed


def test_ensure_submits_one_job_and_does_not_retry_a_failure_by_itself(monkeypatch):
    workbench = Workbench(get_paths().ensure())
    gate = threading.Event()
    real_run = first_run.run
    monkeypatch.setattr(first_run, "run", lambda paths, progress=None: gate.wait(30) and real_run(paths, progress))
    job = first_run.ensure(workbench)
    assert job is not None and job.running
    assert first_run.ensure(workbench) is job  # while it runs, every page gets the same job
    gate.set()
    assert job.wait(120) and job.status == "done", job.detail
    assert first_run.ensure(workbench) is job  # done: nothing missing, nothing new

    broken = Workbench(get_paths().ensure())
    shutil.rmtree(broken.paths.artifacts)
    broken.paths.demo_dataset.unlink()
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "many")
    failed = first_run.ensure(broken)
    assert failed.wait(30) and failed.status == "failed" and "FRAUDCORE_DEMO_ROWS" in failed.error
    assert first_run.ensure(broken) is failed
    monkeypatch.setenv(first_run.ENV_DEMO_ROWS, "8000")
    retry = first_run.ensure(broken, start=True)
    assert retry is not failed and retry.wait(120) and retry.status == "done", retry.detail


def test_ensure_does_not_start_when_switched_off(monkeypatch):
    monkeypatch.setenv(first_run.ENV_FIRST_RUN, "off")
    workbench = Workbench(get_paths().ensure())
    assert first_run.ensure(workbench) is None
    job = first_run.ensure(workbench, start=True)
    assert job is not None and job.wait(120) and job.status == "done", job.detail
    assert first_run.ensure(workbench, start=False) is job
