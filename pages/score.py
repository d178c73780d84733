"""Score: one event through a form built from the model's schema, or a whole file as background work."""

from pathlib import Path

import streamlit as st

from fraudcore import batch_results, event_form, overview, runtime, shap_charts
from fraudcore.errors import FraudcoreError, ModelArtifactError
from fraudcore.event_form import TIER_COLOURS, EventSource, FormField
from fraudcore.registry import list_models
from fraudcore.scoring import EventValidationError, Scorer
from pages.progress import job_progress

TIERS = ["high", "medium", "low"]
FILE_SOURCES = ["Upload a file", "Path on the server"]


@st.cache_data(ttl=60, show_spinner=False)
def usable_models(root: str, stamp: int) -> list[dict]:
    """Models that load (checked files), newest first; ``stamp`` (the folder's mtime) renews the list."""
    return [m for m in list_models(root) if m["error"] is None]


@st.cache_resource(show_spinner="Reading sample events and their history…", max_entries=4)
def event_source(path: str, modified: float, model_id: str, _scorer: Scorer) -> EventSource:
    """Sample rows and history of a dataset for one model, read once per file version."""
    return EventSource(path, _scorer)


@st.cache_data(max_entries=16, show_spinner=False)
def preview(path: str, by_score: bool = True):
    return batch_results.preview(path, by_score=by_score)


def next_sample() -> None:
    st.session_state["score_seed"] = st.session_state.get("score_seed", 0) + 1


def field_widget(f: FormField) -> None:
    key = f"ev_{f.name}"
    if f.kind == "number":
        st.number_input(f.name, key=key, help=f.role, format="%.2f" if f.role == "amount" else "%.4f")
    elif f.kind == "category":
        st.selectbox(f.name, ["", *f.options], key=key, help=f"{f.role}: values seen in training",
                     format_func=lambda v: v or "(missing)")
    else:
        st.text_input(f.name, key=key, help=f.role, placeholder="(missing)")


def show_scored(scorer: Scorer, scored) -> None:
    st.subheader("Result")
    prob, tier = st.columns(2)
    prob.metric("Fraud probability", f"{scored.score:.2%}")
    with tier:
        st.markdown("**Tier**")
        st.badge(scored.tier.upper(), color=TIER_COLOURS.get(scored.tier, "gray"))
    st.caption(f"Scored by `{scored.model_id}`; the tier follows its thresholds.")
    if scored.reasons:
        st.markdown("**Why**")
        st.markdown("\n".join(f"- {'▲' if r['direction'] == 'raises' else '▼'} {r['text']} "
                              f"({100 * r['delta_probability']:+.2f} pts)" for r in scored.reasons))
    try:
        st.altair_chart(shap_charts.waterfall(event_form.explain_event(scorer, scored)), width="stretch")
    except FraudcoreError as exc:
        st.info(str(exc))
    with st.expander("Model inputs (point-in-time features)"):
        st.json(scored.to_dict()["features"], expanded=False)


def single_event(scorer: Scorer) -> None:
    active = overview.active_dataset(st.session_state.get("dataset_path"), paths)
    source = None
    for path in event_form.sample_candidates(active, scorer):
        try:
            source = event_source(str(path), path.stat().st_mtime, scorer.model_id, scorer)
            break
        except FraudcoreError as exc:
            st.warning(f"Cannot take sample events from `{path.name}`: {exc}")
    seed = st.session_state.setdefault("score_seed", 0)
    sample, label = source.sample(seed) if source is not None else ({}, None)
    fields = event_form.form_fields(scorer, sample)
    form_for = (scorer.model_id, str(source.path) if source else None, seed)
    if st.session_state.get("score_form_for") != form_for:
        for f in fields:
            st.session_state[f"ev_{f.name}"] = f.default if f.default is not None or f.kind == "number" else ""
        st.session_state["score_form_for"] = form_for
        st.session_state.pop("score_result", None)

    info, again = st.columns([4, 1], vertical_alignment="center")
    if source is not None:
        known = "" if label is None else f" Its known label: **{'fraud' if int(label) == 1 else 'legitimate'}**."
        info.caption(f"Prefilled from a row of `{source.path.name}`; velocity features use its {len(source):,} "
                     f"events as history.{known}")
        again.button("New sample", on_click=next_sample, icon=":material/casino:")
    else:
        info.info("No dataset with this model's columns to take a sample from: fill the fields in. The event is "
                  "scored without history (as an entity's first event).")

    with st.form("single_event"):
        columns = st.columns(3)
        for i, f in enumerate(fields):
            with columns[i % 3]:
                field_widget(f)
        submitted = st.form_submit_button("Score this event", type="primary")
    if submitted:
        try:
            event = event_form.event_from_form(fields, {f.name: st.session_state[f"ev_{f.name}"] for f in fields})
            scored = scorer.score_event(event, history=source.history if source else None)
            st.session_state["score_result"] = (scorer.model_id, scored)
        except EventValidationError as exc:
            st.session_state.pop("score_result", None)
            st.error("The event was not scored. Fix these fields:\n"
                     + "\n".join(f"- **{e['field']}**: {e['message']}" for e in exc.errors))
        except FraudcoreError as exc:
            st.session_state.pop("score_result", None)
            st.error(f"The event was not scored: {exc}")
    result = st.session_state.get("score_result")
    if result and result[0] == scorer.model_id:
        show_scored(scorer, result[1])


