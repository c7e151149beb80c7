"""The edge to Feast: build the store from settings, apply definitions, materialise.

The store's configuration is built from the one ``Settings`` object (no ``feature_store.yaml`` to
keep in sync): SQLite or Redis online store, file or PostgreSQL (SQL) registry, DuckDB offline
store over the Parquet feature tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, RepoConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from features.repo import definitions
from features.repo.views import SERVING_WINDOW, serving_window
from funnelcast.core.settings import Settings

REDIS_STORE_TYPE = "features.redis_online_store.FailFastRedisOnlineStore"


def repo_config(settings: Settings) -> RepoConfig:
    feast_dir = settings.feast_dir
    feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.online_store == "redis":
        timeout = settings.redis_timeout_seconds  # REDIS_STORE_TYPE itself never retries
        online = {
            "type": REDIS_STORE_TYPE,
            "connection_string": (
                f"{settings.redis_url},socket_connect_timeout={timeout},socket_timeout={timeout}"
            ),
        }
    else:
        online = {"type": "sqlite", "path": str(feast_dir / "online.db")}
    if settings.registry == "sql":
        registry = {
            "registry_type": "sql",
            "path": settings.registry_url,
            "cache_ttl_seconds": 10,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        }
    else:
        registry = {"registry_type": "file", "path": str(feast_dir / "registry.db"), "cache_ttl_seconds": 10}
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=registry,
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
        repo_path=feast_dir,
        materialization={"pull_latest_features": True, "online_write_batch_size": 50_000},
    )


def open_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over ``settings``; opens nothing until used."""
    return FeatureStore(repo_path=str(settings.feast_dir), config=repo_config(settings))


class FeatureTablesMissing(FileNotFoundError):
    pass


class OnlineStoreUnavailable(RuntimeError):
    """The online store (or the serving directory kept beside it) did not answer a read."""


def online_store_fault(store: FeatureStore) -> str | None:
    """Why the SQLite online store cannot be read right now (its file is gone), else None.

    Feast keeps one SQLite connection open for the process. When the file is deleted under it,
    reads go on answering from the unlinked file (never what is materialised next), and a first
    connection would quietly create an empty file; no read ever fails. So the file is checked by
    path before a read. A missing file also drops Feast's open connection (without closing it under
    a concurrent reader; the collector closes it), so a restored file is opened afresh.
    """
    if store.config.online_store.type != "sqlite":
        return None  # Redis: a dead or hung server fails the read itself, within its socket timeout
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    path = Path(SqliteOnlineStore._get_db_path(store.config))
    if path.exists():
        return None
    online = store._get_provider().online_store
    if isinstance(online, SqliteOnlineStore):
        online._conn = None
    return f"online store file {path} is missing"


def online_version(store: FeatureStore) -> tuple[object, int, int] | None:
    """A token that changes whenever the SQLite online store's rows may have changed, else None
    (other stores: their reads are not cached).

    ``PRAGMA data_version`` moves when another connection commits (``features materialize``, another
    worker's event ingest); ``total_changes`` counts this connection's own writes (this process's
    ingest goes through Feast's one connection, and data_version does not move for those). The
    connection itself is part of the token: Feast opens a new one after the file was replaced.
    """
    if store.config.online_store.type != "sqlite":
        return None
    conn = store._get_provider().online_store._get_conn(store.config)
    return conn, conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes


def apply_definitions(store: FeatureStore, settings: Settings) -> list[str]:
    """Register every entity, view and service; returns the names applied."""
    missing = [p.name for p in _feature_tables(settings) if not p.exists()]
    if missing:
        raise FeatureTablesMissing(
            f"feature tables missing in {settings.feature_dir}: {', '.join(missing)}; "
            "run `funnelcast features build`"
        )
    objects = definitions(settings.feature_dir)
    store.apply(objects)
    return [o.name for o in objects]


def _feature_tables(settings: Settings) -> list:
    return [settings.feature_dir / f"{name}.parquet" for name in SERVING_WINDOW]


