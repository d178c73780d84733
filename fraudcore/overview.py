"""What the workbench frame shows on every page: the active dataset, the champion with its headline metric, feed lag."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudcore.config import Paths
from fraudcore.errors import ModelArtifactError

__all__ = ["ChampionSummary", "FeedLag", "active_dataset", "champion_summary", "feed_lag"]

HEADLINE = "average_precision"  # the metric named beside the champion: ranking quality on the test window


def active_dataset(chosen: str | Path | None, paths: Paths) -> Path | None:
    """The dataset the analyst chose (the Data page) while it exists, else the demo dataset when present."""
    if chosen and Path(chosen).is_file():
        return Path(chosen)
    return paths.demo_dataset if paths.demo_dataset.is_file() else None


@dataclass(frozen=True)
class ChampionSummary:
    """The champion model's id, algorithm and headline test metric, or the error that keeps it from loading."""

    model_id: str
    algo: str | None = None
    average_precision: float | None = None
    roc_auc: float | None = None
    n_test: int | None = None
    error: str | None = None

    @property
    def headline(self) -> str:
        """'AP 0.512 on 50,000 test events' (or what is known of it)."""
        if self.average_precision is None:
            return "no test metrics recorded"
        rows = f" on {self.n_test:,} test events" if self.n_test else ""
        return f"AP {self.average_precision:.3f}{rows}"


def champion_summary(workbench: Any) -> ChampionSummary | None:
    """The champion's summary (None when no model was promoted); a champion that fails to load carries the error."""
    try:
        model_id = workbench.champion_id()
    except ModelArtifactError as exc:
        return ChampionSummary(model_id="(unreadable)", error=str(exc))
    if model_id is None:
        return None
    try:
        metadata = workbench.scorer(model_id).metadata
    except ModelArtifactError as exc:
        return ChampionSummary(model_id=model_id, error=str(exc))
    test = metadata.metrics.get("test") or {}
    return ChampionSummary(model_id=model_id, algo=metadata.algo, average_precision=_number(test.get(HEADLINE)),
                           roc_auc=_number(test.get("roc_auc")), n_test=test.get("n"))


@dataclass(frozen=True)
class FeedLag:
    """Where the live feed's poller stands: running or not, how far behind the feed it is (events the feed could
    send now, or seconds), its last error, or the error reading its status."""

    running: bool | None = None
    lag_events: int | None = None
    lag_seconds: float | None = None
    last_error: str | None = None
    error: str | None = None

    @property
    def text(self) -> str:
        """'1,200 events behind', '2.4 s behind', 'up to date', 'stopped', or the status error."""
        if self.error:
            return f"status unavailable: {self.error}"
        if self.running is False:
            return "stopped" + (f" ({self.last_error[:120]})" if self.last_error else "")
        if self.lag_events is not None:
            return "up to date" if self.lag_events == 0 else f"{self.lag_events:,} events behind"
        if self.lag_seconds is not None:
            return "up to date" if self.lag_seconds < 1 else f"{_duration(self.lag_seconds)} behind"
        return "running (lag not known yet)"


def feed_lag(workbench: Any) -> FeedLag | None:
    """The poller's lag when a poller service runs in this process (read from its ``status()``), else None."""
    poller = workbench.services.get("poller")
    status_of = getattr(poller, "status", None)
    if poller is None or not callable(status_of):
        return None
    try:
        status = status_of()
    except Exception as exc:  # another component's fault: shown in the sidebar, never breaks the page
        return FeedLag(error=f"{type(exc).__name__}: {exc}")
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        status = dataclasses.asdict(status)
    if not isinstance(status, Mapping):
        return FeedLag(error=f"status() gave a {type(status).__name__}, not a mapping")
    lag = status.get("lag_events", status.get("lag"))
    seconds = status.get("lag_seconds", lag if hasattr(lag, "total_seconds") else None)
    running = status.get("running")
    return FeedLag(running=None if running is None else bool(running),
                   lag_events=int(lag) if isinstance(lag, int) and not isinstance(lag, bool) else None,
                   lag_seconds=_number(seconds), last_error=status.get("last_error") or None)


def _number(value: Any) -> float | None:
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
