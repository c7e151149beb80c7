"""The feed import edge: read a commodity-price or tender feed, write its canonical table.

``import_feed`` is what ``funnelcast import commodity-prices|tenders FILE --mapping M.yaml`` calls.
The feed's table (``commodity_prices`` or ``tenders``) is replaced; canonical tables nobody filled
yet are written empty so ``features build`` runs. A tender feed names the CRM's company list
(``companies.file``, resolved against the feed's folder) to match buyers against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from features.importers.errors import ExportReadError
from features.importers.reader import check_columns, read_file
from features.importers.run import refuse_synthetic_world
from features.importers.signals import (
    CommodityPricesMapping,
    FeedReport,
    TendersMapping,
    load_feed_mapping,
    map_commodity_prices,
    map_tenders,
)
from features.importers.values import parse_text
from features.schema import CANONICAL_TABLES, write_table
from funnelcast.core.settings import Settings

FeedKind = Literal["commodity_prices", "tenders"]


def import_feed(settings: Settings, kind: FeedKind, path: Path, mapping_path: Path) -> FeedReport:
    """Import the feed at ``path`` into ``settings.raw_dir``; ExportError says what is wrong."""
    mapping = load_feed_mapping(mapping_path, kind)
    refuse_synthetic_world(settings)
    frame, notes = read_file(path, mapping)
    if isinstance(mapping, CommodityPricesMapping):
        table, report = map_commodity_prices(frame, mapping, path.name)
    else:
        assert isinstance(mapping, TendersMapping)
        table, report = map_tenders(frame, company_names(path.parent, mapping), mapping, path.name)
    report.notes = notes + report.notes
    write_table(kind, table, settings.raw_dir)
    for name, schema in CANONICAL_TABLES.items():
        if not (settings.raw_dir / f"{name}.parquet").exists():
            write_table(name, schema.empty_table().to_pandas(), settings.raw_dir)
    return report


def company_names(folder: Path, mapping: TendersMapping) -> dict[str, str]:
    """The CRM's companies, id -> name, from the file the tender mapping names."""
    spec = mapping.companies
    path = spec.file if spec.file.is_absolute() else folder / spec.file
    if not path.exists():
        raise ExportReadError(f"companies file {path} (the tender mapping's companies.file) not found")
    frame, _ = read_file(path, mapping)
    check_columns([spec.id, spec.name], frame.columns, path.name)
    ids, names = parse_text(frame[spec.id]), parse_text(frame[spec.name])
    keep = ids.notna() & names.notna()
    return dict(zip(ids[keep], names[keep], strict=True))
