"""Score page: the single-event form (prefilled, scored with reasons and a waterfall) and batch files (results,
tiers, rejects, downloads, SHAP summary), plus uploads that must fail with a clear error while the page stays up."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from fraudcore import runtime
from fraudcore.config import get_paths
from fraudcore.registry import promote
from tests.conftest import REPO

PAGE = str(REPO / "pages" / "score.py")


@pytest.fixture
def champion(trained):
    """The session's small model copied into this test's artifacts and promoted; its events are the demo data."""
    paths = get_paths().ensure()
    shutil.copytree(trained.root / trained.model_id, paths.artifacts / trained.model_id)
    promote(trained.model_id, paths.artifacts, who="test", why="the Score page needs a champion")
    trained.frame.to_parquet(paths.demo_dataset, index=False)
    return trained


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60)


def batch_tab_upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="batch_upload").upload(name, content).run()
    return at


def finish_batch(at: AppTest) -> AppTest:
    """Click 'Score the file', wait (bounded) for the background job, and rerun to show its outcome."""
    at.button(key="batch_go").click().run()
    job = runtime.current().jobs.get(at.session_state["batch_job"])
    assert job is not None and job.wait(120), "batch scoring did not finish within 120 s"
    return at.run()


def chart_data(chart) -> tuple[str, pd.DataFrame]:
    """A drawn Altair chart's title and its (first) data set, as the browser receives them."""
    spec = json.loads(chart.proto.spec)
    title = spec.get("title")
    data = chart.proto.datasets[0].data.data if chart.proto.datasets else chart.proto.data.data
    return title if isinstance(title, str) else (title or {}).get("text", ""), \
        pa.ipc.open_stream(data).read_all().to_pandas()


def test_single_event_form_is_prefilled_and_scores_with_reasons_and_waterfall(champion):
    at = page().run()
    assert not at.exception
    assert "score-xgb (champion)" in at.selectbox(key="score_model").format_func(at.selectbox(key="score_model").value)
    assert "Prefilled from a row of `demo_transactions.parquet`" in at.caption[0].value
    amount = at.number_input(key="ev_amount").value
    sample = champion.frame.set_index("event_id").loc[int(at.text_input(key="ev_event_id").value)]
    assert amount == pytest.approx(sample["amount"])  # the form holds that row's values
    assert at.selectbox(key="ev_channel").value == sample["channel"]
    assert at.selectbox(key="ev_channel").options[1:] == ["ecom", "pos"]  # categories seen in training
    assert "Its known label" in at.caption[0].value

    next(b for b in at.button if b.label == "Score this event").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Fraud probability"].endswith("%") and "Scored by `score-xgb`" in at.caption[1].value
    scored = at.session_state["score_result"][1]
    assert metrics["Fraud probability"] == f"{scored.score:.2%}"
    assert any(f":{'red' if scored.tier == 'high' else 'orange' if scored.tier == 'medium' else 'green'}-badge"
               f"[{scored.tier.upper()}]" in m.value for m in at.markdown)
    why = next(m.value for m in at.markdown if m.value.startswith("- "))
    assert why.count("\n") == len(scored.reasons) - 1 and scored.reasons[0]["text"] in why
    title, data = chart_data(at.get("vega_lite_chart")[0])  # the waterfall
    assert title.startswith(f"fraud probability {scored.score:.1%}")
    assert data["label"].iloc[0] == "base value" and data["label"].iloc[-1] == "prediction"
    assert data["end"].iloc[-1] == pytest.approx(math.log(scored.score / (1 - scored.score)), abs=1e-4)
    assert scored.reasons[0]["feature"] in set(data["feature"])  # the strongest reason is drawn


def test_changed_fields_change_the_score_and_bad_fields_are_named(champion):
    at = page().run()
    next(b for b in at.button if b.label == "Score this event").click().run()
    first = at.session_state["score_result"][1].score
    at.number_input(key="ev_amount").set_value(9_999.0)
    at.selectbox(key="ev_channel").set_value("ecom")
    next(b for b in at.button if b.label == "Score this event").click().run()
    second = at.session_state["score_result"][1]
    assert second.score != first and second.features["amount"] == 9_999.0

    at.text_input(key="ev_event_time").input("not a time")
    at.text_input(key="ev_event_id").input("abc")
    at.text_input(key="ev_customer_id").input("")
    next(b for b in at.button if b.label == "Score this event").click().run()
    assert not at.exception
    assert "**event_id**: this dataset's event_id values are whole numbers" in at.error[0].value
    at.text_input(key="ev_event_id").input("")
    next(b for b in at.button if b.label == "Score this event").click().run()
    assert "**event_time**" in at.error[0].value and "Fix these fields" in at.error[0].value
    assert "score_result" not in at.session_state

    at.text_input(key="ev_event_time").input("2025-01-09 10:00:00")
    at.number_input(key="ev_amount").set_value(1e300)  # a huge value: named, not a crash
    next(b for b in at.button if b.label == "Score this event").click().run()
    assert not at.exception
    assert "**amount**: amount 1e+300 is too large" in at.error[0].value


def test_new_sample_refills_the_form(champion):
    at = page().run()
    before = at.text_input(key="ev_event_id").value
    next(b for b in at.button if b.label == "New sample").click().run()
    assert not at.exception
    after = at.text_input(key="ev_event_id").value
    assert after != before
    row = champion.frame.set_index("event_id").loc[int(after)]
    assert at.number_input(key="ev_amount").value == pytest.approx(row["amount"])


