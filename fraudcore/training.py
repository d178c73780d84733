"""Train end to end: data → spec → features → split → search → tiers on validation → test metrics → registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.metrics import average_precision_score

from fraudcore.dataset import OpenedDataset, open_dataset
from fraudcore.errors import DataContractError
from fraudcore.evaluate import curves, evaluate
from fraudcore.features import FeatureConfig
from fraudcore.holdout import HOLDOUT_FILE, holdout_json
from fraudcore.inputs import FeatureMode, ModelInputs, model_inputs
from fraudcore.loading import LoadedDataset
from fraudcore.models import check_device
from fraudcore.reference import REFERENCE_FILE, build_reference
from fraudcore.registry import (
    FORMAT_VERSION,
    ModelMetadata,
    check_input_schema,
    check_new_model_id,
    data_fingerprint,
    library_versions,
    load_model,
    save_model,
)
from fraudcore.search import search
from fraudcore.spec import DatasetSpec
from fraudcore.split import Split, SplitPlan, make_split
from fraudcore.thresholds import TierPolicy, derive_tiers

Progress = Callable[[float, str], None]
Algo = Literal["xgboost", "logreg", "anomaly"]


class TrainRequest(BaseModel):
    """Everything a training run needs besides the data: what the CLI flags and the Train page set."""

    model_id: str
    algo: Algo = "xgboost"
    features: FeatureMode = "auto"
    split: SplitPlan = Field(default_factory=SplitPlan)
    search_minutes: float = 0.5
    device: Literal["cpu", "cuda"] = "cpu"  # where XGBoost trains; the saved model always scores on the CPU
    search_trials: int | None = Field(default=None, ge=1)  # exactly this many trials (reproducible), not minutes
    seed: int = 0
    refit: bool = False  # train the chosen configuration again on train + validation (tiers tuned before it)
    high: tuple[str, float | None] = ("precision", 0.9)
    medium: tuple[str, float | None] = ("alert_budget", 100.0)
    review_cost: float = 5.0
    k: int = 100
    created_by: str | None = None


def apply_overrides(spec: DatasetSpec, data: LoadedDataset, label: str | None = None, time_col: str | None = None,
                    amount: str | None = None, entities: list[str] | None = None) -> DatasetSpec:
    """The spec with roles the analyst named explicitly (label, time, amount, entities)."""
    for column, role in ((label, "label"), (time_col, "event_time"), (amount, "amount")):
        if column:
            spec = spec.with_role(column, role)
    if time_col:
        numeric = data.columns.get(time_col, "").startswith(("INT", "BIGINT", "DOUBLE", "FLOAT", "DECIMAL"))
        spec = spec.model_copy(update={"time_unit": "seconds" if numeric else "timestamp"})
    if entities is not None:
        for column in entities:
            spec = spec.with_role(column, "entity")
        for column in [e for e in spec.entities if e not in entities]:
            spec = spec.with_role(column, "ignored")
    return spec


def _stage(progress: Progress | None, start: float, end: float) -> Progress:
    """A progress callback mapping a sub-task's [0, 1] onto [start, end] of the whole run."""
    def report(fraction: float, message: str = "") -> None:
        if progress:
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)
    return report


def _metrics(inputs: ModelInputs, idx: np.ndarray, score: np.ndarray, threshold: float,
             request: TrainRequest) -> dict:
    times, amount, entity = inputs.times, inputs.amount, inputs.entity_values
    metrics = evaluate(inputs.y[idx], score, threshold, amount=None if amount is None else amount[idx],
                       event_time=None if times is None else times.iloc[idx].to_numpy(),
                       entity=None if entity is None else entity[idx], k=request.k, review_cost=request.review_cost)
    if request.algo == "anomaly":  # an anomaly score ranks events but is no probability: a Brier score misleads
        metrics["brier"] = None
    return metrics


def _tiers(inputs: ModelInputs, idx: np.ndarray, score: np.ndarray, request: TrainRequest) -> TierPolicy:
    times, amount = inputs.times, inputs.amount
    return derive_tiers(inputs.y[idx], score, high=request.high, medium=request.medium,
                        event_time=None if times is None else times.iloc[idx].to_numpy(),
                        amount=None if amount is None else amount[idx], review_cost=request.review_cost)


