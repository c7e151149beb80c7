"""The documented deployment's online store: the service on a real Redis, as docker-compose.yml runs it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from features.directory import build_directory, publish_directory
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings
from tests.service.conftest import CRM, lead, running, service_settings

pytestmark = pytest.mark.integration

REDIS_DB = 9
MANAGER = {"X-API-Key": "demo-manager-key"}


@pytest.fixture
def on_redis(served_world: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The served world in its own Feast project, first materialised to SQLite (the demo), then
    switched to Redis over the same registry and materialised again (the documented deployment)."""
    project = f"redis_{uuid.uuid4().hex[:8]}"
    lite = service_settings(served_world, tmp_path, feast_state_dir=tmp_path / "feast", feast_project=project)
    apply_definitions(open_store(lite), lite)
    end = latest_feature_time(lite)
    materialize(open_store(lite), end)
    settings = lite.model_copy(update={"online_store": "redis", "redis_url": f"127.0.0.1:6379,db={REDIS_DB}"})
    materialize(open_store(settings), end)
    publish_directory(settings, build_directory(settings, end))  # what `features materialize` publishes
    yield settings
    with redis.Redis(db=REDIS_DB) as client:  # this project's keys only: others may share the db
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=5_000))
        keys += list(client.scan_iter(match=project.encode() + b":*", count=5_000))
        if keys:
            client.delete(*keys)


def test_on_redis_the_service_is_ready_and_serves_what_was_materialised(on_redis: Settings) -> None:
    with running(on_redis) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["feature_store"] is True

        known = http.post("/v1/leads/score", json=lead("redis-1"), headers=CRM).json()
        assert known["unknown_entity"] is False and known["degraded"] == []
        unknown = http.post("/v1/leads/score", json=lead("redis-2", company_id="never-seen"), headers=CRM)
        assert unknown.status_code == 200 and unknown.json()["unknown_entity"] is True


def test_on_redis_an_unknown_account_is_404_and_a_known_one_is_answered(on_redis: Settings) -> None:
    health = pd.read_parquet(on_redis.feature_dir / "account_health.parquet")
    account = health.sort_values("event_timestamp").account_id.iloc[-1]  # inside the serving window
    with running(on_redis) as http:
        missing = http.get("/v1/accounts/never-seen/churn", headers=MANAGER)
        assert missing.status_code == 404 and "never-seen" in missing.json()["detail"]
        found = http.get(f"/v1/accounts/{account}/churn", headers=MANAGER)
        assert found.status_code == 200, found.text
        assert 0 < found.json()["p_churn"] < 1
