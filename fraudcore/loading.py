"""Load CSV or Parquet (from a path or uploaded bytes) into DuckDB, with clear errors for unreadable files.

Data is materialised once into a DuckDB table (which spills to disk beyond memory), so validation, profiling and
features run as SQL and never need the whole file in pandas. ``rowid + 1`` is the 1-based data row of the file.
"""

from __future__ import annotations

import csv
import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from fraudcore.errors import DataContractError
from fraudcore.spec import DatasetSpec

TABLE = "events"
TYPED_VIEW = "events_typed"
ROW_ID = "_row"  # the event id the typed view adds (the 1-based file row) when the spec names none
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
DELIMITER_CANDIDATES = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "latin-1", "utf-16")
DECIMALS = (".", ",")
# DuckDB's own words for undecodable bytes; its sniffer errors also mention encodings, but only as a possible fix
ENCODING_ERROR = re.compile(r"invalid unicode|not [\w-]+ encoded", re.IGNORECASE)
RAGGED_EXAMPLES = 5


def qident(name: str) -> str:
    """Quote a column name as a DuckDB identifier (names come from files; values are always bound)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class LoadedDataset:
    """A dataset held in a DuckDB table: its source, row count and column types."""

    con: duckdb.DuckDBPyConnection
    source: str
    format: str
    n_rows: int
    columns: dict[str, str] = field(default_factory=dict)
    table: str = TABLE

    def frame(self, columns: list[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        """Rows in file order as pandas (all columns unless given; all rows unless ``limit``)."""
        cols = ", ".join(qident(c) for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {self.table} ORDER BY rowid"
        if limit is not None:
            return self.con.execute(sql + " LIMIT ?", [int(limit)]).df()
        return self.con.execute(sql).df()

    def typed_view(self, spec: DatasetSpec) -> str:
        """Create (or replace) a view with time as TIMESTAMP, label as INTEGER, amount as DOUBLE; return its name.

        ``typed_spec(spec)`` describes the view: seconds become timestamps and a missing event id becomes ``_row``.
        """
        exprs = []
        for col in self.columns:
            q = qident(col)
            if col == spec.event_time:
                exprs.append(_time_expr(q, self.columns[col], spec) + f" AS {q}")
            elif col == spec.label:
                exprs.append(f"TRY_CAST({q} AS INTEGER) AS {q}")
            elif col == spec.amount or col in spec.numeric:
                exprs.append(f"TRY_CAST(trim(CAST({q} AS VARCHAR)) AS DOUBLE) AS {q}"
                             if self.columns[col].startswith("VARCHAR") else f"CAST({q} AS DOUBLE) AS {q}")
            elif col in spec.categorical:
                exprs.append(f"CAST({q} AS VARCHAR) AS {q}")
            else:
                exprs.append(q)
        if spec.event_id is None:
            exprs.append(f"rowid + 1 AS {ROW_ID}")
        self.con.execute(f"CREATE OR REPLACE VIEW {TYPED_VIEW} AS SELECT {', '.join(exprs)} FROM {self.table}")
        return TYPED_VIEW


def typed_spec(spec: DatasetSpec) -> DatasetSpec:
    """The spec of ``LoadedDataset.typed_view``: time is a timestamp and there is always an event id."""
    return spec.model_copy(update={"time_unit": "timestamp", "event_id": spec.event_id or ROW_ID})


def _time_expr(quoted: str, duck_type: str, spec: DatasetSpec) -> str:
    if spec.time_unit == "seconds":
        origin = spec.time_origin.strftime("%Y-%m-%d %H:%M:%S")
        # origin is our own formatted datetime, not user text
        return f"(TIMESTAMP '{origin}' + to_microseconds(CAST(ROUND(TRY_CAST({quoted} AS DOUBLE) * 1e6) AS BIGINT)))"
    if duck_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({quoted} AS TIMESTAMP)"
    return f"TRY_CAST({quoted} AS TIMESTAMP)"


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET temp_directory = ?", [str(Path(tempfile.gettempdir()) / "fraudcore_duckdb_spill")])
    return con


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    return "csv"


def _first_line(path: Path, encoding: str) -> str:
    with path.open("rb") as fh:
        raw = fh.readline(64_000)
    return raw.decode(encoding if encoding != "utf-8" else "utf-8-sig", errors="replace").rstrip("\r\n")


def _likely_delimiter(header: str) -> str | None:
    counts = {d: header.count(d) for d in DELIMITER_CANDIDATES}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def _show(delim: str) -> str:
    return "tab" if delim == "\t" else repr(delim)


def _encoding_problem(path: Path, message: str, encoding: str) -> DataContractError:
    line = re.search(r"Line: (\d+)", message)
    where = f" (first bad bytes on line {line.group(1)})" if line else ""
    with path.open("rb") as fh:
        head = fh.read(2)
    hint = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "latin-1"
    return DataContractError(
        f"{path.name} is not valid {encoding}{where}. Re-save it as UTF-8 (UTF-8 with BOM is fine), "
        f"or load it with encoding={hint!r}."
    )


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path, delimiter: str | None, encoding: str,
              decimal: str = ".") -> None:
    """Read a CSV into the table; a column whose type guess fails past the sniffed sample is re-read as text.

    That way a stray 'n/a' on row 30,000 of a numeric column becomes a validation problem with its row numbers
    ("numbers stored as text") instead of a crash.
    """
    if encoding not in ENCODINGS:
        raise DataContractError(f"encoding {encoding!r} is not supported; use one of {', '.join(ENCODINGS)}")
    as_text: dict[str, str] = {}
    while True:
        options = "header = true, encoding = ?, decimal_separator = ?" + (", delim = ?" if delimiter else "")
        params: list = [str(path), encoding, decimal] + ([delimiter] if delimiter else [])
        if as_text:
            options += ", types = ?"
            params.append(dict(as_text))
        try:
            con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM read_csv(?, {options})", params)
            return
        except duckdb.ConversionException as exc:
            column = re.search(r'converting column "(.+?)"', str(exc))
            if not column or column.group(1) in as_text:
                raise DataContractError(f"{path.name}: {str(exc).splitlines()[0]}; fix that value") from exc
            as_text[column.group(1)] = "VARCHAR"
        except duckdb.InvalidInputException as exc:
            raise _unsplittable(path, str(exc), delimiter, encoding) from exc


def _unsplittable(path: Path, text: str, delimiter: str | None, encoding: str) -> DataContractError:
    if ENCODING_ERROR.search(text):
        return _encoding_problem(path, text, encoding)
    guess = _likely_delimiter(_first_line(path, encoding))
    ragged = _ragged_rows(path, delimiter or guess, encoding)
    if ragged:
        return ragged
    hint = f" The header line looks {_show(guess)}-separated." if guess else ""
    return DataContractError(
        f"{path.name} could not be split into columns"
        f"{' with delimiter ' + _show(delimiter) if delimiter else ''}.{hint} "
        "Check the delimiter (leave it empty to auto-detect) and that every row has the same number of fields."
    )


def _ragged_rows(path: Path, delimiter: str | None, encoding: str) -> DataContractError | None:
    """Name the rows whose number of fields differs from the header's, or None if every row fits.

    One such row makes DuckDB's sniffer give up (or settle on one column) with an error that names no row, so the file
    is read again with ``store_rejects``, which skips those rows and records their line numbers.
    """
    if delimiter is None:
        return None
    con = duckdb.connect(":memory:")
    try:
        con.execute("SELECT count(*) FROM read_csv(?, header = true, delim = ?, encoding = ?, all_varchar = true, "
                    "store_rejects = true)", [str(path), delimiter, encoding]).fetchall()
        rejects = con.execute("SELECT line - 1, any_value(csv_line) FROM reject_errors WHERE error_type IN "
                              "('TOO MANY COLUMNS', 'MISSING COLUMNS') GROUP BY line ORDER BY line").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if not rejects:
        return None
    n_header = len(_fields(_first_line(path, encoding), delimiter))
    examples = "; ".join(f"row {row}: {len(_fields(line, delimiter))} fields, {line[:80]!r}"
                         for row, line in rejects[:RAGGED_EXAMPLES])
    return DataContractError(
        f"{path.name}: {len(rejects)} row(s) do not have the header's {n_header} fields separated by "
        f"{_show(delimiter)} ({examples}). Quote fields that contain {_show(delimiter)}, or remove the extra (or add "
        "the missing) separators in those rows, then load the file again."
    )


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _check_split(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, delimiter: str | None) -> None:
    """A read that gave one column, or no data rows, often means rows of different widths misled the sniffer."""
    if con.execute(f"SELECT count(*) = 0 FROM {TABLE}").fetchone()[0]:
        ragged = _ragged_rows(path, delimiter or _likely_delimiter(_first_line(path, encoding)), encoding)
        if ragged:
            raise ragged
        return
    cols = [r[0] for r in con.execute(f"DESCRIBE {TABLE}").fetchall()]
    if len(cols) != 1:
        return
    guess = _likely_delimiter(cols[0])
    if guess and guess != delimiter:
        ragged = _ragged_rows(path, guess, encoding)
        if ragged:
            raise ragged
        raise DataContractError(
            f"{path.name} was read as a single column named {cols[0][:60]!r}: the delimiter looks like {_show(guess)}, "
            f"not {_show(delimiter) if delimiter else 'what was detected'}. Pass delimiter={guess!r}, or fix rows "
            "that have a different number of fields."
        )


def load_dataset(path: str | Path, *, delimiter: str | None = None, encoding: str = "utf-8",
                 decimal: str = ".") -> LoadedDataset:
    """Load a CSV or Parquet file into DuckDB; raise DataContractError saying what is wrong and what to do.

    ``decimal=','`` reads numbers written like '12,50' (a European export); it is never guessed, because '1,250' could
    be either, and it needs a delimiter other than ','.
    """
    path = Path(path)
    if not path.exists():
        raise DataContractError(f"{path} does not exist; check the path or upload the file")
    if path.stat().st_size == 0:
        raise DataContractError(f"{path.name} is empty (0 bytes); export the data again")
    con = _connect()
    fmt = _detect_format(path)
    if fmt == "parquet":
        try:
            con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM read_parquet(?)", [str(path)])
        except duckdb.Error as exc:
            raise DataContractError(f"{path.name} is not a readable Parquet file ({exc}); export it again") from exc
    else:
        _read_csv(con, path, delimiter, encoding, _decimal(path, decimal, delimiter, encoding))
        _check_split(con, path, encoding, delimiter)
    return _describe(con, str(path), fmt)


def _decimal(path: Path, decimal: str, delimiter: str | None, encoding: str) -> str:
    if decimal not in DECIMALS:
        raise DataContractError(f"decimal separator {decimal!r} is not supported; use '.' or ','")
    if decimal == "," and (delimiter or _likely_delimiter(_first_line(path, encoding))) == ",":
        raise DataContractError(f"{path.name} is separated by ',', so ',' cannot also be its decimal separator; "
                                "re-export it with '.' decimals, or with ';' between fields")
    return decimal


def _describe(con: duckdb.DuckDBPyConnection, source: str, fmt: str) -> LoadedDataset:
    columns = {name: dtype for name, dtype, *_ in con.execute(f"DESCRIBE {TABLE}").fetchall()}
    n_rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    if n_rows == 0:
        raise DataContractError(
            f"{Path(source).name} has columns ({', '.join(list(columns)[:8])}) but no data rows; export it again"
        )
    return LoadedDataset(con=con, source=source, format=fmt, n_rows=n_rows, columns=columns)


def save_upload(data: bytes, filename: str, folder: Path) -> Path:
    """Write uploaded bytes under ``folder`` with a content-hash prefix (same bytes -> same file); return the path."""
    if not data:
        raise DataContractError(f"{filename} is empty (0 bytes); export the data again")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name)[-80:] or "upload.csv"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{hashlib.sha256(data).hexdigest()[:12]}_{safe}"
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def load_bytes(data: bytes, filename: str, folder: Path, **options) -> LoadedDataset:
    """Load uploaded bytes: saved under ``folder`` (so the dataset can be referenced later), then read by DuckDB."""
    return load_dataset(save_upload(data, filename, folder), **options)


def load_frame(df: pd.DataFrame, source: str = "<dataframe>") -> LoadedDataset:
    """Load an in-memory DataFrame (tests, simulator output) the same way as a file."""
    con = _connect()
    con.register("_frame", df)
    con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM _frame")
    con.unregister("_frame")
    return _describe(con, source, "frame")
