"""Fraud Workbench command line (python -m fraudcore COMMAND): the same code the app runs, headless."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from fraudcore.config import DEMO_ROWS, DEMO_SEED, get_paths
from fraudcore.errors import FraudcoreError

ProgressFn = Callable[[float, str], None]
_UNFINISHED: set = set()  # streams whose progress line has no newline yet: an error must not continue that line


def progress_line(label: str, stream=None, every_s: float = 0.25) -> ProgressFn:
    """A progress callback that rewrites one line on stderr ('label  42%  3.1s message'), at most every ``every_s``."""
    stream = stream or sys.stderr
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
        (_UNFINISHED.discard if finished else _UNFINISHED.add)(stream)

    return report


def _print_json(obj: dict) -> None:
    print(json.dumps(obj, default=str))


def cmd_paths(args: argparse.Namespace) -> int:
    paths = get_paths()
    _print_json({"data": str(paths.data), "artifacts": str(paths.artifacts), "db": str(paths.db)})
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from fraudcore.dataset import open_dataset

    opened = open_dataset(args.input, delimiter=args.delimiter, encoding=args.encoding, decimal=args.decimal,
                          spec_path=args.spec)
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
                                 progress=progress_line("features"), delimiter=args.delimiter, encoding=args.encoding,
                                 decimal=args.decimal)
    _print_json(result)
    return 0


def _objective(text: str) -> tuple[str, float | None]:
    """'precision:0.9' -> ('precision', 0.9); 'f1' -> ('f1', None)."""
    name, _, value = text.partition(":")
    try:
        return name, float(value) if value else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value after ':' must be a number, e.g. precision:0.9") \
            from None


def cmd_train(args: argparse.Namespace) -> int:
    from fraudcore.dataset import open_dataset
    from fraudcore.split import SplitPlan
    from fraudcore.training import TrainRequest, apply_overrides, train

    dates = [args.train_start, args.train_end, args.test_start, args.test_end]
    if any(dates) and args.split == "random":
        return _fail("--split random and explicit dates contradict each other: drop --split random for a date "
                     "split, or drop the dates for a random one")
    kind = "dates" if any(dates) else args.split
    plan = SplitPlan(kind=kind, valid_size=args.valid_size, test_size=args.test_size, delay_days=args.delay_days,
                     train_start=args.train_start, train_end=args.train_end, test_start=args.test_start,
                     test_end=args.test_end, seed=args.seed)
    request = TrainRequest(model_id=args.model_id, algo=args.algo, features=args.features, split=plan,
                           search_minutes=args.search_minutes, search_trials=args.search_trials, seed=args.seed,
                           device=args.device, refit=args.refit, high=args.high,
                           medium=args.medium, review_cost=args.review_cost, created_by="cli")
    opened = open_dataset(args.data, delimiter=args.delimiter, encoding=args.encoding, decimal=args.decimal)
    spec = apply_overrides(opened.spec, opened.data, args.label, args.time, args.amount, args.entity)
    metadata = train(opened.with_spec(spec), request, progress=progress_line("train"))
    _print_json({"model_id": metadata.model_id, "algo": metadata.algo, "split": metadata.split["label"],
                 "features": len(metadata.features["names"]), "tiers": metadata.tiers.model_dump(mode="json"),
                 "metrics": {"valid": metadata.metrics["valid"], "test": metadata.metrics["test"]},
                 "train_seconds": metadata.metrics["train_seconds"]})
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from fraudcore.batch import score_file

    tiers = [t.strip() for t in args.explain_tiers.split(",") if t.strip()] if args.explain_tiers else []
    result = score_file(args.input, args.out, args.model, explain_tiers=tiers, explain_all=args.explain_all, k=args.k,
                        chunk_rows=args.chunk_rows, rejects_path=args.rejects, progress=progress_line("score"),
                        delimiter=args.delimiter, encoding=args.encoding, decimal=args.decimal,
                        history_path=args.history)
    rejected = result.get("rows_rejected", 0)
    if rejected:
        print(f"{rejected:,} rows rejected (each with its reason) in {result.get('rejects_path')}", file=sys.stderr)
    _print_json(result)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fraudcore.training import evaluate_saved

    result = evaluate_saved(args.model, args.data, review_cost=args.review_cost, delimiter=args.delimiter,
                            encoding=args.encoding, decimal=args.decimal)
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _print_json(result)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fraudcore.registry import list_models

    for row in list_models():
        _print_json(row)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from fraudcore.registry import promote

    _print_json(promote(args.model_id, who=args.who, why=args.why))
    return 0


def cmd_store_stats(args: argparse.Namespace) -> int:
    from fraudcore.store import store_stats

    _print_json(store_stats(Path(args.db) if args.db else None))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from fraudcore.retrain import promote_if_better, retrain
    from fraudcore.shadow import set_shadow
    from fraudcore.store import Store

    with Store.open(Path(args.db) if args.db else None, read_only=True) as store:
        report = retrain(store, who=args.who, include_original=args.include_original,
                         search_minutes=args.search_minutes, min_gain=args.min_gain, unlabelled=args.unlabelled,
                         challenger_id=args.model_id, progress=progress_line("retrain"))
    if args.promote_if_better:
        report = promote_if_better(report, who=args.who)
    shadow = None
    if args.shadow and not report.promoted:
        shadow = set_shadow(report.challenger_id, who=args.who, why="retrained challenger").model_id
    _print_json({**report.model_dump(mode="json"), "shadow": shadow})
    return 0


def cmd_monitor_drift(args: argparse.Namespace) -> int:
    from fraudcore.monitor import feature_drift, score_drift, window
    from fraudcore.registry import champion_id
    from fraudcore.store import Store

    model_id = args.model or champion_id()
    if model_id is None:
        raise FraudcoreError("no champion is set: pass --model ID")
    with Store.open(Path(args.db) if args.db else None, read_only=True) as store:
        since, until = window(store, args.since, args.until, days=args.days)
        score = score_drift(store, model_id, since, until).iloc[0]
        features = feature_drift(store, model_id, since, until).head(args.top)
    _print_json({"model_id": model_id, "since": since, "until": until,
                 "score": json.loads(score.to_json()), "features": json.loads(features.to_json(orient="records"))})
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from fraudcore import bench

    result = bench.run(args.what, rows=args.rows, data=args.data, minutes=args.search_minutes)
    _print_json(result)
    return 0


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2018-07-25") from exc


def _csv_options(p: argparse.ArgumentParser) -> None:
    """--delimiter, --encoding and --decimal, read by every command that loads a data file the same way
    (load_dataset)."""
    p.add_argument("--delimiter", help="CSV delimiter (default: auto-detect)")
    p.add_argument("--encoding", default="utf-8", help="CSV encoding: utf-8 (BOM fine), latin-1 or utf-16")
    p.add_argument("--decimal", default=".", choices=[".", ","], help="CSV decimal separator ('12,50' needs ',')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fraudcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("paths", help="print where data, artifacts and the DuckDB file live (FRAUDCORE_* env vars)")
    p.set_defaults(func=cmd_paths)

    p = sub.add_parser("inspect", help="load a CSV/Parquet file, infer column roles, validate, print JSON")
    p.add_argument("--in", dest="input", required=True, help="CSV or Parquet file")
    _csv_options(p)
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
    _csv_options(p)
    p.add_argument("--out", required=True, help="output Parquet: the input columns plus the features")
    p.add_argument("--preset", choices=["auto", "handbook"], default="auto",
                   help="auto: from the inferred roles; handbook: the Fraud Detection Handbook's 16 features")
    p.add_argument("--spec", help="dataset spec JSON (default: inferred)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="train a model, tune tiers on validation, evaluate on test, save the artifact")
    p.add_argument("--data", required=True, help="CSV or Parquet with labelled events")
    _csv_options(p)
    p.add_argument("--model-id", required=True, help="artifact name (letters, digits, - _ .)")
    p.add_argument("--algo", choices=["xgboost", "logreg", "anomaly"], default="xgboost")
    p.add_argument("--label", help="label column (1 = fraud); default: inferred")
    p.add_argument("--time", help="event time column (timestamp, or numeric seconds); default: inferred")
    p.add_argument("--amount", help="amount column; default: inferred")
    p.add_argument("--entity", nargs="*", help="entity key columns (customer, card, terminal, ...); default: inferred")
    p.add_argument("--split", choices=["time", "random"], default="time",
                   help="time-ordered (default) or stratified random (labelled as such everywhere)")
    p.add_argument("--valid-size", type=float, default=0.2, help="share of rows for validation (default 0.2)")
    p.add_argument("--test-size", type=float, default=0.2, help="share of rows for test (default 0.2)")
    p.add_argument("--delay-days", type=float, default=0.0,
                   help="label delay: gap before validation and test (a date split: before the test only), and "
                        "the delay of label-based features")
    for name in ("train-start", "train-end", "test-start", "test-end"):
        p.add_argument(f"--{name}", type=_date, help="explicit date split (YYYY-MM-DD, ends inclusive)")
    p.add_argument("--features", choices=["auto", "none", "handbook"], default="auto",
                   help="auto: entity features when the data has entities and a time; none: the columns only")
    p.add_argument("--search-minutes", type=float, default=0.5, help="hyper-parameter search budget (0: defaults)")
    p.add_argument("--search-trials", type=int, help="run exactly this many search trials, whatever the clock "
                   "(reproducible for a seed; overrides --search-minutes)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="xgboost: train on the CPU (default) or an NVIDIA GPU (cuda); the model scores on the CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refit", action="store_true",
                   help="train the chosen configuration again on train + validation before the test; the tiers stay "
                        "those tuned on validation before it, and their alert volume may not carry over")
    p.add_argument("--high", type=_objective, default="precision:0.9",
                   help="objective of the high (block) cut, e.g. precision:0.9")
    p.add_argument("--medium", type=_objective, default="alert_budget:100",
                   help="objective of the medium (review) cut: f1, precision:P, recall:R, alert_budget:K, cost")
    p.add_argument("--review-cost", type=float, default=5.0, help="cost of reviewing one alert (for cost metrics)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score a CSV/Parquet file with a saved model: score, tier and exact reasons per "
                       "row, same format out; invalid rows to a rejects file with their reason")
    p.add_argument("--model", help="model id (default: the champion)")
    p.add_argument("--in", dest="input", required=True, help="CSV or Parquet with the model's input fields")
    p.add_argument("--out", required=True, help="output file, same format as the input (a CSV: UTF-8, commas)")
    _csv_options(p)
    explain = p.add_mutually_exclusive_group()
    explain.add_argument("--explain-tiers", default="high,medium",
                         help="comma-separated tiers whose rows get reasons (default high,medium; '' for none)")
    explain.add_argument("--explain-all", action="store_true", help="reasons for every row (exact TreeSHAP: slower)")
    p.add_argument("--k", type=int, default=3, help="reasons per explained row (default 3)")
    p.add_argument("--chunk-rows", type=int, default=200_000, help="rows per chunk (memory bound)")
    p.add_argument("--rejects", help="rejects file (default: <out>.rejects.<ext> beside the output)")
    p.add_argument("--history", help="earlier events (CSV/Parquet with the model's id, time, amount, entity and "
                   "label columns) that the entity features count without scoring them; without it the input is "
                   "its own only history")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="a saved model's metrics on a labelled file")
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--data", required=True, help="CSV or Parquet with the same columns as the training data")
    _csv_options(p)
    p.add_argument("--review-cost", type=float, default=5.0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("models", help="list saved models with their headline test metrics (one JSON per line)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("promote", help="make a saved model the champion")
    p.add_argument("model_id")
    p.add_argument("--who", default="cli", help="who promotes (kept in champion.json)")
    p.add_argument("--why", default="", help="why (kept in champion.json)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("store", help="the workbench DuckDB file (owned by the app while it runs)")
    store_sub = p.add_subparsers(dest="store_command", required=True, metavar="STORE_COMMAND")
    q = store_sub.add_parser("stats", help="events, quarantine, scores by tier, cases, decisions, cursors (JSON)")
    q.add_argument("--db", help="DuckDB file (default: FRAUDCORE_DB or data/workbench.duckdb)")
    q.set_defaults(func=cmd_store_stats)

    p = sub.add_parser("retrain", help="train a challenger from stored events + analyst labels with the champion's "
                       "protocol and compare both on the same recent window (last line: JSON report)")
    p.add_argument("--from-store", action="store_true", required=True,
                   help="build the training set from the workbench store (events with labels)")
    p.add_argument("--promote-if-better", action="store_true", help="promote the challenger when it beats the champion")
    p.add_argument("--include-original", metavar="PATH", help="also train on this file (the champion's columns)")
    p.add_argument("--unlabelled", choices=["drop", "legit"], default="drop",
                   help="drop unlabelled events (default) or count those older than the label delay as legitimate")
    p.add_argument("--search-minutes", type=float, help="search budget (default: the champion's)")
    p.add_argument("--min-gain", type=float, default=0.0, help="average precision the challenger must add (0)")
    p.add_argument("--model-id", help="challenger id (default retrain-<UTC time>-<random>)")
    p.add_argument("--shadow", action="store_true", help="when not promoted, shadow-score the live feed with it")
    p.add_argument("--who", default="cli", help="who retrains and promotes (kept in champion.json)")
    p.add_argument("--db", help="DuckDB file (default: FRAUDCORE_DB or data/workbench.duckdb)")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("monitor", help="monitoring over the workbench store")
    monitor_sub = p.add_subparsers(dest="monitor_command", required=True, metavar="MONITOR_COMMAND")
    q = monitor_sub.add_parser("drift", help="score and feature drift (PSI, KS) of a model vs its training reference")
    q.add_argument("--model", help="model id (default: the champion)")
    q.add_argument("--since", type=_date, help="window start (default: --days before --until)")
    q.add_argument("--until", type=_date, help="window end (default: the newest stored event)")
    q.add_argument("--days", type=float, default=7.0, help="window length when --since is not given (7)")
    q.add_argument("--top", type=int, default=20, help="features listed, most alert-driving first (20)")
    q.add_argument("--db", help="DuckDB file (default: FRAUDCORE_DB or data/workbench.duckdb)")
    q.set_defaults(func=cmd_monitor_drift)

    p = sub.add_parser("bench", help="benchmarks: generate, features, score (batch file), explain (TreeSHAP tables "
                       "vs pred_contribs), quality (real data), api (POST /api/score latency against the app on "
                       "loopback) or ingest (live feed to the store)")
    p.add_argument("what", choices=["generate", "features", "score", "explain", "quality", "api", "ingest"])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (generate)")
    p.add_argument("--data", help="input file (features; default ../shared/data/handbook_raw.parquet)")
    p.add_argument("--search-minutes", type=float, default=1.0, help="search budget per model (quality)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("review", help="the review queue's cases and decisions")
    review_sub = p.add_subparsers(dest="review_command", required=True, metavar="REVIEW_COMMAND")
    q = review_sub.add_parser("export", help="labels from dispositions as a training dataset (Parquet)")
    q.add_argument("--out", required=True, help="output Parquet path (written atomically)")
    q.add_argument("--db", help="DuckDB file (default: FRAUDCORE_DB or data/workbench.duckdb)")
    q.add_argument("--label-column", default="label", help="name of the label column (default: label)")
    q.set_defaults(func=cmd_review_export)

    p = sub.add_parser("feed", help="the live feed of simulated events (HTTP JSON, cursor pagination)")
    feed_sub = p.add_subparsers(dest="feed_command", required=True, metavar="FEED_COMMAND")
    q = feed_sub.add_parser("serve", help="serve events continuing the demo world until Ctrl-C")
    q.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int, default=8765)
    q.add_argument("--rate", type=float, help="events per second (default: as fast as asked)")
    q.add_argument("--seed", type=int, help="world seed (default: the demo file's world) and fault seed")
    q.add_argument("--total", type=int, help="stop producing after this many distinct events")
    q.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500/503")
    q.add_argument("--delay-ms", type=float, default=0.0, help="delay added to every request")
    q.add_argument("--malformed-rate", type=float, default=0.0, help="share of records sent broken")
    q.add_argument("--duplicate-rate", type=float, default=0.0, help="share of records sent twice")
    q.add_argument("--labels", action="store_true", help="send the simulator's is_fraud with each event")
    q.add_argument("--origin", metavar="DAY:INDEX", help="the first event's cursor in the world (default: just "
                   "after the demo events)")
    q.set_defaults(func=cmd_feed_serve)

    p = sub.add_parser("poll", help="ingest the live feed into the workbench store (score, explain alerts, open cases)")
    p.add_argument("--feed", required=True, help="feed URL, e.g. http://127.0.0.1:8765")
    p.add_argument("--db", help="DuckDB file (default: FRAUDCORE_DB or data/workbench.duckdb)")
    p.add_argument("--model", help="model id (default: the champion)")
    p.add_argument("--max-events", type=int, help="stop after reading this many records")
    p.add_argument("--until-idle", action="store_true", help="stop once the feed has had nothing new for --idle-s")
    p.add_argument("--idle-s", type=float, default=1.0, help="seconds without new events that count as idle (1)")
    p.add_argument("--batch", type=int, default=500, help="events per request, 100-1000 (500)")
    p.add_argument("--name", help="feed name the cursor is kept under (default: the feed's own name)")
    p.set_defaults(func=cmd_poll)
    return parser


def cmd_poll(args: argparse.Namespace) -> int:
    from fraudcore.poller import poll_cli

    _print_json(poll_cli(args.feed, db=args.db, model_id=args.model, max_events=args.max_events,
                         until_idle=args.until_idle, batch=args.batch, name=args.name, idle_s=args.idle_s))
    return 0


def cmd_feed_serve(args: argparse.Namespace) -> int:
    from fraudcore.feed import FeedOptions, serve_blocking

    options = FeedOptions(rate=args.rate, error_rate=args.error_rate, delay_ms=args.delay_ms,
                          malformed_rate=args.malformed_rate, duplicate_rate=args.duplicate_rate, total=args.total,
                          labels=args.labels, seed=args.seed or 0)
    return serve_blocking(options, host=args.host, port=args.port, seed=args.seed, origin=args.origin)


def cmd_review_export(args: argparse.Namespace) -> int:
    from fraudcore.review_export import export_labels
    from fraudcore.store import Store

    with Store.open(Path(args.db) if args.db else None, read_only=True) as store:
        _print_json(export_labels(store, args.out, label_column=args.label_column))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; what the user can fix (a FraudcoreError, a request the flags make that its rules refuse, a
    path that cannot be read or written) is printed as plain ``error:`` lines with exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FraudcoreError as exc:  # the loaders advise encoding='latin-1': here that is a flag
        return _fail(re.sub(r"\b(encoding|delimiter)=('[^']*')", r"--\1 \2", str(exc)))
    except ValidationError as exc:  # TrainRequest, SplitPlan, ... built from the flags
        return _fail(*(_as_flags(_problem(error), args) for error in exc.errors()))
    except OSError as exc:
        if not exc.filename:  # a port in use, a connection refused: said as it is, without advice about paths
            return _fail(str(exc.strerror or exc))
        return _fail(f"{exc.strerror or exc}: {exc.filename}; check the path (each folder in it must be a folder, "
                     "not a file) and that you may read and write there")
    finally:
        _end_progress()  # also before a traceback, and after a command that stopped short of 100%


def _fail(*problems: str) -> int:
    _end_progress()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2


def _end_progress() -> None:
    """End an unfinished progress line, so that what follows starts on a line of its own."""
    while _UNFINISHED:
        stream = _UNFINISHED.pop()
        stream.write("\n")
        stream.flush()


def _problem(error: dict) -> str:
    """One pydantic error as 'field: message' (no pydantic boilerplate, no input dump)."""
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _as_flags(text: str, args: argparse.Namespace) -> str:
    """Field names of this command's options as the flags the user typed (valid_size -> --valid-size)."""
    for name in vars(args):
        if "_" in name:
            text = re.sub(rf"(?<![\w/.-]){name}(?![\w/.-])", "--" + name.replace("_", "-"), text)
    return text