def test_batch_upload_shows_results_tiers_rejects_downloads_and_shap(champion):
    frame = champion.frame.iloc[:3000].copy()
    raw = frame.drop(columns=["is_fraud", "fraud_scenario"]).astype({"amount": object})
    raw.loc[[10, 20], "amount"] = ["lots", -5.0]  # two rows the batch must reject, naming the field
    at = page().run()
    batch_tab_upload(at, "batch.csv", raw.to_csv(index=False).encode())
    assert not at.exception and not at.error
    finish_batch(at)
    assert not at.exception
    assert any(c.value.startswith("Scoring batch.csv with score-xgb") for c in at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows in"] == "3,000" and metrics["Scored"] == "2,998" and metrics["Rejected"] == "2"
    results = at.dataframe[0].value
    assert list(results.columns[:3]) == ["score", "tier", "reason_1"]
    assert results["score"].is_monotonic_decreasing and set(results["tier"]) <= {"high", "medium", "low"}
    flagged = results[results["tier"] != "low"]
    assert len(flagged) and flagged["reason_1"].str.len().min() > 0  # explained tiers carry reasons
    rejects = at.dataframe[1].value
    assert sorted(rejects["reject_reason"]) == ["amount: negative (-5.0)", "amount: not a number: lots"]
    tiers_chart, swarm, importance = (chart_data(c) for c in at.get("vega_lite_chart"))
    assert tiers_chart[0] == "events per tier" and tiers_chart[1]["events"].sum() == 2_998
    run = runtime.current().jobs.get(at.session_state["batch_job"]).result
    written = pd.read_csv(run["out_path"])["tier"].value_counts().to_dict()
    assert dict(zip(tiers_chart[1]["tier"], tiers_chart[1]["events"], strict=True)) == \
        {t: written.get(t, 0) for t in ("high", "medium", "low")}
    assert len(results) == 1_000 and results["score"].iloc[0] == pytest.approx(run["explanation"].probability.max())
    assert len(run["explanation"]) == run["rows_explained"]  # all explained rows kept (fewer than the 2,000 cap)
    assert "strongest features" in swarm[0] and swarm[1]["contribution"].abs().sum() > 0
    assert importance[0].startswith("mean |contribution| over") and importance[1]["mean_abs"].is_monotonic_decreasing
    assert [d.label for d in at.download_button] == ["Download CSV", "Download Parquet"]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("model.exe", b"MZ\x90\x00\x03\x00", "not a CSV or Parquet file"),
    ("empty.csv", b"", "empty"),
    ("latin.csv", "event_id,amount\n1,Ren\xe9e\n".encode("latin-1"), "utf-8"),
    ("broken.parquet", b"PAR1 this is not parquet", "Parquet"),
])
def test_unreadable_uploads_are_refused_with_a_clear_error(champion, name, content, expected):
    at = page().run()
    batch_tab_upload(at, name, content)
    assert not at.exception
    if not at.error:  # the file saved fine: the error comes from the scoring job
        finish_batch(at)
    assert not at.exception
    assert expected.lower() in at.error[0].value.lower()
    assert "Rows in" not in [m.label for m in at.metric]


def test_missing_columns_header_only_nan_inf_and_huge_values(champion):
    raw = champion.frame.iloc[:400].drop(columns=["is_fraud", "fraud_scenario"])
    at = page().run()
    batch_tab_upload(at, "narrow.csv", raw.drop(columns=["amount", "card_id"]).to_csv(index=False).encode())
    finish_batch(at)
    assert not at.exception
    assert "needs columns this data lacks" in at.error[0].value and "amount" in at.error[0].value

    at = page().run()
    batch_tab_upload(at, "header.csv", raw.iloc[:0].to_csv(index=False).encode())
    finish_batch(at)
    assert "no data rows" in at.error[0].value

    dirty = raw.astype({"amount": object}).copy()
    dirty.loc[[5, 6, 7], "amount"] = ["nan", "inf", "1e400"]
    dirty.loc[8, "amount"] = 1e300  # finite, but beyond what the features can hold
    at = page().run()
    batch_tab_upload(at, "dirty.csv", dirty.to_csv(index=False).encode())
    finish_batch(at)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rejected"] == "4" and metrics["Scored"] == "396"
    rejects = at.dataframe[1].value
    assert list(rejects["reject_reason"][:3]) == ["amount: not finite"] * 3
    assert rejects["reject_reason"][3].startswith("amount: too large (1e+300); amounts up to 1e+12")


def test_no_model_says_what_to_do():
    at = page().run()
    assert not at.exception
    assert "No model yet" in at.info[0].value


def test_batch_from_a_path_on_the_server(champion, tmp_path):
    at = page().run()
    at.radio(key="batch_source").set_value("Path on the server").run()
    at.text_input(key="batch_path").input(str(tmp_path / "nope.parquet")).run()
    assert not at.exception and "does not exist" in at.error[0].value
    assert not [b for b in at.button if b.label == "Score the file"]
    events = tmp_path / "events.parquet"
    champion.frame.iloc[:2000].to_parquet(events, index=False)  # label columns too: they travel through
    at.text_input(key="batch_path").input(str(events)).run()
    finish_batch(at)
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Scored"] == "2,000"
    assert "is_fraud" in at.dataframe[0].value.columns
    assert runtime.current().jobs.get(at.session_state["batch_job"]).result["out_path"].endswith(".scored.parquet")
