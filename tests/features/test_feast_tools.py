"""Feast's own CLI and UI on funnelcast's repository and stores, through the per-environment
``feature_store.yaml`` written from the settings (real ``feast`` processes, real headless Chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore
from feast.repo_config import load_repo_config

from features.feature_store_yaml import (
    env_var,
    feast_command,
    feast_environment,
    feature_store_yaml,
    write_feature_store_yaml,
)
from features.repo import definitions
from features.store import latest_feature_time, materialize, open_store, repo_config
from funnelcast.cli_ui import feast_ui_command
from funnelcast.core.settings import Settings
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS, needs_chromium, subprocess_server
from tests.service.conftest import free_port


def _comparable(settings: Settings) -> dict:
    dumped = repo_config(settings).model_dump(by_alias=True, exclude_unset=True, mode="json")
    dumped.pop("repo_path")
    return dumped


def test_feature_store_yaml_is_the_settings_config_with_secrets_as_env_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Settings(
        data_dir=tmp_path,
        online_store="redis",
        redis_url="redis.internal:6379,password=s3cret,db=2",
        registry="sql",
        registry_url="postgresql+psycopg://feast:pa55@db.internal:5432/registry",
    )
    text = feature_store_yaml(production)
    assert "s3cret" not in text and "pa55" not in text
    assert "${FUNNELCAST_REDIS_URL}" in text and "${FUNNELCAST_REGISTRY_URL}" in text
    path = write_feature_store_yaml(production)
    for name, value in feast_environment(production).items():
        monkeypatch.setenv(name, value)
    # Feast expands the references from the environment into exactly the service's configuration
    loaded = load_repo_config(path.parent, path).model_dump(by_alias=True, exclude_unset=True, mode="json")
    loaded.pop("repo_path")
    assert loaded == _comparable(production)
    assert env_var("redis_url") == "FUNNELCAST_REDIS_URL"
    local = Settings(data_dir=tmp_path / "local")
    local_path = write_feature_store_yaml(local)
    assert "${" not in local_path.read_text()  # SQLite + file registry: nothing secret to reference
    loaded = load_repo_config(local_path.parent, local_path).model_dump(
        by_alias=True, exclude_unset=True, mode="json"
    )
    loaded.pop("repo_path")
    assert loaded == _comparable(local)


@pytest.fixture(scope="module")
def feast_env(tiny_features: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    """The tiny world's feature tables under their own Feast state and project, applied by ``feast apply``."""
    settings = tiny_features.model_copy(
        update={"feast_state_dir": tmp_path_factory.mktemp("feast_cli"), "feast_project": "dstools"}
    )
    write_feature_store_yaml(settings)
    env = {**os.environ, "FUNNELCAST_DATA_DIR": str(settings.data_dir), **feast_environment(settings)}
    applied = _feast(settings, env, "apply")
    assert f"Applying changes for project {settings.feast_project}" in applied
    return settings, env


def _feast(settings: Settings, env: dict, *args: str) -> str:
    done = subprocess.run(
        feast_command(settings, *args), env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.integration
def test_feast_cli_lists_and_materializes_the_store_the_service_reads(
    feast_env: tuple[Settings, dict],
) -> None:
    settings, env = feast_env
    objects = definitions(settings.feature_dir)
    views = {o.name for o in objects if type(o).__name__ == "FeatureView"}
    services = {o.name for o in objects if type(o).__name__ == "FeatureService"}
    listed = _feast(settings, env, "feature-views", "list")
    assert views and all(name in listed for name in views), listed
    listed_services = _feast(settings, env, "feature-services", "list")
    assert all(name in listed_services for name in services), listed_services
    # the service's own store (built from settings) reads what Feast's CLI applied and materialised
    store = open_store(settings)
    assert {v.name for v in store.list_feature_views()} == views
    # and a notebook's plain `FeatureStore(repo_path=...)` opens the same registry
    assert {v.name for v in FeatureStore(repo_path=str(settings.feast_dir)).list_feature_views()} == views
    # as after `make demo`: funnelcast materialised up to a week ago; Feast's CLI continues from there
    end = latest_feature_time(settings)
    materialize(store, end - pd.Timedelta(days=7))
    _feast(settings, env, "materialize-incremental", end.strftime("%Y-%m-%dT%H:%M:%S"))
    behavior = store.get_feature_view("company_behavior")
    assert behavior.most_recent_end_time is not None
    table = pd.read_parquet(settings.feature_dir / "company_behavior.parquet")
    fresh = table[table["event_timestamp"] == end]  # rows only the CLI's incremental step wrote
    assert len(fresh) > 0
    row = fresh.iloc[0]
    online = store.get_online_features(
        features=["company_behavior:events_30d", "company_behavior:pricing_view_30d"],
        entity_rows=[{"company_id": row["company_id"]}],
    ).to_dict()
    assert online["events_30d"] == [row["events_30d"]]
    assert online["pricing_view_30d"] == [row["pricing_view_30d"]]


@needs_chromium
@pytest.mark.integration
def test_feast_ui_loads_and_lists_our_feature_views_in_headless_chromium(
    feast_env: tuple[Settings, dict],
) -> None:
    from playwright.sync_api import sync_playwright

    settings, env = feast_env
    views = [o.name for o in definitions(settings.feature_dir) if type(o).__name__ == "FeatureView"]
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    with (
        subprocess_server(feast_ui_command(settings, "127.0.0.1", port), env, f"{base}/"),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/p/{settings.feast_project}/feature-view")
        page.get_by_role("link", name=views[0], exact=True).wait_for(timeout=60_000)
        for name in views:
            assert page.get_by_role("link", name=name, exact=True).count() == 1, name
        page.screenshot(path=str(ARTIFACTS / "feast_ui.png"))
        browser.close()
    assert (ARTIFACTS / "feast_ui.png").stat().st_size > 10_000