def train(data: str | Path | OpenedDataset, request: TrainRequest, progress: Progress | None = None,
          root: Path | None = None) -> ModelMetadata:
    """Train, tune tiers on validation, evaluate on test, save to the registry; return the saved metadata."""
    started = time.perf_counter()
    report = _stage(progress, 0, 1)
    check_new_model_id(request.model_id, root)  # before any work, not after it
    if request.algo == "xgboost":
        check_device(request.device)  # before any work: a missing GPU is an error, not a silent CPU fallback
    opened = data if isinstance(data, OpenedDataset) else open_dataset(data)
    opened.report.raise_for_errors()
    if not opened.spec.label:
        raise_no_label(opened)
    report(0.02, "computing features")
    inputs = model_inputs(opened, request.features, label_delay_days=request.split.delay_days)
    report(0.2, f"{len(inputs.frame):,} rows, {len(inputs.feature_columns)} features; splitting")
    split = make_split(request.split, inputs.times, inputs.y)
    X = inputs.frame[inputs.feature_columns]
    y = inputs.y
    result = search(request.algo, X.iloc[split.train], y[split.train], X.iloc[split.valid], y[split.valid],
                    minutes=request.search_minutes, seed=request.seed, progress=_stage(progress, 0.25, 0.85),
                    fixed={"categorical": inputs.categorical,
                           **({"device": request.device} if request.algo == "xgboost" else {})},
                    trials=request.search_trials, refit=request.refit)
    model = result.best_model
    report(0.86, "tuning tiers on the validation window")
    valid_score = model.predict_proba(X.iloc[split.valid])  # out of sample: what the tiers are tuned on
    tiers = _tiers(inputs, split.valid, valid_score, request)
    final_fit = {"rows": "train", "n_rows": len(split.train), "test_average_precision_before": None}
    if request.refit:
        report(0.88, "training the chosen configuration again on train + validation")
        before = model.predict_proba(X.iloc[split.test])
        rows = np.sort(np.r_[split.train, split.valid])
        model = model.refit(X.iloc[rows], y[rows])
        final_fit = {"rows": "train + valid", "n_rows": len(rows),
                     "test_average_precision_before": round(float(average_precision_score(y[split.test], before)), 6)}
    report(0.92, "evaluating on the test window")
    test_score = model.predict_proba(X.iloc[split.test])
    threshold = tiers.medium.threshold
    metadata = ModelMetadata(
        format_version=FORMAT_VERSION, model_id=request.model_id, algo=request.algo,
        created_at=datetime.now(UTC), created_by=request.created_by,
        dataset={"source": opened.data.source, "fingerprint": data_fingerprint(opened.data),
                 "n_rows": opened.data.n_rows, "spec": opened.spec},
        features={"config": inputs.feature_config.to_dict() if inputs.feature_config else None,
                  "matrix": model.matrix_.model_dump(), "names": list(model.matrix_.feature_names)},
        params=model.get_params(),
        search={"trials": [_trial_json(t) for t in result.trials], "stopped_by": result.stopped_by,
                "minutes": request.search_minutes, "trials_requested": request.search_trials, "seed": request.seed},
        split={**split.describe(inputs.times, y), "final_fit": final_fit},
        tiers=tiers,
        metrics={"valid": _metrics(inputs, split.valid, valid_score, threshold, request),
                 "test": _metrics(inputs, split.test, test_score, threshold, request),
                 "train_seconds": round(time.perf_counter() - started, 2)},
        curves={"test": curves(y[split.test], test_score, amount=_part(inputs.amount, split.test),
                               review_cost=request.review_cost)},
        libraries=library_versions(), files={},
    )
    report(0.97, "saving the artifact")
    # the score reference is out of sample: a refitted model has seen the validation window
    reference = build_reference(X.iloc[split.train][list(model.matrix_.feature_names)],
                                test_score if request.refit else np.r_[valid_score, test_score],
                                categorical=inputs.categorical)
    extra = {REFERENCE_FILE: reference.to_json()}
    if request.refit:
        extra[HOLDOUT_FILE] = holdout_json(valid_score)
    save_model(model, metadata, root=root, extra_files=extra)
    report(1.0, f"saved {request.model_id}")
    return load_model(request.model_id, root=root)[1]


