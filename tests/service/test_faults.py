"""Faults injected for real under a running uvicorn (real HTTP, Feast, MLflow, Redis): one broken part
is named where it is broken (readyz, /v1/models, the routes that need it), the rest keeps serving,
and no fault is a 500."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from funnelcast.core.settings import Settings
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
from tests.service.test_hardening import MANAGER, assert_names

pytestmark = pytest.mark.integration
NO_REGISTRY = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # refused at once: start from the cache


def test_a_corrupt_cached_champion_takes_out_only_its_own_model(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    with running(settings) as http:  # a first start fills the cache from the registry
        assert {m["name"] for m in http.get("/v1/models", headers=CRM).json()} == {
            "lead_score",
            "milestone_close",
            "churn",
        }
    torn = settings.service_dir / "model_cache" / "churn" / "champion.pkl"
    torn.write_bytes(torn.read_bytes()[:64])  # what a full disk or a torn copy leaves behind
    with running(settings.model_copy(update={"mlflow_tracking_uri": NO_REGISTRY})) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text  # lead scoring, routing and features all answer
        problems = ready.json()["problems"]
        assert list(problems) == ["model:churn"] and "unreadable" in problems["model:churn"]
        live = {"lead_score": True, "milestone_close": True, "churn": False}
        assert ready.json()["checks"]["models"] == live

        models = {m["name"]: m for m in http.get("/v1/models", headers=CRM).json()}
        assert models["churn"]["status"] == "broken" and "champion.pkl" in models["churn"]["error"]
        assert models["lead_score"]["status"] == "live" and models["lead_score"]["source"] == "cache"
        assert models["milestone_close"]["status"] == "live"

        assert_names(http.get("/v1/accounts/at-risk", headers=MANAGER), 503, "churn", "broken")
        assert_names(http.get("/v1/accounts/a1/churn", headers=MANAGER), 503, "churn", "broken")
        assert http.post("/v1/leads/score", json=lead("torn-1"), headers=CRM).status_code == 200
        assert http.get("/v1/forecast/weekly", headers=MANAGER).status_code == 200
        reload = http.post("/v1/models/reload", headers=ADMIN)  # the registry is still down: still named
        assert reload.status_code == 200
        assert [m["name"] for m in reload.json()["models"] if m["status"] == "broken"] == ["churn"]


def test_a_deleted_online_store_file_is_noticed_named_and_recovered(
    served_world: Settings, tmp_path: Path
) -> None:
    feast_dir = tmp_path / "feast"  # a copy: the session's world must keep its online store
    shutil.copytree(served_world.feast_dir, feast_dir)
    online_db = feast_dir / "online.db"
    saved = tmp_path / "online.db.saved"
    shutil.copy2(online_db, saved)
    settings = service_settings(served_world, tmp_path, feast_state_dir=feast_dir)
    with running(settings) as http:
        before = http.post("/v1/leads/score", json=lead("del-1"), headers=CRM).json()
        assert before["degraded"] == [] and before["feature_snapshot_time"] is not None
        assert http.get("/readyz").status_code == 200

        online_db.unlink()  # Feast's connection is open: reads would go on from the unlinked file
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "online.db" in ready.json()["problems"]["feature_store"]
        assert "missing" in ready.json()["problems"]["feature_store"]
        after = http.post("/v1/leads/score", json=lead("del-2"), headers=CRM)
        assert after.status_code == 200 and "online_store" in after.json()["degraded"]
        assert after.json()["feature_snapshot_time"] is None  # no features were read, and it says so
        assert_names(http.get("/v1/accounts/a1/churn", headers=MANAGER), 503, "online store", "online.db")
        assert_names(http.get("/v1/opportunities/at-risk", headers=MANAGER), 503, "online store")
        assert not online_db.exists()  # no GET created an empty store in its place

        shutil.copy2(saved, online_db)  # restored (or re-materialised): opened afresh, served again
        assert http.get("/readyz").status_code == 200
        again = http.post("/v1/leads/score", json=lead("del-3"), headers=CRM).json()
        assert again["degraded"] == [] and again["feature_snapshot_time"] is not None
