"""The two ways a batch gets its model inputs (features over in-memory arrays; DuckDB's window SQL via a temp file
for what does not fit or what only SQL reproduces) write the same files; the writer thread surfaces its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudcore import batch_inputs
from fraudcore.batch import score_file
from fraudcore.batch_files import Writer
from fraudcore.errors import DataContractError
from fraudcore.simulate import generate, world_for_rows
from fraudcore.training import TrainRequest, train


def _dirty(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that break the contract in several ways, a level unseen in training and a missing device."""
    out = frame.astype({"amount": str, "event_id": "Int64"})
    out.loc[[5, 77], "amount"] = ["abc", "-2"]
    out.loc[300, "event_id"] = out.loc[299, "event_id"]
    out.loc[400, "event_time"] = pd.NaT
    out.loc[[10, 11], "country"] = "XX"
    out.loc[12, "device_id"] = None
    return out


def _both(source, tmp_path, monkeypatch, model_id, root, **options) -> tuple[dict, dict]:
    """Score ``source`` by the array path, then by the SQL path (no memory share); return both runs."""
    suffix = source.suffix
    arrays = score_file(source, tmp_path / f"arrays{suffix}", model_id, root=root, **options)
    monkeypatch.setattr(batch_inputs, "MEMORY_SHARE", 0.0)
    sql = score_file(source, tmp_path / f"sql{suffix}", model_id, root=root, **options)
    monkeypatch.undo()
    assert (arrays["features_path"], sql["features_path"]) == ("arrays", "sql")
    return arrays, sql


def _same_files(a: str, b: str) -> None:
    if a.endswith(".csv"):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    else:
        left, right = pq.read_table(a), pq.read_table(b)
        assert left.schema == right.schema and left.equals(right)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_array_and_sql_paths_write_the_same_files(trained, tmp_path, monkeypatch, suffix):
    frame = _dirty(trained.frame.iloc[:6000].sample(frac=1.0, random_state=4).reset_index(drop=True))
    source = tmp_path / f"in.{suffix}"
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source, index=False)
    arrays, sql = _both(source, tmp_path, monkeypatch, trained.model_id, trained.root, chunk_rows=1700,
                        explain_tiers=("high", "medium", "low"), k=2, explanation_sample=10_000)
    for key in ("rows_in", "rows_rejected", "rows_scored", "rows_explained", "tiers"):
        assert arrays[key] == sql[key], key
    assert arrays["rows_rejected"] == 4 and arrays["rows_explained"] == 5996
    _same_files(arrays["out_path"], sql["out_path"])
    _same_files(arrays["rejects_path"], sql["rejects_path"])
    np.testing.assert_array_equal(arrays["explanation"].values, sql["explanation"].values)  # every row, file order
    out = pd.read_csv(arrays["out_path"]) if suffix == "csv" else pd.read_parquet(arrays["out_path"])
    assert out["reason_2"].notna().all() and len(out) == 5996


def test_amounts_too_large_to_pack_use_the_sql_path(trained, tmp_path):
    frame = trained.frame.iloc[:3000].copy()
    frame.loc[frame.index[:8], "amount"] = 9e11  # eight of these sum past 2**62 micro-units
    frame.to_parquet(tmp_path / "big.parquet", index=False)
    run = score_file(tmp_path / "big.parquet", tmp_path / "out.parquet", trained.model_id, root=trained.root,
                     explain_tiers=())
    assert run["features_path"] == "sql" and run["rows_scored"] == 3000
    assert set(run["cpu_seconds"]) >= {"load", "validate", "features", "predict", "write", "total"}


def test_a_model_without_features_scores_the_same_by_both_paths(tmp_path, monkeypatch):
    frame = generate(rows=6000, world=world_for_rows(6000, seed=9, days=8))
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    train(tmp_path / "train.parquet", TrainRequest(model_id="plain", features="none", search_minutes=0),
          root=tmp_path / "art")
    frame.iloc[::-1].to_csv(tmp_path / "in.csv", index=False)
    arrays, sql = _both(tmp_path / "in.csv", tmp_path, monkeypatch, "plain", tmp_path / "art", chunk_rows=999)
    assert arrays["rows_scored"] == 6000 and arrays["rows_explained"] > 0
    _same_files(arrays["out_path"], sql["out_path"])


def test_writer_keeps_batch_order_and_raises_its_thread_errors(tmp_path):
    schema = pa.schema([pa.field("x", pa.int64())])
    with Writer(tmp_path / "ok.parquet", "parquet", schema, backlog=1) as write:
        for i in range(20):
            write(pa.record_batch([pa.array(np.arange(i * 10, i * 10 + 10))], schema=schema))
    assert pq.read_table(tmp_path / "ok.parquet").column("x").to_pylist() == list(range(200))
    wrong = pa.record_batch([pa.array(["not a number"])], names=["x"])
    with pytest.raises(Exception, match=r"schema|Schema"), Writer(tmp_path / "bad.parquet", "parquet", schema) as write:
        write(wrong)
        for _ in range(5):  # the error comes back on a later write or on leaving the block
            write(pa.record_batch([pa.array([1])], schema=schema))


def test_a_history_file_gives_the_scores_of_scoring_history_and_file_together(trained, tmp_path, monkeypatch):
    frame = trained.frame.iloc[:5000]
    cut = frame["event_time"].iloc[3000]
    earlier, later = frame[frame["event_time"] < cut], frame[frame["event_time"] >= cut]
    earlier.to_parquet(tmp_path / "history.parquet", index=False)
    later.to_parquet(tmp_path / "day.parquet", index=False)
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    whole = score_file(tmp_path / "all.parquet", tmp_path / "all_out.parquet", trained.model_id, root=trained.root)
    expected = pd.read_parquet(whole["out_path"]).set_index("event_id").loc[later["event_id"]]
    with_history = _both(tmp_path / "day.parquet", tmp_path, monkeypatch, trained.model_id, trained.root,
                         history_path=tmp_path / "history.parquet")
    for run in with_history:  # both feature paths: history counted, not scored or written
        assert run["history_rows"] == len(earlier) and run["rows_scored"] == len(later)
        got = pd.read_parquet(run["out_path"])
        assert got["event_id"].tolist() == later["event_id"].tolist()
        np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
        assert got["tier"].tolist() == expected["tier"].tolist()
    alone = pd.read_parquet(score_file(tmp_path / "day.parquet", tmp_path / "alone.parquet", trained.model_id,
                                       root=trained.root)["out_path"])
    assert (alone["score"].to_numpy() != expected["score"].to_numpy()).sum() > 100  # the history mattered
    both = pd.concat([earlier.iloc[-50:], later])  # rows in both files are the file's own: not counted twice
    both.to_parquet(tmp_path / "overlap.parquet", index=False)
    overlap = score_file(tmp_path / "overlap.parquet", tmp_path / "overlap_out.parquet", trained.model_id,
                         root=trained.root, history_path=tmp_path / "history.parquet")
    assert overlap["history_rows"] == len(earlier) - 50
    got = pd.read_parquet(overlap["out_path"]).set_index("event_id").loc[later["event_id"]]
    np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
    earlier.drop(columns=["terminal_id"]).to_parquet(tmp_path / "partial.parquet", index=False)
    with pytest.raises(DataContractError, match=r"history file partial\.parquet has no 'terminal_id' column"):
        score_file(tmp_path / "day.parquet", tmp_path / "refused.parquet", trained.model_id, root=trained.root,
                   history_path=tmp_path / "partial.parquet")
    assert not (tmp_path / "refused.parquet").exists()
