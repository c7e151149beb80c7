"""A replica needs no data folder: only the online store (Redis), the Feast registry (PostgreSQL),
the model registry (MLflow) and the shared state store (Redis). It answers every route; a past
``as_of``, answered from the offline store, is a 503 naming what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from features.directory import build_directory, publish_directory
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings
from service.weekly import score_weekly
from service.weekly_store import weekly_store
from tests.features.test_store import REGISTRY_DB, ensure_registry_database, unique_project
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings

pytestmark = pytest.mark.integration
MANAGER = {"X-API-Key": "demo-manager-key"}
REDIS_DB = 11  # not the Feast store tests' db 9, which they flush while they run


@pytest.fixture(scope="module")
def replica(served_world: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The batch host materialises to Redis, publishes the directory and runs the weekly job; the
    replica's settings share those stores and point at an empty data folder."""
    ensure_registry_database()
    project = unique_project("replica")
    tmp = tmp_path_factory.mktemp("replica")
    batch = served_world.model_copy(
        update={
            "feast_state_dir": tmp / "batch_feast",
            "feast_project": project,
            "online_store": "redis",
            "redis_url": f"127.0.0.1:6379,db={REDIS_DB}",
            "registry": "sql",
            "registry_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{REGISTRY_DB}",
            "routing_store": "redis",
            "routing_redis_url": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "routing_redis_prefix": f"funnelcast:{project}",
            "service_state_dir": tmp / "batch_service",
            "model_poll_seconds": 0,
        }
    )
    store = open_store(batch)
    apply_definitions(store, batch)
    end = latest_feature_time(batch)
    materialize(store, end)
    publish_directory(batch, build_directory(batch, end))
    score_weekly(batch)
    empty = tmp / "empty_data"
    empty.mkdir()
    try:
        yield batch.model_copy(update={"data_dir": empty, "feast_state_dir": None, "service_state_dir": None})
    finally:
        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        for key in client.scan_iter(match=f"*{project}*"):
            client.delete(key)
        client.close()
        store.registry.delete_project(project, commit=True)


def test_a_replica_with_an_empty_data_folder_answers_every_route(replica: Settings, tmp_path: Path) -> None:
    stored_alerts = weekly_store(replica).alerts(None, None, 1000)
    with running(replica) as http:
        scored = http.post("/v1/leads/score", json=lead("rep-1"), headers=CRM)
        assert scored.status_code == 200, scored.text
        # features came from the online Redis (no "online_store" in degraded) and know the company
        assert "online_store" not in scored.json()["degraded"] and scored.json()["unknown_entity"] is False
        assert scored.json()["routing"]["rep_id"]
        batch = http.post(
            "/v1/leads/score:batch", json={"leads": [lead("rep-2"), lead("rep-3")]}, headers=CRM
        )
        assert batch.status_code == 200 and len(batch.json()["results"]) == 2
        rerouted = http.post("/v1/leads/route", json={"lead": lead("rep-1")}, headers=CRM)
        assert rerouted.status_code == 200, rerouted.text
        assert rerouted.json()["routing"]["rep_id"] != scored.json()["routing"]["rep_id"]
        touched = http.post("/v1/outcomes", json={"kind": "touched", "lead_id": "rep-2"}, headers=CRM)
        assert touched.status_code == 200 and touched.json()["recorded"] is True
        models = http.get("/v1/models", headers=MANAGER).json()
        assert {m["name"] for m in models} == {"lead_score", "milestone_close", "churn"}
        assert {m["source"] for m in models} == {"registry"}
        assert http.post("/v1/models/reload", headers=ADMIN).status_code == 200

        forecast = http.get("/v1/forecast/weekly?group_by=team", headers=MANAGER)
        assert forecast.status_code == 200 and forecast.json()["rows"][0]["deals"] > 0
        past = http.get("/v1/forecast/weekly?as_of=2026-10-08T12:00:00Z", headers=MANAGER)
        assert past.status_code == 503
        assert "offline store" in past.json()["detail"] and "opportunities.parquet" in past.json()["detail"]

        deals = http.get("/v1/opportunities/at-risk?k=200", headers=MANAGER)
        assert deals.status_code == 200, deals.text
        items = deals.json()["items"]
        # last week's P(win) and the fired rules come from the weekly job's stored results
        assert any(i["change_since_last_week"] is not None for i in items)
        fired_on_deals = {a["entity"] for a in stored_alerts} & {i["opportunity_id"] for i in items}
        assert fired_on_deals == {i["opportunity_id"] for i in items if i["rules"]}
        one = http.get(f"/v1/opportunities/{items[0]['opportunity_id']}", headers=MANAGER)
        assert one.status_code == 200 and len(one.json()["weekly_close_probability"]) == 13
        accounts = http.get("/v1/accounts/at-risk?k=3", headers=MANAGER)
        assert accounts.status_code == 200 and accounts.json()["items"]
        account = accounts.json()["items"][0]["account_id"]
        assert http.get(f"/v1/accounts/{account}/churn", headers=MANAGER).status_code == 200
        alerts = http.get("/v1/alerts?since_days=1&limit=1000", headers=MANAGER)
        assert alerts.status_code == 200 and len(alerts.json()["alerts"]) == len(stored_alerts)
        # the manager page's session is signed, not stored: a replica signs in and serves the page
        signed_in = http.post("/dashboard/login", data={"key": MANAGER["X-API-Key"]})
        assert signed_in.status_code == 303 and http.get("/dashboard").status_code == 200
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert all(checks["models"].values()) and checks["routing_state"] is True and checks["feature_store"]
        assert http.get("/metrics").status_code == 200
    assert weekly_store(replica).alerts(None, None, 1000) == stored_alerts  # reads never write
    assert sorted(p.name for p in replica.data_dir.iterdir()) == ["feast", "service"]  # no raw/, features/
    assert not any((replica.data_dir / "feast").glob("*.parquet"))


def test_a_replica_serves_the_same_probabilities_as_the_local_stores(
    replica: Settings, served_world: Settings, tmp_path: Path
) -> None:
    body = lead("same-1", company_id="c2", created_at="2026-11-20T03:00:00Z")
    with running(replica) as http:
        remote = http.post("/v1/leads/score?route=false", json=body, headers=CRM).json()
    with running(service_settings(served_world, tmp_path)) as http:
        local = http.post("/v1/leads/score?route=false", json=body, headers=CRM).json()
    assert remote["probability"] == local["probability"] and remote["reasons"] == local["reasons"]
