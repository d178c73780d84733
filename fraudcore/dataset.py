"""One entry point for data: load a file, infer (or apply) its spec, validate — what pages and the CLI call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fraudcore.infer import infer_spec
from fraudcore.loading import LoadedDataset, load_dataset
from fraudcore.spec import DatasetSpec
from fraudcore.validate import ValidationReport, validate


@dataclass
class OpenedDataset:
    """Loaded data with its spec and the validation report for that spec."""

    data: LoadedDataset
    spec: DatasetSpec
    report: ValidationReport

    def with_spec(self, spec: DatasetSpec) -> OpenedDataset:
        """Re-validate under an overridden spec (e.g. the analyst changed a role)."""
        return OpenedDataset(self.data, spec, validate(self.data, spec))


def open_dataset(path: str | Path, *, delimiter: str | None = None, encoding: str = "utf-8", decimal: str = ".",
                 spec: DatasetSpec | None = None, spec_path: str | Path | None = None) -> OpenedDataset:
    """Load ``path``, use the given spec (or infer one), and validate; errors reading the file raise."""
    data = load_dataset(path, delimiter=delimiter, encoding=encoding, decimal=decimal)
    if spec is None:
        spec = DatasetSpec.load(spec_path) if spec_path else infer_spec(data)
    return OpenedDataset(data, spec, validate(data, spec))
