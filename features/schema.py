"""Canonical tables: the shape every data source (the synthetic world, a CRM import) is turned into.

Each table is one Parquet file ``<raw_dir>/<name>.parquet``, plus the parts the event API appended
beside it (``features.event_log``), which ``read_table`` reads with it. Timestamps are UTC
(``timestamp[us, tz=UTC]``), money is CNY, ids are strings. ``validate_table`` is the one check
that a frame matches its schema; the world generator and the importers both call it before writing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
F64 = pa.float64()
I64 = pa.int64()
I32 = pa.int32()
BOOL = pa.bool_()

CANONICAL_TABLES: dict[str, pa.Schema] = {
    # Firmographic snapshots; a change (工商变更) is a new row with a later snapshot_at.
    "companies": pa.schema(
        [
            ("company_id", STR),
            ("snapshot_at", TS),
            ("industry", STR),
            ("country", STR),
            ("province", STR),
            ("registered_capital_cny", F64),
            ("insured_headcount", I64),
            ("revenue_band", STR),
            ("founded_year", I32),
        ]
    ),
    "reps": pa.schema(
        [
            ("rep_id", STR),
            ("team", STR),
            ("region", STR),
            ("timezone", STR),
            ("work_start_hour", I32),
            ("work_end_hour", I32),
            ("capacity", I32),
            ("industries", STR),  # comma-separated industries the rep knows
        ]
    ),
    "rep_languages": pa.schema([("rep_id", STR), ("language", STR), ("proficiency", F64)]),
    "leads": pa.schema(
        [
            ("lead_id", STR),
            ("company_id", STR),
            ("created_at", TS),
            ("channel", STR),
            ("utm_source", STR),
            ("utm_campaign", STR),
            ("contact_role", STR),
            ("country", STR),
            ("timezone", STR),
            ("language", STR),
            ("product_interest", STR),
            # outcome columns
            ("assigned_rep_id", STR),
            ("first_touch_at", TS),
            ("converted", BOOL),
            ("converted_at", TS),
        ]
    ),
    "behavior_events": pa.schema(
        [
            ("company_id", STR),
            ("lead_id", STR),
            ("ts", TS),
            ("event_type", STR),
        ]
    ),
    "tenders": pa.schema(
        [
            ("tender_id", STR),
            ("company_id", STR),
            ("published_at", TS),
            ("category", STR),
            ("budget_cny", F64),
            ("deadline_at", TS),
        ]
    ),
    "commodity_prices": pa.schema([("commodity", STR), ("date", TS), ("price", F64)]),
    "opportunities": pa.schema(
        [
            ("opportunity_id", STR),
            ("company_id", STR),
            ("lead_id", STR),
            ("owner_rep_id", STR),
            ("product_line", STR),
            ("amount_cny", F64),
            ("created_at", TS),
            ("expected_close_at", TS),
            ("outcome", STR),
            ("closed_at", TS),
        ]
    ),
    "stage_events": pa.schema([("opportunity_id", STR), ("ts", TS), ("stage", STR)]),
    "milestone_events": pa.schema([("opportunity_id", STR), ("ts", TS), ("milestone", STR)]),
    "activities": pa.schema(
        [
            ("opportunity_id", STR),
            ("ts", TS),
            ("activity_type", STR),
            ("sentiment", STR),
        ]
    ),
    # One row per contract term; renewed is null while the term is still running.
    "contracts": pa.schema(
        [
            ("account_id", STR),
            ("start_at", TS),
            ("renewal_at", TS),
            ("arr_cny", F64),
            ("plan", STR),
            ("renewed", BOOL),
        ]
    ),
    "account_usage": pa.schema(
        [
            ("account_id", STR),
            ("date", TS),
            ("active_users", I32),
            ("seats", I32),
            ("module_usage_rate", F64),
            ("admin_logins", I32),
            ("alerts", I32),
            ("support_tickets", I32),
            ("nps", F64),
        ]
    ),
    "invoices": pa.schema(
        [
            ("account_id", STR),
            ("due_at", TS),
            ("paid_at", TS),
            ("amount_cny", F64),
        ]
    ),
}


class SchemaError(ValueError):
    """A table does not match its canonical schema; the message names the table and column."""


def validate_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """Return ``frame`` as an Arrow table in canonical column order and types, or raise SchemaError."""
    schema = CANONICAL_TABLES[name]
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise SchemaError(f"table {name!r} is missing column(s): {', '.join(missing)}")
    try:
        return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SchemaError(f"table {name!r}: {err}") from err


def write_table(name: str, frame: pd.DataFrame, raw_dir: Path) -> int:
    table = validate_table(name, frame)
    raw_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, raw_dir / f"{name}.parquet", compression="zstd")
    return table.num_rows


def read_table(name: str, raw_dir: Path) -> pd.DataFrame:
    path = raw_dir / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"canonical table {name!r} not found at {path}; run `funnelcast world generate`"
        )
    frame = pq.read_table(path).to_pandas()
    from features.event_log import read_logged  # the log imports this module's schemas

    logged = read_logged(raw_dir, name)  # events that came in through the API since
    if logged is None:
        return frame
    return pd.concat([frame, logged[frame.columns]], ignore_index=True)
