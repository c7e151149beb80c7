"""The Feast store over the tiny world: point-in-time joins, online serving, push, SQL registry.

Every test builds its own Feast state (registry + online store) under ``tmp_path`` over the session's
shared feature tables, with its own project name, so tests never see each other's state.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from feast.data_source import PushMode

from features.repo.services import LEAD_SCORE_SERVICE
from features.repo.sources import BEHAVIOR_PUSH_SOURCE
from features.repo.views import SERVING_WINDOW
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 9
REDIS_URL = f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}"  # Feast's connection-string form
POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REGISTRY_DB = "funnelcast_test_registry"


def unique_project(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def own_settings(base: Settings, tmp_path: Path, prefix: str, **update: object) -> Settings:
    """Same feature tables as ``base``, separate Feast state and project."""
    return base.model_copy(
        update={"feast_state_dir": tmp_path / "feast", "feast_project": unique_project(prefix), **update}
    )


def feature_table(settings: Settings, name: str) -> pd.DataFrame:
    return pd.read_parquet(settings.feature_dir / f"{name}.parquet")


def feature_columns(table: pd.DataFrame, key: str) -> list[str]:
    return [c for c in table.columns if c not in (key, "event_timestamp")]


def same(actual: object, expected: object) -> bool:
    """Equal values, with None/NaN equal to each other and ints equal to the floats Feast returns;
    arrays (the daily buckets) element by element."""
    if isinstance(actual, list | np.ndarray) or isinstance(expected, list | np.ndarray):
        if actual is None or expected is None:
            return actual is None and expected is None
        a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
        return a.shape == e.shape and bool(np.array_equal(a, e, equal_nan=True))
    missing_a = actual is None or (isinstance(actual, float) and math.isnan(actual))
    missing_e = expected is None or (isinstance(expected, float) and math.isnan(expected))
    if missing_a or missing_e:
        return missing_a and missing_e
    if isinstance(expected, str) or isinstance(actual, str):
        return actual == expected
    return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-9)


def plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def historical(store: FeatureStore, entity_df: pd.DataFrame) -> pd.DataFrame:
    """``get_historical_features`` over the lead-score service, back in the entity frame's row order."""
    entity_df = entity_df.assign(row_id=np.arange(len(entity_df)))
    out = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(LEAD_SCORE_SERVICE)
    ).to_df()
    return out.sort_values("row_id").reset_index(drop=True)


@pytest.fixture
def sqlite_store(tiny_features: Settings, tmp_path: Path) -> tuple[FeatureStore, Settings]:
    settings = own_settings(tiny_features, tmp_path, "lite")
    store = open_store(settings)
    apply_definitions(store, settings)
    return store, settings


@contextmanager
def applied_on_redis(base: Settings, tmp_path: Path, prefix: str) -> Iterator[tuple[FeatureStore, Settings]]:
    """``own_settings`` on the shared Redis test db, applied; the project's keys are removed after.

    Each project's keys are its own, so concurrent tests sharing the db never flush each other's.
    """
    settings = own_settings(base, tmp_path, prefix, online_store="redis", redis_url=REDIS_URL)
    store = open_store(settings)
    apply_definitions(store, settings)
    try:
        yield store, settings
    finally:
        delete_redis_project(settings.feast_project)


def delete_redis_project(project: str) -> None:
    """Remove one Feast project's keys (each key ends with the project name), leaving others' alone."""
    import redis

    with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB) as client:
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=5_000))
        if keys:
            client.delete(*keys)


# --- 1. point-in-time joins ---------------------------------------------------------------------


