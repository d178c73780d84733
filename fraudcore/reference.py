"""Reference statistics of a model's training data, saved with the model, and the drift measures against them.

Per model input: bins from training quantiles (numeric: up to 10 right-closed bins ``(e[i-1], e[i]]``; categorical:
the 20 most frequent categories plus ``(other)``), each with its share, a ``(missing)`` bin, mean / std / missing
share, and a 100-point quantile sketch for the two-sample KS test. The score reference is the model's scores on its
validation and test windows, or on its test window alone when it was refitted on train + validation (out of sample,
like live scores). Everything fits in a few tens of KB of JSON.

PSI = sum over bins of (live - ref) * ln(live / ref), each share floored at ``PSI_EPSILON`` = 1e-4 so that an empty
bin counts as a share of 0.01 % (never a division by zero). KS is ``scipy.stats.ks_2samp`` between the sketch (the
reference quantiles at probabilities (i + 0.5) / 100, a stratified 100-value sample) and the live values; the
statistic is within about 0.01 of the full-sample one, and the p-value is that of a 100-value reference sample.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError, ModelArtifactError

REFERENCE_FILE = "reference.json"
REFERENCE_VERSION = 1
PSI_EPSILON = 1e-4
N_BINS = 10
SKETCH_POINTS = 100
TOP_CATEGORIES = 20
OTHER = "(other)"
MISSING = "(missing)"
DIGITS = 6  # significant digits kept for edges and sketches


class FeatureReference(BaseModel):
    """One input's training distribution: bins and their shares (the last bin is ``(missing)``), summary numbers
    and, for numbers, a quantile sketch."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["numeric", "categorical"]
    n: int = Field(description="training rows")
    missing_share: float
    edges: list[float] = Field(default_factory=list, description="numeric: interior right-closed bin edges")
    categories: list[str] = Field(default_factory=list, description="categorical: the top categories, in order")
    shares: list[float] = Field(description="share per bin, (missing) last; sums to 1")
    mean: float | None = None
    std: float | None = None
    sketch: list[float] = Field(default_factory=list, description="numeric: quantiles at (i + 0.5) / 100")

    @property
    def labels(self) -> list[str]:
        """Readable bin names, in the order of ``shares``."""
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        e = [f"{v:.4g}" for v in self.edges]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(e)]
        return [f"<= {e[0]}", *inner, f"> {e[-1]}", MISSING] if e else ["all", MISSING]

    def live_shares(self, values: pd.Series | np.ndarray | Sequence) -> np.ndarray:
        """Shares of ``values`` in this reference's bins (same binning as at training time)."""
        counts = bin_counts(self, values)
        total = counts.sum()
        return counts / total if total else np.full(counts.shape, np.nan)


