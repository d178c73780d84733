"""The command line: every command has --help, paths honour FRAUDCORE_*, errors are one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from fraudcore.cli import build_parser, main
from fraudcore.config import get_paths
from tests.conftest import REPO

COMMANDS = ["paths", "inspect", "generate", "features", "train", "score", "evaluate", "models", "promote", "store",
            "bench", "retrain", "monitor", "review", "feed", "poll"]


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "fraudcore", "--help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m fraudcore " + command in capsys.readouterr().out


def test_paths_honour_environment(isolated_paths, capsys):
    assert main(["paths"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["data"] == str(isolated_paths / "data")
    assert printed["artifacts"] == str(isolated_paths / "artifacts")
    assert printed["db"] == str(isolated_paths / "data" / "workbench.duckdb")


def test_inspect_reports_problems_and_exit_code(tmp_path, capsys):
    path = tmp_path / "tx.csv"
    path.write_text("event_id,event_time,amount,is_fraud\n1,2024-01-01,5.0,0\n1,2024-01-02,-2.0,7\n")
    assert main(["inspect", "--in", str(path), "--spec-out", str(tmp_path / "spec.json")]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)["report"]
    assert {p["kind"] for p in report["problems"]} >= {"negative_amount", "label_not_binary"}
    assert "negative amounts" in captured.err
    assert json.loads((tmp_path / "spec.json").read_text())["amount"] == "amount"


def test_inspect_reads_decimal_commas_when_asked(tmp_path, capsys):
    path = tmp_path / "euro.csv"
    path.write_text("event_id;event_time;amount;is_fraud\n1;2024-01-01;5,25;0\n2;2024-01-02;7,5;1\n")
    assert main(["inspect", "--in", str(path)]) == 1
    assert "decimal commas" in capsys.readouterr().err
    assert main(["inspect", "--in", str(path), "--decimal", ","]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["amount"] == "amount"


def test_unreadable_file_is_one_clear_error(tmp_path, capsys):
    assert main(["inspect", "--in", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_store_stats_reads_the_file_and_says_when_it_is_missing(isolated_paths, capsys):
    from fraudcore.store import Store

    assert main(["store", "stats"]) == 2
    assert "error: " in capsys.readouterr().err
    Store.open().close()
    assert main(["store", "stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["events"] == 0 and stats["schema_version"] >= 1


SHARES = "--valid-size and --test-size must be shares in (0, 1) that add up to less than 1"


@pytest.mark.parametrize(("flags", "message"), [
    (["--valid-size", "0"], SHARES),
    (["--valid-size", "0.9", "--test-size", "0.5"], SHARES),
    (["--delay-days", "-1"], "--delay-days must be 0 or more"),
    (["--train-start", "2024-01-01"], "a dates split needs --train-start, --train-end, --test-start and --test-end"),
    (["--train-start", "2024-02-01", "--train-end", "2024-01-01", "--test-start", "2024-03-01", "--test-end",
      "2024-04-01"], "dates must satisfy --train-start <= --train-end < --test-start <= --test-end"),
    (["--search-trials", "0"], "--search-trials: Input should be greater than or equal to 1"),
    (["--split", "random", "--train-start", "2024-01-01"], "--split random and explicit dates contradict each other: "
     "drop --split random for a date split, or drop the dates for a random one"),
])
def test_train_options_its_rules_refuse_are_plain_errors_naming_the_flags(tmp_path, capsys, flags, message):
    assert main(["train", "--data", str(tmp_path / "tx.csv"), "--model-id", "m", *flags]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_an_objective_without_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", "tx.csv", "--model-id", "m", "--high", "precision:high"])
    assert exit_.value.code == 2 and "--high: 'precision:high': the value after ':' must be a number" in \
        capsys.readouterr().err


def test_a_path_that_cannot_be_written_is_a_plain_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("a file, not a folder")
    assert main(["generate", "--rows", "50", "--out", str(tmp_path / "afile" / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.split("\n")[-2].startswith("error: ")
    assert str(tmp_path / "afile") in err


def test_an_error_after_a_progress_line_starts_a_line_of_its_own(trained, tmp_path, capsys):
    shutil.copytree(trained.root / trained.model_id, get_paths().artifacts / trained.model_id)
    trained.frame.iloc[:50].to_csv(tmp_path / "in.csv", index=False)
    code = main(["score", "--model", trained.model_id, "--in", str(tmp_path / "in.csv"),
                 "--out", str(tmp_path / "out.csv"), "--rejects", str(tmp_path / "in.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("\rscore ")  # the progress line was drawn, then ended
    assert err.split("\n")[1] == f"error: the rejects file {tmp_path / 'in.csv'} is the input file; name another " \
        "rejects path"


def test_train_evaluate_and_score_read_a_csv_with_the_encoding_and_delimiter_given(trained, tmp_path, capsys):
    frame = trained.frame.iloc[:6000].copy()
    frame.loc[frame.index[::50], "merchant_category"] = "café"
    frame.to_csv(tmp_path / "tx.csv", index=False, sep=";", encoding="latin-1")
    csv = ["--delimiter", ";", "--encoding", "latin-1"]
    assert main(["train", "--data", str(tmp_path / "tx.csv"), "--model-id", "m"]) == 2
    assert "or load it with --encoding 'latin-1'" in capsys.readouterr().err  # the loader's advice, as a flag
    assert main(["train", "--data", str(tmp_path / "tx.csv"), "--model-id", "m", "--search-minutes", "0", *csv]) == 0
    assert main(["evaluate", "--model", "m", "--data", str(tmp_path / "tx.csv"), *csv]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["metrics"]["test"]["n"] == 6000
    assert main(["score", "--model", "m", "--in", str(tmp_path / "tx.csv"), "--out", str(tmp_path / "out.csv"),
                 *csv]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows_scored"] == 6000
    assert main(["features", "--in", str(tmp_path / "tx.csv"), "--out", str(tmp_path / "f.parquet"), *csv]) == 0
    assert pd.read_parquet(tmp_path / "f.parquet")["merchant_category"].eq("café").sum() == 120


def test_an_os_error_that_is_not_about_a_path_gets_no_path_advice(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["feed", "serve", "--port", str(busy.getsockname()[1]), "--total", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "in use" in err and "path" not in err