def test_point_in_time_join_keeps_every_row_and_never_uses_a_later_value(
    sqlite_store: tuple[FeatureStore, Settings],
) -> None:
    store, settings = sqlite_store
    firmo = feature_table(settings, "company_firmographics").sort_values(["company_id", "event_timestamp"])
    counts = firmo.groupby("company_id").size()
    changed = firmo[firmo.company_id.isin(counts[counts >= 2].index)]
    # a company whose second snapshot changed a numeric value, so "earlier" and "later" differ
    company = next(
        cid
        for cid, rows in changed.groupby("company_id")
        if rows.registered_capital_cny.iloc[0] != rows.registered_capital_cny.iloc[1]
    )
    rows = firmo[firmo.company_id == company].reset_index(drop=True)
    first, second = rows.iloc[0], rows.iloc[1]
    t1, t2 = first.event_timestamp, second.event_timestamp
    after = t2 + pd.Timedelta(days=1)
    if len(rows) > 2:  # stay before a third snapshot, if any
        after = t2 + (rows.event_timestamp.iloc[2] - t2) / 2
    between = t1 + (t2 - t1) / 2
    before = t1 - pd.Timedelta(days=1)

    entity_df = pd.DataFrame(
        {
            "company_id": [company, company, company, "no_such_company", company, company],
            "event_timestamp": [between, after, before, after, between, between],
        }
    )
    out = historical(store, entity_df)

    assert len(out) == len(entity_df)
    assert out.company_id.tolist() == entity_df.company_id.tolist()
    assert (out.event_timestamp == entity_df.event_timestamp).all()
    expected = [first, second, None, None, first, first]
    for i, snapshot in enumerate(expected):
        got = out.iloc[i]
        if snapshot is None:
            assert pd.isna(got.registered_capital_cny), f"row {i}: expected no value"
            assert pd.isna(got.insured_headcount), f"row {i}: expected no value"
            assert got.industry is None or pd.isna(got.industry), f"row {i}: expected no value"
            continue
        for column in feature_columns(firmo, "company_id"):
            assert same(plain(got[column]), plain(snapshot[column])), (
                i,
                column,
                got[column],
                snapshot[column],
            )
    # the between-snapshots rows must not see the later snapshot
    assert out.registered_capital_cny.iloc[0] == first.registered_capital_cny != second.registered_capital_cny


def test_point_in_time_join_over_real_leads_matches_an_independent_as_of_join(
    sqlite_store: tuple[FeatureStore, Settings],
) -> None:
    store, settings = sqlite_store
    leads = pd.read_parquet(settings.raw_dir / "leads.parquet", columns=["company_id", "created_at"])
    sample = leads.sample(n=min(500, len(leads)), random_state=3).reset_index(drop=True)
    entity_df = sample.rename(columns={"created_at": "event_timestamp"})
    out = historical(store, entity_df)

    assert len(out) == len(entity_df)
    assert out.company_id.tolist() == entity_df.company_id.tolist()

    behavior = feature_table(settings, "company_behavior")
    columns = feature_columns(behavior, "company_id")
    expected = pd.merge_asof(
        entity_df.assign(row_id=np.arange(len(entity_df))).sort_values("event_timestamp"),
        behavior.rename(columns={"event_timestamp": "feature_time"}).sort_values("feature_time"),
        left_on="event_timestamp",
        right_on="feature_time",
        by="company_id",
        direction="backward",
        allow_exact_matches=True,
    ).sort_values("row_id")
    expected = expected.reset_index(drop=True)
    assert expected.feature_time.isna().sum() < len(expected), (
        "no lead has any behaviour before it: weak test"
    )
    assert expected.feature_time.notna().sum() > 50, "too few leads with prior behaviour to be a real check"
    assert (expected.feature_time.dropna() <= expected.event_timestamp[expected.feature_time.notna()]).all()

    mismatches = []
    for i in range(len(out)):
        for column in columns:
            got, want = plain(out.at[i, column]), plain(expected.at[i, column])
            if not same(got, want):
                mismatches.append((out.at[i, "company_id"], out.at[i, "event_timestamp"], column, got, want))
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"


# --- 2. online == latest offline ----------------------------------------------------------------


def latest_rows(table: pd.DataFrame, key: str) -> pd.DataFrame:
    return table.sort_values("event_timestamp").groupby(key, as_index=False).tail(1).set_index(key)


def servable(table: pd.DataFrame, key: str, view: str, end: datetime) -> pd.DataFrame:
    """Each entity's latest row, kept only when it lies inside the view's serving window."""
    latest = latest_rows(table, key)
    window = SERVING_WINDOW[view]
    if window is not None:
        # keep clear of the window's edge: whether the boundary itself is inclusive is not the point
        latest = latest[latest.event_timestamp > pd.Timestamp(end - window) + pd.Timedelta(minutes=1)]
    return latest


