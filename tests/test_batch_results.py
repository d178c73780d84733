"""Batch scoring around the Score page: uploads refused clearly, outputs in the data folder, previews, downloads in
either format, the tier chart, and the sample of explanations score_file keeps for a SHAP summary."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fraudcore import batch_results
from fraudcore.batch import score_file
from fraudcore.errors import DataContractError
from fraudcore.jobs import Jobs
from fraudcore.simulate import generate, world_for_rows
from fraudcore.training import TrainRequest, train


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    """The first 4,000 events scored through the page's background work, as CSV with two bad rows."""
    folder = tmp_path_factory.mktemp("batch_results")
    raw = trained.frame.iloc[:4000].drop(columns=["is_fraud", "fraud_scenario"]).astype({"amount": object})
    raw.loc[[3, 9], "amount"] = ["-1", "2e12"]
    source = folder / "events.csv"
    raw.to_csv(source, index=False)
    out = batch_results.output_path(folder / "scored", source)
    job = Jobs().submit("score", batch_results.scoring_work(source, out, trained.model_id, trained.root,
                                                            ["high", "medium"]))
    assert job.wait(120) and job.status == "done", job.detail
    return job.result


@pytest.mark.parametrize(("name", "content", "message"), [
    ("scores.xlsx", b"PK\x03\x04", "scores.xlsx is not a CSV or Parquet file; upload one ending in .csv"),
    ("empty.csv", b"", "empty.csv is empty (0 bytes)"),
])
def test_uploads_other_than_csv_or_parquet_are_refused(tmp_path, name, content, message):
    with pytest.raises(DataContractError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        batch_results.accept_upload(content, name, tmp_path)
    assert not list(tmp_path.iterdir())


def test_accepted_upload_is_saved_under_the_folder(tmp_path):
    path = batch_results.accept_upload(b"a,b\n1,2\n", "My File (1).CSV", tmp_path / "uploads")
    assert path.parent == tmp_path / "uploads" and path.read_bytes() == b"a,b\n1,2\n"
    assert path.name.endswith("My_File_1_.CSV")


def test_output_paths_keep_the_input_format(tmp_path):
    csv, parquet = (batch_results.output_path(tmp_path, tmp_path / n) for n in ("a b.tsv", "x.parquet"))
    assert csv.name.startswith("a_b.") and csv.name.endswith(".scored.csv")
    assert parquet.name.endswith(".scored.parquet") and parquet.parent == tmp_path
    assert batch_results.output_path(tmp_path, tmp_path / "x.parquet") != parquet  # fresh each time


def test_results_preview_puts_scores_and_reasons_first(scored):
    assert scored["rows_in"] == 4000 and scored["rows_rejected"] == 2
    table = batch_results.preview(scored["out_path"], limit=50)
    assert list(table.columns[:5]) == ["score", "tier", "reason_1", "reason_2", "reason_3"]
    assert "model_id" not in table.columns and "event_id" in table.columns
    assert len(table) == 50 and table["score"].is_monotonic_decreasing
    everything = pd.read_csv(scored["out_path"])
    assert table["score"].iloc[0] == pytest.approx(everything["score"].max())


def test_rejects_preview_names_the_field(scored):
    rejects = batch_results.preview(scored["rejects_path"], by_score=False)
    assert rejects.columns[0] == "reject_reason"
    assert list(rejects["reject_reason"]) == ["amount: negative (-1.0)",
                                              "amount: too large (2000000000000.0); amounts up to 1e+12 can be scored"]


def test_downloads_in_either_format_hold_the_same_rows(scored):
    as_csv = pd.read_csv(io.BytesIO(batch_results.as_format(scored["out_path"], "csv")))
    as_parquet = pq.read_table(io.BytesIO(batch_results.as_format(scored["out_path"], "parquet"))).to_pandas()
    assert len(as_csv) == len(as_parquet) == 3998
    assert np.allclose(as_csv["score"], as_parquet["score"]) and list(as_csv["tier"]) == list(as_parquet["tier"])
    assert batch_results.as_format(scored["out_path"], "csv") == Path(scored["out_path"]).read_bytes()


def test_tier_chart_counts_every_tier(scored):
    chart = batch_results.tier_chart(scored["tiers"])
    data = chart.data.set_index("tier")
    assert list(data.index) == ["high", "medium", "low"] and data["events"].sum() == 3998
    assert data["share"].sum() == pytest.approx(1.0)
    empty = batch_results.tier_chart({}).data
    assert list(empty["events"]) == [0, 0, 0]


def test_explanation_sample_matches_the_scores_of_the_explained_rows(scored):
    expl = scored["explanation"]
    assert len(expl) == scored["rows_explained"] > 0
    out = pd.read_csv(scored["out_path"])
    explained = out[out["tier"].isin(["high", "medium"])]
    assert np.allclose(np.sort(expl.probability), np.sort(explained["score"]), rtol=1e-5)


def test_explanation_sample_is_capped_and_absent_without_explained_rows(trained, tmp_path):
    run = score_file(trained.parquet, tmp_path / "all.parquet", trained.model_id, root=trained.root,
                     explain_all=True, explanation_sample=500, chunk_rows=3000)
    assert run["rows_explained"] == 12_000 and len(run["explanation"]) == 500
    assert len(set(run["explanation"].data.index)) == 500
    none = score_file(trained.parquet, tmp_path / "none.parquet", trained.model_id, root=trained.root,
                      explain_tiers=(), explanation_sample=500)
    assert none["explanation"] is None
    plain = score_file(trained.parquet, tmp_path / "plain.parquet", trained.model_id, root=trained.root)
    assert "explanation" not in plain


def test_values_too_large_for_the_model_are_rejected_naming_the_column(tmp_path):
    frame = generate(rows=6000, world=world_for_rows(6000, seed=2, days=4))
    frame["device_score"] = np.random.default_rng(0).normal(size=len(frame))
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    meta = train(tmp_path / "train.parquet", TrainRequest(model_id="num", search_minutes=0), root=tmp_path / "art")
    assert "device_score" in meta.spec.numeric
    batch = frame.iloc[:200].drop(columns=["is_fraud", "fraud_scenario"]).astype({"device_score": object})
    batch.loc[[4, 5], "device_score"] = ["1e39", "-3.1e38"]
    batch.to_csv(tmp_path / "in.csv", index=False)
    run = score_file(tmp_path / "in.csv", tmp_path / "out.csv", "num", root=tmp_path / "art")
    assert run["rows_scored"] == 198
    reasons = list(pd.read_csv(run["rejects_path"])["reject_reason"])
    assert [r.split(" (")[0] for r in reasons] == ["device_score: too large for the model"] * 2
    assert reasons[0].endswith("values within ±3e+38 can be scored")


def test_the_explanation_sample_is_uniform_across_chunks_of_any_size():
    from fraudcore.batch_scores import _keep_smallest
    from fraudcore.explain import Explanation

    rng, parts, keys = np.random.default_rng(1), [], []
    for part, size in enumerate((5_500, 5_500, 1_000)):  # a small last chunk was over-sampled ~5x
        parts.append(Explanation(np.zeros((size, 1)), np.zeros(size), pd.DataFrame({"part": np.full(size, part)}),
                                 ["part"]))
        keys.append(rng.random(size))
        _keep_smallest(parts, keys, 600)
    taken = np.concatenate([p.data["part"].to_numpy() for p in parts])
    assert len(taken) == 600 and 25 <= (taken == 2).sum() <= 85  # 1,000 of 12,000 rows: ~50 expected
