"""What the Train page needs around ``training.train``: a model id to suggest and check, and the headline results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fraudcore.config import get_paths
from fraudcore.dataset import open_dataset
from fraudcore.jobs import Job, Jobs
from fraudcore.metadata import ModelMetadata, check_name
from fraudcore.spec import DatasetSpec
from fraudcore.thresholds import OBJECTIVES
from fraudcore.training import TrainRequest, train

ALGO_LABELS = {
    "xgboost": "Gradient-boosted trees (XGBoost)",
    "logreg": "Logistic regression",
    "anomaly": "Anomaly detection (isolation forest, no labels needed to fit)",
}
FEATURE_LABELS = {
    "auto": "Velocity and risk features per entity (when the data has entities)",
    "handbook": "Fraud Detection Handbook features (customer spend, terminal risk)",
    "none": "The raw columns only",
}


def suggest_model_id(algo: str, now: datetime | None = None) -> str:
    """A fresh, valid model id: the family and the UTC time, e.g. ``xgboost-20250110-175732``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return check_name(f"{algo}-{stamp}")


def objectives_for(spec: DatasetSpec) -> list[str]:
    """Tier objectives the data can serve: alert budgets need event times, cost needs amounts."""
    return [o for o in OBJECTIVES if (o != "alert_budget" or spec.event_time) and (o != "cost" or spec.amount)]


def start_training(jobs: Jobs, data: str | Path, spec: DatasetSpec, request: TrainRequest,
                   root: Path | str | None = None) -> Job:
    """Train in the background (one job per model id); the job's result is the saved model's metadata."""
    folder = Path(root) if root is not None else get_paths().artifacts

    def work(progress) -> ModelMetadata:
        return train(open_dataset(data, spec=spec), request, progress=progress, root=folder)

    return jobs.submit(f"train {request.model_id}", work, key=f"train:{request.model_id}")


@dataclass(frozen=True)
class Headline:
    """One headline figure: a label, its formatted value and what it means."""

    label: str
    value: str
    help: str


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def headline_metrics(meta: ModelMetadata, window: str = "test") -> list[Headline]:
    """The figures an analyst reads first, on one window of the saved metrics (the test window by default)."""
    m = meta.metrics.get(window) or {}
    k = m.get("k")
    figures = [
        Headline("Average precision", _fmt(m.get("average_precision"), ".3f"),
                 "Area under the precision-recall curve: the headline for rare fraud (random ranking = fraud rate)"),
        Headline("ROC AUC", _fmt(m.get("roc_auc"), ".3f"), "Chance that a fraud outranks a legitimate event"),
        Headline(f"Precision@{k}/day", _fmt(m.get("precision_at_k"), ".1%"),
                 f"Share of fraud among the {k} highest scores of each day (the daily review budget)"),
    ]
    if m.get("card_precision_at_k") is not None:
        figures.append(Headline(f"Card precision@{k}/day", _fmt(m.get("card_precision_at_k"), ".1%"),
                                f"Share of the {k} riskiest cards each day that had a fraud"))
    figures += [
        Headline("Recall at review cut", _fmt(m.get("recall"), ".1%"),
                 f"Share of frauds at or above the review (medium) cut {_fmt(m.get('threshold'), '.4g')}"),
        Headline("Alerts per day", _fmt(m.get("alerts_per_day"), ",.1f"), "Events at or above the review cut per day"),
    ]
    return figures
