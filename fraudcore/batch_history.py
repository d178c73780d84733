"""Earlier events as history for a batch file's point-in-time features, without scoring them.

A file of one day scored alone gives its first events no history: counts start at the file's first row, and a
customer's velocity or a terminal's fraud rate reads as new. ``add_history`` puts the events of another file (the
days before) beside the file's valid rows in the features' source view, with negative row keys, so the features
count them exactly as training would while the scored output, keyed by the file's own rows (0..n-1), leaves them
out. An event id in both files is the file's row: the history's copy is dropped.
"""

from __future__ import annotations

from pathlib import Path

from fraudcore.batch_rows import ROW
from fraudcore.errors import DataContractError, FraudcoreError
from fraudcore.loading import LoadedDataset, load_dataset, qident, typed_spec
from fraudcore.scoring import Scorer

__all__ = ["add_history"]

SOURCE = "__fc_valid"  # the view the features read (``batch_rows.prepare``); its file-only form is kept as FILE_ROWS
FILE_ROWS = "__fc_file_valid"


def add_history(ds: LoadedDataset, scorer: Scorer, path: Path, work: Path, *, delimiter: str | None = None,
                encoding: str = "utf-8", decimal: str = ".") -> int:
    """Add the events of ``path`` (CSV or Parquet with the model's feature columns) to the features' source view of
    ``ds`` as history; returns how many were added. Rows without an event id or a readable time are skipped."""
    config = scorer.feature_config
    if config is None:
        raise FraudcoreError(f"model {scorer.model_id!r} reads no entity history (its inputs are the file's columns), "
                             "so a history file changes nothing; score without it")
    hist = load_dataset(path, delimiter=delimiter, encoding=encoding, decimal=decimal)
    try:
        needed = [c for c in config.columns if c != config.label]
        missing = [c for c in needed if c not in hist.columns]
        if missing:
            raise DataContractError(f"the history file {Path(path).name} has no {', '.join(map(repr, missing))} "
                                    f"column(s); it needs the model's event id, time, amount and entity columns "
                                    f"({', '.join(needed)}), and the label for the fraud-rate features")
        spec = typed_spec(scorer.spec)
        columns = [*needed, *([config.label] if config.label and config.label in hist.columns else [])]
        typed = hist.typed_view(scorer.spec)
        valid = f"{qident(spec.event_id)} IS NOT NULL AND {qident(spec.event_time)} IS NOT NULL"
        hist.con.sql(f"SELECT {', '.join(qident(c) for c in columns)} FROM {typed} WHERE {valid}") \
            .write_parquet(str(work / "history.parquet"))
    finally:
        hist.con.close()
    key = qident(spec.event_id)
    ds.con.execute(f"CREATE OR REPLACE TABLE __fc_history AS SELECT * FROM read_parquet(?) WHERE CAST({key} AS "
                   f"VARCHAR) NOT IN (SELECT CAST({key} AS VARCHAR) FROM {SOURCE} WHERE {key} IS NOT NULL)",
                   [str(work / "history.parquet")])
    added = ds.con.execute("SELECT count(*) FROM __fc_history").fetchone()[0]
    ds.con.execute(f"ALTER VIEW {SOURCE} RENAME TO {FILE_ROWS}")
    ds.con.execute(f"CREATE VIEW {SOURCE} AS SELECT * FROM {FILE_ROWS} UNION ALL BY NAME "
                   f"SELECT -row_number() OVER () AS {ROW}, * FROM __fc_history")
    return int(added)
