"""Labels from dispositions as a training dataset: one row per closed case (its latest disposition wins) with the raw
event fields, the model inputs its live score used, the label and when and by whom it was decided."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fraudcore.atomic import replacing
from fraudcore.review import DISPOSITIONS, FINAL, LAST_DISPOSITION_SQL, ReviewError
from fraudcore.store import Store
from fraudcore.store_inputs import INPUT_COLUMNS

__all__ = ["REVIEW_COLUMNS", "export_labels", "labelled_cases"]

REVIEW_COLUMNS = ("review_case_id", "review_disposition", "review_decided_at", "review_analyst", "review_model_id")

_LABELLED_SQL = f"""WITH last AS ({LAST_DISPOSITION_SQL}),
  closed AS (SELECT c.case_id, c.event_id, last.disposition, last.decided_at, last.decided_by
             FROM last JOIN cases c USING (case_id)
             WHERE c.status = 'closed' AND last.disposition IN ({', '.join(repr(d) for d in FINAL)})),
  live AS (SELECT event_id, model_id, {INPUT_COLUMNS} FROM scores
           WHERE NOT coalesce(shadow, false) AND event_id IN (SELECT event_id FROM closed)
           QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY scored_at DESC) = 1)
SELECT closed.*, e.event_time, e.raw, live.* EXCLUDE (event_id)
FROM closed JOIN events e USING (event_id) LEFT JOIN live USING (event_id) ORDER BY closed.decided_at, closed.case_id"""


def labelled_cases(store: Store, label_column: str | None = None) -> pd.DataFrame:
    """The export's rows: raw fields, model inputs not already among them, ``label_column`` (default: the store's
    label key, else 'label') = 1 for confirmed fraud / 0 for legitimate, and the review_* columns."""
    label = label_column or store.keys.label or "label"
    found = store.query(_LABELLED_SQL)
    raw = pd.DataFrame([json.loads(r) for r in found["raw"]], index=found.index)
    if store.keys.time_unit == "timestamp" and store.keys.event_time in raw.columns:
        raw[store.keys.event_time] = found["event_time"].to_numpy()
    inputs = pd.DataFrame(store.input_rows(found), index=found.index)
    inputs = inputs.drop(columns=[c for c in inputs.columns if c in raw.columns or c == label])
    review = pd.DataFrame({
        label: [DISPOSITIONS[d] for d in found["disposition"]],
        "review_case_id": found["case_id"].to_numpy(), "review_disposition": found["disposition"].to_numpy(),
        "review_decided_at": found["decided_at"].to_numpy(), "review_analyst": found["decided_by"].to_numpy(),
        "review_model_id": found["model_id"].to_numpy()}, index=found.index)
    frame = pd.concat([raw.drop(columns=[c for c in raw.columns if c in review.columns]), inputs, review], axis=1)
    frame[label] = frame[label].astype("int8")
    return _arrow_safe(frame.reset_index(drop=True))


def export_labels(store: Store, out_path: str | Path, label_column: str | None = None) -> dict:
    """Write ``labelled_cases`` as Parquet atomically (a temporary file renamed into place); returns counts."""
    out = Path(out_path)
    if out.suffix.lower() != ".parquet":
        raise ReviewError(f"labels are exported as Parquet; name the output file *.parquet (got {out.name})")
    frame = labelled_cases(store, label_column)
    if frame.empty:
        raise ReviewError("no case has been decided as confirmed fraud or legitimate yet, so there are no labels "
                          "to export; decide some cases in the review queue first")
    label = label_column or store.keys.label or "label"
    with replacing(out) as tmp:
        frame.to_parquet(tmp, index=False)
    return {"path": str(out), "rows": len(frame), "confirmed_fraud": int(frame[label].sum()),
            "legitimate": int((frame[label] == 0).sum()), "label_column": label, "columns": len(frame.columns)}


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing kinds (7 in one event, '7' in another) as text, so Parquet can hold them."""
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column].dropna()}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: None if v is None or v != v else str(v))
    return frame
