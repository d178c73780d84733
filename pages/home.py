"""Home: what the workbench is, the first run (demo data and a default champion), and where to go next."""

from pathlib import Path

import streamlit as st

from fraudcore import first_run, runtime
from fraudcore.errors import ModelArtifactError
from pages.progress import job_progress

ROOT = Path(__file__).resolve().parent.parent
LINKS = [
    ("pages/data.py", "Data & EDA", ":material/table_chart:", "check a dataset's roles and problems, explore fraud"),
    ("pages/train.py", "Train", ":material/model_training:", "train a model with point-in-time features"),
    ("pages/compare.py", "Compare & thresholds", ":material/tune:", "compare models, set the tiers, promote one"),
    ("pages/score.py", "Score", ":material/bolt:", "score one event with its reasons, or a whole file"),
    ("pages/live.py", "Live", ":material/sensors:", "follow the live feed"),
    ("pages/review.py", "Review queue", ":material/assignment:", "work the alerts"),
    ("pages/monitor.py", "Monitor", ":material/monitoring:", "drift and alert statistics"),
]


workbench = runtime.current()
paths = workbench.paths

st.title("Fraud Workbench")
st.markdown(
    """
An analyst workbench for fraud teams at card issuers and e-commerce shops: load transactions, explore fraud against
legitimate traffic, build point-in-time velocity features, train and compare models, tune thresholds into
low / medium / high tiers, score events with exact reasons, and work a live review queue.

**Demo data.** The workbench ships a simulator of card-present and card-not-present transactions: customers with
their own spending habits, geography and hours; merchants with their own amount profiles; and five fraud patterns —
compromised terminals, compromised cards, card testing, account takeover and abnormal amounts (about 1 % fraud).
"""
)

st.subheader("Setup")
job = first_run.ensure(workbench)
todo = first_run.plan(paths)
if job is not None and job.running:
    st.info("First run: generating the demo dataset and training a default champion model. This happens once.")
    job_progress(job.job_id, note="You can use the other pages meanwhile.")
elif job is not None and job.status == "failed":
    st.error(f"The first run failed: {job.error}\n\n**What to do:** {first_run.failure_help(paths)}")
    if st.button("Try again", type="primary"):
        first_run.ensure(workbench, start=True)
        st.rerun()
elif todo.needed:
    missing = [what for what, needed in (("the demo dataset", todo.generate), ("a champion model", todo.train))
               if needed] or ["promoting the first-run model"]
    st.info(f"Still to do: {' and '.join(missing)}.")
    if st.button("Set up the workbench", type="primary"):
        first_run.ensure(workbench, start=True)
        st.rerun()
else:
    try:
        champion = workbench.champion_id()
    except ModelArtifactError as exc:
        champion, problem = None, str(exc)
    else:
        problem = "no model is promoted: pick one on the Compare & thresholds page and promote it"
    done = job.result if job is not None and job.status == "done" else None
    if champion is None:
        st.warning(f"Models exist but {problem}.")
    elif done and done.get("trained"):
        st.success(f"Set up in {job.seconds:.0f} s: demo dataset `{paths.demo_dataset.name}` and champion "
                   f"`{champion}` trained on it.")
    else:
        dataset = f"demo dataset `{paths.demo_dataset.name}`" if paths.demo_dataset.is_file() else "no demo dataset"
        st.success(f"Ready: {dataset}, champion `{champion}`.")

col_data, col_models, col_db = st.columns(3)
col_data.metric("Data folder", paths.data.name, help=str(paths.data))
col_models.metric("Artifacts folder", paths.artifacts.name, help=str(paths.artifacts))
col_db.metric("Workbench database", paths.db.name, help=str(paths.db))

st.subheader("Go to")
for page, title, icon, what in LINKS:
    if (ROOT / page).is_file():
        st.page_link(page, label=f"{title} — {what}", icon=icon)