class ModelReference(BaseModel):
    """Reference statistics of one model: its inputs on the training window and its out-of-sample scores."""

    model_config = ConfigDict(extra="forbid")

    version: int = REFERENCE_VERSION
    rows: int
    features: dict[str, FeatureReference]
    score: FeatureReference
    score_source: str = "validation and test windows"

    def to_json(self) -> str:
        """Compact strict JSON."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ModelReference:
        """Parse ``to_json`` output, refusing an unknown version."""
        raw = json.loads(text)
        if raw.get("version") != REFERENCE_VERSION:
            raise ModelArtifactError(f"{REFERENCE_FILE} has version {raw.get('version')!r}; this fraudcore reads "
                                     f"version {REFERENCE_VERSION}: retrain the model")
        return cls.model_validate(raw)


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{DIGITS}g}") for v in np.asarray(values, dtype=float)]


def numeric_reference(values: pd.Series | np.ndarray | Sequence, n_bins: int = N_BINS) -> FeatureReference:
    """Reference of a numeric input: edges at the training quantiles 1/n_bins .. (n_bins-1)/n_bins (distinct
    observed values), shares per bin, mean, std, missing share and the sketch."""
    x = as_numbers(values)
    n = x.size
    if n == 0:
        raise FraudcoreError("a reference needs at least one training value")
    present = x[np.isfinite(x)]
    edges: list[float] = []
    sketch: list[float] = []
    if present.size:
        probs = np.arange(1, n_bins) / n_bins
        edges = sorted(set(_round(np.quantile(present, probs, method="inverted_cdf"))))
        sketch = _round(np.quantile(present, (np.arange(SKETCH_POINTS) + 0.5) / SKETCH_POINTS,
                                    method="inverted_cdf"))
    ref = FeatureReference(kind="numeric", n=n, missing_share=float(1 - present.size / n), edges=edges,
                           shares=[0.0] * (len(edges) + 2 if edges else 2),
                           mean=float(present.mean()) if present.size else None,
                           std=float(present.std()) if present.size else None, sketch=sketch)
    return ref.model_copy(update={"shares": [round(float(s), 8) for s in ref.live_shares(x)]})


def categorical_reference(values: pd.Series | np.ndarray | Sequence, top: int = TOP_CATEGORIES) -> FeatureReference:
    """Reference of a categorical input: the ``top`` most frequent categories (ties by name), other and missing."""
    text = _as_text(values)
    n = len(text)
    if n == 0:
        raise FraudcoreError("a reference needs at least one training value")
    counts = text.dropna().value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    ref = FeatureReference(kind="categorical", n=n, missing_share=float(text.isna().mean()),
                           categories=[str(k) for k, _ in ranked], shares=[0.0] * (min(top, len(counts)) + 2))
    return ref.model_copy(update={"shares": [round(float(s), 8) for s in ref.live_shares(text)]})


def build_reference(inputs: pd.DataFrame, scores: np.ndarray, categorical: Sequence[str] = (),
                    n_bins: int = N_BINS) -> ModelReference:
    """The reference of a model: each column of ``inputs`` (training rows) and the out-of-sample ``scores``."""
    cats = set(categorical)
    features = {str(c): categorical_reference(inputs[c]) if c in cats or not _is_numeric(inputs[c])
                else numeric_reference(inputs[c], n_bins) for c in inputs.columns}
    return ModelReference(rows=len(inputs), features=features, score=numeric_reference(scores, n_bins))


def bin_counts(ref: FeatureReference, values: pd.Series | np.ndarray | Sequence) -> np.ndarray:
    """Counts of ``values`` per bin of ``ref`` (the last bin counts missing values)."""
    if ref.kind == "categorical":
        text = _as_text(values)
        position = {c: i for i, c in enumerate(ref.categories)}
        codes = np.array([len(ref.categories) + 1 if v is None else position.get(v, len(ref.categories))
                          for v in text.tolist()], dtype=np.int64)
        return np.bincount(codes, minlength=len(ref.categories) + 2).astype(float)
    x = as_numbers(values)
    missing = ~np.isfinite(x)
    n_value_bins = len(ref.edges) + 1 if ref.edges else 1
    codes = np.searchsorted(np.asarray(ref.edges, dtype=float), x[~missing], side="left") if ref.edges else \
        np.zeros(int((~missing).sum()), dtype=np.int64)
    counts = np.bincount(codes, minlength=n_value_bins).astype(float)
    return np.r_[counts, float(missing.sum())]


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
        epsilon: float = PSI_EPSILON) -> float:
    """Population stability index: sum((a - e) * ln(a / e)) with both shares floored at ``epsilon``."""
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    if e.shape != a.shape:
        raise FraudcoreError(f"PSI needs the same bins on both sides; got {e.size} and {a.size} shares")
    return float(np.sum((a - e) * np.log(a / e)))


def ks(ref: FeatureReference, values: pd.Series | np.ndarray | Sequence) -> tuple[float | None, float | None]:
    """Two-sample KS (statistic, p-value) of the live numbers against the reference sketch; None when either side
    has no numbers or the input is categorical."""
    if ref.kind != "numeric" or not ref.sketch:
        return None, None
    x = as_numbers(values)
    x = x[np.isfinite(x)]
    if not x.size:
        return None, None
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(ref.sketch, dtype=float), x)
    return float(result.statistic), float(result.pvalue)


def load_reference(model_id: str, root: Path | str | None = None) -> ModelReference:
    """The saved reference of a model (its files verified first); ModelArtifactError when it has none."""
    from fraudcore.registry import load_metadata

    meta = load_metadata(model_id, root)
    folder = (Path(root) if root is not None else get_paths().artifacts) / model_id
    if REFERENCE_FILE not in meta.files:
        raise ModelArtifactError(f"model {model_id!r} has no reference statistics ({REFERENCE_FILE}); it was "
                                 "trained before drift monitoring existed: retrain it to monitor drift")
    return ModelReference.from_json((folder / REFERENCE_FILE).read_text(encoding="utf-8"))


def as_numbers(values: pd.Series | np.ndarray | Sequence) -> np.ndarray:
    """Values as floats, NaN where missing or not a number (text from JSON is parsed)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values
    if isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values) and \
            not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(dtype=float)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column)


def _as_text(values: pd.Series | np.ndarray | Sequence) -> pd.Series:
    """Values as text with None for missing (integers without '.0')."""
    series = pd.Series(np.asarray(values, dtype=object))
    out = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else
           str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in series.tolist()]
    return pd.Series(out, dtype=object)
