"""The model inputs of a batch, chunk by chunk in file order: each chunk's raw input columns (what the output keeps)
beside its typed model inputs with the point-in-time features.

Two sources give the same chunks. In memory (``array_chunks``): features over numpy arrays
(``features_arrays``), the raw columns streamed from DuckDB, rejected rows dropped on the way. On disk
(``sql_chunks``): DuckDB's window SQL writes every valid row's inputs and raw columns to a temp Parquet file, read
back in chunks; it is used when the rows would not fit the memory share or the array path declines the data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraudcore.batch_rows import ROW, RowLayout, rejected_rows
from fraudcore.errors import FraudcoreError
from fraudcore.features_arrays import event_arrays, point_in_time
from fraudcore.features_batch import build_features
from fraudcore.loading import LoadedDataset, qident
from fraudcore.scoring import Scorer

__all__ = ["Chunk", "Inputs", "array_chunks", "array_path_fits", "sql_chunks"]

MEMORY_SHARE = 0.5  # the in-memory path may use up to this share of the machine's memory
ROW_OVERHEAD = 96  # 8-byte words per row beside the features: keys, sorts, window bounds (1M rows x 72: 1.6 GB peak)


@dataclass
class Chunk:
    """Consecutive valid rows: their raw input columns (output order) and their model inputs."""

    raw: list[pa.Array | pa.ChunkedArray]
    inputs: pa.Table | pa.RecordBatch


@dataclass
class Inputs:
    """Chunks to score, how many rows they hold and the Arrow fields of the raw columns."""

    chunks: Iterator[Chunk]
    rows: int
    raw_fields: list[pa.Field]


def array_path_fits(rows: int, width: int) -> bool:
    """Whether ``rows`` rows of ``width`` float64 features (and their working arrays) fit the memory share."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return rows * (width + ROW_OVERHEAD) * 8 <= MEMORY_SHARE * memory


def array_chunks(ds: LoadedDataset, scorer: Scorer, layout: RowLayout, valid_rows: int,
                 chunk_rows: int) -> Inputs | None:
    """Chunks from the in-memory path, or None when it does not apply (too many rows, or data whose features only
    the SQL path reproduces exactly)."""
    config = scorer.feature_config
    if not array_path_fits(valid_rows, len(scorer.feature_names)):
        return None
    if config is None:
        rows, features = np.sort(ds.con.sql(f"SELECT {ROW} FROM __fc_valid").fetchnumpy()[ROW]), {}
    else:
        fetched = event_arrays(ds.con, "__fc_valid", config, keep=(ROW,))
        if fetched is None:
            return None
        arrays, kept = fetched
        rows = kept.column(ROW).to_numpy()
        if not bool(np.all(rows[1:] > rows[:-1])):  # into file order
            order = np.argsort(rows, kind="stable")
            arrays, rows = arrays.take(order), rows[order]
        features = point_in_time(arrays, config)
        if len(rows) and rows[0] < 0:  # history rows (``batch_history``) come first in row order: counted, not scored
            mine = np.searchsorted(rows, 0)
            rows, features = rows[mine:], {name: values[mine:] for name, values in features.items()}
    typed = [c for c in scorer.feature_names if c not in features]  # read from the file beside the raw columns
    columns = ", ".join(qident(c) for c in [ROW, *(layout.raw[c] for c in layout.originals), *typed])
    rejected = rejected_rows(ds)  # before the reader: it holds the connection until read out
    reader = ds.con.sql(f"SELECT {columns} FROM {layout.typed}").to_arrow_reader(chunk_rows)
    fields = [pa.field(c, reader.schema.field(layout.raw[c]).type) for c in layout.originals]
    chunks = _stream(reader, layout, typed, rejected, ds.n_rows, np.asarray(rows, dtype=np.int64), features)
    return Inputs(chunks, len(rows), fields)


def _stream(reader: pa.RecordBatchReader, layout: RowLayout, typed: list[str], rejected: np.ndarray, n_rows: int,
            rows: np.ndarray, features: dict[str, np.ndarray]) -> Iterator[Chunk]:
    """The file's batches without their rejected rows: raw columns, and typed inputs beside the same rows' features."""
    bad = np.zeros(n_rows, dtype=bool)
    bad[rejected] = True
    start = done = 0
    for batch in reader:
        ids = batch.column(ROW).to_numpy()
        if len(ids) and not (ids[0] == start and ids[-1] == start + len(ids) - 1 and np.all(np.diff(ids) == 1)):
            raise FraudcoreError(f"DuckDB returned rows {ids[0]}..{ids[-1]} out of file order (expected {start}); "
                                 "report this with the input file's format")
        start += len(ids)
        good = ~bad[ids]
        m = int(good.sum())
        if not np.array_equal(rows[done:done + m], ids[good]):
            raise FraudcoreError("the scored rows and the file rows fell out of step; report this with the input")
        if not m:
            continue
        batch = batch if m == len(ids) else batch.filter(pa.array(good))
        inputs = pa.table({**{c: batch.column(c) for c in typed},
                           **{name: pa.array(values[done:done + m]) for name, values in features.items()}})
        done += m
        yield Chunk([batch.column(layout.raw[c]) for c in layout.originals], inputs)


def sql_chunks(ds: LoadedDataset, scorer: Scorer, layout: RowLayout, work: Path, chunk_rows: int) -> Inputs:
    """Chunks from the on-disk path: DuckDB's window SQL over every valid row into a temp Parquet, read back."""
    path = work / "features.parquet"
    config = scorer.feature_config
    rel = build_features(ds.con, "__fc_valid", config, ordered=False) if config is not None else \
        ds.con.sql("SELECT * FROM __fc_valid")  # ordered by file row below
    rel.create_view("__fc_features", replace=True)
    inputs = ", ".join(f"f.{qident(c)}" for c in dict.fromkeys([ROW, *scorer.feature_names]))
    raw = ", ".join(f"r.{qident(c)} AS {qident(layout.raw[c])}" for c in layout.originals)
    ds.con.sql(f"SELECT {inputs}, {raw} FROM __fc_features f JOIN (SELECT rowid AS {ROW}, * FROM {ds.table}) r "
               f"ON f.{ROW} = r.{ROW} ORDER BY f.{ROW}") \
        .write_parquet(str(path), row_group_size=min(chunk_rows, 122_880))
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    fields = [pa.field(c, schema.field(layout.raw[c]).type) for c in layout.originals]
    chunks = (Chunk([b.column(layout.raw[c]) for c in layout.originals], b.select(scorer.feature_names))
              for b in source.iter_batches(batch_size=chunk_rows))
    return Inputs(chunks, source.metadata.num_rows, fields)
