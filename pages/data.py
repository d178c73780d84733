"""Data & EDA: pick a dataset, check its column roles and problems, and explore fraud against legitimate traffic."""

from pathlib import Path
from typing import get_args

import streamlit as st

from fraudcore import eda, eda_charts
from fraudcore.config import DEMO_ROWS, DEMO_SEED, get_paths
from fraudcore.dataset import OpenedDataset, open_dataset
from fraudcore.errors import FraudcoreError
from fraudcore.loading import CSV_SUFFIXES, PARQUET_SUFFIXES, save_upload
from fraudcore.simulate import generate_to_file
from fraudcore.spec import DatasetSpec, Role

ROLES = list(get_args(Role))
SOURCES = ["Demo data", "Upload a file", "Path on the server"]
UPLOAD_SUFFIXES = sorted(CSV_SUFFIXES | PARQUET_SUFFIXES)


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def open_cached(path: str, modified: float) -> OpenedDataset:
    """The opened dataset (DuckDB table, inferred spec, report), shared by sessions; a new file version reloads."""
    return open_dataset(path)


@st.cache_data(ttl=600, max_entries=128, show_spinner=False)
def aggregate(name: str, path: str, modified: float, spec_json: str, _opened: OpenedDataset, **options):
    """One ``fraudcore.eda`` aggregation, cached per dataset version, spec and options."""
    return getattr(eda, name)(_opened, **options)


def show_chart(name: str, opened: OpenedDataset, key: tuple, chart, **options) -> None:
    try:
        df = aggregate(name, *key, opened.spec.to_json(), opened, **options)
    except FraudcoreError as exc:
        st.info(str(exc))
        return
    if df.empty:
        st.info("Nothing to show for this view.")
        return
    st.altair_chart(chart(df), width="stretch")
    with st.expander("Table"):
        st.dataframe(df, hide_index=True)


def show_problem(problem) -> None:
    where = f"**{problem.column}**: " if problem.column else ""
    rows = f"  \nExample rows {', '.join(map(str, problem.rows))}" if problem.rows else ""
    values = f" (values {', '.join(map(str, problem.values))})" if problem.values else ""
    text = f"{where}{problem.message}{rows}{values}  \n**Fix:** {problem.fix}"
    (st.error if problem.severity == "error" else st.warning)(text)


st.title("Data & EDA")
paths = get_paths().ensure()

source = st.radio("Source", SOURCES, horizontal=True, key="data_source")
path: Path | None = None
if source == "Demo data":
    if paths.demo_dataset.is_file():
        path = paths.demo_dataset
    else:
        st.info(f"No demo dataset yet at `{paths.demo_dataset}`.")
        if st.button(f"Generate the demo dataset ({DEMO_ROWS:,} events)", type="primary"):
            with st.status("Generating the demo dataset…", expanded=True) as status:
                bar = st.progress(0.0)
                summary = generate_to_file(paths.demo_dataset, rows=DEMO_ROWS, seed=DEMO_SEED,
                                           progress=lambda done, text: bar.progress(min(max(done, 0.0), 1.0), text))
                status.update(label=f"Generated {summary['rows']:,} events in {summary['seconds']} s", state="complete")
            path = paths.demo_dataset
elif source == "Upload a file":
    # no type= filter: a wrong file type gets an explanation below instead of the widget's own rejection
    uploaded = st.file_uploader("CSV or Parquet file", help=f"Accepted: {', '.join(UPLOAD_SUFFIXES)}")
    if uploaded is not None and Path(uploaded.name).suffix.lower() not in UPLOAD_SUFFIXES:
        st.error(f"**{uploaded.name}** is not a CSV or Parquet file; upload one ending in {', '.join(UPLOAD_SUFFIXES)}")
    elif uploaded is not None:
        try:
            path = save_upload(uploaded.getvalue(), uploaded.name, paths.uploads)
        except FraudcoreError as exc:
            st.error(f"Could not use **{uploaded.name}**: {exc}")
else:
    typed = st.text_input("Path to a CSV or Parquet file", placeholder="/data/transactions.parquet")
    if typed.strip():
        path = Path(typed.strip()).expanduser()

if path is None:
    st.stop()

try:
    modified = path.stat().st_mtime if path.exists() else 0.0
    base = open_cached(str(path), modified)
except FraudcoreError as exc:
    st.error(f"Could not open **{path.name}**: {exc}")
    st.stop()

key = (str(path), modified)
if st.session_state.get("dataset_key") != key:
    st.session_state["dataset_key"] = key
    st.session_state["dataset_path"] = str(path)
    st.session_state["dataset_spec"] = base.spec
spec: DatasetSpec = st.session_state["dataset_spec"]
opened = base if spec == base.spec else base.with_spec(spec)

rows_col, cols_col, err_col, warn_col = st.columns(4)
rows_col.metric("Rows", f"{opened.data.n_rows:,}")
cols_col.metric("Columns", len(opened.data.columns))
err_col.metric("Errors", len(opened.report.errors))
warn_col.metric("Warnings", len(opened.report.warnings))

st.subheader("Column roles")
st.dataframe(eda.roles_table(opened), hide_index=True)
with st.form("role_override", border=False):
    col_pick, role_pick, apply_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    column = col_pick.selectbox("Column", list(opened.data.columns), key="override_column")
    role = role_pick.selectbox("Role", ROLES, key="override_role")
    if apply_col.form_submit_button("Set role"):
        try:
            st.session_state["dataset_spec"] = spec.with_role(column, role)
        except ValueError as exc:
            st.error(f"Could not give {column} the role {role}: {exc}")
        st.rerun()
if spec != base.spec and st.button("Reset to inferred roles"):
    st.session_state["dataset_spec"] = base.spec
    st.rerun()

st.subheader("Validation")
if opened.report.ok and not opened.report.warnings:
    st.success("No problems found.")
for problem in opened.report.errors:
    show_problem(problem)
for problem in opened.report.warnings:
    if problem.kind != "leakage":
        show_problem(problem)
leaks = [p for p in opened.report.warnings if p.kind == "leakage"]
if leaks:
    st.markdown("**Leakage** — excluded from features")
    for problem in leaks:
        show_problem(problem)

st.subheader("Explore")
tabs = st.tabs(["Class balance", "Over time", "Amount", "Feature separation", "Distribution", "Missing values"])
with tabs[0]:
    show_chart("class_balance", opened, key, eda_charts.class_balance_chart)
with tabs[1]:
    freq = st.segmented_control("Period", ["hour", "day", "week"], default="day", key="eda_freq") or "day"
    show_chart("fraud_over_time", opened, key, eda_charts.fraud_over_time_chart, freq=freq)
with tabs[2]:
    show_chart("amount_by_class", opened, key, eda_charts.amount_by_class_chart)
with tabs[3]:
    st.caption("Each column on its own, on a sample of up to 200,000 labelled rows.")
    show_chart("feature_separation", opened, key, eda_charts.feature_separation_chart)
with tabs[4]:
    dist_column = st.selectbox("Column", list(opened.data.columns), key="eda_column",
                               index=list(opened.data.columns).index(spec.amount) if spec.amount in opened.data.columns
                               else 0)
    show_chart("distribution_by_class", opened, key,
               lambda df: eda_charts.distribution_by_class_chart(df, dist_column), column=dist_column)
with tabs[5]:
    show_chart("missing_values", opened, key, eda_charts.missing_values_chart)
