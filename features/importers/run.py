"""The import edge: read an export and its mapping, write canonical tables, attributes and a manifest.

``import_export_file`` is what ``funnelcast import`` calls. Everything it decides is in the pure
modules (``reader`` reads, ``mappers`` maps); here are only the files. An import of one kind
replaces that kind's canonical table and keeps the tables of other kinds' imports, so leads,
opportunities and accounts of one CRM can be imported into one data dir one after the other.
Canonical tables no import fills (behaviour events, tenders, reps, ...) are written empty, which
the feature jobs accept. A data dir holding the synthetic world (it has an oracle) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.importers.errors import ExportError, MappingError
from features.importers.manifest import (
    ImportManifest,
    attributes_path,
    companies_path,
    file_sha256,
    load_manifests,
    write_manifest,
)
from features.importers.mappers import LABEL_NAMES, MappedExport, map_export
from features.importers.mapping import KINDS, PRIMARY_TABLE, Kind, load_mapping, mapping_sha256
from features.importers.reader import read_export
from features.importers.report import ImportReport
from features.jobs.run import write_feature_table
from features.schema import CANONICAL_TABLES, read_table, write_table
from funnelcast.core import clock
from funnelcast.core.settings import Settings

STEPS = ("read mapping", "read export", "map", "write tables")


def import_export_file(
    settings: Settings,
    kind: Kind,
    export: Path,
    mapping_path: Path,
    progress: Callable[[str], None] | None = None,
) -> ImportReport:
    """Import ``export`` as ``kind`` into ``settings.raw_dir``; ExportError says what is wrong."""
    step = progress or (lambda _name: None)
    mapping = load_mapping(mapping_path)
    if mapping.kind != kind:
        raise MappingError(f"mapping {mapping_path.name} is for {mapping.kind}, not {kind}")
    refuse_synthetic_world(settings)
    step("read mapping")
    read = read_export(export, mapping)
    step("read export")
    mapped = map_export(read, mapping)
    step("map")
    tables = _write(settings.raw_dir, mapped, export, mapping_path, list(mapping.fields))
    step("write tables")
    return ImportReport(
        kind=kind,
        export=str(export),
        rows_read=mapped.rows_read,
        rows_imported=len(mapped.table),
        rejected=mapped.rejected,
        label_counts=mapped.label_counts,
        label_names=LABEL_NAMES[kind],
        as_of=mapped.as_of,
        undated=mapped.undated,
        time_source=mapped.time_source,
        columns=mapped.columns,
        attributes=mapped.attribute_specs,
        tables=tables,
        notes=mapped.notes + _kept_tables_notes(settings.raw_dir, kind),
        undecided=mapped.undecided,
    )


def refuse_synthetic_world(settings: Settings) -> None:
    if settings.oracle_dir.exists() and any(settings.oracle_dir.glob("*.parquet")):
        raise ExportError(
            f"{settings.data_dir} holds the synthetic world (it has an oracle in {settings.oracle_dir}); "
            "import into a fresh --data-dir (or FUNNELCAST_DATA_DIR), or remove that data dir first"
        )


def _write(
    raw_dir: Path, mapped: MappedExport, export: Path, mapping_path: Path, fields: list[str]
) -> dict[str, int]:
    """Write the kind's table, merged companies, empty missing tables, attributes and the manifest."""
    kind = mapped.kind
    others = {k: m for k, m in load_manifests(raw_dir).items() if k != kind}
    written: dict[str, int] = {}
    primary = PRIMARY_TABLE[kind]
    written[f"{primary}.parquet"] = write_table(primary, mapped.table, raw_dir)

    companies_path(raw_dir, kind).parent.mkdir(parents=True, exist_ok=True)
    mapped.companies.to_parquet(companies_path(raw_dir, kind), index=False)
    parts = [pd.read_parquet(path) for k in others if (path := companies_path(raw_dir, k)).exists()]
    companies = pd.concat([p for p in [*parts, mapped.companies] if not p.empty] or [mapped.companies])
    companies = companies.drop_duplicates(["company_id", "snapshot_at"], keep="last")
    written["companies.parquet"] = write_table("companies", companies, raw_dir)

    for name, schema in CANONICAL_TABLES.items():
        if not (raw_dir / f"{name}.parquet").exists():
            written[f"{name}.parquet"] = write_table(name, schema.empty_table().to_pandas(), raw_dir)

    written[f"imports/{attributes_path(raw_dir, kind).name}"] = write_feature_table(
        mapped.attributes, attributes_path(raw_dir, kind)
    )
    manifest = ImportManifest(
        kind=kind,
        export=str(export.resolve()),
        mapping=str(mapping_path.resolve()),
        mapping_sha256=mapping_sha256(mapping_path),
        imported_at=clock.now(),
        as_of=mapped.as_of.to_pydatetime(),
        undated=mapped.undated,
        time_source=mapped.time_source,
        attributes=mapped.attribute_specs,
        fields=fields,
        table_sha256=file_sha256(raw_dir / f"{primary}.parquet"),
    )
    write_manifest(raw_dir, manifest)
    return written


def _kept_tables_notes(raw_dir: Path, kind: Kind) -> list[str]:
    """Name other kinds' non-empty tables that stay in the data dir (earlier imports or other data)."""
    notes = []
    current = load_manifests(raw_dir)
    for other in KINDS:
        if other == kind:
            continue
        table = PRIMARY_TABLE[other]
        rows = len(read_table(table, raw_dir))
        if rows:
            origin = "an earlier import" if other in current else "not from an import"
            notes.append(f"kept {table} ({rows:,} rows, {origin}) in {raw_dir}")
    return notes
