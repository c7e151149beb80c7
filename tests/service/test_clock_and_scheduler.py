"""The external clock shared by every worker process, and the scheduler's SLA sweep over the real
service: a lead untouched past its first-touch deadline goes to another rep and is escalated."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from funnelcast.core import clock
from funnelcast.core.settings import Settings
from funnelcast.scheduler import run_due
from service.routing.state import assignment_store
from tests.conftest import subprocess_server, with_mlflow
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
from training.run import train_model

MANAGER = {"X-API-Key": "demo-manager-key"}
# Tuesday 10:00 in Shanghai, a month before the machine's wall clock: answers dated from it prove
# the worker read the external clock, not its own
WORLD_NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
WORKER_PORT = 18411  # this suite's port range: 18400-18499


@pytest.fixture
def restore_clock() -> Iterator[None]:
    yield
    clock.set_clock(None)  # the in-process service installed the external clock for this process


def external(served_world: Settings, tmp_path: Path, **update: object) -> Settings:
    return service_settings(served_world, tmp_path, clock="external", **update)


def worker_env(settings: Settings) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELCAST_")}
    return environ | {
        "FUNNELCAST_DATA_DIR": str(settings.data_dir),
        "FUNNELCAST_FEAST_PROJECT": settings.feast_project,
        "FUNNELCAST_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "FUNNELCAST_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
        "FUNNELCAST_SERVICE_STATE_DIR": str(settings.service_dir),
        "FUNNELCAST_MODEL_POLL_SECONDS": "0",
        "FUNNELCAST_CLOCK": "external",
    }


@contextmanager
def worker_process(settings: Settings, **env: str) -> Iterator[httpx.Client]:
    """``funnelcast serve`` in its own process on this suite's port, sharing ``settings``' stores."""
    command = [
        sys.executable,
        "-c",
        "from funnelcast.cli import app; app()",
        "serve",
        "--port",
        str(WORKER_PORT),
    ]
    environ = worker_env(settings) | {f"FUNNELCAST_{k.upper()}": v for k, v in env.items()}
    base = f"http://127.0.0.1:{WORKER_PORT}"
    with (
        subprocess_server(command, environ, f"{base}/healthz"),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


@pytest.mark.slow  # starts a second service process
@pytest.mark.integration
def test_two_worker_processes_agree_on_the_external_time(
    served_world: Settings, tmp_path: Path, restore_clock: None
) -> None:
    settings = external(served_world, tmp_path)
    with running(settings) as a, worker_process(settings) as b:
        assert a.get("/v1/clock", headers=CRM).json()["set"] is False  # wall clock until the driver sets it
        assert a.put("/v1/clock", json={"now": WORLD_NOW.isoformat()}, headers=ADMIN).status_code == 200
        seen_by_b = b.get("/v1/clock", headers=CRM).json()
        assert (seen_by_b["mode"], seen_by_b["set"]) == ("external", True)
        assert datetime.fromisoformat(seen_by_b["now"]) == WORLD_NOW
        later = WORLD_NOW + timedelta(hours=3)
        assert b.put("/v1/clock", json={"now": later.isoformat()}, headers=ADMIN).status_code == 200
        assert datetime.fromisoformat(a.get("/v1/clock", headers=CRM).json()["now"]) == later
        # worker b routes on the world's time: the first-touch deadline follows 13:00 Shanghai, not today
        scored = b.post("/v1/leads/score", json=lead("clock-1"), headers=CRM).json()
        deadline = datetime.fromisoformat(scored["routing"]["first_touch_deadline"])
        assert later < deadline < later + timedelta(days=4)
        # time only moves forward, whichever worker is asked; only an admin moves it
        back = a.put("/v1/clock", json={"now": WORLD_NOW.isoformat()}, headers=ADMIN)
        assert back.status_code == 422 and back.json()["fields"][0]["field"] == "now"
        assert b.put("/v1/clock", json={"now": WORLD_NOW.isoformat()}, headers=ADMIN).status_code == 422
        assert (
            b.put(
                "/v1/clock", json={"now": (later + timedelta(hours=1)).isoformat()}, headers=CRM
            ).status_code
            == 403
        )
        assert a.put("/v1/clock", json={"now": 0}, headers=ADMIN).status_code == 422


def test_the_wall_clock_refuses_to_be_set(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as client:
        answer = client.put("/v1/clock", json={"now": WORLD_NOW.isoformat()}, headers=ADMIN)
        assert answer.status_code == 409 and "wall clock" in answer.json()["detail"]
        assert client.get("/v1/clock", headers=CRM).json()["mode"] == "wall"


def test_the_sla_sweep_reroutes_an_untouched_overdue_lead_and_escalates_it(
    served_world: Settings, tmp_path: Path, restore_clock: None, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = external(
        served_world, tmp_path, alert_webhook_url=url, scheduler_jobs={"sla_sweep": "*/5 * * * *"}
    )
    with running(settings) as client:
        client.put("/v1/clock", json={"now": WORLD_NOW.isoformat()}, headers=ADMIN)
        late = client.post("/v1/leads/score", json=lead("sla-late"), headers=CRM).json()["routing"]
        kept = client.post("/v1/leads/score", json=lead("sla-touched"), headers=CRM).json()["routing"]
        assert late["rep_id"] and kept["rep_id"]
        touched = {"kind": "touched", "lead_id": "sla-touched"}
        assert client.post("/v1/outcomes", json=touched, headers=CRM).json()["lead_status"] == "touched"
        assert run_due(settings) == []  # the scheduler starts watching at the world's now
        deadline = datetime.fromisoformat(late["first_touch_deadline"])
        # five hours past the deadline: past the rule's escalate_after_hours (4)
        swept_at = deadline + timedelta(hours=5)
        client.put("/v1/clock", json={"now": swept_at.isoformat()}, headers=ADMIN)
        (run,) = run_due(settings)
        assert (run.job, run.outcome) == ("sla_sweep", "ok"), run.error
        assert run.detail.startswith("1 overdue: 1 re-routed, 0 queued, 1 escalated")
        now_held = assignment_store(settings).get("sla-late")
        assert now_held is not None and now_held.status == "open"
        assert now_held.rep_id != late["rep_id"]  # another rep has it, with a new deadline
        # re-routed under the first route's language, time-zone and segment filters, not without them
        assert now_held.profile() == {
            "language": "zh",
            "utc_offset_hours": 8.0,
            "industry": now_held.industry,
            "product_line": "switchgear",
        }
        assert now_held.industry is not None
        assert (
            now_held.assigned_at == swept_at
            and now_held.deadline is not None
            and now_held.deadline > swept_at
        )
        assert assignment_store(settings).get("sla-touched").rep_id == kept["rep_id"]  # touched: left alone
        # escalated per the first-touch rule: stored as an alert and sent to the webhook
        (message,) = received
        assert "first_touch_sla_breach sla-late" in message["text"]["content"]
        assert "escalate to the team lead" in message["text"]["content"]
        alerts = client.get("/v1/alerts", params={"rule": "first_touch_sla_breach"}, headers=MANAGER).json()
        assert [(a["entity"], a["severity"]) for a in alerts["alerts"]] == [("sla-late", "critical")]
        # the run log over HTTP, for managers and admins only
        runs = client.get("/v1/scheduler/runs", headers=MANAGER).json()["runs"]
        assert [(r["job"], r["outcome"], r["attempt"]) for r in runs] == [("sla_sweep", "ok", 1)]
        assert datetime.fromisoformat(runs[0]["started_at"]) == swept_at
        assert client.get("/v1/scheduler/runs", headers=CRM).status_code == 403
        # a second sweep finds nothing overdue: the new deadline has not passed
        client.put("/v1/clock", json={"now": (swept_at + timedelta(minutes=5)).isoformat()}, headers=ADMIN)
        (again,) = run_due(settings)
        assert again.detail.startswith("0 overdue")
        # a job closes the stores it opened: each run used to leave a SQLite checkpoint thread and two
        # connections behind for the life of the process (a 12-week live run: hundreds of threads)
        checkpointers = sum(t.name == "routing-wal-checkpoint" for t in threading.enumerate())
        for minutes in range(10, 40, 5):
            client.put(
                "/v1/clock", json={"now": (swept_at + timedelta(minutes=minutes)).isoformat()}, headers=ADMIN
            )
            (run,) = run_due(settings)
            assert run.outcome == "ok"
        time.sleep(2.5)  # a closed store's thread ends at its next wake-up (every 2 s)
        assert sum(t.name == "routing-wal-checkpoint" for t in threading.enumerate()) <= checkpointers


@pytest.mark.slow  # trains the lead model twice
@pytest.mark.integration
def test_a_promotion_by_the_scheduled_retrain_reaches_every_worker(
    served_world: Settings, tmp_path: Path
) -> None:
    # own MLflow store; its first champion is a crippled lead model the full one beats at the gate
    settings = service_settings(
        with_mlflow(served_world, tmp_path / "mlflow"),
        tmp_path,
        scheduler_jobs={"retrain": "0 2 * * sun"},
        scheduler_retrain_models=["lead"],
        reload_watch_seconds=0.5,
    )
    assert train_model(settings, "lead", columns=("local_weekday",)).version == "1"
    # each worker (its own runtime and models) follows the signal in the shared state store
    with running(settings) as a, running(settings) as b:

        def lead_version(worker: httpx.Client) -> str:
            return next(
                m["version"]
                for m in worker.get("/v1/models", headers=CRM).json()
                if m["name"] == "lead_score"
            )

        assert lead_version(a) == lead_version(b) == "1"
        saturday = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
        run_due(settings, saturday)  # watched
        (run,) = run_due(settings, saturday + timedelta(days=1))  # Sunday 02:00 has fired
        assert run.outcome == "ok" and run.detail == "lead_score v2 promoted", run.error
        deadline = time.monotonic() + 20
        while {lead_version(a), lead_version(b)} != {"2"} and time.monotonic() < deadline:
            time.sleep(0.25)
        assert lead_version(a) == lead_version(b) == "2"  # no reload call, no registry poll (poll = 0)
