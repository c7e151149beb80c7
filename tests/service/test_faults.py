"""Faults injected for real under a running uvicorn (real HTTP, Feast, MLflow, Redis): one broken part
is named where it is broken (readyz, /v1/models, the routes that need it), the rest keeps serving,
and no fault is a 500."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from funnelcast.core.settings import Settings
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
from tests.service.test_hardening import MANAGER, assert_names

pytestmark = pytest.mark.integration
OWN_REDIS_PORT = 8121
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


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test's own (port 8121), so it can be hung and killed without harm."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(OWN_REDIS_PORT), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=OWN_REDIS_PORT, socket_timeout=0.5) as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGKILL's cleanup otherwise
        proc.kill()
        proc.wait(timeout=10)


def test_a_hung_redis_is_a_prompt_503_naming_it_while_healthz_stays_fast(
    served_world: Settings, tmp_path: Path, own_redis: subprocess.Popen[bytes]
) -> None:
    settings = service_settings(
        served_world,
        tmp_path,
        routing_store="redis",
        routing_redis_url=f"redis://127.0.0.1:{OWN_REDIS_PORT}/0",
        routing_redis_prefix="faults-hang",
        redis_timeout_seconds=0.3,
    )
    with running(settings) as http:
        assert http.post("/v1/leads/route", json={"lead": lead("hang-0")}, headers=CRM).status_code == 200
        answers: list[tuple[str, int, str, float]] = []

        # one connected client per caller, made before the hang: building clients in the callers would
        # hold the GIL this in-process server shares and be measured as a slow probe
        clients = [httpx.Client(base_url=http.base_url, timeout=30) for _ in range(12)]
        for client in clients:
            assert client.get("/healthz").status_code == 200

        def call(kind: str, i: int, client: httpx.Client) -> None:
            start = time.monotonic()
            if kind == "route":
                r = client.post("/v1/leads/route", json={"lead": lead(f"hang-r{i}")}, headers=CRM)
            elif kind == "outcome":
                touched = {"kind": "touched", "lead_id": "hang-0"}
                r = client.post("/v1/outcomes", json=touched, headers=CRM)
            elif kind == "alerts":  # the alert store lives in the same Redis
                r = client.get("/v1/alerts", headers=MANAGER)
            else:
                r = client.post("/v1/leads/score", json=lead(f"hang-s{i}"), headers=CRM)
            answers.append((kind, r.status_code, r.text, time.monotonic() - start))

        own_redis.send_signal(signal.SIGSTOP)  # hung, not down: connections open, nothing answers
        try:
            hung_at = time.monotonic()
            kinds = [(kind, i) for i in range(3) for kind in ("route", "outcome", "score", "alerts")]
            callers = [
                threading.Thread(target=call, args=(kind, i, client))
                for (kind, i), client in zip(kinds, clients, strict=True)
            ]
            for t in callers:
                t.start()
            probes = []
            while any(t.is_alive() for t in callers) or time.monotonic() - hung_at < 2.0:
                start = time.monotonic()
                assert http.get("/healthz").status_code == 200
                probes.append(time.monotonic() - start)
                time.sleep(0.02)
            for t in callers:
                t.join()
        finally:
            own_redis.send_signal(signal.SIGCONT)
            for client in clients:
                client.close()
        assert len(answers) == 12
        for kind, status, text, seconds in answers:
            # the 0.3 s socket timeout, once, plus the work around it; never the whole hang
            assert seconds < 1.0, (kind, status, seconds)
            if kind == "score":  # scored, and says routing was not possible
                assert status == 200 and "routing" in json.loads(text)["degraded"], text
            elif kind == "alerts":  # a client timeout here used to escape as a 500
                assert status == 503 and "alert store" in json.loads(text)["detail"], text
            else:
                assert status == 503 and "routing state" in json.loads(text)["detail"], text
        assert max(probes) < 0.2, sorted(probes)[-5:]
        ready = http.get("/readyz")  # answered again once Redis is
        assert ready.status_code == 200, ready.text
        assert http.post("/v1/leads/route", json={"lead": lead("hang-9")}, headers=CRM).status_code == 200
