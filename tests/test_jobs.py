"""Background jobs: progress, results, failures with their message, one running job per key."""

from __future__ import annotations

import threading

from fraudcore.errors import DataContractError
from fraudcore.jobs import Jobs


def test_job_reports_progress_and_result():
    gate = threading.Event()

    def work(progress):
        progress(0.4, "halfway-ish")
        gate.wait(5)
        return 42

    jobs = Jobs()
    job = jobs.submit("count", work, key="k")
    assert jobs.submit("count again", work, key="k") is job  # once per key while it runs
    for _ in range(500):
        if job.fraction == 0.4:
            break
        threading.Event().wait(0.01)
    assert (job.running, job.fraction, job.message) == (True, 0.4, "halfway-ish")
    gate.set()
    assert job.wait(5)
    assert (job.status, job.result, job.fraction) == ("done", 42, 1.0)
    assert jobs.latest("k") is job and jobs.get(job.job_id) is job
    assert jobs.submit("count", lambda p: 1, key="k") is not job  # finished: a new one may start


def test_failure_keeps_the_message_and_traceback():
    def broken(progress):
        raise DataContractError(["column amount: text in row 7"])

    job = Jobs().submit("train", broken)
    assert job.wait(5)
    assert job.status == "failed" and "row 7" in job.error and "Traceback" in job.detail
    crash = Jobs().submit("x", lambda p: 1 / 0)
    crash.wait(5)
    assert crash.error.startswith("ZeroDivisionError")
