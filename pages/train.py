"""Train: model family, split drawn on a timeline, search budget; trains in the background; results with the card."""

from datetime import datetime, time
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from fraudcore import comparison, model_charts, runtime, timeline
from fraudcore.config import get_paths
from fraudcore.dataset import OpenedDataset, open_dataset
from fraudcore.errors import FraudcoreError
from fraudcore.model_card import render_card
from fraudcore.models import ALGOS
from fraudcore.registry import check_new_model_id, list_models, load_metadata
from fraudcore.split import SplitPlan
from fraudcore.train_setup import (
    ALGO_LABELS,
    FEATURE_LABELS,
    headline_metrics,
    objectives_for,
    start_training,
    suggest_model_id,
)
from fraudcore.training import TrainRequest
from fraudcore.tuning import OBJECTIVE_LABELS
from pages.progress import job_progress

SPLIT_LABELS = {"time": "By time (recommended)", "dates": "By dates", "random": "Random (optimistic)"}
TARGETS = {"precision": (0.9, 0.01, 1.0, 0.01), "recall": (0.8, 0.01, 1.0, 0.01),
           "alert_budget": (100.0, 1.0, 1e6, 10.0)}  # default, min, max, step
TIER_DEFAULTS = {"high": "precision", "medium": "alert_budget"}


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def open_cached(path: str, modified: float) -> OpenedDataset:
    """The opened dataset (inferred spec and validation report), shared by sessions; a new file version reloads."""
    return open_dataset(path)


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def event_frame(path: str, modified: float, spec_json: str, _opened: OpenedDataset):
    """Event times and labels in training order, cached per dataset version and spec."""
    return timeline.event_times(_opened)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def preview(path: str, modified: float, spec_json: str, plan_json: str, _frame) -> timeline.SplitPreview:
    """Where the split plan falls on the timeline, cached per dataset version, spec and plan."""
    return timeline.split_preview(_frame, SplitPlan.model_validate_json(plan_json))


def suggest_new_id() -> None:
    """A new family gets a new suggested id unless the analyst typed their own."""
    if st.session_state.get("train_model_id") == st.session_state.get("train_suggested_id"):
        st.session_state["train_model_id"] = st.session_state["train_suggested_id"] = suggest_model_id(
            st.session_state["train_algo"])


def tier_inputs(tier: str, column, objectives: list[str]) -> tuple[str, float | None]:
    default = TIER_DEFAULTS[tier] if TIER_DEFAULTS[tier] in objectives else "f1"
    objective = column.selectbox(f"{tier.title()} tier ({'block' if tier == 'high' else 'review'}): objective",
                                 objectives, index=objectives.index(default), format_func=OBJECTIVE_LABELS.get,
                                 key=f"train_{tier}_objective")
    if objective not in TARGETS:
        return objective, None
    value, low, high, step = TARGETS[objective]
    return objective, column.number_input("Target", low, high, value, step=step, key=f"train_{tier}_{objective}")


def split_plan(frame) -> SplitPlan | None:
    kinds = list(SPLIT_LABELS) if frame is not None else ["random"]
    kind = st.segmented_control("Split", kinds, format_func=SPLIT_LABELS.get, default=kinds[0],
                                key="train_split_kind") or kinds[0]
    c1, c2, c3 = st.columns(3)
    valid = c1.slider("Validation share", 0.05, 0.4, 0.2, 0.05, key="train_valid_size",
                      help="Tiers are tuned and search trials ranked on this window")
    try:
        if kind == "dates":
            start, train_end, test_start, end = timeline.default_dates(frame)
            trains = c2.date_input("Train dates", (start, train_end), start, end, key="train_dates")
            tests = c3.date_input("Test dates", (test_start, end), start, end, key="test_dates")
            if len(trains) != 2 or len(tests) != 2:
                st.info("Pick both ends of each date range.")
                return None
            return SplitPlan(kind="dates", valid_size=valid, train_start=datetime.combine(trains[0], time()),
                             train_end=datetime.combine(trains[1], time()),
                             test_start=datetime.combine(tests[0], time()), test_end=datetime.combine(tests[1], time()))
        test = c2.slider("Test share", 0.05, 0.4, 0.2, 0.05, key="train_test_size")
        if kind == "random":
            st.warning("A random split mixes days: the test window holds days the model learned from, so its "
                       "metrics overstate how it will do on new days.")
            return SplitPlan(kind="random", valid_size=valid, test_size=test)
        delay = c3.number_input("Label delay (days)", 0.0, 90.0, 0.0, step=0.5, key="train_delay_days",
                                help="Fraud labels arrive late: leave this gap before validation and test, and only "
                                     "use labels at least this old in risk features")
        return SplitPlan(kind="time", valid_size=valid, test_size=test, delay_days=delay)
    except ValidationError as exc:
        st.error(f"This split is not possible: {exc.errors()[0]['msg']}")
        return None


st.title("Train")
paths = get_paths().ensure()
workbench = runtime.current()
job = workbench.jobs.get(st.session_state.get("train_job", ""))
if job is not None and job.status == "done" and st.session_state.get("train_done") != job.job_id:
    st.session_state["train_done"] = job.job_id
    st.session_state["train_show"] = job.result.model_id
    st.session_state.pop("train_model_id", None)  # the next model gets a fresh suggested id

chosen = st.session_state.get("dataset_path")
path = Path(chosen) if chosen and Path(chosen).is_file() else paths.demo_dataset
if not path.is_file():
    st.info("No dataset yet: generate the demo data or pick a file on the Data & EDA page.")
    st.stop()
