"""The edge to Feast: build the store from settings, apply definitions, materialise.

The store's configuration is built from the one ``Settings`` object (no ``feature_store.yaml`` to
keep in sync): SQLite or Redis online store, file or PostgreSQL (SQL) registry, DuckDB offline
store over the Parquet feature tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore, RepoConfig

from features.repo import definitions
from features.repo.views import SERVING_WINDOW
from funnelcast.core.settings import Settings

REDIS_STORE_TYPE = "features.redis_online_store.FailFastRedisOnlineStore"


def repo_config(settings: Settings) -> RepoConfig:
    feast_dir = settings.feast_dir
    feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.online_store == "redis":
        online = {
            "type": REDIS_STORE_TYPE,
            "connection_string": f"{settings.redis_url},socket_connect_timeout=0.5,socket_timeout=0.5",
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


@dataclass
class MaterializeReport:
    view: str
    start: datetime
    end: datetime
    seconds: float


def materialize(
    store: FeatureStore,
    end: datetime,
    views: list[str] | None = None,
    progress: Callable[[str], None] = lambda view: None,
) -> list[MaterializeReport]:
    """Write the latest state each entity needs into the online store, view by view.

    Incremental: each view starts where its last materialisation ended, but never further back
    than its serving window (``SERVING_WINDOW``), so a first run does not replay history.
    """
    reports = []
    for fv in store.list_feature_views():
        if views and fv.name not in views:
            continue
        window = SERVING_WINDOW.get(fv.name)
        floor = end - window if window is not None else datetime(1970, 1, 1, tzinfo=UTC)
        done = fv.most_recent_end_time
        if done is not None and done.tzinfo is None:
            done = done.replace(tzinfo=UTC)  # the file registry returns naive UTC
        start = max(floor, done) if done is not None else floor
        t0 = time.perf_counter()
        if start < end:
            store.materialize(start_date=start, end_date=end, feature_views=[fv.name])
        reports.append(MaterializeReport(fv.name, start, end, time.perf_counter() - t0))
        progress(fv.name)
    return reports
