"""Champions load from MLflow, hot-reload under load without a failed request, and start from cache."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from funnelcast.core.settings import Settings
from tests.conftest import with_mlflow
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
from training.run import train_model

pytestmark = pytest.mark.integration


@pytest.mark.slow  # retrains and promotes under load: make test-slow
def test_a_new_champion_is_picked_up_by_reload_while_requests_are_in_flight(
    served_world: Settings, tmp_path: Path
) -> None:
    # own MLflow store, so promoting here does not change the other tests' champions
    settings = service_settings(with_mlflow(served_world, tmp_path / "mlflow"), tmp_path)
    train_model(settings, "lead")
    with running(settings) as http:
        assert http.get("/v1/models", headers=CRM).json()[0]["version"] == "1"
        statuses: list[int] = []
        versions: set[str] = set()
        stop = threading.Event()

        def hammer() -> None:
            i = 0
            while not stop.is_set():
                r = http.post(
                    "/v1/leads/score?route=false", json=lead(f"hot-{threading.get_ident()}-{i}"), headers=CRM
                )
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model"]["version"])
                i += 1

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        promoted = train_model(settings, "lead", force=True)
        reload = http.post("/v1/models/reload", headers=ADMIN).json()
        after = http.post("/v1/leads/score?route=false", json=lead("hot-after"), headers=CRM).json()
        stop.set()
        for t in threads:
            t.join()
    assert reload["changed"] == ["lead_score"]
    assert after["model"]["version"] == promoted.version == "2"
    assert len(statuses) > 20 and set(statuses) == {200}
    assert versions == {"1", "2"}


def test_polling_picks_up_a_promotion_without_a_reload_call(served_world: Settings, tmp_path: Path) -> None:
    import time

    settings = service_settings(
        with_mlflow(served_world, tmp_path / "mlflow"), tmp_path, model_poll_seconds=0.5
    )
    train_model(settings, "churn")
    with running(settings) as http:
        train_model(settings, "churn", force=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            live = {m["name"]: m["version"] for m in http.get("/v1/models", headers=CRM).json()}
            if live.get("churn") == "2":
                break
            time.sleep(0.2)
        since = {m["name"]: m["live_since"] for m in http.get("/v1/models", headers=CRM).json()}
        time.sleep(1.5)  # three more polls: an unchanged champion is not reloaded
        again = {m["name"]: m["live_since"] for m in http.get("/v1/models", headers=CRM).json()}
    assert live["churn"] == "2"
    assert again == since


def test_the_service_starts_from_its_cache_when_the_registry_is_unreachable(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    with running(settings) as http:  # a first start fills the cache
        assert http.get("/v1/models", headers=CRM).json()[0]["source"] == "registry"
    unreachable = settings.model_copy(
        update={"mlflow_tracking_uri": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    )
    with running(unreachable) as http:
        models = {m["name"]: m for m in http.get("/v1/models", headers=CRM).json()}
        assert models["lead_score"]["source"] == "cache" and models["lead_score"]["version"] == "1"
        r = http.post("/v1/leads/score", json=lead("cached-1"), headers=CRM)
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        failed = http.post("/v1/models/reload", headers=ADMIN).json()
        assert failed["changed"] == [] and "unreachable" in failed["errors"]["lead_score"]