modified = path.stat().st_mtime
try:
    base = open_cached(str(path), modified)
except FraudcoreError as exc:
    st.error(f"Could not open **{path.name}**: {exc}")
    st.stop()
same_file = st.session_state.get("dataset_path") == str(path) and "dataset_spec" in st.session_state
spec = st.session_state["dataset_spec"] if same_file else base.spec
opened = base if spec == base.spec else base.with_spec(spec)
st.caption(f"Dataset **{path.name}** · {opened.data.n_rows:,} rows"
           + (" · column roles from the Data & EDA page" if spec != base.spec else ""))
if not opened.report.ok:
    st.error("The dataset has errors; fix them (or the column roles) on the Data & EDA page first:  \n"
             + "  \n".join(f"- **{p.column or 'data'}**: {p.message}" for p in opened.report.errors))
    st.stop()

st.subheader("Model")
c1, c2, c3 = st.columns(3)
algo = c1.selectbox("Model family", ALGOS, format_func=ALGO_LABELS.get, key="train_algo", on_change=suggest_new_id)
features = c2.selectbox("Features", list(FEATURE_LABELS), format_func=FEATURE_LABELS.get, key="train_features")
minutes = c3.number_input("Search budget (minutes)", 0.0, 120.0, 0.5, step=0.5, key="train_minutes",
                          help="Time for the hyper-parameter search; 0 trains the default parameters only")

st.subheader("Split")
plan, frame = None, None
try:
    if spec.event_time:
        frame = event_frame(str(path), modified, spec.to_json(), opened)
    else:
        st.info("The dataset has no event time column, so only a random split is possible and it cannot be drawn "
                "on a timeline. Set the time column on the Data & EDA page for a time-ordered split.")
    plan = split_plan(frame)
    if plan is not None and frame is not None:
        drawn = preview(str(path), modified, spec.to_json(), plan.model_dump_json(), frame)
        st.altair_chart(model_charts.timeline_chart(drawn), width="stretch")
        st.caption(drawn.label)
        with st.expander("Rows per part"):
            st.dataframe(drawn.parts, hide_index=True)
except FraudcoreError as exc:
    st.error(str(exc))
    plan = None

with st.expander("Decision tiers, costs and seed"):
    objectives = objectives_for(spec)
    t1, t2 = st.columns(2)
    high = tier_inputs("high", t1, objectives)
    medium = tier_inputs("medium", t2, objectives)
    r1, r2, r3 = st.columns(3)
    review_cost = r1.number_input("Review cost per alert", 0.0, 1e6, 5.0, step=1.0, key="train_review_cost")
    k = r2.number_input("Daily review budget k (precision@k)", 1, 100_000, 100, key="train_k")
    seed = r3.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    refit = st.checkbox("Train the chosen configuration again on train + validation", value=False, key="train_refit",
                        help="More data for the final model, often a better ranking; but the tiers stay those tuned "
                             "on validation before it, and their alert volume may not carry over: check alerts per "
                             "day on the test window")

if "train_model_id" not in st.session_state:
    st.session_state["train_model_id"] = st.session_state["train_suggested_id"] = suggest_model_id(algo)
st.text_input("Model id", key="train_model_id", help="Letters, digits, '-', '_' or '.'; must be new")

if st.button("Train", type="primary", disabled=plan is None or (job is not None and job.running)):
    try:
        model_id = check_new_model_id(st.session_state["train_model_id"])
        request = TrainRequest(model_id=model_id, algo=algo, features=features, split=plan, search_minutes=minutes,
                               seed=int(seed), refit=refit, high=high, medium=medium, review_cost=review_cost, k=int(k),
                               created_by=(st.session_state.get("analyst") or "").strip() or None)
        st.session_state["train_job"] = start_training(workbench.jobs, path, spec, request, paths.artifacts).job_id
        st.rerun()  # redraw with the button disabled and the progress bar polling
    except (FraudcoreError, ValidationError) as exc:
        st.error(f"Cannot start training: {exc}")

if job is not None and job.running:
    job_progress(job.job_id, f"Training **{job.name.removeprefix('train ')}**")
elif job is not None and job.status == "failed":
    st.error(f"Training **{job.name.removeprefix('train ')}** failed: {job.error}")
elif job is not None:
    st.success(f"Trained **{job.result.model_id}** in {job.seconds:.0f} s.")

models = [m["model_id"] for m in list_models(paths.artifacts) if m["error"] is None]
if not models:
    st.stop()
st.subheader("Results")
if st.session_state.get("train_show") not in models:
    st.session_state["train_show"] = models[0]
shown = st.selectbox("Model", models, key="train_show")
try:
    meta = load_metadata(shown, paths.artifacts)
except FraudcoreError as exc:
    st.error(str(exc))
    st.stop()
figures = headline_metrics(meta)
for column, figure in zip(st.columns(len(figures)), figures, strict=True):
    column.metric(figure.label, figure.value, help=figure.help)
st.caption(f"On the test window ({meta.split['test'].get('rows', 0):,} events) · {meta.split['label']}")
pr, roc = comparison.saved_curve_frames([meta])
left, right = st.columns(2)
if not pr.empty:
    left.altair_chart(model_charts.pr_chart(pr), width="stretch")
    right.altair_chart(model_charts.roc_chart(roc), width="stretch")
trials = (meta.search or {}).get("trials") or []
if len(trials) > 1:
    st.altair_chart(model_charts.trials_chart(trials), width="stretch")
with st.expander("Model card", expanded=True):
    st.markdown(render_card(meta))
st.caption("Compare it with other models, tune its tiers and promote it on the Compare & thresholds page.")