def assert_online_matches_offline(store: FeatureStore, settings: Settings) -> None:
    end = latest_feature_time(settings)
    materialize(store, end=end)

    checks = [
        ("company_firmographics", "company_id", 50),
        ("company_tenders", "company_id", 50),
        ("opportunity_snapshots", "opportunity_id", 20),
    ]
    for view, key, n in checks:
        table = feature_table(settings, view)
        latest = servable(table, key, view, end)
        if view == "opportunity_snapshots":  # open opportunities: a snapshot at the newest snapshot time
            latest = latest[latest.event_timestamp == table.event_timestamp.max()]
        assert len(latest) > 0, f"{view}: nothing to serve"
        sample = latest.sample(n=min(n, len(latest)), random_state=5)
        columns = feature_columns(table, key)
        online = store.get_online_features(
            features=[f"{view}:{c}" for c in columns],
            entity_rows=[{key: entity} for entity in sample.index],
        ).to_dict()
        assert online[key] == sample.index.tolist()
        mismatches = [
            (entity, column, online[column][i], plain(sample.at[entity, column]))
            for column in columns
            for i, entity in enumerate(sample.index)
            if not same(online[column][i], plain(sample.at[entity, column]))
        ]
        assert not mismatches, f"{view}: {len(mismatches)} mismatches, e.g. {mismatches[:5]}"


def test_online_features_equal_latest_offline_values_on_sqlite(
    sqlite_store: tuple[FeatureStore, Settings],
) -> None:
    store, settings = sqlite_store
    assert_online_matches_offline(store, settings)


@pytest.mark.integration
def test_online_features_equal_latest_offline_values_on_redis(
    tiny_features: Settings, tmp_path: Path
) -> None:
    with applied_on_redis(tiny_features, tmp_path, "redis") as (store, settings):
        assert_online_matches_offline(store, settings)


@pytest.mark.integration
def test_materialize_to_redis_after_sqlite_on_the_same_registry_writes_every_entity(
    tiny_features: Settings, tmp_path: Path
) -> None:
    """The documented switch: demo on SQLite, then FUNNELCAST_ONLINE_STORE=redis over the same registry.

    The registry's watermark says every view is done up to ``end``; Redis is empty all the same.
    """
    lite = own_settings(tiny_features, tmp_path, "switch")
    store = open_store(lite)
    apply_definitions(store, lite)
    end = latest_feature_time(lite)
    assert all(not r.refilled for r in materialize(store, end=end))

    redis_settings = lite.model_copy(update={"online_store": "redis", "redis_url": REDIS_URL})
    try:
        reports = {r.view: r for r in materialize(open_store(redis_settings), end=end)}
        firmographics = reports["company_firmographics"]
        assert firmographics.refilled and firmographics.start < end
        assert firmographics.entities == feature_table(lite, "company_firmographics").company_id.nunique()
        assert_online_matches_offline(open_store(redis_settings), redis_settings)
        # and a second run trusts the watermark again: nothing lacking, nothing rewritten
        assert not any(r.refilled for r in materialize(open_store(redis_settings), end=end))
    finally:
        delete_redis_project(redis_settings.feast_project)


@pytest.fixture
def tiny_redis(tmp_path: Path) -> Iterator[int]:
    """A private redis-server with room for almost nothing: it evicts keys as fast as they are written."""
    import shutil
    import socket
    import subprocess
    import time

    import redis

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--maxmemory", "1mb", "--maxmemory-policy", "allkeys-random"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_materialize_fails_loudly_naming_the_view_when_the_store_keeps_too_little(
    tiny_features: Settings, tmp_path: Path, tiny_redis: int
) -> None:
    """A Redis that evicts what it is given takes every write and keeps little: never a success."""
    from features.store import MaterializationIncomplete

    settings = own_settings(
        tiny_features, tmp_path, "evict", online_store="redis", redis_url=f"127.0.0.1:{tiny_redis},db=0"
    )
    store = open_store(settings)
    apply_definitions(store, settings)
    with pytest.raises(MaterializationIncomplete, match=r"company_firmographics: \d+ of \d+ entities"):
        materialize(store, end=latest_feature_time(settings), views=["company_firmographics"])


