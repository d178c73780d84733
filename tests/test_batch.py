"""Batch scoring file to file: agreement with single events, streaming, rejects, formats, atomic output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudcore import batch_scores
from fraudcore.batch import score_file
from fraudcore.bench_score import bench_score
from fraudcore.config import get_paths
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.registry import promote
from fraudcore.scoring import Scorer
from fraudcore.simulate import generate, world_for_rows
from fraudcore.training import TrainRequest, train
from tests.conftest import Trained, raw_event

ADDED = ["score", "tier", "model_id", "reason_1", "reason_2", "reason_3"]


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    """The training file scored once (Parquet in, Parquet out), with its run summary."""
    out = tmp_path_factory.mktemp("scored") / "scores.parquet"
    run = score_file(trained.parquet, out, trained.model_id, root=trained.root)
    return run, pd.read_parquet(out)


def test_batch_scores_equal_single_event_scores(scored, scorer, trained):
    run, out = scored
    assert run["rows_scored"] == len(trained.frame) == len(out) and run["rows_rejected"] == 0
    history = scorer.frame_history(trained.frame)
    alerts = np.flatnonzero(out["tier"].to_numpy() != "low")[:6]
    rows = sorted({*alerts.tolist(), 0, 1, 4000, 8000, 11_999})
    singles = [scorer.score_event(raw_event(trained, i), history) for i in rows]
    np.testing.assert_allclose([s.score for s in singles], out["score"].iloc[rows], rtol=0, atol=1e-6)
    assert [s.tier for s in singles] == out["tier"].iloc[rows].tolist()
    for s, i in zip(singles, rows, strict=True):
        if s.tier != "low":  # explained in the batch: the same top reason, word for word
            assert out["reason_1"].iloc[i].startswith(s.reasons[0]["text"])


def test_output_keeps_input_rows_and_columns_and_explains_alerts_only(scored, trained):
    run, out = scored
    assert list(out.columns) == [*trained.frame.columns, *ADDED]
    pd.testing.assert_series_equal(out["event_id"], trained.frame["event_id"])
    pd.testing.assert_series_equal(out["amount"], trained.frame["amount"])
    assert out["is_fraud"].dtype == trained.frame["is_fraud"].dtype
    alerted = out["tier"] != "low"
    assert alerted.any() and out.loc[alerted, "reason_1"].str.len().gt(0).all()
    assert out.loc[~alerted, ["reason_1", "reason_2", "reason_3"]].isna().all().all()
    assert run["rows_explained"] == int(alerted.sum())
    assert run["tiers"] == out["tier"].value_counts().reindex(["high", "medium", "low"], fill_value=0).to_dict()
    assert (out["model_id"] == trained.model_id).all()


def test_row_order_of_the_file_does_not_change_scores(scored, trained, tmp_path):
    _, out = scored
    shuffled = trained.frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled.to_parquet(tmp_path / "shuffled.parquet", index=False)
    score_file(tmp_path / "shuffled.parquet", tmp_path / "out.parquet", trained.model_id, root=trained.root)
    again = pd.read_parquet(tmp_path / "out.parquet")
    assert again["event_id"].tolist() == shuffled["event_id"].tolist()  # file order kept
    merged = again.merge(out, on="event_id", suffixes=("", "_sorted"))
    np.testing.assert_allclose(merged["score"], merged["score_sorted"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_small_chunks_give_the_same_output_as_one_chunk(trained, tmp_path, suffix):
    source = tmp_path / f"in.{suffix}"
    frame = trained.frame.iloc[:5000]
    frame.to_parquet(source, index=False) if suffix == "parquet" else frame.to_csv(source, index=False)
    calls = []
    small = score_file(source, tmp_path / f"small.{suffix}", trained.model_id, root=trained.root, chunk_rows=700,
                       explain_all=True, progress=lambda f, m: calls.append(f))
    whole = score_file(source, tmp_path / f"whole.{suffix}", trained.model_id, root=trained.root,
                       chunk_rows=1_000_000, explain_all=True)
    assert small["rows_scored"] == whole["rows_scored"] == 5000 and small["rows_explained"] == 5000
    if suffix == "csv":
        assert (tmp_path / "small.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    else:
        assert pq.read_table(tmp_path / "small.parquet").equals(pq.read_table(tmp_path / "whole.parquet"))
    assert len(calls) >= 5000 // 700 and calls == sorted(calls) and calls[-1] == 1.0


def _dirty_csv(trained: Trained, path):
    """A CSV with one row per contract breach (the fixed rows are listed with the field each one breaks)."""
    frame = trained.frame.iloc[:3000].astype({"event_time": str, "amount": str, "event_id": "Int64"})
    frame.loc[10, "event_time"] = None
    frame.loc[11, "event_time"] = "not-a-time"
    frame.loc[12, "amount"] = "abc"
    frame.loc[13, "amount"] = "-3.5"
    frame.loc[14, "event_id"] = pd.NA
    frame.loc[16, "event_id"] = frame.loc[15, "event_id"]
    frame.loc[17, "amount"] = None  # the model never saw a missing amount: it has no answer for one
    frame.to_csv(path, index=False)
    return {10: "event_time: missing", 11: "event_time: cannot read", 12: "amount: not a number",
            13: "amount: negative", 14: "event_id: missing", 16: "event_id: duplicate of row 16",
            17: "amount: missing: this model was trained on events that all had an amount"}


def test_rejects_go_to_their_own_file_naming_the_field(trained, tmp_path):
    expected = _dirty_csv(trained, tmp_path / "dirty.csv")
    run = score_file(tmp_path / "dirty.csv", tmp_path / "out.csv", trained.model_id, root=trained.root)
    assert run["rows_rejected"] == len(expected) and run["rows_scored"] == 3000 - len(expected)
    assert run["rejects_path"] == str(tmp_path / "out.rejects.csv")
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert list(rejects.columns) == [*trained.frame.columns, "reject_reason"]
    assert rejects["amount"].astype(str).tolist()[2:4] == ["abc", "-3.5"]  # raw values, as they were in the file
    for reason, start in zip(rejects["reject_reason"], expected.values(), strict=True):
        assert reason.startswith(start)
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == run["rows_scored"] and list(out.columns) == [*trained.frame.columns, *ADDED]
    rejected_ids = set(trained.frame["event_id"].iloc[[10, 11, 12, 13, 16, 17]])
    assert not rejected_ids & set(out["event_id"].dropna().astype(int))


def test_csv_in_csv_out_and_parquet_in_parquet_out(trained, tmp_path):
    frame = trained.frame.iloc[:2000]
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    score_file(tmp_path / "in.csv", tmp_path / "out.csv", trained.model_id, root=trained.root)
    score_file(tmp_path / "in.parquet", tmp_path / "out.parquet", trained.model_id, root=trained.root)
    assert (tmp_path / "out.parquet").read_bytes()[:4] == b"PAR1"
    assert (tmp_path / "out.csv").read_text().splitlines()[0].replace('"', "").split(",") == [*frame.columns, *ADDED]
    from_csv, from_parquet = pd.read_csv(tmp_path / "out.csv"), pd.read_parquet(tmp_path / "out.parquet")
    np.testing.assert_allclose(from_csv["score"], from_parquet["score"], rtol=0, atol=1e-12)
    with pytest.raises(FraudcoreError, match="format"):
        score_file(tmp_path / "in.csv", tmp_path / "other.parquet", trained.model_id, root=trained.root)
    assert not (tmp_path / "other.parquet").exists()


def test_nothing_is_left_behind_when_scoring_fails(trained, tmp_path, monkeypatch):
    trained.frame.iloc[:3000].to_parquet(tmp_path / "in.parquet", index=False)
    (tmp_path / "out.parquet").write_text("previous results")

    def broken(*args, **kwargs):
        raise RuntimeError("explainer crashed")

    monkeypatch.setattr(batch_scores, "explain", broken)
    with pytest.raises(RuntimeError, match="explainer crashed"):
        score_file(tmp_path / "in.parquet", tmp_path / "out.parquet", trained.model_id, root=trained.root,
                   chunk_rows=500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]
    assert (tmp_path / "out.parquet").read_text() == "previous results"

    trained.frame.drop(columns=["terminal_id"]).iloc[:100].to_parquet(tmp_path / "narrow.parquet", index=False)
    with pytest.raises(ModelArtifactError, match="terminal_id"):
        score_file(tmp_path / "narrow.parquet", tmp_path / "narrow_out.parquet", trained.model_id, root=trained.root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "narrow.parquet", "out.parquet"]


def test_the_champion_scores_when_no_model_is_named(trained, tmp_path):
    shutil.copytree(trained.root / trained.model_id, get_paths().artifacts / trained.model_id)
    trained.frame.iloc[:1000].to_parquet(tmp_path / "in.parquet", index=False)
    with pytest.raises(ModelArtifactError, match="no champion"):
        score_file(tmp_path / "in.parquet", tmp_path / "out.parquet")
    promote(trained.model_id, who="test", why="batch test")
    run = score_file(tmp_path / "in.parquet", tmp_path / "out.parquet", explain_tiers=())
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert run["model_id"] == trained.model_id and (out["model_id"] == trained.model_id).all()
    assert run["rows_explained"] == 0 and out["reason_1"].isna().all()


def test_arrow_matrix_equals_the_matrix_contract(scorer, trained):
    from fraudcore.features_batch import build_features_frame

    X = build_features_frame(trained.frame.iloc[:800], scorer.feature_config)[scorer.feature_names]
    X.loc[X.index[:5], "country"] = "XX"  # a level never seen in training reads as unknown
    table = pa.Table.from_pandas(X, preserve_index=False)
    np.testing.assert_array_equal(scorer.matrix.numpy(table.to_batches()[0]), scorer.matrix.numpy(X))


def test_bench_score_reports_rates_and_latency(trained):
    result = bench_score(rows=3000, model_id=trained.model_id, root=trained.root, events=10)
    assert result["score_only"]["rows_scored"] == 3000 and result["score_only"]["rows_explained"] == 0
    assert result["with_reasons"]["rows_explained"] > 0
    assert result["single_event"]["events"] == 10 and result["single_event"]["total_ms"]["median"] > 0


def test_a_model_without_event_ids_scores_files_like_single_events(tmp_path):
    """No id column: rows are numbered by file position; an id-less event is the newest of its history."""
    frame = generate(rows=6000, world=world_for_rows(6000, seed=9, days=8)).drop(columns=["event_id"])
    frame.to_csv(tmp_path / "noid.csv", index=False)
    train(tmp_path / "noid.csv", TrainRequest(model_id="noid", search_minutes=0), root=tmp_path / "artifacts")
    run = score_file(tmp_path / "noid.csv", tmp_path / "out.csv", "noid", root=tmp_path / "artifacts")
    assert run["rows_scored"] == 6000 and run["rows_rejected"] == 0
    out = pd.read_csv(tmp_path / "out.csv")
    scorer = Scorer.load("noid", tmp_path / "artifacts")
    raw = pd.read_csv(tmp_path / "noid.csv").drop(columns=["is_fraud", "fraud_scenario"])
    for i in (5, 3000, 5999):
        single = scorer.score_event(raw.iloc[i].to_dict(), scorer.frame_history(raw.iloc[:i]))
        assert single.event_id is None and abs(single.score - out["score"].iloc[i]) < 1e-6


def test_a_bad_value_beyond_the_csv_type_sniffer_is_rejected_not_fatal(trained, tmp_path):
    frame = generate(rows=25_000, world=world_for_rows(12_000, seed=5, days=10)).astype({"amount": str})
    frame.loc[24_000, "amount"] = "12.50 EUR"  # DuckDB sniffs the first ~20k rows, where every amount is a number
    frame.to_csv(tmp_path / "late.csv", index=False)
    run = score_file(tmp_path / "late.csv", tmp_path / "out.csv", trained.model_id, root=trained.root,
                     explain_tiers=())
    assert run["rows_rejected"] == 1 and run["rows_scored"] == 24_999
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["reject_reason"].tolist() == ["amount: not a number: 12.50 EUR"]
    assert pd.read_csv(tmp_path / "out.csv")["amount"].dtype == float


def test_cli_score_writes_the_same_format_with_reasons_and_rejects(trained, tmp_path, capsys):
    import json

    from fraudcore import cli

    shutil.copytree(trained.root / trained.model_id, get_paths().artifacts / trained.model_id)
    promote(trained.model_id, who="test", why="cli score")
    rows = trained.frame.drop(columns=["is_fraud", "fraud_scenario"]).iloc[:400].copy()
    rows["amount"] = rows["amount"].astype(object)
    rows.loc[rows.index[7], "amount"] = "lots"  # data row 8: a bad amount goes to the rejects file
    rows.to_csv(tmp_path / "in.csv", index=False)
    code = cli.main(["score", "--in", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"),
                     "--explain-all", "--k", "2"])
    captured = capsys.readouterr()
    run = json.loads(captured.out.strip().splitlines()[-1])
    out = pd.read_csv(tmp_path / "out.csv")
    rejects = pd.read_csv(run["rejects_path"])
    assert code == 0 and run["model_id"] == trained.model_id and "1 rows rejected" in captured.err
    assert len(out) == 399 and {"score", "tier", "reason_1", "reason_2"} <= set(out.columns)
    assert "reason_3" not in out.columns and out["reason_1"].notna().all()  # --explain-all, k=2
    assert rejects["amount"].tolist() == ["lots"] and "amount" in rejects["reject_reason"][0]
    trained.frame.iloc[400:500].to_csv(tmp_path / "next.csv", index=False)
    assert cli.main(["score", "--in", str(tmp_path / "next.csv"), "--out", str(tmp_path / "next_out.csv"),
                     "--history", str(tmp_path / "in.csv")]) == 0  # the rows before, counted not scored
    history_run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert history_run["history_rows"] == 400 and history_run["rows_scored"] == 100


def test_a_rejects_path_on_the_input_or_output_is_refused_before_anything_is_written(trained, tmp_path, monkeypatch):
    """The rejects file is renamed into place last: on the input it replaced the data, on the output the scores."""
    _dirty_csv(trained, tmp_path / "dirty.csv")
    shutil.copy(tmp_path / "dirty.csv", tmp_path / "out.rejects.csv")  # where the rejects of out.csv go by default
    (tmp_path / "link.csv").symlink_to(tmp_path / "dirty.csv")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.chdir(tmp_path)
    cases = [("dirty.csv", "out.csv", tmp_path / "link.csv", "is the input file"),
             ("dirty.csv", "out.csv", "./out.csv", "is the output file"),
             ("out.rejects.csv", "out.csv", None, "is the input file"),
             ("dirty.csv", "out.csv", "rejects.parquet", r"rejects file is named rejects\.parquet.*\*\.csv")]
    for source, out, rejects, message in cases:
        with pytest.raises(FraudcoreError, match=message):
            score_file(source, tmp_path / out, trained.model_id, root=trained.root, rejects_path=rejects)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_run_without_rejects_removes_the_rejects_file_an_earlier_run_left(trained, tmp_path, monkeypatch):
    _dirty_csv(trained, tmp_path / "dirty.csv")
    trained.frame.iloc[:2000].to_csv(tmp_path / "clean.csv", index=False)
    for rejects in (None, tmp_path / "mine.csv"):
        dirty = score_file(tmp_path / "dirty.csv", tmp_path / "out.csv", trained.model_id, root=trained.root,
                           explain_tiers=(), rejects_path=rejects)
        left = tmp_path / Path(dirty["rejects_path"]).name
        assert left.exists()
        monkeypatch.setattr(batch_scores, "explain", lambda *a, **kw: 1 / 0)
        with pytest.raises(ZeroDivisionError):  # a failed run changes nothing, the old rejects included
            score_file(tmp_path / "clean.csv", tmp_path / "out.csv", trained.model_id, root=trained.root,
                       explain_all=True, rejects_path=rejects)
        assert left.exists()
        monkeypatch.undo()
        clean = score_file(tmp_path / "clean.csv", tmp_path / "out.csv", trained.model_id, root=trained.root,
                           explain_tiers=(), rejects_path=rejects)
        assert clean["rejects_path"] is None and not left.exists()


@pytest.mark.parametrize(("option", "named", "not_named"), [({"k": 0}, "k (reasons", "chunk_rows"),
                                                            ({"chunk_rows": 0}, "chunk_rows", "k (")])
def test_a_bad_count_names_only_its_own_option(trained, tmp_path, option, named, not_named):
    with pytest.raises(FraudcoreError) as error:
        score_file(trained.parquet, tmp_path / "out.parquet", trained.model_id, root=trained.root, **option)
    assert named in str(error.value) and not_named not in str(error.value)


def test_an_output_under_a_file_or_on_a_folder_is_a_clear_error(trained, tmp_path):
    (tmp_path / "base.csv").write_text("a file, not a folder")
    with pytest.raises(FraudcoreError, match=r"lies under .*base\.csv, which is a file"):
        score_file(trained.parquet, tmp_path / "base.csv" / "x.parquet", trained.model_id, root=trained.root)
    with pytest.raises(FraudcoreError, match="is a folder"):
        score_file(trained.parquet, tmp_path, trained.model_id, root=trained.root)
    with pytest.raises(FraudcoreError, match=r"rejects file .* lies under"):
        score_file(trained.parquet, tmp_path / "out.parquet", trained.model_id, root=trained.root,
                   rejects_path=tmp_path / "base.csv" / "r.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["base.csv"]
