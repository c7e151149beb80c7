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


ADMIN = {"X-API-Key": "demo-admin-key"}


def test_on_redis_a_live_day_runs_events_clock_routing_outcomes_and_monitoring(on_redis: Settings) -> None:
    """Everything a live run touches, with every store on Redis (the documented deployment): the
    external clock, the event ledger and the online fold, routing state and outcomes, monitoring."""
    from datetime import timedelta

    from tests.service.test_events_api import INTENT

    project = on_redis.feast_project
    settings = on_redis.model_copy(
        update={
            "clock": "external",
            "routing_store": "redis",
            "routing_redis_url": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "routing_redis_prefix": f"{project}:routing",  # removed with the project's keys
        }
    )
    company = str(pd.read_parquet(settings.feature_dir / "company_behavior.parquet").company_id.iloc[0])
    now = latest_feature_time(settings) + timedelta(hours=1)
    with running(settings) as http:
        moved = http.put("/v1/clock", json={"now": now.isoformat()}, headers=ADMIN)
        assert moved.status_code == 200, moved.text
        clock = http.get("/v1/clock", headers=CRM).json()
        assert clock["set"] is True and clock["mode"] == "external" and "redis" in clock["where"].lower()

        def score(lead_id: str) -> dict:
            body = lead(lead_id, company_id=company)
            answer = http.post("/v1/leads/score?explain=false", json=body, headers=CRM)
            assert answer.status_code == 200, answer.text
            return answer.json()

        before = score("live-redis-1")
        assert before["routing"]["rep_id"]
        events = [
            {"event_id": f"r-{t}-{i}", "company_id": company, "event_type": t, "at": now.isoformat()}
            for t, n in INTENT.items()
            for i in range(n)
        ]
        taken = http.post("/v1/events", json={"events": events}, headers=CRM).json()
        assert taken == {"accepted": 20, "duplicates": 0, "not_online": 0}
        assert http.post("/v1/events", json={"events": events}, headers=CRM).json()["duplicates"] == 20
        after = score("live-redis-2")
        assert after["probability"] > before["probability"]  # the intent combination, read from Redis

        touched = {"kind": "touched", "lead_id": "live-redis-1"}
        assert http.post("/v1/outcomes", json=touched, headers=CRM).json()["lead_status"] == "touched"
        report = http.get("/v1/monitoring", headers=MANAGER)
        assert report.status_code == 200, report.text
    with redis.Redis(db=REDIS_DB) as client:  # the routing state and the ledger were on Redis
        assert client.exists(f"{project}:events:behavior:r-pricing_view-0")
        assert any(client.scan_iter(match=f"{project}:routing*".encode()))
