"""Retrain from labels: stored events + analyst dispositions (+ the original data if chosen) → a challenger trained
with the champion's protocol → both models scored on the same recent labelled window → promote only if better.

The comparison window is the challenger's own test window (the most recent labelled events of the new training
set, out of sample for the challenger). Precision is compared at the champion's alert volume on that window: the
number of events the champion sends to review (score >= its medium cut), or the number of frauds if it sends none.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudcore.atomic import replacing, write_text_atomic
from fraudcore.config import get_paths
from fraudcore.dataset import OpenedDataset, open_dataset
from fraudcore.errors import DataContractError, FraudcoreError, ModelArtifactError
from fraudcore.features import FeatureConfig
from fraudcore.inputs import ModelInputs, model_inputs
from fraudcore.registry import ModelMetadata, champion_id, check_name, load_model, promote
from fraudcore.spec import DatasetSpec
from fraudcore.split import SplitPlan, make_split
from fraudcore.store import Store
from fraudcore.training import TrainRequest, train

__all__ = ["RetrainReport", "WindowMetrics", "build_training_set", "promote_challenger", "promote_if_better",
           "request_like", "retrain", "retrain_history", "training_frame"]

Unlabelled = Literal["drop", "legit"]
Progress = Callable[[float, str], None]


class WindowMetrics(BaseModel):
    """One model on the comparison window."""

    model_id: str
    events: int
    frauds: int
    average_precision: float | None
    roc_auc: float | None
    volume: int = Field(description="alerts compared: the champion's review-tier volume on the window")
    precision_at_volume: float | None
    recall_at_volume: float | None
    event_ids_sha256: str = Field(description="digest of the sorted event ids this model was scored on")


class RetrainReport(BaseModel):
    """What a retrain did: the data, the challenger, both models on the same window, the verdict and its reasons."""

    champion_id: str
    challenger_id: str
    training_data: str
    rows: int
    frauds: int
    from_store: int
    from_original: int
    window_start: datetime
    window_end: datetime
    champion: WindowMetrics
    challenger: WindowMetrics
    better: bool
    reasons: list[str]
    promoted: bool = False
    created_by: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def _model_spec(spec: DatasetSpec) -> DatasetSpec:
    """The spec without ignored and leakage columns (the store keeps neither), for the retraining file."""
    kept = {c: r for c, r in spec.reasons.items() if c not in spec.leakage and c not in spec.ignored}
    return spec.model_copy(update={"ignored": [], "leakage": {}, "reasons": kept})


def training_frame(store: Store, spec: DatasetSpec, *, unlabelled: Unlabelled = "drop",
                   label_delay_days: float = 7.0) -> pd.DataFrame:
    """Stored events with their labels as a frame with the spec's columns, in (time, id) order. ``unlabelled``:
    'drop' keeps labelled events only; 'legit' also keeps unlabelled events older than the label delay, as 0."""
    if not spec.event_id or not spec.event_time or not spec.label:
        raise DataContractError("retraining needs a spec with event id, event time and label roles")
    newest = store.query("SELECT max(event_time) AS t FROM events")["t"].iloc[0]
    cutoff = (newest - timedelta(days=label_delay_days)) if unlabelled == "legit" and not pd.isna(newest) else None
    rows = store.query("SELECT event_time, coalesce(label, 0) AS label, raw FROM events WHERE label IS NOT NULL "
                       "OR event_time <= ? ORDER BY event_time, event_id", [cutoff])
    columns = _model_spec(spec).columns
    if rows.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([json.loads(raw) for raw in rows["raw"]])
    frame[spec.label] = rows["label"].astype("int64").to_numpy()
    if spec.time_unit == "timestamp":
        frame[spec.event_time] = rows["event_time"].to_numpy()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataContractError(f"stored events lack columns the model needs: {missing}; they must come from the "
                                "same feed schema as the training data")
    return frame[columns]


def _original(path: str | Path, spec: DatasetSpec) -> pd.DataFrame:
    from fraudcore.loading import load_dataset

    frame = load_dataset(path).frame()
    columns = _model_spec(spec).columns
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataContractError(f"{Path(path).name} lacks columns of the champion's spec: {missing}; pass the file "
                                "the champion was trained on (or one with the same columns)")
    return frame[columns]


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def build_training_set(store: Store, spec: DatasetSpec, out: Path, include_original: str | Path | None = None,
                       unlabelled: Unlabelled = "drop", label_delay_days: float = 7.0) -> tuple[Path, int, int]:
    """Write the retraining Parquet (original rows first, stored rows win on a shared event id); returns the path,
    rows from the store and rows from the original file."""
    stored = training_frame(store, spec, unlabelled=unlabelled, label_delay_days=label_delay_days)
    parts = [stored]
    if include_original is not None:
        original = _original(include_original, spec)
        if original[spec.event_id].dtype != stored[spec.event_id].dtype and len(stored):
            original = original.astype({spec.event_id: str})
            stored = stored.astype({spec.event_id: str})
        stored_ids = set(stored[spec.event_id].tolist())
        parts = [original[~original[spec.event_id].isin(stored_ids)], stored]
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else stored
    if frame.empty or frame[spec.label].sum() == 0:
        raise DataContractError(f"the retraining set has {len(frame)} labelled events and no fraud; wait for more "
                                "dispositions or include the original data (--include-original PATH)")
    if spec.time_unit == "timestamp":
        frame[spec.event_time] = pd.to_datetime(frame[spec.event_time])
    frame = frame.sort_values([spec.event_time, spec.event_id], kind="stable").reset_index(drop=True)
    return _write_parquet(frame, out), len(stored), len(frame) - len(stored)


def request_like(meta: ModelMetadata, model_id: str, search_minutes: float | None = None,
                 created_by: str | None = None) -> TrainRequest:
    """A TrainRequest repeating a saved model's protocol: algorithm, feature mode, split kind, shares, label delay
    and seed, tier objectives, search budget, review cost and k (a date split becomes a time split)."""
    config = meta.features.get("config")
    mode = "none" if not config else ("handbook" if config.get("naming") == "handbook" else "auto")
    split, n = meta.split, max(int(meta.dataset.get("n_rows") or 0), 1)
    test = min(max(round(split.get("test", {}).get("rows", 0.2 * n) / n, 3), 0.05), 0.45)
    valid = min(max(round(split.get("valid", {}).get("rows", 0.2 * n) / n, 3), 0.05), 0.9 - test)
    plan = SplitPlan(kind=split["kind"] if split["kind"] in ("time", "random") else "time", valid_size=valid,
                     test_size=test, delay_days=float(split.get("delay_days") or 0), seed=int(split.get("seed") or 0))
    search = meta.search or {}
    valid_metrics = meta.metrics.get("valid") or {}
    tiers = meta.tiers
    return TrainRequest(model_id=model_id, algo=meta.algo, features=mode, split=plan,
                        search_minutes=search.get("minutes", 0.5) if search_minutes is None else search_minutes,
                        seed=int(search.get("seed", 0)),
                        refit=(split.get("final_fit") or {}).get("rows") == "train + valid",
                        high=(tiers.high.objective, tiers.high.target),
                        medium=(tiers.medium.objective, tiers.medium.target),
                        review_cost=float(valid_metrics.get("review_cost", 5.0)), k=int(valid_metrics.get("k", 100)),
                        created_by=created_by)


def _digest(ids: pd.Series) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, ids.tolist()))).encode()).hexdigest()


def _window_metrics(model_id: str, ids: pd.Series, y: np.ndarray, score: np.ndarray, volume: int) -> WindowMetrics:
    both = 0 < y.sum() < y.size
    top = np.argsort(-score, kind="stable")[:volume]
    caught = int(y[top].sum())
    return WindowMetrics(model_id=model_id, events=int(y.size), frauds=int(y.sum()),
                         average_precision=float(average_precision_score(y, score)) if y.sum() else None,
                         roc_auc=float(roc_auc_score(y, score)) if both else None, volume=volume,
                         precision_at_volume=caught / volume if volume else None,
                         recall_at_volume=caught / y.sum() if y.sum() else None, event_ids_sha256=_digest(ids))


def _inputs(opened: OpenedDataset, config: dict | None, cache: dict[str, ModelInputs]) -> ModelInputs:
    """Model inputs of the retraining file under a saved feature config (computed once per config)."""
    key = json.dumps(config, sort_keys=True)
    if key not in cache:
        cache[key] = model_inputs(opened, "none", feature_config=FeatureConfig.from_dict(config) if config else None)
    return cache[key]


def _scored_window(model_id: str, opened: OpenedDataset, ids: pd.Series, root: Path | str | None,
                   cache: dict[str, ModelInputs]) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """The model's event ids, labels and scores on the events ``ids``, from its own features of the file."""
    model, meta = load_model(model_id, root)
    inputs = _inputs(opened, meta.features.get("config"), cache)
    spec = inputs.spec
    part = inputs.frame[inputs.frame[spec.event_id].isin(set(ids.tolist()))].sort_values(spec.event_id)
    absent = [c for c in model.matrix_.feature_names if c not in part.columns]
    if absent:
        raise ModelArtifactError(f"model {model_id!r} needs inputs the retraining data cannot give: {absent}")
    return part[spec.event_id], part[spec.label].to_numpy(dtype=np.int8), model.predict_proba(
        part[list(model.matrix_.feature_names)])


