"""Fraud Workbench core library: data contract, simulator, features, models, scoring, store, feed.

Never imports streamlit: the app applies caching and layout at the edge. The public API below is re-exported
lazily (PEP 562), so ``import fraudcore`` stays cheap for the CLI and the app; ``fraudcore.open_dataset`` imports
``fraudcore.dataset`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "get_paths": "config", "Paths": "config",
    "FraudcoreError": "errors", "DataContractError": "errors", "ModelArtifactError": "errors",
    "FeedError": "errors", "StoreBusyError": "errors",
    "DatasetSpec": "spec", "open_dataset": "dataset", "OpenedDataset": "dataset",
    "load_dataset": "loading", "load_bytes": "loading", "load_frame": "loading",
    "infer_spec": "infer", "validate": "validate", "ValidationReport": "validate", "Problem": "validate",
    "generate": "simulate", "generate_to_file": "simulate", "continue_from": "simulate",
    "FeatureConfig": "features", "feature_names": "features", "history_lookback": "features",
    "build_features": "features_batch", "build_features_file": "features_batch",
    "online_features": "features_online",
    "SplitPlan": "split", "make_split": "split",
    "make_model": "models", "search": "search",
    "evaluate": "evaluate", "curves": "evaluate",
    "tune_threshold": "thresholds", "derive_tiers": "thresholds", "assign_tiers": "thresholds",
    "TierPolicy": "thresholds",
    "TrainRequest": "training", "train": "training", "evaluate_saved": "training",
    "ModelMetadata": "metadata", "load_model": "registry", "save_model": "registry", "promote": "registry",
    "champion_id": "registry", "list_models": "registry",
    "Explanation": "explain", "explain": "explain", "top_reasons": "reasons",
    "Scorer": "scoring", "FrameHistory": "scoring", "score_file": "batch",
    "Store": "store",
    "Workbench": "runtime", "Jobs": "jobs",
    "ingest": "ingest", "IngestResult": "ingest", "RecentHistory": "recent",
    "start_feed": "feed", "ensure_feed": "feed", "FeedOptions": "feed",
    "Poller": "poller", "PollerController": "poller", "start_poller": "poller",
    "claim": "review", "release": "review", "assign": "review", "decide": "review", "reopen": "review",
    "ReviewError": "review", "queue": "review_queue", "QueueFilter": "review_queue",
    "case_detail": "review_detail", "similar_cases": "review_similar", "export_labels": "review_export",
    "build_reference": "reference", "feature_drift": "monitor", "score_drift": "monitor",
    "threshold_replay": "monitor_compare", "shadow_agreement": "monitor_compare",
    "get_shadow": "shadow", "set_shadow": "shadow",
    "retrain": "retrain", "RetrainReport": "retrain", "promote_if_better": "retrain",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fraudcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fraudcore.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
