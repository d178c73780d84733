"""The frame every page shares: active dataset, champion model, the analyst's name, first-run progress, feed lag."""

from __future__ import annotations

import streamlit as st

from fraudcore import first_run, overview, runtime
from pages.progress import job_progress


@st.fragment(run_every=5.0)
def feed_lag() -> None:
    """The live feed's lag, refreshed on its own every few seconds (a poller started on the Live page shows here)."""
    lag = overview.feed_lag(runtime.current())
    if lag is not None:
        st.markdown(f"**Feed lag** · {lag.text}")


def render_sidebar() -> None:
    """Draw the shared sidebar (and start the first run when the demo data or a champion is missing)."""
    workbench = runtime.current()
    job = first_run.ensure(workbench)
    with st.sidebar:
        dataset = overview.active_dataset(st.session_state.get("dataset_path"), workbench.paths)
        st.markdown(f"**Dataset** · `{dataset.name}`" if dataset else "**Dataset** · none yet",
                    help=str(dataset) if dataset else "Pick one on the Data & EDA page")

        champion = overview.champion_summary(workbench)
        if champion is None:
            st.markdown("**Champion** · none yet")
            if not (job and job.running):
                st.caption("Train a model and promote it on the Train and Compare pages.")
        elif champion.error:
            st.markdown(f"**Champion** · `{champion.model_id}`")
            st.error(f"The champion cannot be loaded: {champion.error}")
        else:
            st.markdown(f"**Champion** · `{champion.model_id}`")
            st.caption(f"{champion.algo} · {champion.headline}")

        st.text_input("Analyst", key="analyst", placeholder="Your name",
                      help="Typed once, kept for this session; recorded with your decisions and promotions.")

        feed_lag()

        if job is not None and job.running:
            st.markdown("**First run**")
            job_progress(job.job_id, "Setting up")
        elif job is not None and job.status == "failed":
            st.error(f"The first run failed: {job.error}. See Home for what to do.")
