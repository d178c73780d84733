"""Files of a batch run: Arrow batches appended to CSV or Parquet on a writer thread, temp names beside targets."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["Writer", "suffix", "temp_beside", "write_all"]

_DONE = None


class Writer:
    """``with Writer(path, fmt, schema) as write: write(batch)``: Parquet (one row group per batch) or CSV (header
    once). Batches are encoded on a thread of their own, so the caller scores the next chunk meanwhile; a failure
    there is raised by the next ``write`` or on leaving the block."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema, backlog: int = 2) -> None:
        self.path, self.fmt, self.schema = path, fmt, schema
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=backlog)
        self._error: BaseException | None = None
        self.busy = (0.0, 0.0)  # wall and CPU seconds the writer thread spent encoding
        self._thread = threading.Thread(target=self._drain, name="fraudcore-batch-writer", daemon=True)

    def __enter__(self) -> Writer:
        sink = pq.ParquetWriter(self.path, self.schema) if self.fmt == "parquet" else \
            pacsv.CSVWriter(self.path, self.schema)
        self._sink = sink
        self._thread.start()
        return self

    def __call__(self, batch: pa.RecordBatch) -> None:
        """Queue one batch (blocks while ``backlog`` batches wait)."""
        self._raise()
        self._queue.put(batch)

    def __exit__(self, *exc: object) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        self._sink.close()
        if exc[0] is None:
            self._raise()

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not _DONE:
            if self._error is None:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    self._sink.write_batch(batch)
                except BaseException as error:  # handed to the caller's thread
                    self._error = error
                self.busy = (self.busy[0] + time.perf_counter() - wall, self.busy[1] + time.thread_time() - cpu)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def write_all(path: Path, fmt: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Write every batch of ``batches`` to ``path``."""
    with Writer(path, fmt, schema) as write:
        for batch in batches:
            write(batch)


def suffix(fmt: str) -> str:
    """The file suffix of a format."""
    return "parquet" if fmt == "parquet" else "csv"


def temp_beside(path: Path) -> Path:
    """A hidden temp name in the folder of ``path`` (renamed onto it once complete)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
