"""Sources: one Parquet feature table per view (written by ``features.jobs``), plus a push source.

Behaviour events can be pushed by a streaming producer (``store.push(BEHAVIOR_PUSH_SOURCE, rows)``)
straight into the online store; the batch table stays the offline history.
"""

from __future__ import annotations

from pathlib import Path

from feast import FileSource, PushSource

BEHAVIOR_PUSH_SOURCE = "company_behavior_push"


def table_source(feature_dir: Path, table: str) -> FileSource:
    return FileSource(
        name=f"{table}_source",
        path=str((feature_dir / f"{table}.parquet").resolve()),
        timestamp_field="event_timestamp",
    )


def behavior_push_source(feature_dir: Path) -> PushSource:
    return PushSource(name=BEHAVIOR_PUSH_SOURCE, batch_source=table_source(feature_dir, "company_behavior"))
