"""What the sidebar summarises: the active dataset, the champion's headline metric, and the poller's feed lag."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta

import pytest

from fraudcore.config import get_paths
from fraudcore.overview import ChampionSummary, FeedLag, active_dataset, champion_summary, feed_lag
from fraudcore.registry import load_model, promote
from fraudcore.runtime import Workbench


def test_active_dataset_is_the_chosen_file_else_the_demo(tmp_path):
    paths = get_paths().ensure()
    chosen = tmp_path / "chosen.csv"
    assert active_dataset(str(chosen), paths) is None  # neither exists
    paths.demo_dataset.write_bytes(b"x")
    assert active_dataset(str(chosen), paths) == paths.demo_dataset
    chosen.write_text("a\n1\n")
    assert active_dataset(str(chosen), paths) == chosen
    assert active_dataset(None, paths) == paths.demo_dataset


def test_champion_summary_none_then_headline_then_broken(trained):
    paths = get_paths().ensure()
    workbench = Workbench(paths)
    assert champion_summary(workbench) is None
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test")
    summary = champion_summary(workbench)
    test = load_model(trained.model_id, paths.artifacts)[1].metrics["test"]
    assert summary == ChampionSummary(model_id=trained.model_id, algo="xgboost",
                                      average_precision=test["average_precision"], roc_auc=test["roc_auc"],
                                      n_test=test["n"])
    assert summary.headline == f"AP {test['average_precision']:.3f} on {test['n']:,} test events"

    (paths.artifacts / "champion.json").write_text("{broken", encoding="utf-8")
    broken = champion_summary(Workbench(paths))
    assert broken.model_id == "(unreadable)" and "damaged" in broken.error
    assert ChampionSummary(model_id="m").headline == "no test metrics recorded"


@dataclass
class Status:
    running: bool
    lag_seconds: float | None


class Poller:
    def __init__(self, status) -> None:
        self.reply = status

    def status(self):
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.mark.parametrize(("status", "expected", "text"), [
    ({"running": True, "lag": 1200, "last_error": None}, FeedLag(True, lag_events=1200), "1,200 events behind"),
    ({"running": True, "lag": 0}, FeedLag(True, lag_events=0), "up to date"),
    ({"running": True, "lag": None}, FeedLag(True), "running (lag not known yet)"),
    ({"running": True, "lag_seconds": 3.25}, FeedLag(True, lag_seconds=3.25), "3.2 s behind"),
    ({"running": True, "lag": timedelta(hours=3)}, FeedLag(True, lag_seconds=10_800.0), "3.0 h behind"),
    (Status(running=True, lag_seconds=600), FeedLag(True, lag_seconds=600.0), "10 min behind"),
    ({"running": False, "lag": 5, "last_error": "FeedRejected: 400"},
     FeedLag(False, lag_events=5, last_error="FeedRejected: 400"), "stopped (FeedRejected: 400)"),
    (ValueError("no cursor"), FeedLag(error="ValueError: no cursor"), "status unavailable: ValueError: no cursor"),
    ("fine", FeedLag(error="status() gave a str, not a mapping"), "status unavailable: status() gave a str, not a "
                                                                  "mapping"),
])
def test_feed_lag_reads_the_pollers_status(status, expected, text):
    workbench = Workbench(get_paths())
    assert feed_lag(workbench) is None
    workbench.services["poller"] = Poller(status)
    lag = feed_lag(workbench)
    assert lag == expected and lag.text == text


def test_a_service_without_status_shows_no_lag():
    workbench = Workbench(get_paths())
    workbench.services["poller"] = object()
    assert feed_lag(workbench) is None
