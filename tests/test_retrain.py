"""Retrain from labels over a real store: the training set, a challenger with the champion's protocol, both compared
on the same window, promotion only when better, and the headless CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudcore import cli
from fraudcore.config import get_paths
from fraudcore.errors import DataContractError, FraudcoreError, ModelArtifactError
from fraudcore.registry import champion_id, load_metadata, promote
from fraudcore.retrain import (
    build_training_set,
    promote_challenger,
    promote_if_better,
    request_like,
    retrain,
    retrain_history,
    training_frame,
)
from fraudcore.shadow import get_shadow
from fraudcore.simulate import generate, world_for_rows
from fraudcore.split import SplitPlan
from fraudcore.store import EventKeys, Store
from fraudcore.training import TrainRequest, train

ROWS = 8_000
LEAKS = ["is_fraud", "fraud_scenario"]


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate(rows=ROWS, world=world_for_rows(ROWS, seed=11, days=9))


@pytest.fixture(scope="module")
def bad_model(events, tmp_path_factory) -> Path:
    """A model trained on shuffled labels (so it ranks frauds no better than chance), trained once per module."""
    folder = tmp_path_factory.mktemp("bad")
    shuffled = events.assign(is_fraud=np.random.default_rng(0).permutation(events["is_fraud"].to_numpy()))
    shuffled.to_parquet(folder / "shuffled.parquet", index=False)
    train(folder / "shuffled.parquet", TrainRequest(model_id="bad", search_minutes=0, split=SplitPlan(test_size=0.25)),
          root=folder / "artifacts")
    return folder


@pytest.fixture
def bad_champion(bad_model, isolated_paths):
    """The bad model copied into this test's registry and promoted."""
    shutil.copytree(bad_model / "artifacts" / "bad", get_paths().artifacts / "bad")
    promote("bad", who="test", why="deliberately bad")
    return load_metadata("bad")


def fill_store(events: pd.DataFrame, meta) -> None:
    """The feed's events (raw, without the label columns) with labels set afterwards, as dispositions do."""
    with Store.open(keys=EventKeys.from_spec(meta.spec)) as store:
        store.write_batch(events.drop(columns=LEAKS), None)
        assert store.set_labels(events[["event_id"]].assign(label=events["is_fraud"])) > 0


def test_request_repeats_the_champions_protocol(bad_champion):
    request = request_like(bad_champion, "next", search_minutes=0, created_by="job")
    assert request.algo == "xgboost" and request.features == "auto" and request.split.kind == "time"
    assert request.split.test_size == pytest.approx(0.25, abs=0.01)
    assert request.medium == ("alert_budget", 100.0) and request.high == ("precision", 0.9)
    assert request.search_minutes == 0 and request.created_by == "job"


def test_training_frame_from_labels(events, bad_champion, isolated_paths):
    fill_store(events.iloc[:3000], bad_champion)
    with Store.open() as store:
        store.set_labels(pd.DataFrame({"event_id": events["event_id"].iloc[:1000], "label": pd.NA}))
        frame = training_frame(store, bad_champion.spec)
        assert len(frame) == 2000 and "fraud_scenario" not in frame.columns
        assert frame["is_fraud"].tolist() == events["is_fraud"].iloc[1000:3000].tolist()
        assert frame["event_time"].tolist() == events["event_time"].iloc[1000:3000].tolist()
        legit = training_frame(store, bad_champion.spec, unlabelled="legit", label_delay_days=1)
        old = events["event_time"].iloc[:1000] <= events["event_time"].iloc[2999] - pd.Timedelta(days=1)
        assert len(legit) == 2000 + int(old.sum())
        out, n_store, n_original = build_training_set(store, bad_champion.spec, isolated_paths / "set.parquet",
                                                      include_original=bad_champion.dataset["source"])
    assert (n_store, n_original) == (2000, ROWS - 2000)  # stored rows win on shared ids, the rest come from the file
    written = pd.read_parquet(out)
    assert written["event_id"].is_unique and len(written) == ROWS
    assert written["event_time"].is_monotonic_increasing
    stored = written.set_index("event_id").loc[events["event_id"].iloc[1000:3000], "is_fraud"]
    assert stored.tolist() == events["is_fraud"].iloc[1000:3000].tolist()  # labels from the store, not the file


def test_an_empty_store_says_what_to_do(bad_champion):
    with Store.open() as store, pytest.raises(DataContractError, match="include the original"):
        retrain(store, who="job", search_minutes=0)


def test_retrain_beats_a_bad_champion_on_the_same_window_and_promotes(events, bad_champion, capsys):
    fill_store(events, bad_champion)
    with Store.open(read_only=True) as store:
        report = retrain(store, who="job", search_minutes=0, challenger_id="chal-1")
    assert report.champion_id == "bad" and report.challenger_id == "chal-1"
    assert report.rows == ROWS and report.from_store == ROWS and report.from_original == 0
    # both models were scored on exactly the challenger's test window (recomputed here from its metadata)
    split = load_metadata("chal-1").split
    window = events[(events["event_time"] >= pd.Timestamp(split["test"]["start"]))]
    expected = hashlib.sha256("\n".join(sorted(map(str, window["event_id"]))).encode()).hexdigest()
    assert report.champion.event_ids_sha256 == report.challenger.event_ids_sha256 == expected
    assert report.champion.events == report.challenger.events == split["test"]["rows"] == len(window)
    assert report.champion.frauds == report.challenger.frauds == int(window["is_fraud"].sum())
    assert report.champion.volume == report.challenger.volume > 0
    assert report.challenger.average_precision > report.champion.average_precision + 0.2
    assert report.better and "better" in report.reasons[0]
    assert not any("optimistic" in r for r in report.reasons)  # the window was the bad model's own test window
    assert champion_id() == "bad"  # comparing promotes nothing
    promoted = promote_if_better(report, who="job")
    assert promoted.promoted and champion_id() == "chal-1"
    record = json.loads((get_paths().artifacts / "champion.json").read_text())
    assert record["by"] == "job" and record["previous"] == "bad" and "average precision" in record["why"]
    saved = json.loads((get_paths().data / "retrain" / "chal-1.report.json").read_text())
    assert saved["better"] is True and saved["challenger"]["model_id"] == "chal-1"
    assert saved["promoted"] is True  # the history shows the promotion, not only this process

    # the same data and protocol again, headless: an identical challenger is not better, so nothing is promoted
    assert cli.main(["retrain", "--from-store", "--promote-if-better", "--search-minutes", "0", "--who", "cron",
                     "--model-id", "chal-2", "--shadow"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["champion_id"] == "chal-1" and again["challenger_id"] == "chal-2"
    assert again["champion"]["event_ids_sha256"] == again["challenger"]["event_ids_sha256"]
    assert again["challenger"]["average_precision"] == pytest.approx(again["champion"]["average_precision"])
    assert not again["better"] and "not better" in again["reasons"][0]
    assert not again["promoted"] and champion_id() == "chal-1"
    assert again["shadow"] == "chal-2" and get_shadow().model_id == "chal-2"  # it now scores beside the champion
    history = retrain_history()
    assert [(r.challenger_id, r.promoted) for r in history] == [("chal-2", False), ("chal-1", True)]
    with pytest.raises(FraudcoreError, match="did not beat"):
        promote_challenger(history[0], who="ana")  # not better: only an explicit force promotes it


def test_no_champion_is_a_clear_error(isolated_paths):
    with Store.open() as store, pytest.raises(ModelArtifactError, match="promote a model first"):
        retrain(store, who="job")
