"""A tiny world served for real: features materialised, models trained into its own MLflow, uvicorn on
a free port in a background thread (real HTTP, real Feast, real MLflow, real SQLite/Redis state)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from features.world.params import WORLD_END
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from service.app import create_app
from service.limits import server_limits
from tests.conftest import serve_ready, with_mlflow

CRM = {"X-API-Key": "demo-crm-key"}
ADMIN = {"X-API-Key": "demo-admin-key"}


@pytest.fixture(scope="session")
def served_world(tiny_feast: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The tiny world, materialised, with champions for all three models in its own MLflow store."""
    return serve_ready(with_mlflow(tiny_feast, tmp_path_factory.mktemp("served_mlflow")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    settings: Settings, port: int | None = None, app: FastAPI | None = None
) -> Iterator[httpx.Client]:
    """uvicorn serving ``app`` (default ``create_app(settings)``) until the block ends (on ``port``,
    or a free one); yields a client bound to it."""
    port = port or free_port()
    config = uvicorn.Config(
        app or create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **server_limits(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def service_settings(base: Settings, tmp_path: Path, **update: object) -> Settings:
    """``base`` with its own routing state, model cache and event log (events a test posts stay out of
    the session world's raw tables), and no alias polling unless asked.

    The test worlds end on the fixed ``WORLD_END`` (a seed always gives the same world) while the
    service reads the wall clock, so the staleness limit counts from the world's end: its features
    are as fresh as on its last day, whatever today's date (a world 30 days old read stale and
    failed these tests from 2026-12-02 on)."""
    age_hours = max(0.0, (clock.now() - WORLD_END).total_seconds() / 3600)
    return base.model_copy(
        update={
            "service_state_dir": tmp_path / "service",
            "event_log_dir": tmp_path / "event_log",
            "model_poll_seconds": 0,
            "feature_stale_hours": base.feature_stale_hours + age_hours,
            **update,
        }
    )


def lead(lead_id: str = "t1", **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "lead_id": lead_id,
        "company_id": "c1",
        "channel": "referral",
        "contact_role": "decision_maker",
        "product_interest": "switchgear",
        "country": "CN",
        "timezone": "Asia/Shanghai",
        "language": "zh",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def server_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``FUNNELCAST_*`` variables a server process reads them from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELCAST_")}
    for name, value in settings.model_dump(mode="json", exclude_defaults=True).items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"FUNNELCAST_{name.upper()}"] = text
    return env


@pytest.fixture
def own_world(served_world: Settings, tmp_path: Path) -> Settings:
    """The served world's data folder copied (raw tables, online store, registry, directory): events a
    test posts never reach the session's shared online store."""
    shutil.copytree(served_world.data_dir, tmp_path / "data")
    return service_settings(served_world, tmp_path, data_dir=tmp_path / "data", event_log_dir=None)
