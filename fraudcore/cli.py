"""Fraud Workbench command line (python -m fraudcore COMMAND): the same code the app runs, headless."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fraudcore.config import DEMO_ROWS, DEMO_SEED, get_paths
from fraudcore.errors import FraudcoreError

ProgressFn = Callable[[float, str], None]


def progress_line(label: str, stream=sys.stderr, every_s: float = 0.25) -> ProgressFn:
    """A progress callback that rewrites one line on stderr ('label  42%  3.1s message'), at most every ``every_s``."""
    started = time.perf_counter()
    state = {"drawn": -1.0, "done": False}

    def report(fraction: float, message: str = "") -> None:
        now = time.perf_counter()
        finished = fraction >= 1.0
        if state["done"] or (not finished and now - state["drawn"] < every_s):
            return
        state["drawn"], state["done"] = now, finished
        stream.write(f"\r{label} {min(fraction, 1.0):4.0%} {now - started:6.1f}s {message[:60]:<60}")
        stream.write("\n" if finished else "")
        stream.flush()

    return report


def _print_json(obj: dict) -> None:
    print(json.dumps(obj, default=str))


def cmd_paths(args: argparse.Namespace) -> int:
    paths = get_paths()
    _print_json({"data": str(paths.data), "artifacts": str(paths.artifacts), "db": str(paths.db)})
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from fraudcore.dataset import open_dataset

    opened = open_dataset(args.input, delimiter=args.delimiter, encoding=args.encoding, spec_path=args.spec)
    if args.spec_out:
        opened.spec.save(args.spec_out)
    for problem in opened.report.problems:
        print(problem, file=sys.stderr)
    _print_json({"rows": opened.data.n_rows, "spec": json.loads(opened.spec.to_json()),
                 "report": opened.report.to_dict()})
    return 0 if opened.report.ok else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from fraudcore import simulate

    out = Path(args.out) if args.out else get_paths().ensure().demo_dataset
    rows = None if args.days else args.rows
    result = simulate.generate_to_file(out, rows=rows, days=args.days, seed=args.seed,
                                       progress=progress_line("generate"))
    _print_json(result)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from fraudcore.features_batch import build_features_file
    from fraudcore.spec import DatasetSpec

    spec = DatasetSpec.load(args.spec) if args.spec else None
    result = build_features_file(args.input, args.out, preset=args.preset, spec=spec,
                                 progress=progress_line("features"))
    _print_json(result)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from fraudcore import bench

    result = bench.run(args.what, rows=args.rows, data=args.data)
    _print_json(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fraudcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("paths", help="print where data, artifacts and the DuckDB file live (FRAUDCORE_* env vars)")
    p.set_defaults(func=cmd_paths)

    p = sub.add_parser("inspect", help="load a CSV/Parquet file, infer column roles, validate, print JSON")
    p.add_argument("--in", dest="input", required=True, help="CSV or Parquet file")
    p.add_argument("--delimiter", help="CSV delimiter (default: auto-detect)")
    p.add_argument("--encoding", default="utf-8", help="CSV encoding: utf-8 (BOM fine), latin-1 or utf-16")
    p.add_argument("--spec", help="use this dataset spec JSON instead of inferring roles")
    p.add_argument("--spec-out", help="write the (inferred) dataset spec JSON here")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("generate", help="write simulated card transactions (the demo data) as Parquet")
    p.add_argument("--out", help="output Parquet path (default: the demo dataset in the data folder)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=DEMO_ROWS, help=f"exact number of rows (default {DEMO_ROWS})")
    size.add_argument("--days", type=int, help="number of whole days instead of rows")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"world seed (default {DEMO_SEED})")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("features", help="compute point-in-time entity features, file to file")
    p.add_argument("--in", dest="input", required=True, help="CSV or Parquet with raw events")
    p.add_argument("--out", required=True, help="output Parquet: the input columns plus the features")
    p.add_argument("--preset", choices=["auto", "handbook"], default="auto",
                   help="auto: from the inferred roles; handbook: the Fraud Detection Handbook's 16 features")
    p.add_argument("--spec", help="dataset spec JSON (default: inferred)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("bench", help="benchmarks: time generate or features and print JSON")
    p.add_argument("what", choices=["generate", "features"])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (generate)")
    p.add_argument("--data", help="input file (features; default ../shared/data/handbook_raw.parquet)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FraudcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
