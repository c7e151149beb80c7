"""The bundle import edge: read every file a bundle mapping names, write the canonical tables.

``import_bundle`` is what ``funnelcast import bundle DIR --mapping M.yaml`` calls. A bundle is a
whole CRM: the tables it feeds replace those in the data dir; canonical tables it does not feed are
kept when present (say tenders and commodity prices imported from their feeds) and written empty
otherwise. Without custom attributes the feature build and training take the same path as for
the synthetic world, with as-of the latest observed time in the tables. When the leads object
declares custom attributes, they are written as a leads import's are (``imports/leads_attributes
.parquet`` and the leads manifest, as-of that same latest observed time): the feature build, Feast
and training then give the lead model ``lead_score_import_v1`` and its attributes, as for a
single-kind leads import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from features.importers.bundle_mappers import map_bundle
from features.importers.bundle_mapping import BundleMapping, load_bundle_mapping
from features.importers.errors import ExportReadError
from features.importers.manifest import (
    ImportManifest,
    attributes_path,
    file_sha256,
    imports_dir,
    write_manifest,
)
from features.importers.mapping import mapping_sha256
from features.importers.reader import read_file
from features.importers.run import refuse_synthetic_world
from features.jobs.raw import OBSERVED_TIME_COLUMNS, latest_observed_time, read_raw
from features.jobs.run import write_feature_table
from features.schema import CANONICAL_TABLES, write_table
from funnelcast.core import clock
from funnelcast.core.settings import Settings

BUNDLE_STEPS = ("read mapping", "read files", "map", "write tables")


@dataclass
class BundleReport:
    export_dir: str
    source: str
    rows_read: dict[str, int]  # export file -> data rows
    tables: dict[str, int]  # canonical table -> rows written (``kept`` tables not included)
    kept: list[str] = field(default_factory=list)  # canonical tables left as they were
    notes: list[str] = field(default_factory=list)


def bundle_files(mapping: BundleMapping) -> list[str]:
    """Every export file the mapping reads, in the order it names them."""
    names = [o.file for o in mapping.objects]
    names += [o.history.file for o in mapping.objects if o.history is not None]
    for spec in (mapping.stage_history, mapping.field_history):
        if spec is not None:
            names.append(spec.file)
    return list(dict.fromkeys(names))


def import_bundle(
    settings: Settings,
    export_dir: Path,
    mapping_path: Path,
    progress: Callable[[str], None] | None = None,
) -> BundleReport:
    """Import the CRM bundle in ``export_dir`` into ``settings.raw_dir``; ExportError says what is wrong."""
    step = progress or (lambda _name: None)
    mapping = load_bundle_mapping(mapping_path)
    refuse_synthetic_world(settings)
    step(BUNDLE_STEPS[0])
    files = {}
    notes: list[str] = []
    for name in bundle_files(mapping):
        path = export_dir / name
        if not path.exists():
            present = sorted(p.name for p in export_dir.iterdir()) if export_dir.is_dir() else []
            raise ExportReadError(
                f"the mapping names {name!r}, not found in {export_dir}; files there: {present}"
            )
        files[name], read_notes = read_file(path, mapping)
        notes += read_notes
    step(BUNDLE_STEPS[1])
    mapped = map_bundle(files, mapping)
    step(BUNDLE_STEPS[2])
    raw_dir = settings.raw_dir
    written = {name: write_table(name, frame, raw_dir) for name, frame in mapped.tables.items()}
    kept = []
    for name, schema in CANONICAL_TABLES.items():
        if name in written:
            continue
        if (raw_dir / f"{name}.parquet").exists():
            kept.append(name)
        else:
            written[name] = write_table(name, schema.empty_table().to_pandas(), raw_dir)
    imports_dir(raw_dir).mkdir(parents=True, exist_ok=True)
    (imports_dir(raw_dir) / "bundle.json").write_text(mapping.model_dump_json(indent=2), encoding="utf-8")
    leads = mapping.attributed_leads()
    if leads is not None and mapped.attributes is not None:
        path = attributes_path(raw_dir, "leads")
        written[f"imports/{path.name}"] = write_feature_table(mapped.attributes, path)
        write_manifest(
            raw_dir,
            ImportManifest(
                kind="leads",
                export=str((export_dir / leads.file).resolve()),
                mapping=str(mapping_path.resolve()),
                mapping_sha256=mapping_sha256(mapping_path),
                imported_at=clock.now(),
                as_of=latest_observed_time(read_raw(raw_dir, OBSERVED_TIME_COLUMNS)).to_pydatetime(),
                undated=False,
                time_source=f"{leads.file}: {leads.columns.get('created_at', 'created_at')}",
                attributes=mapped.attribute_specs,
                fields=list(leads.columns),
                table_sha256=file_sha256(raw_dir / "leads.parquet"),
            ),
        )
        notes.append(
            f"custom lead attributes: {', '.join(f'{a.name}:{a.type}' for a in mapped.attribute_specs)}"
        )
    step(BUNDLE_STEPS[3])
    return BundleReport(
        export_dir=str(export_dir),
        source=mapping.source,
        rows_read=mapped.rows_read,
        tables=written,
        kept=kept,
        notes=notes + mapped.notes,
    )
