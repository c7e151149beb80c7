"""The canonical tables a feature job reads, and the default "now" of a build.

Jobs take ``RawTables`` — a plain mapping from canonical table name to DataFrame — so a test can
hand over three hand-written frames and a build can hand over what ``read_raw`` loaded from Parquet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from features.jobs.timeline import utc_timestamp
from features.schema import CANONICAL_TABLES, read_table

RawTables = Mapping[str, pd.DataFrame]

# Columns that record something that has happened. Planned or promised times (tender deadlines,
# contract renewal dates, expected close dates, invoice due dates) can lie in the future and must
# not move "now" forward, or the as-of rows would be stamped after the data ends.
OBSERVED_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "companies": ("snapshot_at",),
    "leads": ("created_at", "first_touch_at", "converted_at"),
    "behavior_events": ("ts",),
    "tenders": ("published_at",),
    "commodity_prices": ("date",),
    "opportunities": ("created_at", "closed_at"),
    "stage_events": ("ts",),
    "milestone_events": ("ts",),
    "activities": ("ts",),
    "contracts": ("start_at",),
    "account_usage": ("date",),
    "invoices": ("paid_at",),
}


def read_raw(raw_dir: Path, names: Iterable[str] = tuple(CANONICAL_TABLES)) -> dict[str, pd.DataFrame]:
    """Load the named canonical tables from ``raw_dir`` (FileNotFoundError names a missing one)."""
    return {name: read_table(name, raw_dir) for name in names}


def latest_observed_time(raw: RawTables) -> pd.Timestamp:
    """The latest observed timestamp in ``raw`` (see ``OBSERVED_TIME_COLUMNS``), tz-aware UTC.

    This is the default ``as_of`` of a build: the moment the data describes, so as-of rows carry
    the latest state without being dated after any fact they could not yet know.
    """
    latest: pd.Timestamp | None = None
    for name, columns in OBSERVED_TIME_COLUMNS.items():
        frame = raw.get(name)
        if frame is None or frame.empty:
            continue
        for column in columns:
            value = pd.to_datetime(frame[column], utc=True).max()
            if pd.notna(value) and (latest is None or value > latest):
                latest = value
    if latest is None:
        raise ValueError("raw tables hold no observed timestamps; cannot infer as_of")
    return utc_timestamp(latest)


def require(raw: RawTables, *names: str) -> list[pd.DataFrame]:
    """The named tables from ``raw``, or a KeyError that says which job input is missing."""
    missing = [name for name in names if name not in raw]
    if missing:
        raise KeyError(f"raw tables missing: {', '.join(missing)}")
    return [raw[name] for name in names]
