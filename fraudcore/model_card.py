"""The model card: a readable Markdown page written beside every model, rendered from its metadata alone."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from fraudcore.errors import FraudcoreError
from fraudcore.features import FeatureConfig, feature_plan
from fraudcore.thresholds import ThresholdChoice

if TYPE_CHECKING:
    from fraudcore.metadata import ModelMetadata

RANDOM_SPLIT_WARNING = (
    "> **Warning: stratified random split.** Training, validation and test events are mixed in time, so the model "
    "was scored on days it also learned from. On time-ordered fraud data this overstates performance; retrain with "
    "a time split before trusting these numbers for decisions."
)
METRIC_ROWS = (
    ("Average precision (headline)", "average_precision"),
    ("ROC AUC", "roc_auc"),
    ("Threshold", "threshold"),
    ("Precision at threshold", "precision"),
    ("Recall at threshold", "recall"),
    ("F1 at threshold", "f1"),
    ("Alerts", "alerts"),
    ("Alerts per day", "alerts_per_day"),
    ("Precision@k per day", "precision_at_k"),
    ("Card precision@k per day", "card_precision_at_k"),
    ("Share of fraud amount caught", "amount_caught_share"),
    ("Expected cost", "expected_cost"),
    ("Brier score", "brier"),
    ("Events", "n"),
    ("Frauds", "n_fraud"),
    ("Fraud rate", "fraud_rate"),
)
TIER_ACTIONS = {"high": "block", "medium": "review"}


def _fmt(value: Any) -> str:
    """A cell value: '—' for missing, 4 significant digits for floats, thousands separators for ints."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return _cell(json.dumps(value, ensure_ascii=False))
    return _cell(str(value))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _data_section(meta: ModelMetadata) -> list[str]:
    data, split = meta.dataset, meta.split
    parts = [p for p in ("train", "valid", "test") if isinstance(split.get(p), dict)]
    whole = len(parts) == 3  # totals from the parts only when every part is described
    rows = sum(split[p].get("rows", 0) for p in parts) if whole else 0
    rate = data.get("fraud_rate", sum(split[p].get("frauds", 0) for p in parts) / rows if rows else None)
    starts = [split[p]["start"] for p in parts if whole and split[p].get("start")]
    ends = [split[p]["end"] for p in parts if whole and split[p].get("end")]
    span = data.get("time_range") or ([min(starts), max(ends)] if starts and ends else None)
    lines = ["## Data", "",
             f"- Source: `{_cell(str(data['source']))}` (fingerprint `{str(data['fingerprint'])[:16]}…`)",
             f"- Rows: {_fmt(data['n_rows'])}; fraud rate: {_fmt(rate)}",
             f"- Time range: {' to '.join(map(str, span)) if span else 'not recorded'}",
             f"- Split: **{split['kind']}**: {split['label']}", ""]
    if split["kind"] == "random":
        lines += [RANDOM_SPLIT_WARNING, ""]
    if parts:
        table = [[p, split[p].get("rows"), split[p].get("frauds"), split[p].get("start"), split[p].get("end")]
                 for p in parts]
        lines += [*_table(["Part", "Rows", "Frauds", "From", "To"], table), ""]
    final = split.get("final_fit")
    if isinstance(final, dict) and final.get("rows") == "train + valid":
        before = final.get("test_average_precision_before")
        lines += [f"- Final fit: the chosen configuration was trained again on train + validation "
                  f"({_fmt(final.get('n_rows'))} rows) with the rounds early stopping chose; the tiers were tuned on "
                  "validation before that, with the model trained on the training window alone"
                  + (f" (whose test AP was {_fmt(before)})" if before is not None else "")
                  + ". A refitted model's score scale can move: compare alerts per day on the test window with the "
                  "tiers' before relying on them.", ""]
    return lines


def _features_section(meta: ModelMetadata) -> list[str]:
    names, config = meta.feature_names, meta.features.get("config")
    matrix = meta.features.get("matrix") or {}
    lines = ["## Features", "", f"- {len(names)} model inputs; raw columns used: "
             + ", ".join(f"`{c}`" for c in meta.spec.feature_columns)]
    categorical = matrix.get("categorical") or {}
    if categorical:
        lines.append("- Categorical columns (levels frozen at training): " + ", ".join(f"`{c}` ({len(v)} levels)"
                                                                  for c, v in categorical.items()))
    if config:
        try:
            families = Counter(f.family for f in feature_plan(FeatureConfig.from_dict(config)))
            lines.append("- Point-in-time families: " + ", ".join(f"{k} ×{n}" for k, n in families.items()))
            entities = dict.fromkeys([*config.get("entities", []), *(config.get("risk_entities") or [])])
            lines.append("- History per entity: " + (", ".join(f"`{e}`" for e in entities) or "none"))
        except (FraudcoreError, TypeError, ValueError) as exc:
            lines.append(f"- Feature config could not be read back ({exc})")
    return [*lines, "", "Inputs in order: " + ", ".join(f"`{n}`" for n in names), ""]


