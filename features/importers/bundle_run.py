"""The bundle import edge: read every file a bundle mapping names, write the canonical tables.

``import_bundle`` is what ``funnelcast import bundle DIR --mapping M.yaml`` calls. A bundle is a
whole CRM: the tables it feeds replace those in the data dir; canonical tables it does not feed are
kept when present (say tenders and commodity prices imported from their feeds) and written empty
otherwise. No single-kind manifest is written: a bundle has no custom attributes (yet), so the
feature build and training take the same path as for the synthetic world, with as-of the latest
observed time in the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from features.importers.bundle_mappers import map_bundle
from features.importers.bundle_mapping import BundleMapping, load_bundle_mapping
from features.importers.errors import ExportReadError
from features.importers.manifest import imports_dir
from features.importers.reader import read_file
from features.importers.run import refuse_synthetic_world
from features.schema import CANONICAL_TABLES, write_table
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
    step(BUNDLE_STEPS[3])
    return BundleReport(
        export_dir=str(export_dir),
        source=mapping.source,
        rows_read=mapped.rows_read,
        tables=written,
        kept=kept,
        notes=notes + mapped.notes,
    )
