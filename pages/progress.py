"""The one progress bar every page uses for background jobs (training, first run, batch scoring, retraining)."""

from __future__ import annotations

import streamlit as st

from fraudcore import runtime


@st.fragment(run_every=1.0)
def job_progress(job_id: str, label: str = "", note: str = "") -> None:
    """A job's progress bar (``label: message (N s)``), refreshed every second on its own; the whole app reruns once
    the job has ended, so the page shows its result."""
    job = runtime.current().jobs.get(job_id)
    if job is None:
        return
    if not job.running:
        st.rerun()
    message = job.message or "starting"
    st.progress(job.fraction, text=f"{label}: {message} ({job.seconds:.0f} s)" if label else
                f"{message} ({job.seconds:.0f} s)")
    if note:
        st.caption(note)
