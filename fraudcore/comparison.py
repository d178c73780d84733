"""Models side by side: grouped by the data they were trained on, re-scored on their saved validation and test
windows, with overlaid PR / ROC curves and one metrics table on the test window they share.

The windows are rebuilt from each model's metadata (time ranges, or the seeded random draw) and checked against the
row and fraud counts recorded at training, so a changed file is reported instead of silently compared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fraudcore.dataset import open_dataset
from fraudcore.errors import FraudcoreError
from fraudcore.evaluate import curves, evaluate, window_days
from fraudcore.features import FeatureConfig
from fraudcore.holdout import load_holdout
from fraudcore.inputs import ModelInputs, model_inputs
from fraudcore.metadata import ModelMetadata, check_input_schema, data_fingerprint
from fraudcore.registry import list_models, load_metadata, load_model

WINDOWS = ("valid", "test")


@dataclass(frozen=True)
class ModelGroup:
    """Models trained on the same data (same fingerprint), newest first."""

    fingerprint: str
    source: str
    n_rows: int
    models: list[ModelMetadata]

    @property
    def label(self) -> str:
        """How the group reads in a picker: file, rows, fingerprint, model count."""
        count = len(self.models)
        return (f"{Path(self.source).name} · {self.n_rows:,} rows · data {self.fingerprint[:8]} · "
                f"{count} model{'s' if count != 1 else ''}")


@dataclass(frozen=True)
class Window:
    """Scored events of one window: ids, labels, scores, and the amounts, times and cards the metrics need."""

    name: str
    event_id: np.ndarray
    y: np.ndarray
    score: np.ndarray
    amount: np.ndarray | None = None
    times: np.ndarray | None = None
    entity: np.ndarray | None = None

    @property
    def n_days(self) -> float | None:
        """Days of events in the window (``evaluate.window_days``; None without times)."""
        return None if self.times is None or not len(self.times) else window_days(self.times)

    def rows(self, keep: np.ndarray) -> Window:
        """The same window restricted to the rows where ``keep`` is true."""
        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        return replace(self, event_id=self.event_id[keep], y=self.y[keep], score=self.score[keep],
                       amount=pick(self.amount), times=pick(self.times), entity=pick(self.entity))

    def describe(self) -> str:
        """e.g. '2025-01-09 20:37 to 2025-01-10 17:57: 4,000 events, 16 frauds'."""
        span = "" if self.times is None or not len(self.times) else (
            f"{pd.Timestamp(self.times.min()):%Y-%m-%d %H:%M} to {pd.Timestamp(self.times.max()):%Y-%m-%d %H:%M}: ")
        return f"{span}{len(self.y):,} events, {int(self.y.sum()):,} frauds"


@dataclass(frozen=True)
class ModelWindows:
    """A model's validation and test windows, scored by it."""

    model_id: str
    valid: Window
    test: Window
    refitted: bool = False  # valid holds the scores saved at training, before the refit on train + validation

    def window(self, name: str) -> Window:
        """The window called ``name`` ("valid" or "test")."""
        return {"valid": self.valid, "test": self.test}[name]


def model_groups(root: Path | str | None = None) -> list[ModelGroup]:
    """Loadable models grouped by data fingerprint; the group with the newest model first."""
    groups: dict[str, list[ModelMetadata]] = {}
    for row in list_models(root):
        if row["error"] is None:
            meta = load_metadata(row["model_id"], root)
            groups.setdefault(meta.dataset["fingerprint"], []).append(meta)
    return [ModelGroup(fp, str(metas[0].dataset["source"]), int(metas[0].dataset["n_rows"]), metas)
            for fp, metas in groups.items()]


def window_rows(meta: ModelMetadata, inputs: ModelInputs) -> dict[str, np.ndarray]:
    """Row positions of the model's validation and test windows in ``inputs``, checked against its metadata."""
    split = meta.split
    y = inputs.y
    if split["kind"] == "random":
        parts = {name: split.get(name) or {} for name in ("valid", "test")}
        rest, test = train_test_split(np.arange(len(y)), test_size=int(parts["test"].get("rows", 0)), stratify=y,
                                      random_state=split.get("seed", 0))
        _, valid = train_test_split(rest, test_size=int(parts["valid"].get("rows", 0)), stratify=y[rest],
                                    random_state=split.get("seed", 0))
        rows = {"valid": np.sort(valid), "test": np.sort(test)}
    else:
        if inputs.times is None:
            raise FraudcoreError(f"model {meta.model_id!r} was split by time but the data has no event time column")
        t = inputs.times.to_numpy()
        rows = {}
        for name in WINDOWS:
            part = split[name]
            start, end = np.datetime64(pd.Timestamp(part["start"])), np.datetime64(pd.Timestamp(part["end"]))
            rows[name] = np.flatnonzero((t >= start) & (t <= end))
    for name, idx in rows.items():
        want = split[name]
        found = (len(idx), int(y[idx].sum()))
        if found != (want["rows"], want["frauds"]):
            raise FraudcoreError(
                f"model {meta.model_id!r}: its {name} window now holds {found[0]:,} events and {found[1]:,} frauds, "
                f"but {want['rows']:,} and {want['frauds']:,} at training; the data changed: retrain on this file")
    return rows


