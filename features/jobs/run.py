"""Build every feature table from the canonical tables and write them as Parquet.

``build_all`` is what ``funnelcast features build`` (and a notebook) calls: it reads the raw
tables once, runs each job in turn and writes ``<feature_dir>/<table>.parquet`` with zstd, with
``event_timestamp`` as ``timestamp[us, tz=UTC]`` — the contract the Feast sources are declared on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.event_log import read_logged_only
from features.importers.manifest import ATTRIBUTE_VIEW, load_manifests, read_attributes
from features.jobs.account_health import build_account_health
from features.jobs.attributes import build_attribute_table
from features.jobs.behavior import build_company_behavior, build_lead_behavior
from features.jobs.behavior_trend import build_company_behavior_trend
from features.jobs.commodity_prices import build_commodity_prices
from features.jobs.company_firmographics import build_company_firmographics
from features.jobs.company_tenders import build_company_tenders
from features.jobs.opportunity_snapshots import build_custom_milestones, build_opportunity_snapshots
from features.jobs.raw import RawTables, latest_observed_time, read_raw
from features.jobs.rep_profile import build_rep_profile
from features.jobs.timeline import utc_timestamp
from features.repo.views import CUSTOM_MILESTONE_VIEW
from funnelcast.core.settings import Settings

FeatureJob = Callable[[RawTables, pd.Timestamp], pd.DataFrame]

# Table name -> (job, entity key). The names are the contract Feast views are declared over.
FEATURE_JOBS: dict[str, tuple[FeatureJob, str]] = {
    "company_firmographics": (build_company_firmographics, "company_id"),
    "company_behavior": (build_company_behavior, "company_id"),
    "lead_behavior": (build_lead_behavior, "lead_id"),
    "company_tenders": (build_company_tenders, "company_id"),
    "commodity_prices": (build_commodity_prices, "commodity"),
    "opportunity_snapshots": (build_opportunity_snapshots, "opportunity_id"),
    "account_health": (build_account_health, "account_id"),
    "rep_profile": (build_rep_profile, "rep_id"),
    "company_behavior_trend": (build_company_behavior_trend, "company_id"),
}


def write_feature_table(frame: pd.DataFrame, path: Path) -> int:
    """Write ``frame`` to ``path`` (zstd Parquet) with every timestamp at ``timestamp[us, tz=UTC]``."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fields = [_contract_field(f) for f in table.schema]
    table = table.cast(pa.schema(fields))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)  # readers never see a half-written table
    return table.num_rows


def _contract_field(field: pa.Field) -> pa.Field:
    """Timestamps at ``timestamp[us, tz=UTC]``; a text column with no values (an empty table, an
    imported column that is all missing) as ``string``, not Arrow's ``null`` type, so every reader
    sees the type its feature view declares."""
    if pa.types.is_timestamp(field.type):
        return pa.field(field.name, pa.timestamp("us", tz="UTC"))
    if pa.types.is_null(field.type):
        return pa.field(field.name, pa.string())
    return field


def build_all(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Build and write every table in ``FEATURE_JOBS``; return rows written per table.

    ``as_of`` (default: the latest observed time in the raw data, or for imported CRM exports the
    time their labels are as of) is the build's "now": nothing dated later is used and every table
    gets its latest-state rows there. ``progress`` is called with each table's name once it is
    written, so a CLI can advance a progress bar.

    After an import with custom attributes, the attribute tables (``ATTRIBUTE_VIEW``) are written
    too (not counted by ``progress``); one left by an earlier import that is no longer current
    (the canonical table was overwritten since) is removed, so Feast does not declare it. The same
    holds for ``opportunity_custom_milestones``, written when the deals reached milestones beyond
    the canonical twelve (a bundle mapping's own list).
    """
    # the canonical tables (with the events logged through the API), plus the close-date and amount
    # changes the API logged, which the canonical ``opportunities`` table holds only as the latest value
    raw = {**read_raw(settings.raw_dir), **read_logged_only(settings.raw_dir)}
    imports = load_manifests(settings.raw_dir)
    if as_of is not None:
        now = utc_timestamp(as_of)
    elif imports:
        now = utc_timestamp(max(pd.Timestamp(m.as_of) for m in imports.values()))
    else:
        now = latest_observed_time(raw)
    rows: dict[str, int] = {}
    for name, (job, _key) in FEATURE_JOBS.items():
        rows[name] = write_feature_table(job(raw, now), settings.feature_dir / f"{name}.parquet")
        if progress is not None:
            progress(name)
    for kind, view in ATTRIBUTE_VIEW.items():
        path = settings.feature_dir / f"{view}.parquet"
        manifest = imports.get(kind)
        if manifest is None or not manifest.attributes:
            path.unlink(missing_ok=True)
            continue
        table = build_attribute_table(read_attributes(settings.raw_dir, kind), manifest.key, now)
        rows[view] = write_feature_table(table, path)
    # an import's custom milestones get their own table (and view) only when it declared some
    path = settings.feature_dir / f"{CUSTOM_MILESTONE_VIEW}.parquet"
    custom = build_custom_milestones(raw, now)
    if len(custom.columns) > 2:
        rows[CUSTOM_MILESTONE_VIEW] = write_feature_table(custom, path)
    else:
        path.unlink(missing_ok=True)
    return rows
