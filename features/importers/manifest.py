"""What an import leaves beside the canonical tables, for the feature jobs and training to read.

An import of kind ``k`` writes, under ``<raw_dir>/imports/``:

- ``k.json`` — the manifest: custom attributes (name, source column, numeric | categorical, the
  categorical levels), the data's as-of time, whether the export was undated, the mapping's hash;
- ``k_attributes.parquet`` — the custom attributes, keyed by the entity id, at ``event_timestamp``;
- ``k_companies.parquet`` — the companies it described (merged into canonical ``companies``).

The manifest records the SHA-256 of the canonical table it wrote (``leads`` / ``opportunities`` /
``contracts``): when that table is later overwritten (``funnelcast world generate`` in the same data
dir) the manifest is stale and ignored, so the synthetic world's path is untouched.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from features.importers.mapping import ENTITY_KEY, KINDS, PRIMARY_TABLE, Kind

# The feature view (and feature table) holding each kind's custom attributes.
ATTRIBUTE_VIEW: dict[Kind, str] = {
    "leads": "lead_attributes",
    "opportunities": "opportunity_attributes",
    "accounts": "account_attributes",
}
IMPORTS_DIR = "imports"


class AttributeSpec(BaseModel):
    name: str  # feature name (column of the attribute table and feature view)
    column: str  # the export column it came from
    type: Literal["numeric", "categorical"]
    levels: list[str] = Field(
        default_factory=list
    )  # categorical: every level in the export, most frequent first
    max_levels: int = (
        200  # categorical: how many levels the model keeps (the training window's most frequent)
    )


class ImportManifest(BaseModel):
    kind: Kind
    export: str
    mapping: str
    mapping_sha256: str
    imported_at: datetime
    as_of: datetime  # labels are as of this time; feature builds and training use it as "now"
    undated: bool  # no date column: every row at one timestamp, random stratified split
    time_source: str  # how rows were dated, in words
    attributes: list[AttributeSpec] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)  # the canonical fields the mapping filled
    table_sha256: str = ""  # of <raw_dir>/<primary table>.parquet as written

    @property
    def key(self) -> str:
        return ENTITY_KEY[self.kind]

    @property
    def view(self) -> str:
        return ATTRIBUTE_VIEW[self.kind]

    def model_columns(
        self, training_rows: pd.DataFrame | None = None
    ) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """``(categorical levels, numeric columns)`` as joined rows name them (``<view>__<name>``).

        Levels come from ``training_rows`` (the training window's joined rows) when given: the
        ``max_levels`` most frequent there (ties by name), so neither validation nor holdout rows
        shape the encoding; a value first seen later reads as missing. Without them (before a split
        exists), every level the export holds.
        """
        categorical = {}
        for a in self.attributes:
            if a.type != "categorical":
                continue
            column = f"{self.view}__{a.name}"
            if training_rows is None or column not in training_rows:
                categorical[column] = tuple(a.levels)
                continue
            counts = training_rows[column].dropna().astype(str).value_counts()
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            categorical[column] = tuple(str(v) for v, _ in ordered[: a.max_levels])
        numeric = tuple(f"{self.view}__{a.name}" for a in self.attributes if a.type == "numeric")
        return categorical, numeric

    def run_params(self) -> dict[str, object]:
        """What a training run logs about the import it learned from."""
        return {
            "import_kind": self.kind,
            "import_export": Path(self.export).name,
            "import_mapping_sha256": self.mapping_sha256[:12],
            "import_undated": self.undated,
            "custom_attributes": [f"{a.name}:{a.type}" for a in self.attributes],
        }


def imports_dir(raw_dir: Path) -> Path:
    return raw_dir / IMPORTS_DIR


def manifest_path(raw_dir: Path, kind: Kind) -> Path:
    return imports_dir(raw_dir) / f"{kind}.json"


def attributes_path(raw_dir: Path, kind: Kind) -> Path:
    return imports_dir(raw_dir) / f"{kind}_attributes.parquet"


def companies_path(raw_dir: Path, kind: Kind) -> Path:
    return imports_dir(raw_dir) / f"{kind}_companies.parquet"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(raw_dir: Path, manifest: ImportManifest) -> Path:
    path = manifest_path(raw_dir, manifest.kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return path


def load_manifest(raw_dir: Path, kind: Kind) -> ImportManifest | None:
    """The manifest of the last import of ``kind`` into ``raw_dir``; None if none or stale."""
    path = manifest_path(raw_dir, kind)
    table = raw_dir / f"{PRIMARY_TABLE[kind]}.parquet"
    if not path.exists() or not table.exists():
        return None
    manifest = ImportManifest.model_validate_json(path.read_text(encoding="utf-8"))
    return manifest if manifest.table_sha256 == file_sha256(table) else None


def load_manifests(raw_dir: Path) -> dict[Kind, ImportManifest]:
    """Every current (not stale) import manifest in ``raw_dir``, by kind."""
    found = {kind: load_manifest(raw_dir, kind) for kind in KINDS}
    return {kind: m for kind, m in found.items() if m is not None}


def read_attributes(raw_dir: Path, kind: Kind) -> pd.DataFrame:
    return pd.read_parquet(attributes_path(raw_dir, kind))
