"""Shared fixtures: one tiny world per test session, generated, featurised and applied to Feast."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from features.world.generate import WorldSummary, generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import PROJECT_ROOT, Settings

# Each server a test starts would spend tens of seconds of CPU compiling its champions' trees in the
# background; tests/test_compiled_forest.py holds the compiled path to LightGBM's numbers instead.
os.environ.setdefault("FUNNELCAST_COMPILE_TREES", "false")

TINY_LEADS = 3_000
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"  # screenshots (git-ignored)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)"
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep a module's tests on one xdist worker when they share a module-scoped fixture.

    ``make test`` runs ``--dist loadgroup``: without a group, xdist spreads a module's tests over
    both workers and each builds the module's world and models (test_training_jobs' three models
    were trained twice, ~70 s each). Runs before xdist's own hook, which reads the marks.
    """
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        scopes = {d.scope for defs in fixtures.name2fixturedefs.values() for d in defs}
        if "module" in scopes:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))  # type: ignore[attr-defined]


def tiny_params(seed: int = 11) -> WorldParams:
    """~3k leads, ~200 opportunities, 150 accounts: seconds to build, enough to learn from."""
    return replace(WorldParams(seed=seed).scaled(TINY_LEADS / 50_000), n_accounts=150)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, WorldSummary]:
    data = tmp_path_factory.mktemp("tiny_world")
    settings = Settings(data_dir=data, feast_project="tiny")
    summary = generate_world(tiny_params(), settings.raw_dir, settings.oracle_dir)
    return settings, summary


@pytest.fixture(scope="session")
def tiny_features(tiny_world: tuple[Settings, WorldSummary]) -> Settings:
    from features.jobs.run import build_all

    settings, _ = tiny_world
    build_all(settings)
    return settings


@pytest.fixture(scope="session")
def tiny_feast(tiny_features: Settings) -> Settings:
    """The tiny world with its Feast definitions applied (file registry, SQLite online store)."""
    from features.store import apply_definitions, open_store

    apply_definitions(open_store(tiny_features), tiny_features)
    return tiny_features


def serve_ready(settings: Settings, models: tuple[str, ...] = ("lead", "close", "churn")) -> Settings:
    """Built and applied features made servable: materialised, the serving directory published and
    champions trained for ``models`` (what ``make demo`` does between `features apply` and `serve`)."""
    from features.directory import build_directory, publish_directory
    from features.store import latest_feature_time, materialize, open_store
    from training.run import train_model

    end = latest_feature_time(settings)
    materialize(open_store(settings), end)
    publish_directory(settings, build_directory(settings, end))
    for short in models:
        train_model(settings, short)
    return settings


def with_mlflow(settings: Settings, directory: Path, uri: str | None = None) -> Settings:
    """``settings`` pointed at its own MLflow store (a fresh SQLite file in ``directory`` by default).

    ``directory`` is created: funnelcast refuses a tracking store whose folder does not exist.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return settings.model_copy(
        update={
            "mlflow_tracking_uri": uri or f"sqlite:///{directory / 'mlflow.db'}",
            "mlflow_artifact_root": directory / "artifacts",
        }
    )


@contextmanager
def subprocess_server(command: list[str], env: dict, ready_url: str, timeout: float = 180) -> Iterator[str]:
    """Start ``command`` in its own process group, wait until ``ready_url`` answers, stop it after."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} did not answer in {timeout:.0f} s")
            time.sleep(0.5)
        yield ready_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the tool and any workers it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A chat-bot webhook receiver over real HTTP on a free port: its URL and the JSON bodies it got."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