def latest_feature_time(settings: Settings) -> datetime:
    """The newest ``event_timestamp`` across the feature tables: "now" for a world in the past."""
    newest = datetime(1970, 1, 1, tzinfo=UTC)
    for path in _feature_tables(settings):
        top = pc.max(pq.read_table(path, columns=["event_timestamp"]).column(0)).as_py()
        if top is not None:
            newest = max(newest, top)
    return newest


class MaterializationIncomplete(RuntimeError):
    """Materialisation finished, yet entities with rows in the serving window are not online."""


@dataclass
class MaterializeReport:
    view: str
    start: datetime
    end: datetime
    seconds: float
    entities: int  # entities with rows in the serving window, every one of them online afterwards
    refilled: bool  # the online store lacked some of them, so the whole window was written again


def materialize(
    store: FeatureStore,
    end: datetime,
    views: list[str] | None = None,
    progress: Callable[[str], None] = lambda view: None,
) -> list[MaterializeReport]:
    """Write the latest state each entity needs into the online store, view by view.

    Incremental: each view starts where its last materialisation ended, but never further back
    than its serving window (``SERVING_WINDOW``), so a first run does not replay history.

    The watermark lives in the registry, which several online stores can share (SQLite for the
    demo, then Redis with the same registry; or a Redis that restarted empty). So the watermark is
    trusted only when the online store holds every entity it claims: if any entity with rows
    between the window's start and the watermark is missing, the whole window is written again.
    Afterwards every entity with rows in the window must be online, or this raises
    ``MaterializationIncomplete`` naming the view: a run that wrote nothing never reports success.
    """
    reports = []
    for fv in store.list_feature_views():
        if views and fv.name not in views:
            continue
        window = serving_window(fv.name)
        floor = end - window if window is not None else datetime(1970, 1, 1, tzinfo=UTC)
        done = fv.most_recent_end_time
        if done is not None and done.tzinfo is None:
            done = done.replace(tzinfo=UTC)  # the file registry returns naive UTC
        start = max(floor, done) if done is not None else floor
        t0 = time.perf_counter()
        refilled = False
        if start > floor and _missing_online(store, fv, _entities_with_rows(fv, floor, min(start, end))):
            start, refilled = floor, True
        if start < end:
            store.materialize(start_date=start, end_date=end, feature_views=[fv.name])
        expected = _entities_with_rows(fv, floor, end)
        missing = _missing_online(store, fv, expected)
        if missing:
            raise MaterializationIncomplete(
                f"{fv.name}: {len(missing)} of {len(expected)} entities with rows between "
                f"{floor:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC are not in the online store "
                f"after materialising (e.g. {', '.join(missing[:3])})"
            )
        reports.append(
            MaterializeReport(fv.name, start, end, time.perf_counter() - t0, len(expected), refilled)
        )
        progress(fv.name)
    return reports


OnlineRow = tuple[datetime | None, dict[str, Value] | None]
_KEYS_PER_STATEMENT = 2_000  # keys bound per statement, times the views: under SQLite's limit