def score_windows(model_id: str, root: Path | str | None = None) -> ModelWindows:
    """Re-score a model's validation and test windows on the file it was trained on (FraudcoreError if it changed);
    a refitted model's validation window keeps the out-of-sample scores saved at training (fraudcore.holdout)."""
    model, meta = load_model(model_id, root)
    source = Path(str(meta.dataset["source"]))
    if not source.is_file():
        raise FraudcoreError(f"model {model_id!r} was trained on {source}, which is no longer there; "
                             "put the file back to re-score it")
    opened = open_dataset(source, spec=meta.spec)
    check_input_schema(meta, opened.data.columns, with_label=True)
    if data_fingerprint(opened.data) != meta.dataset["fingerprint"]:
        raise FraudcoreError(f"{source.name} changed since model {model_id!r} was trained (its fingerprint differs); "
                             "retrain to compare on the new data")
    config = meta.features.get("config")
    inputs = model_inputs(opened, "none", feature_config=FeatureConfig.from_dict(config) if config else None)
    rows = window_rows(meta, inputs)
    ids = inputs.frame[inputs.spec.event_id].to_numpy()
    windows = {}
    holdout = load_holdout(meta, root)  # meta: verified by load_model above
    for name, idx in rows.items():
        if name == "valid" and holdout is not None:  # refitted: the out-of-sample scores its tiers were tuned on
            if len(holdout) != len(idx):
                raise FraudcoreError(f"model {model_id!r} saved {len(holdout):,} validation scores for a window of "
                                     f"{len(idx):,} events; retrain it")
            score = holdout
        else:
            score = model.predict_proba(inputs.frame.iloc[idx][model.matrix_.feature_names])
        windows[name] = Window(
            name, ids[idx], inputs.y[idx], np.asarray(score, dtype=float),
            amount=None if inputs.amount is None else inputs.amount[idx],
            times=None if inputs.times is None else inputs.times.to_numpy()[idx],
            entity=None if inputs.entity_values is None else inputs.entity_values[idx])
    return ModelWindows(model_id, windows["valid"], windows["test"], refitted=holdout is not None)


def common_test(scored: list[ModelWindows]) -> dict[str, Window]:
    """Each model's test window cut to the events every model's test window holds (FraudcoreError if none)."""
    if not scored:
        return {}
    shared = scored[0].test.event_id
    for item in scored[1:]:
        shared = np.intersect1d(shared, item.test.event_id)
    if not len(shared):
        raise FraudcoreError("the selected models' test windows share no events; pick models with overlapping splits")
    common = {m.model_id: m.test.rows(np.isin(m.test.event_id, shared)) for m in scored}
    if any(w.y.sum() in (0, len(w.y)) for w in common.values()):
        raise FraudcoreError("the test window the selected models share holds only one class; pick models whose "
                             "test windows overlap more")
    return common


def curve_frames(windows: dict[str, Window]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Overlaid PR (model, recall, precision, ap) and ROC (model, fpr, tpr, auc) curves, one model per group."""
    pr, roc = [], []
    for model_id, w in windows.items():
        found = curves(w.y, w.score)
        m = evaluate(w.y, w.score, 0.5)
        pr.append(_curve(model_id, found["pr"], ("recall", "precision"), ap=m["average_precision"]))
        roc.append(_curve(model_id, found["roc"], ("fpr", "tpr"), auc=m["roc_auc"]))
    return pd.concat(pr, ignore_index=True), pd.concat(roc, ignore_index=True)


def saved_curve_frames(metas: list[ModelMetadata]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The PR and ROC curves each model saved for its own test window at training, in ``curve_frames`` form."""
    pr, roc = [], []
    for meta in metas:
        found, test = meta.curves.get("test") or {}, meta.metrics.get("test") or {}
        if found.get("pr") and found.get("roc"):
            pr.append(_curve(meta.model_id, found["pr"], ("recall", "precision"), ap=test.get("average_precision")))
            roc.append(_curve(meta.model_id, found["roc"], ("fpr", "tpr"), auc=test.get("roc_auc")))
    pr_frame = pd.concat(pr, ignore_index=True) if pr else pd.DataFrame(columns=["model", "recall", "precision", "ap"])
    roc_frame = pd.concat(roc, ignore_index=True) if roc else pd.DataFrame(columns=["model", "fpr", "tpr", "auc"])
    return pr_frame, roc_frame


def _curve(model_id: str, points: dict, axes: tuple[str, str], **extra: float | None) -> pd.DataFrame:
    frame = pd.DataFrame({"model": model_id, axes[0]: points[axes[0]], axes[1]: points[axes[1]]})
    return frame.assign(**extra)


def metrics_table(metas: list[ModelMetadata], windows: dict[str, Window] | None = None, *,
                  champion: str | None = None, review_cost: float = 5.0, k: int | None = None) -> pd.DataFrame:
    """One row per model: ranking metrics and the operating figures at its saved review cut, on the shared test
    window where ``windows`` has the model, else the test metrics it saved at training (``window`` says which)."""
    windows = windows or {}
    rows = []
    for meta in metas:
        saved = meta.metrics.get("test") or {}
        w = windows.get(meta.model_id)
        if w is not None:
            m = evaluate(w.y, w.score, meta.tiers.medium.threshold, amount=w.amount, event_time=w.times,
                         entity=w.entity, k=k or saved.get("k", 100), review_cost=review_cost)
        else:
            m = saved
        rows.append({"model": meta.model_id, "algo": meta.algo, "champion": meta.model_id == champion,
                     "window": "shared test" if w is not None else "own test (saved)",
                     "average_precision": m.get("average_precision"), "roc_auc": m.get("roc_auc"),
                     "precision_at_k": m.get("precision_at_k"), "card_precision_at_k": m.get("card_precision_at_k"),
                     # saved metrics were computed at the cut of training time, which later tier changes move
                     "review_cut": meta.tiers.medium.threshold if w is not None else
                     m.get("threshold", meta.tiers.medium.threshold), "precision": m.get("precision"),
                     "recall": m.get("recall"), "alerts_per_day": m.get("alerts_per_day"),
                     "amount_caught_share": m.get("amount_caught_share"), "expected_cost": m.get("expected_cost"),
                     "created_at": meta.created_at})
    return pd.DataFrame(rows)
