"""The built-in transaction simulator: the demo world, its events as a DataFrame, and exact continuation.

Day ``d``'s events depend only on ``(World, d)``, so ``generate(rows=N)`` followed by ``continue_from(..., rows=M)``
equals ``generate(rows=N + M)`` row for row. A cursor ``(day, index)`` names the next event to produce.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraudcore.errors import DataContractError
from fraudcore.simulate_fraud import SCENARIOS, compromised_terminals, fraud_day
from fraudcore.simulate_world import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    SECONDS_PER_DAY,
    DayEvents,
    World,
    legit_day,
    population,
    world_for_rows,
)

__all__ = [
    "COLUMNS", "SCENARIOS", "Cursor", "World", "bench_generate", "compromised_terminals", "continue_from",
    "cursor_after", "customers", "default_world", "generate", "generate_days", "generate_to_file", "read_world",
    "summary",
    "world_for_rows", "write_parquet",
]

COLUMNS = ("event_id", "event_time", "customer_id", "card_id", "terminal_id", "merchant_category", "amount",
           "channel", "country", "device_id", "is_fraud", "fraud_scenario")
IDS_PER_DAY = 10_000_000  # event_id = day * IDS_PER_DAY + position in the day
DEFAULT_WORLD_ROWS, DEFAULT_WORLD_DAYS = 250_000, 60  # the demo world: 250k events take about 60 days
META_WORLD, META_CURSOR = b"fraudcore.simulator.world", b"fraudcore.simulator.cursor"
MAX_EMPTY_DAYS = 1_000
Progress = Callable[[float, str], None]


class Cursor(NamedTuple):
    """The next event to produce: position ``index`` within ``day`` (sorted by time)."""

    day: int
    index: int


def default_world(seed: int = 7) -> World:
    """The demo world (about 4,200 events a day); the same whatever the number of rows asked for."""
    return world_for_rows(DEFAULT_WORLD_ROWS, seed=seed, days=DEFAULT_WORLD_DAYS)


def _day(world: World, day: int) -> DayEvents:
    """All of ``day``'s events, sorted by time."""
    if day < 0:
        raise ValueError(f"days are counted from 0 (the world's start); got day {day}")
    pop = population(world)
    events = fraud_day(world, pop, day, legit_day(world, pop, day))
    return events.take(np.argsort(events.seconds, kind="stable"))


def _strings(codes: np.ndarray, labels: tuple[str, ...] | np.ndarray) -> pd.Series:
    """A pandas ``str`` column from integer codes (negative codes become missing)."""
    mask = codes < 0
    indices = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask)
    dictionary = pa.array(np.asarray(labels, dtype=object), type=pa.string())
    return pd.Series(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string()).to_pandas())


def _device_ids(device: np.ndarray) -> pd.Series:
    """Opaque device ids: a bijection of the device number, so the id does not reveal its kind."""
    unique, codes = np.unique(device, return_inverse=True)
    scrambled = (unique.astype(np.uint64) * np.uint64(2_654_435_761)) % np.uint64(2**32)
    labels = np.array([f"dev-{int(v):08x}" for v in scrambled], dtype=object)
    return _strings(np.where(device < 0, -1, codes), labels)


def _frame(world: World, days: np.ndarray, index: np.ndarray, ev: DayEvents) -> pd.DataFrame:
    """The public columns for events ``ev`` of ``days`` at positions ``index`` within their day."""
    pop = population(world)
    offset = days.astype(np.int64) * SECONDS_PER_DAY + ev.seconds
    times = np.datetime64(world.start, "us") + offset.astype("timedelta64[s]")
    scenario = ev.scenario.astype(np.int8)
    frame = {
        "event_id": days.astype(np.int64) * IDS_PER_DAY + index,
        "event_time": times.astype("datetime64[us]"),
        "customer_id": ev.customer.astype(np.int64),
        "card_id": ev.card.astype(np.int64),
        "terminal_id": ev.terminal.astype(np.int64),
        "merchant_category": _strings(pop.category[ev.terminal], CATEGORIES),
        "amount": ev.amount.astype(np.float64),
        "channel": _strings((ev.terminal >= world.n_terminals).astype(np.int8), CHANNELS),
        "country": _strings(pop.country[ev.terminal], COUNTRIES),
        "device_id": _device_ids(ev.device),
        "is_fraud": (scenario > 0).astype(np.int8),
        "fraud_scenario": scenario,
    }
    return pd.DataFrame(frame)


