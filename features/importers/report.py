"""What an import did, as plain data the CLI prints and tests read."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features.importers.manifest import AttributeSpec
from features.importers.mapping import Kind


@dataclass(frozen=True)
class ColumnReport:
    name: str
    role: str  # id, label, field <name>, company <name>, numeric / categorical attribute, excluded, ignored
    type: str  # what the values look like: number, date, text, yes/no, empty
    missing: float  # share of rows missing after placeholders
    distinct: int
    placeholders: int  # cells that held a placeholder ("Select", ...)


@dataclass
class ImportReport:
    kind: Kind
    export: str
    rows_read: int
    rows_imported: int
    rejected: dict[str, list[int]]  # reason -> 1-based data rows
    label_counts: dict[str, int]  # positive / negative / open among imported rows
    label_names: tuple[str, str]  # what positive / negative mean for this kind
    as_of: pd.Timestamp
    undated: bool
    time_source: str
    columns: list[ColumnReport]
    attributes: list[AttributeSpec]
    tables: dict[str, int] = field(default_factory=dict)  # file written -> rows
    notes: list[str] = field(default_factory=list)
    undecided: int = 0  # leads too young to have a label: imported (scoreable), left out of training

    @property
    def rows_rejected(self) -> int:
        return sum(len(rows) for rows in self.rejected.values())

    @property
    def label_rate(self) -> float:
        """Positive share among decided rows (open rows left out); NaN when none are decided."""
        decided = self.label_counts.get("positive", 0) + self.label_counts.get("negative", 0)
        return self.label_counts.get("positive", 0) / decided if decided else float("nan")