def _trial_json(trial) -> dict:
    """A search trial for metadata (strict JSON: an unmeasurable AP becomes None)."""
    ap = trial.valid_ap
    return {**vars(trial), "valid_ap": None if ap is None or np.isnan(ap) else round(float(ap), 6)}


def _part(values: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[idx]


def raise_no_label(opened: OpenedDataset) -> None:
    """Supervised training and tier tuning need labels: say so with the fix."""
    raise DataContractError(f"{Path(opened.data.source).name} has no label column: name it with --label COL "
                            "(1 = fraud, 0 = legitimate)")


def split_of(inputs: ModelInputs, plan: SplitPlan) -> Split:
    """The split a request would use on these inputs (the Train page draws it before training)."""
    return make_split(plan, inputs.times, inputs.y)


def evaluate_saved(model_id: str, data: str | Path, root: Path | None = None, k: int = 100,
                   review_cost: float = 5.0, delimiter: str | None = None, encoding: str = "utf-8",
                   decimal: str = ".") -> dict:
    """A saved model's metrics on every row of another labelled file, at its saved review (medium) threshold
    (``delimiter``, ``encoding`` and ``decimal`` as for ``load_dataset``)."""
    model, metadata = load_model(model_id, root=root)
    spec = DatasetSpec.model_validate(metadata.dataset["spec"])
    opened = open_dataset(data, spec=spec, delimiter=delimiter, encoding=encoding, decimal=decimal)
    if not spec.label or spec.label not in opened.data.columns:
        raise DataContractError(f"{Path(opened.data.source).name} has no {spec.label!r} column: evaluating needs the "
                                "label the model was trained with (1 = fraud, 0 = legitimate); score the file "
                                "instead (python -m fraudcore score) to get scores without a label")
    check_input_schema(metadata, opened.data.columns)
    opened.report.raise_for_errors()
    config = metadata.features.get("config")
    inputs = model_inputs(opened, "none", feature_config=FeatureConfig.from_dict(config) if config else None)
    score = model.predict_proba(inputs.frame[model.matrix_.feature_names])
    request = TrainRequest(model_id=model_id, algo=metadata.algo, k=k, review_cost=review_cost)
    rows = np.arange(len(inputs.frame))
    return {"model_id": model_id, "data": str(data),
            "metrics": {"test": _metrics(inputs, rows, score, metadata.tiers.medium.threshold, request)},
            "warnings": _seen_in_training(metadata, opened, inputs)}


def _seen_in_training(metadata: ModelMetadata, opened: OpenedDataset, inputs: ModelInputs) -> list[str]:
    """Why these metrics may be optimistic: the file is the training data itself, or rows fall in the windows the
    model was fitted and tuned on (a model scores its own training rows far better than new ones)."""
    same_size = metadata.dataset.get("n_rows") == opened.data.n_rows  # the fingerprint reads every row: only then
    if same_size and data_fingerprint(opened.data) == metadata.dataset.get("fingerprint"):
        return ["this is the data the model was trained on (same fingerprint): the metrics include the rows it was "
                "fitted and tuned on and are optimistic; its test metrics are in `models` and the model card"]
    split = metadata.split
    parts = [split.get(name) or {} for name in ("train", "valid")]
    if inputs.times is None or not all(p.get("start") and p.get("end") for p in parts):
        return []
    start = min(pd.Timestamp(p["start"]) for p in parts)
    end = max(pd.Timestamp(p["end"]) for p in parts)
    times = pd.to_datetime(pd.Series(inputs.times))
    inside = int(((times >= start) & (times <= end)).sum())
    if not inside:
        return []
    drawn = " (a random split: its training rows were drawn from that whole period)" \
        if split.get("kind") == "random" else ""
    return [f"{inside:,} of {len(times):,} rows fall inside the period the model was trained and validated on "
            f"({start} to {end}){drawn}; if they are the same events the metrics are optimistic: evaluate on "
            "later data"]