def _run(world: World, cursor: Cursor, rows: int | None, days: int | None,
         progress: Progress | None = None) -> tuple[pd.DataFrame, Cursor]:
    """Events from ``cursor`` until ``rows`` events or the end of ``days`` days, whichever comes first."""
    if rows is None and days is None:
        raise ValueError("say how much to generate: rows=N or days=D")
    if (rows is not None and rows < 0) or (days is not None and days < 0):
        raise ValueError(f"rows and days must be >= 0, got rows={rows}, days={days}")
    day, skip = cursor
    events = _day(world, day)
    if skip > 0 and skip >= len(events):  # the cursor sits at the end of a finished day
        day, skip, events = day + 1, 0, _day(world, day + 1)
    first_day, end_day = day, None if days is None else day + days
    parts, day_ids, positions, total = [], [], [], 0

    def wanted() -> bool:
        return (rows is None or total < rows) and (end_day is None or day < end_day)

    while wanted():
        take = len(events) - skip if rows is None else min(len(events) - skip, rows - total)
        parts.append(events.take(slice(skip, skip + take)))
        day_ids.append(np.full(take, day, dtype=np.int64))
        positions.append(np.arange(skip, skip + take, dtype=np.int64))
        total, skip = total + take, skip + take
        if progress is not None:
            done = total / rows if rows else (day + 1 - first_day) / max(days or 1, 1)
            progress(min(done, 1.0), f"day {day}: {total:,} events")
        if skip >= len(events):
            day, skip = day + 1, 0
            if day - first_day > MAX_EMPTY_DAYS and total == 0:
                raise ValueError(f"the world {world} produced no events in {MAX_EMPTY_DAYS} days; add customers")
            if wanted():
                events = _day(world, day)
    ev = DayEvents.concat(parts) if parts else events.take(slice(0, 0))
    ids = np.concatenate(day_ids) if parts else np.zeros(0, np.int64)
    index = np.concatenate(positions) if parts else np.zeros(0, np.int64)
    return _frame(world, ids, index, ev), Cursor(day, skip)


def generate_days(world: World, first_day: int, n_days: int) -> pd.DataFrame:
    """All events of days ``[first_day, first_day + n_days)``."""
    return _run(world, Cursor(first_day, 0), None, n_days)[0]


def generate(rows: int | None = None, days: int | None = None, seed: int = 7,
             progress: Progress | None = None, world: World | None = None) -> pd.DataFrame:
    """The first ``rows`` events (exactly) or first ``days`` days of ``world`` (default: the demo world for seed)."""
    return _run(world or default_world(seed), Cursor(0, 0), rows, days, progress)[0]


def cursor_after(df: pd.DataFrame) -> Cursor:
    """The cursor just past the last event of ``df`` (a frame this module produced)."""
    if df.empty:
        return Cursor(0, 0)
    last = int(df["event_id"].iloc[-1])
    return Cursor(last // IDS_PER_DAY, last % IDS_PER_DAY + 1)


def write_parquet(df: pd.DataFrame, path: str | Path, world: World, cursor: Cursor | None = None) -> Path:
    """Write ``df`` with the world and the next-event cursor in the Parquet key-value metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    cursor = cursor or cursor_after(df)
    meta = {**(table.schema.metadata or {}), META_WORLD: json.dumps(world.to_dict()).encode(),
            META_CURSOR: json.dumps(list(cursor)).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")
    return path


def read_world(path: str | Path) -> tuple[World, Cursor]:
    """The world and next-event cursor stored by ``write_parquet``."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise DataContractError(f"cannot read {path} as Parquet ({exc}); pass a file written by the simulator") from exc
    if META_WORLD not in meta or META_CURSOR not in meta:
        raise DataContractError(f"{path} has no simulator metadata; only files from `fraudcore generate` can be "
                                "continued (regenerate it with `python -m fraudcore generate`)")
    world = World.from_dict(json.loads(meta[META_WORLD]))
    return world, Cursor(*json.loads(meta[META_CURSOR]))


def continue_from(source: str | Path | tuple[World, Cursor], rows: int | None = None, days: int | None = None,
                  progress: Progress | None = None) -> pd.DataFrame:
    """The same world forward from a simulator file or a (world, cursor) pair: ``rows`` events or ``days`` days."""
    world, cursor = read_world(source) if isinstance(source, (str, Path)) else source
    return _run(world, Cursor(*cursor), rows, days, progress)[0]


def customers(world: World) -> pd.DataFrame:
    """Customer reference table: home country and typical amount (for checks and maps; not a model input)."""
    pop = population(world)
    return pd.DataFrame({
        "customer_id": np.arange(world.n_customers, dtype=np.int64),
        "home_country": _strings(pop.home_country, COUNTRIES),
        "typical_amount": np.round(np.exp(pop.level_mu), 2),
        "tx_per_day": pop.rate,
    })


def summary(df: pd.DataFrame) -> dict:
    """Rows, days covered, fraud rate and rows per scenario of a simulated frame."""
    counts = df["fraud_scenario"].value_counts()
    return {"rows": len(df), "fraud_rate": round(float(df["is_fraud"].mean()), 5) if len(df) else 0.0,
            "by_scenario": {SCENARIOS[k]: int(counts.get(k, 0)) for k in SCENARIOS if k},
            "first_time": str(df["event_time"].min()), "last_time": str(df["event_time"].max())}


def generate_to_file(out: str | Path, rows: int | None = None, days: int | None = None, seed: int = 7,
                     progress: Progress | None = None) -> dict:
    """Generate the demo world's events and write them (with world and cursor) to ``out``; returns a summary."""
    world = default_world(seed)
    started = time.perf_counter()
    df, cursor = _run(world, Cursor(0, 0), rows, days, progress)
    path = write_parquet(df, out, world, cursor)
    return {"path": str(path), **summary(df), "seconds": round(time.perf_counter() - started, 2),
            "world": world.to_dict(), "cursor": list(cursor)}


def bench_generate(rows: int = 1_000_000, seed: int = 7) -> dict:
    """Time ``generate(rows)`` and report throughput, fraud rate and rows per scenario."""
    started = time.perf_counter()
    df = generate(rows=rows, seed=seed)
    seconds = time.perf_counter() - started
    info = summary(df)
    return {"rows": len(df), "seconds": round(seconds, 3), "rows_per_s": round(len(df) / seconds),
            "fraud_rate": info["fraud_rate"], "by_scenario": info["by_scenario"]}