@pytest.mark.integration
def test_a_missing_entity_on_redis_has_no_time_so_it_is_neither_stale_nor_known(
    tiny_features: Settings, tmp_path: Path
) -> None:
    """Feast's Redis store answers an unknown entity with epoch 0; it must read as "no row"."""
    from features.store import entity_keys, row_time

    with applied_on_redis(tiny_features, tmp_path, "epoch") as (store, settings):
        materialize(store, end=latest_feature_time(settings), views=["company_firmographics"])
        known = feature_table(settings, "company_firmographics").company_id.iloc[0]
        view = store.get_feature_view("company_firmographics")
        rows = store._get_provider().online_store.online_read(
            store.config, view, entity_keys("company_id", [known, "never-seen"]), ["industry"]
        )
    assert row_time(rows[0][0]) is not None
    assert rows[1][0] is not None, "Feast's Redis store gives a time even for a missing entity"
    assert row_time(rows[1][0]) is None


# --- 3. push ------------------------------------------------------------------------------------


def test_a_pushed_behavior_event_changes_the_online_value(
    sqlite_store: tuple[FeatureStore, Settings],
) -> None:
    store, settings = sqlite_store
    materialize(store, end=latest_feature_time(settings), views=["company_behavior"])
    behavior = feature_table(settings, "company_behavior")
    company = latest_rows(behavior, "company_id").sort_values("event_timestamp").index[-1]

    def page_views() -> object:
        return store.get_online_features(
            features=["company_behavior:page_view_1d", "company_behavior:events_30d"],
            entity_rows=[{"company_id": company}],
        ).to_dict()

    before = page_views()
    assert before["page_view_1d"][0] is not None, "the company should be materialised"
    assert before["page_view_1d"][0] != 999

    row = latest_rows(behavior, "company_id").loc[[company]].reset_index()
    row["event_timestamp"] = pd.Timestamp(datetime.now(UTC))
    row["page_view_1d"] = 999
    row["events_30d"] = 1234
    store.push(BEHAVIOR_PUSH_SOURCE, row, to=PushMode.ONLINE)

    after = page_views()
    assert after["page_view_1d"] == [999]
    assert after["events_30d"] == [1234]


# --- 4. SQL registry on PostgreSQL -------------------------------------------------------------


def ensure_registry_database() -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (REGISTRY_DB,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{REGISTRY_DB}"')


@pytest.mark.integration
def test_sql_registry_on_postgresql_applies_and_serves(tiny_features: Settings, tmp_path: Path) -> None:
    ensure_registry_database()
    settings = own_settings(
        tiny_features,
        tmp_path,
        "sqlreg",
        registry="sql",
        registry_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{REGISTRY_DB}",
    )
    store = open_store(settings)
    try:
        applied = apply_definitions(store, settings)
        assert LEAD_SCORE_SERVICE in applied

        other = open_store(settings)  # a second process's view of the same registry
        services = {s.name for s in other.list_feature_services()}
        assert {LEAD_SCORE_SERVICE, "milestone_close_v1", "churn_v1"} <= services
        assert {v.name for v in other.list_feature_views()} == set(SERVING_WINDOW)
        service = other.get_feature_service(LEAD_SCORE_SERVICE)
        assert {p.name for p in service.feature_view_projections} == {
            "company_firmographics",
            "company_behavior",
            "company_tenders",
        }

        # and it serves: materialise firmographics and read one company back through the second store
        materialize(store, end=latest_feature_time(settings), views=["company_firmographics"])
        firmo = latest_rows(feature_table(settings, "company_firmographics"), "company_id")
        company = firmo.index[0]
        online = other.get_online_features(
            features=["company_firmographics:industry", "company_firmographics:registered_capital_cny"],
            entity_rows=[{"company_id": company}],
        ).to_dict()
        assert online["industry"] == [firmo.at[company, "industry"]]
        assert same(online["registered_capital_cny"][0], plain(firmo.at[company, "registered_capital_cny"]))
    finally:
        store.registry.delete_project(settings.feast_project, commit=True)
