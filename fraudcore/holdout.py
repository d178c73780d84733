"""Validation-window scores kept with a refitted model: the scores its tiers were tuned on.

When training refits the chosen configuration on train + validation (``TrainRequest.refit``), the saved model has
seen the validation window, so re-scoring that window with it is in-sample (on a 20k-row simulation the validation
AP went from 0.24 out of sample to 0.93). The out-of-sample scores of the model trained on the training window
alone are saved beside it (``holdout.json``: float64 values, base64, in the window's row order) so that re-tuning
the tiers later (the Compare page) starts from the same scores the training run tuned them on.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from fraudcore.config import get_paths
from fraudcore.errors import ModelArtifactError
from fraudcore.metadata import ModelMetadata

HOLDOUT_FILE = "holdout.json"
HOLDOUT_VERSION = 1


def holdout_json(scores: np.ndarray) -> str:
    """The validation window's out-of-sample scores as the text of ``holdout.json``."""
    values = np.ascontiguousarray(scores, dtype="<f8")
    return json.dumps({"version": HOLDOUT_VERSION, "window": "valid", "rows": int(values.size), "dtype": "<f8",
                       "scores": base64.b64encode(values.tobytes()).decode("ascii")})


def load_holdout(meta: ModelMetadata, root: Path | str | None = None) -> np.ndarray | None:
    """The saved out-of-sample validation scores of a refitted model, given its metadata as ``load_model`` or
    ``load_metadata`` verified it (every file's hash); None for a model trained on the training window alone
    (re-scoring its validation window is out of sample already)."""
    if HOLDOUT_FILE not in meta.files:
        return None
    model_id = meta.model_id
    folder = (Path(root) if root is not None else get_paths().artifacts) / model_id
    try:
        raw = json.loads((folder / HOLDOUT_FILE).read_text(encoding="utf-8"))
        if raw.get("version") != HOLDOUT_VERSION or raw.get("dtype") != "<f8":
            raise ValueError(f"version {raw.get('version')!r}, dtype {raw.get('dtype')!r}")
        scores = np.frombuffer(base64.b64decode(raw["scores"], validate=True), dtype="<f8")
        if scores.size != raw["rows"]:
            raise ValueError(f"{scores.size} scores for {raw['rows']} rows")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelArtifactError(f"model {model_id!r}: {HOLDOUT_FILE} cannot be read ({exc}); retrain it") from exc
    return scores.astype(float)