def read_online(
    store: FeatureStore, views: Sequence[tuple[FeatureView, Sequence[str]]], keys: list[EntityKey]
) -> list[list[OnlineRow]]:
    """The rows of several views for the same keys: per view, per key, ``(event time, {feature:
    value})`` as ``OnlineStore.online_read`` gives them (``(None, None)`` where the key has no row).

    On the SQLite store one statement reads every view, and only the features asked for. Feast's own
    read is a statement per view, returns all of a view's features and has SQLite parse a timestamp
    for every feature of every row; for one lead that was a third of the serving CPU. Other stores
    (Redis) are read view by view through Feast.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    online = store._get_provider().online_store
    config = store.config
    if not isinstance(online, SqliteOnlineStore):
        return [online.online_read(config, fv, keys, list(features)) for fv, features in views]
    version = config.entity_key_serialization_version
    blobs = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    found: list[dict[bytes, tuple[int, dict[str, Value]]]] = [{} for _ in views]
    conn = online._get_conn(config)
    versioned = config.registry.enable_online_feature_view_versioning
    tables = tuple(
        (compute_table_id(config.project, fv, versioned), tuple(features)) for fv, features in views
    )
    decode = Value.FromString
    for start in range(0, len(blobs), _KEYS_PER_STATEMENT):
        chunk = blobs[start : start + _KEYS_PER_STATEMENT]
        params = [p for _, features in tables for p in (*chunk, *features)]  # per table: keys, names
        for v, key, feature, blob, stamp in conn.execute(_read_statement(tables, len(chunk)), params):
            row = found[v].get(key)
            if row is None:
                row = found[v][key] = (stamp, {})
            row[1][feature] = decode(blob)
    return [[_online_row(rows.get(blob)) for blob in blobs] for rows in found]


@lru_cache(maxsize=64)
def _read_statement(tables: tuple[tuple[str, tuple[str, ...]], ...], keys: int) -> str:
    """One statement reading ``keys`` entity keys from every ``(table, features)``, binding each
    table's keys then its feature names (built once: one lead's read is the same every time)."""
    marks = ",".join("?" * keys)
    parts = []
    for v, (table, features) in enumerate(tables):
        quoted = '"' + table.replace('"', '""') + '"'
        # Feast stores event_ts as whole epoch seconds; read as a plain number (not through the
        # declared-type converter, a datetime per feature) and made a time once per row
        parts.append(
            f"SELECT {v}, entity_key, feature_name, value, CAST(event_ts AS INTEGER) FROM {quoted} "
            f"WHERE entity_key IN ({marks}) AND feature_name IN ({','.join('?' * len(features))})"
        )
    return " UNION ALL ".join(parts)


def _online_row(found: tuple[int, dict[str, Value]] | None) -> OnlineRow:
    if found is None:
        return None, None
    return datetime.fromtimestamp(found[0], UTC), found[1]


def entity_keys(join_key: str, ids: list[str]) -> list[EntityKey]:
    """Online-store keys for string entity ids (every funnelcast entity has a string join key)."""
    return [EntityKey(join_keys=[join_key], entity_values=[Value(string_val=i)]) for i in ids]


def row_time(value: Any) -> datetime | None:
    """An online row's event time in UTC, or None when the store holds no row for the entity.

    Feast's Redis store answers a missing entity with epoch 0 (a datetime, SQLite gives None);
    read as a real time, it made every unknown entity look stale and known.
    """
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, int | float):
        stamp = datetime.fromtimestamp(value, UTC)
    elif hasattr(value, "seconds"):  # protobuf Timestamp
        stamp = datetime.fromtimestamp(value.seconds, UTC)
    else:
        return None
    return stamp if stamp.timestamp() > 0 else None


_READ_CHUNK = 5_000  # keys per online read: under SQLite's bound-parameter limit


def _entities_with_rows(fv: FeatureView, start: datetime, end: datetime) -> list[str]:
    """Distinct entity ids with a row in ``[start, end]`` in the view's Parquet table, sorted."""
    source = fv.batch_source
    if not isinstance(source, FileSource) or len(fv.entity_columns) != 1:
        return []  # not a table this edge reads; Feast alone vouches for it
    key = fv.entity_columns[0].name
    table = pq.read_table(source.path, columns=[key, source.timestamp_field])
    stamps = table.column(source.timestamp_field)
    utc = stamps.type.tz is not None  # the feature jobs write UTC-aware times; naive ones mean UTC
    lo, hi = (pa.scalar(t if utc else t.replace(tzinfo=None), stamps.type) for t in (start, end))
    inside = pc.and_(pc.greater_equal(stamps, lo), pc.less_equal(stamps, hi))
    return sorted(str(v) for v in pc.unique(table.column(key).filter(inside)).to_pylist())


def _missing_online(store: FeatureStore, fv: FeatureView, ids: list[str]) -> list[str]:
    """Those of ``ids`` the online store holds no row for."""
    if not ids:
        return []
    feature = [fv.features[0].name]
    key = fv.entity_columns[0].name
    missing: list[str] = []
    for i in range(0, len(ids), _READ_CHUNK):
        chunk = ids[i : i + _READ_CHUNK]
        # read_online: on SQLite one feature per key, not every feature of the row decoded
        [rows] = read_online(store, [(fv, feature)], entity_keys(key, chunk))
        missing += [e for e, (ts, _) in zip(chunk, rows, strict=True) if row_time(ts) is None]
    return missing