def batch_input() -> tuple[Path, str] | None:
    kind = st.radio("File", FILE_SOURCES, horizontal=True, key="batch_source", label_visibility="collapsed")
    if kind == FILE_SOURCES[0]:
        # no type= filter: a wrong file type gets an explanation instead of the widget's own silent refusal
        uploaded = st.file_uploader("CSV or Parquet file to score", key="batch_upload",
                                    help=f"Accepted: {', '.join(batch_results.UPLOAD_SUFFIXES)}")
        if uploaded is None:
            return None
        try:
            return batch_results.accept_upload(uploaded.getvalue(), uploaded.name, paths.uploads), uploaded.name
        except FraudcoreError as exc:
            st.error(f"Cannot score **{uploaded.name}**: {exc}")
            return None
    typed = st.text_input("Path to a CSV or Parquet file on the server", key="batch_path",
                          placeholder="/data/transactions.parquet").strip()
    if not typed:
        return None
    path = Path(typed).expanduser()
    if not path.is_file():
        st.error(f"`{path}` does not exist (or is not a file); check the path")
        return None
    return path, path.name


def show_batch(result: dict) -> None:
    rows_in, scored, rejected, speed = st.columns(4)
    rows_in.metric("Rows in", f"{result['rows_in']:,}")
    scored.metric("Scored", f"{result['rows_scored']:,}")
    rejected.metric("Rejected", f"{result['rows_rejected']:,}")
    speed.metric("Rows per second", f"{result['rows_per_second']:,}")
    out = result["out_path"]
    st.altair_chart(batch_results.tier_chart(result["tiers"]), width="stretch")
    st.markdown("**Results** — highest scores first")
    st.dataframe(preview(out), hide_index=True)
    name = Path(out).name.removesuffix(Path(out).suffix)
    csv, parquet = st.columns(2)
    csv.download_button("Download CSV", data=lambda: batch_results.as_format(out, "csv"), file_name=f"{name}.csv",
                        mime="text/csv", icon=":material/download:", on_click="ignore")
    parquet.download_button("Download Parquet", data=lambda: batch_results.as_format(out, "parquet"),
                            file_name=f"{name}.parquet", mime="application/vnd.apache.parquet",
                            icon=":material/download:", on_click="ignore")
    if result["rows_rejected"]:
        st.markdown("**Rejected rows** — not scored; each reason names the field")
        st.warning(f"{result['rows_rejected']:,} of {result['rows_in']:,} rows were rejected: fix them at the source "
                   "and score them again.")
        st.dataframe(preview(result["rejects_path"], by_score=False), hide_index=True)
    explanation = result.get("explanation")
    if explanation is not None and len(explanation):
        st.markdown(f"**What drove the scores** — {len(explanation):,} explained events")
        swarm, bars = st.tabs(["Beeswarm", "Importance"])
        swarm.altair_chart(shap_charts.beeswarm(explanation), width="stretch")
        bars.altair_chart(shap_charts.importance(explanation), width="stretch")
    else:
        st.info(result.get("reasons_note") or "No row fell in the explained tiers, so there is no SHAP summary for "
                "this batch.")


def batch_file(scorer: Scorer) -> None:
    picked = batch_input()
    explain_tiers = st.multiselect("Explain (reasons and SHAP) for tiers", TIERS, default=["high", "medium"],
                                   key="batch_explain")
    if picked is not None and st.button("Score the file", type="primary", key="batch_go"):
        in_path, shown = picked
        out = batch_results.output_path(paths.data / "scored", in_path)
        work = batch_results.scoring_work(in_path, out, scorer.model_id, paths.artifacts, explain_tiers)
        job = workbench.jobs.submit(f"{shown} with {scorer.model_id}", work, key=f"batch-{out.name}")
        st.session_state["batch_job"] = job.job_id
    job = workbench.jobs.get(st.session_state.get("batch_job", ""))
    if job is None:
        return
    st.caption(f"Scoring {job.name} ({job.seconds:.0f} s)")
    if job.running:
        job_progress(job.job_id, "Scoring")
    elif job.status == "failed":
        st.error(f"Scoring failed: {job.error}")
    else:
        show_batch(job.result)


st.title("Score")
workbench = runtime.current()
paths = workbench.paths.ensure()

models = usable_models(str(paths.artifacts), paths.artifacts.stat().st_mtime_ns)
if not models:
    st.info("No model yet. On a fresh workbench the first run trains a default champion (see Home); otherwise "
            "train one on the Train page.")
    st.stop()
try:
    champion = workbench.champion_id()
except ModelArtifactError:
    champion = None
ids = [m["model_id"] for m in models]
model_id = st.selectbox("Model", ids, index=ids.index(champion) if champion in ids else 0, key="score_model",
                        format_func=lambda m: f"{m} (champion)" if m == champion else m)
try:
    scorer = workbench.scorer(model_id)
except ModelArtifactError as exc:
    st.error(f"Model {model_id} cannot be loaded: {exc}")
    st.stop()

single_tab, batch_tab = st.tabs(["Single event", "Batch file"])
with single_tab:
    single_event(scorer)
with batch_tab:
    batch_file(scorer)
