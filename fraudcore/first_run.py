"""First run: a fresh workbench gets the demo dataset and a default champion, in the background, once.

``ensure(workbench)`` is what every page calls: when the demo dataset or a champion is missing it submits one job
(key ``first-run``) that generates the demo data, trains an XGBoost model on it and promotes it. Nothing is redone
once present: the demo file is written atomically and a champion (or any trained model) stops the training step.
A failed job is not retried by itself; the page shows its error and offers ``ensure(..., start=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fraudcore.atomic import replacing
from fraudcore.config import DEMO_ROWS, DEMO_SEED, Paths
from fraudcore.errors import FraudcoreError
from fraudcore.jobs import Job, ProgressFn

__all__ = ["CREATED_BY", "ENV_DEMO_ROWS", "ENV_FIRST_RUN", "KEY", "FirstRunPlan", "auto_start", "demo_rows",
           "ensure", "failure_help", "plan", "run"]

KEY = "first-run"
ENV_DEMO_ROWS = "FRAUDCORE_DEMO_ROWS"  # rows of the demo dataset a first run generates (default config.DEMO_ROWS)
ENV_FIRST_RUN = "FRAUDCORE_FIRST_RUN"  # "off": pages offer a button instead of starting the first run themselves
CREATED_BY = "first-run"
WHY = "default champion trained on the demo data"
SEARCH_MINUTES = 0.0  # default hyper-parameters: about 30 s on 2 cores for the 250k demo rows


def demo_rows() -> int:
    """Rows of the demo dataset: ``FRAUDCORE_DEMO_ROWS`` when set (a positive integer), else ``DEMO_ROWS``."""
    text = os.environ.get(ENV_DEMO_ROWS, "").strip().replace("_", "").replace(",", "")
    if not text:
        return DEMO_ROWS
    if not text.isdigit() or int(text) < 1:
        raise FraudcoreError(f"{ENV_DEMO_ROWS} is {os.environ[ENV_DEMO_ROWS]!r}; set it to a positive number of "
                             f"rows (e.g. 20000) or unset it for the default {DEMO_ROWS:,}")
    return int(text)


def auto_start() -> bool:
    """Whether pages start the first run by themselves (unless ``FRAUDCORE_FIRST_RUN=off``)."""
    return os.environ.get(ENV_FIRST_RUN, "").strip().lower() not in {"off", "0", "false", "no"}


@dataclass(frozen=True)
class FirstRunPlan:
    """What a first run still has to do: generate the demo data, train a default model, promote one."""

    generate: bool
    train: bool
    promote: str | None = None  # an earlier first-run model that was trained but never promoted

    @property
    def needed(self) -> bool:
        return self.generate or self.train or self.promote is not None


def plan(paths: Paths) -> FirstRunPlan:
    """The steps still missing: cheap when a champion is set (one small file read)."""
    from fraudcore.registry import CHAMPION_FILE, list_models

    generate = not paths.demo_dataset.is_file()
    if (Path(paths.artifacts) / CHAMPION_FILE).is_file():  # a damaged pointer is shown with its fix, not retrained
        return FirstRunPlan(generate=generate, train=False)
    models = [m for m in list_models(paths.artifacts) if m["error"] is None]
    ours = next((m["model_id"] for m in models if m["created_by"] == CREATED_BY), None)
    return FirstRunPlan(generate=generate, train=not models, promote=ours if models else None)


def _stage(progress: ProgressFn, start: float, end: float, label: str) -> ProgressFn:
    """A progress callback mapping a step's [0, 1] onto [start, end] of the first run, messages prefixed."""
    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(max(float(fraction), 0.0), 1.0),
                 f"{label}: {message}" if message else label)
    return report


def run(paths: Paths, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Do the missing first-run steps now (generate, train, promote); return what was done."""
    from fraudcore.registry import promote
    from fraudcore.simulate import generate_to_file
    from fraudcore.training import TrainRequest, train

    report = progress or (lambda fraction, message="": None)
    todo = plan(paths.ensure())
    done: dict[str, Any] = {"generated_rows": None, "trained": None, "promoted": None}
    split = 0.15 if todo.generate and todo.train else 1.0
    if todo.generate:
        rows = demo_rows()
        step = _stage(report, 0.0, split, f"Generating the demo dataset ({rows:,} events)")
        step(0.0)
        with replacing(paths.demo_dataset) as tmp:
            summary = generate_to_file(tmp, rows=rows, seed=DEMO_SEED, progress=step)
        done["generated_rows"] = int(summary["rows"])
    model_id = todo.promote
    if todo.train:
        model_id = f"champion-xgb-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        step = _stage(report, split if todo.generate else 0.0, 0.98, "Training the default champion")
        step(0.0, f"XGBoost on {paths.demo_dataset.name}")
        request = TrainRequest(model_id=model_id, algo="xgboost", search_minutes=SEARCH_MINUTES,
                               created_by=CREATED_BY)
        train(paths.demo_dataset, request, progress=step, root=paths.artifacts)
        done["trained"] = model_id
    if model_id is not None:
        promote(model_id, paths.artifacts, who=CREATED_BY, why=WHY)
        done["promoted"] = model_id
    report(1.0, "The workbench is ready")
    return done


def ensure(workbench: Any, *, start: bool | None = None) -> Job | None:
    """The first-run job of this workbench: submitted when steps are missing (``start=None``: if automatic start
    is on; ``True``: also after a failure; ``False``: never); otherwise the latest one (or None)."""
    latest: Job | None = workbench.jobs.latest(KEY)
    if latest is not None and latest.running:
        return latest
    if start is False or (start is None and (not auto_start() or (latest is not None and latest.status == "failed"))):
        return latest
    if not plan(workbench.paths).needed:
        return latest
    return workbench.jobs.submit("first run", partial(run, workbench.paths), key=KEY)


def failure_help(paths: Paths) -> str:
    """What the analyst can do when the first run failed."""
    return (f"Check that {paths.data} and {paths.artifacts} are writable and have free space, then press "
            "**Try again**. From a terminal: `python -m fraudcore generate` (demo data), then `python -m fraudcore "
            f"train --data {paths.demo_dataset} --model-id champion-xgb` and `python -m fraudcore promote "
            "champion-xgb`.")