def _verdict(champ: WindowMetrics, chall: WindowMetrics, min_gain: float) -> tuple[bool, list[str]]:
    ap_c, ap_n = champ.average_precision or 0.0, chall.average_precision or 0.0
    p_c, p_n = champ.precision_at_volume or 0.0, chall.precision_at_volume or 0.0
    ap_ok, p_ok = ap_n > ap_c + min_gain, p_n >= p_c
    reasons = [f"average precision {ap_n:.4f} vs champion {ap_c:.4f} "
               f"({'better' if ap_ok else 'not better'} by more than {min_gain:g})",
               f"precision at the champion's {champ.volume} alerts {p_n:.4f} vs {p_c:.4f} "
               f"({'at least as good' if p_ok else 'worse'})"]
    return ap_ok and p_ok, reasons


def retrain(store: Store, *, who: str = "cli", include_original: str | Path | None = None,
            search_minutes: float | None = None, min_gain: float = 0.0, unlabelled: Unlabelled = "drop",
            challenger_id: str | None = None, root: Path | str | None = None,
            progress: Progress | None = None) -> RetrainReport:
    """Build the retraining set, train a challenger like the champion, compare both on the same recent window."""
    report = progress or (lambda fraction, message="": None)
    champion = champion_id(root)
    if champion is None:
        raise ModelArtifactError("no champion to retrain: promote a model first (python -m fraudcore promote ID)")
    _, meta = load_model(champion, root)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    challenger_id = check_name(challenger_id or f"retrain-{stamp}-{uuid.uuid4().hex[:4]}")
    request = request_like(meta, challenger_id, search_minutes, created_by=who)
    report(0.02, "building the training set from the store")
    out = get_paths().data / "retrain" / f"{challenger_id}.parquet"
    delay = request.split.delay_days or 7.0
    path, n_store, n_original = build_training_set(store, meta.spec, out, include_original, unlabelled, delay)
    opened = open_dataset(path, spec=_model_spec(meta.spec))
    report(0.1, f"training {challenger_id}")
    new_meta = train(opened, request, root=root,
                     progress=lambda f, m="": report(0.1 + 0.75 * f, m))
    report(0.88, "scoring both models on the challenger's test window")
    cache: dict[str, ModelInputs] = {}
    inputs = _inputs(opened, new_meta.features.get("config"), cache)
    test = make_split(request.split, inputs.times, inputs.y).test
    ids = inputs.frame[inputs.spec.event_id].iloc[test]
    c_ids, c_y, c_score = _scored_window(champion, opened, ids, root, cache)
    n_ids, n_y, n_score = _scored_window(challenger_id, opened, ids, root, cache)
    volume = int((c_score >= meta.tiers.medium.threshold).sum()) or int(c_y.sum())
    champ = _window_metrics(champion, c_ids, c_y, c_score, volume)
    chall = _window_metrics(challenger_id, n_ids, n_y, n_score, volume)
    better, reasons = _verdict(champ, chall, min_gain)
    times = inputs.times.iloc[test]
    seen = meta.split.get("valid", {}).get("end") or meta.split.get("train", {}).get("end")
    if seen and pd.Timestamp(seen) >= times.min():
        reasons.append(f"note: the champion was trained and tuned on events up to {seen}, which overlaps this "
                       "window, so its numbers here are optimistic")
    result = RetrainReport(champion_id=champion, challenger_id=challenger_id, training_data=str(path),
                           rows=n_store + n_original, frauds=int(inputs.y.sum()), from_store=n_store,
                           from_original=n_original, window_start=times.min(), window_end=times.max(),
                           champion=champ, challenger=chall, better=better, reasons=reasons, created_by=who)
    path.with_suffix(".report.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    report(1.0, f"{challenger_id}: {'better' if better else 'not better'} than {champion}")
    return result


def promote_if_better(result: RetrainReport, who: str, root: Path | str | None = None) -> RetrainReport:
    """Promote the challenger (logged in champion.json: who, why, previous) when the report says it is better."""
    return promote_challenger(result, who, root) if result.better else result


def promote_challenger(result: RetrainReport, who: str, root: Path | str | None = None,
                       force: bool = False) -> RetrainReport:
    """Promote the report's challenger (``force``: although it did not beat the champion, an analyst's explicit
    choice, said so in the log); refused when the champion changed since the comparison. The saved report is
    rewritten with promoted = true so the retrain history shows it."""
    if champion_id(root) != result.champion_id:
        raise FraudcoreError(f"the champion changed since the comparison (now {champion_id(root)!r}, compared with "
                             f"{result.champion_id!r}); retrain again")
    if not result.better and not force:
        raise FraudcoreError(f"{result.challenger_id} did not beat {result.champion_id}; promote it explicitly "
                             "(force) if you still want it as the champion")
    how = "retrain from labels" if result.better else "retrain from labels, promoted although not better"
    promote(result.challenger_id, root=root, who=who, why=f"{how}: {'; '.join(result.reasons)}")
    promoted = result.model_copy(update={"promoted": True})
    saved = Path(result.training_data).with_suffix(".report.json")
    if saved.is_file():
        write_text_atomic(saved, promoted.model_dump_json(indent=2))
    return promoted


def retrain_history() -> list[RetrainReport]:
    """Every saved retrain report (``data/retrain/*.report.json``), newest first."""
    folder = get_paths().data / "retrain"
    reports = [RetrainReport.model_validate_json(p.read_text(encoding="utf-8"))
               for p in folder.glob("*.report.json")] if folder.is_dir() else []
    return sorted(reports, key=lambda r: r.created_at, reverse=True)
