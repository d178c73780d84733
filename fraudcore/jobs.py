"""Background jobs (training, dataset generation, batch scoring): a thread each, with progress the UI can poll.

Long work must not freeze the app: a page submits the work here, reruns itself (e.g. ``st.fragment(run_every=…)``)
and reads the job's fraction and message. A key makes work happen once: submitting a key that is already running
returns the running job instead of starting a second one.
"""

from __future__ import annotations

import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fraudcore.errors import FraudcoreError

__all__ = ["Job", "Jobs", "ProgressFn"]

ProgressFn = Callable[[float, str], None]
Status = Literal["running", "done", "failed"]


@dataclass
class Job:
    """One piece of background work and where it stands (read by the UI; written by its worker thread)."""

    name: str
    key: str | None = None
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: Status = "running"
    fraction: float = 0.0
    message: str = ""
    result: Any = None
    error: str | None = None
    detail: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def progress(self, fraction: float, message: str = "") -> None:
        """The progress callback handed to the work (fraction in 0…1 and a short message)."""
        self.fraction = min(max(float(fraction), self.fraction), 1.0)
        if message:
            self.message = message

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (True) or the timeout passes (False)."""
        return self._done.wait(timeout)

    @property
    def seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()


class Jobs:
    """The process's background jobs, newest last; thread-safe."""

    def __init__(self, keep: int = 50) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._keep = keep

    def submit(self, name: str, work: Callable[[ProgressFn], Any], key: str | None = None) -> Job:
        """Run ``work(progress)`` on a daemon thread; with ``key``, a job of that key still running is returned."""
        with self._lock:
            if key is not None:
                running = self._running(key)
                if running is not None:
                    return running
            job = Job(name=name, key=key)
            self._jobs[job.job_id] = job
            self._trim()
        threading.Thread(target=self._run, args=(job, work), name=f"job-{name}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, key: str) -> Job | None:
        """The newest job submitted with ``key`` (running or finished), or None."""
        with self._lock:
            matches = [j for j in self._jobs.values() if j.key == key]
        return matches[-1] if matches else None

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def _running(self, key: str) -> Job | None:
        return next((j for j in self._jobs.values() if j.key == key and j.running), None)

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if not j.running]
        for job_id in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job_id]

    @staticmethod
    def _run(job: Job, work: Callable[[ProgressFn], Any]) -> None:
        try:
            job.result = work(job.progress)
            job.fraction, job.status = 1.0, "done"
        except Exception as exc:  # the UI shows it; the thread must not die silently
            job.error = str(exc) if isinstance(exc, FraudcoreError) else f"{type(exc).__name__}: {exc}"
            job.detail = traceback.format_exc()
            job.status = "failed"
        finally:
            job.finished_at = datetime.now(UTC)
            job._done.set()
