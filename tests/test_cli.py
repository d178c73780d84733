"""The command line: every command has --help, paths honour FRAUDCORE_*, errors are one clear line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fraudcore.cli import build_parser, main
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
