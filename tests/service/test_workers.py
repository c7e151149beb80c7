"""Two uvicorn workers (``funnelcast serve --workers 2``, the default) behave as one service: a
reload asked of one worker is followed by the other, and the routing state they share counts each
lead once, whichever worker scored it."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from funnelcast.core.settings import Settings
from tests.conftest import subprocess_server, with_mlflow
from tests.service.conftest import ADMIN, CRM, free_port, lead, server_environment, service_settings
from training.run import train_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@contextmanager
def two_workers(settings: Settings) -> Iterator[str]:
    """``funnelcast serve`` with its default worker count (two), on a free port."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "funnelcast"), "serve", "--port", str(port)]
    with subprocess_server(command, server_environment(settings), f"http://127.0.0.1:{port}/readyz") as ready:
        yield ready.removesuffix("/readyz")


def _on_fresh_connections(url: str, path: str, n: int = 24) -> list[dict]:
    """``GET path`` ``n`` times, each on its own connection (so both workers answer some)."""
    out = []
    for _ in range(n):
        with httpx.Client(base_url=url, timeout=30) as client:
            out.append(client.get(path, headers=CRM).json())
    return out


def test_a_reload_asked_of_one_worker_is_followed_by_the_other(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(with_mlflow(served_world, tmp_path / "mlflow"), tmp_path)
    train_model(settings, "lead")
    assert settings.service_workers == 2 and settings.model_poll_seconds == 0  # no polling to help
    with two_workers(settings) as url:
        before = [_live(answer) for answer in _on_fresh_connections(url, "/v1/models")]
        # each worker loaded its champion at its own start: two distinct load times, so both answered
        assert {version for version, _ in before} == {"1"} and len({since for _, since in before}) == 2
        train_model(settings, "lead", force=True)
        reload = httpx.post(f"{url}/v1/models/reload", headers=ADMIN, timeout=60).json()
        assert reload["changed"] == ["lead_score"]
        deadline = time.monotonic() + 20
        while True:
            after = [_live(answer) for answer in _on_fresh_connections(url, "/v1/models")]
            if {version for version, _ in after} == {"2"} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert {version for version, _ in after} == {"2"}
    assert len({since for _, since in after}) == 2  # still both workers, each on version 2


def _live(models: list[dict]) -> tuple[str, str]:
    lead_model = next(m for m in models if m["name"] == "lead_score")
    return lead_model["version"], lead_model["live_since"]


def test_two_workers_share_the_routing_state_and_count_a_retried_lead_once(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    ids = [f"w-{i}" for i in range(40)]

    def score(lead_id: str) -> str:
        with httpx.Client(base_url=url, timeout=30) as client:  # a new connection: either worker
            answer = client.post("/v1/leads/score?explain=false", json=lead(lead_id), headers=CRM)
        assert answer.status_code == 200, answer.text
        return answer.json()["routing"]["rep_id"]

    with two_workers(settings) as url, ThreadPoolExecutor(4) as pool:
        first = list(pool.map(score, ids))
        again = list(pool.map(score, ids))  # the CRM retries every lead
    assert all(first)
    with sqlite3.connect(settings.service_dir / "routing.db") as db:
        load = dict(db.execute("SELECT rep_id, open_leads FROM rep_load").fetchall())
        held = dict(db.execute("SELECT lead_id, rep_id FROM assignments WHERE status = 'open'").fetchall())
    # 40 leads are open, each on exactly one rep, and the reps' loads add up to 40, not 80
    assert sorted(held) == sorted(ids) and sum(load.values()) == 40
    assert all(load[rep] == list(held.values()).count(rep) for rep in load if load[rep])
    assert [held[i] for i in ids] == again
