"""One hierarchy for every error fraudcore raises on purpose."""

from __future__ import annotations


class FraudcoreError(Exception):
    """Base class: something the user can act on, with a message that says what to do."""


class DataContractError(FraudcoreError):
    """The data does not meet the dataset contract (unreadable file, bad columns, bad values).

    ``problems`` holds every issue found (``fraudcore.schema.Problem``), not only the first.
    """

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        base = super().__str__()
        if not self.problems:
            return base
        lines = [base] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class ModelArtifactError(FraudcoreError):
    """A model artifact is missing, tampered with, or incompatible with the data."""


class FeedError(FraudcoreError):
    """The live feed could not be reached or answered with something unusable."""


class StoreBusyError(FraudcoreError):
    """The DuckDB file is held by another process (DuckDB allows one owning process)."""
