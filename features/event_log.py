"""The append-only log of events that came in through the API, in the offline store's own format.

Each accepted batch becomes one Parquet part per canonical table it touches, beside that table:
``<raw_dir>/<table>.events/part-<time>-<uuid>.parquet``, with the table's canonical columns (the
same schema ``validate_table`` enforces) plus ``event_id``. ``features.schema.read_table`` reads the
table and its parts as one, so the next ``features build`` (and the materialisation after it) and
training include every logged event, with nothing else to configure.

A part is written in two steps so the caller can make the log and the online store agree: ``stage``
writes it under a temporary name and fsyncs it; ``commit`` renames it into place and fsyncs the
directory (a rename is atomic: a reader sees the whole part or none of it); ``discard`` drops it.
Staged parts left by a process that died before committing are never read (``*.parquet`` only);
``service.ingest_journal`` commits or drops them when the service starts again.
Logged tables that are not canonical (``OPPORTUNITY_CHANGES``: close-date and amount changes, which
the canonical ``opportunities`` table holds only as the latest value) are kept the same way.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.schema import CANONICAL_TABLES, F64, STR, TS, validate_table

EVENT_ID = "event_id"
PARTS_SUFFIX = ".events"
OPPORTUNITY_CHANGES = "opportunity_changes"
# close-date and amount changes: the value after the change (``close_date`` or ``amount_cny``)
LOGGED_ONLY: dict[str, pa.Schema] = {
    OPPORTUNITY_CHANGES: pa.schema(
        [("opportunity_id", STR), ("ts", TS), ("field", STR), ("close_date", TS), ("amount_cny", F64)]
    )
}


def parts_dir(raw_dir: Path, table: str) -> Path:
    return raw_dir / f"{table}{PARTS_SUFFIX}"


def logged_parts(raw_dir: Path, table: str) -> list[Path]:
    """Committed parts of ``table``, oldest first (part names start with their write time)."""
    folder = parts_dir(raw_dir, table)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def read_logged(raw_dir: Path, table: str) -> pd.DataFrame | None:
    """Every logged event of ``table`` (its columns plus ``event_id``), or None when none is logged."""
    parts = logged_parts(raw_dir, table)
    if not parts:
        return None
    return pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()


def read_logged_only(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """The logged tables that are not canonical (``LOGGED_ONLY``) that hold any event, by name."""
    found = {table: read_logged(raw_dir, table) for table in LOGGED_ONLY}
    return {table: frame for table, frame in found.items() if frame is not None}


@dataclass
class StagedPart:
    temporary: Path
    final: Path

    def commit(self) -> None:
        os.replace(self.temporary, self.final)
        fsync_dir(self.final.parent)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def stage(
    raw_dir: Path, table: str, frame: pd.DataFrame, at: datetime, batch: str | None = None
) -> StagedPart:
    """Write ``frame`` (``table``'s columns plus ``event_id``) as a fsync'd part not yet visible; its
    name ends with ``batch`` (the ingest journal finds a cut-off batch's parts by it)."""
    schema = CANONICAL_TABLES.get(table) or LOGGED_ONLY[table]
    if table in CANONICAL_TABLES:
        body = validate_table(table, frame)
    else:
        body = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    ids = pa.array(frame[EVENT_ID].astype(str).tolist(), STR)
    body = body.append_column(EVENT_ID, ids)
    folder = parts_dir(raw_dir, table)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{at:%Y%m%dT%H%M%S%f}-{batch or uuid.uuid4().hex[:12]}.parquet"
    final = folder / name
    temporary = folder / f".{name}.tmp"
    with open(temporary, "wb") as sink:
        pq.write_table(body, sink, compression="zstd")
        sink.flush()
        os.fsync(sink.fileno())
    return StagedPart(temporary, final)


def batch_parts(raw_dir: Path, batch: str) -> tuple[list[StagedPart], list[Path]]:
    """One batch's parts in every logged table: those still staged, and those committed."""
    staged, committed = [], []
    for folder in raw_dir.glob(f"*{PARTS_SUFFIX}"):
        for temporary in folder.glob(f".part-*-{batch}.parquet.tmp"):
            staged.append(StagedPart(temporary, folder / temporary.name[1:].removesuffix(".tmp")))
        committed.extend(folder.glob(f"part-*-{batch}.parquet"))
    return staged, committed


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry itself is fsync'd)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