def _metrics_section(meta: ModelMetadata) -> list[str]:
    valid, test = meta.metrics.get("valid") or {}, meta.metrics.get("test") or {}
    k = test.get("k") or valid.get("k")
    review_cost = test.get("review_cost") or valid.get("review_cost")
    rows = [[label + (f" (k={k})" if key.endswith("_at_k") and k else "")
             + (f" (review cost {review_cost:g}/alert)" if key == "expected_cost" and review_cost else ""),
             valid.get(key), test.get(key)] for label, key in METRIC_ROWS]
    return ["## Metrics", "", *_table(["Metric", "Validation", "Test"], rows), ""]


def _tier_row(name: str, choice: ThresholdChoice) -> list[Any]:
    return [name, TIER_ACTIONS[name], choice.objective, choice.target, choice.threshold, choice.score,
            choice.precision, choice.recall, choice.alerts, choice.alerts_per_day]


def _tiers_section(meta: ModelMetadata) -> list[str]:
    tiers = meta.tiers
    header = ["Tier", "Action", "Objective", "Target", "Threshold", "Achieved", "Precision", "Recall", "Alerts",
              "Alerts/day"]
    lines = ["## Decision tiers", "", "Score >= high blocks, >= medium goes to review, anything lower is allowed. "
             "Achieved values are on the validation window where the cuts were tuned.", "",
             *_table(header, [_tier_row("high", tiers.high), _tier_row("medium", tiers.medium)]), ""]
    lines += [f"- Note: {_cell(n)}" for n in tiers.notes] + ([""] if tiers.notes else [])
    if meta.tier_log:
        log = [[c.when.strftime("%Y-%m-%d %H:%M UTC"), c.who, c.why,
                "—" if c.old is None else f"{c.old.high.threshold:.4g} / {c.old.medium.threshold:.4g}",
                f"{c.new.high.threshold:.4g} / {c.new.medium.threshold:.4g}"] for c in meta.tier_log]
        lines += ["Tier changes (high / medium cuts):", "", *_table(["When", "Who", "Why", "Old", "New"], log), ""]
    return lines


def _caveats(meta: ModelMetadata) -> list[str]:
    delay = (meta.features.get("config") or {}).get("label_delay")
    test = meta.split.get("test") if isinstance(meta.split.get("test"), dict) else {}
    lines = ["## Caveats", "",
             f"- Label delay: fraud labels arrive late{f' (assumed {delay})' if delay else ''}; the newest days' "
             "metrics are provisional and risk features only use labels old enough to be known.",
             "- Drift: fraud patterns and customer behaviour change. Test metrics describe "
             f"{test.get('start', 'the test window')} to {test.get('end', 'its end')}; expect lower figures later. "
             "Watch score distributions and alert precision, and retrain when they move.",
             "- Precision@k divides by k every day (the daily review budget), as in the Fraud Detection Handbook."]
    if meta.split["kind"] == "random":
        lines.append("- The split is a stratified random split: the metrics above are optimistic.")
    return [*lines, ""]


def _search_line(search: dict) -> str:
    """One line about the hyper-parameter search: trials, why it stopped, best validation AP."""
    trials = search.get("trials")
    if not isinstance(trials, list):
        return f"- Search: `{_cell(json.dumps(search, ensure_ascii=False))[:300]}`"
    scores = [t["valid_ap"] for t in trials if isinstance(t, dict) and isinstance(t.get("valid_ap"), float | int)]
    best = f"; best validation AP {max(scores):.4g}" if scores else ""
    return f"- Search: {len(trials)} trials, stopped by {search.get('stopped_by', 'n/a')}{best}"


def render_card(meta: ModelMetadata) -> str:
    """The model card as Markdown."""
    search = _search_line(meta.search) if meta.search else ""
    lines = [f"# Model card: {meta.model_id}", "",
             f"- Algorithm: **{meta.algo}**",
             f"- Created: {meta.created_at:%Y-%m-%d %H:%M:%S} UTC" + (f" by {meta.created_by}" if meta.created_by
                                                                       else ""),
             f"- Metadata format: {meta.format_version}", "",
             "## Intended use", "",
             "Fraud scoring of card transactions. The score ranks events by fraud risk; decisions are made by the "
             "tiers below (block, review, allow), with analysts reviewing the review tier. Not for use on data with "
             "another schema or population without re-validation, nor as the sole basis for actions against a "
             "customer.", "",
             *_data_section(meta), *_features_section(meta),
             "## Parameters", "", *_table(["Parameter", "Value"], sorted(meta.params.items())), "",
             *([search, ""] if search else []),
             *_metrics_section(meta), *_tiers_section(meta), *_caveats(meta),
             "## Library versions", "", *_table(["Library", "Version"], sorted(meta.libraries.items())), "",
             "## Files", "", *_table(["File", "sha256"], sorted(meta.files.items())), ""]
    return "\n".join(lines)
