"""Start-up faults: ``funnelcast serve`` refuses a store it cannot use with one line naming the store
and where it looked (no traceback, non-zero exit), and MLflow is never pointed at a folder that does
not exist (it would silently create an empty store there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.directory import ServingDirectory, publish_directory
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from funnelcast.core.tracking_store import TrackingStoreMissing, check_tracking_store, local_store_folder
from service.live_models import LiveModels
from training.registry import mlflow_client

DEAD_REDIS = "127.0.0.1:6399"  # nothing listens here: a Redis that is down
SERVE_PORT = "8111"


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``funnelcast serve`` in its own process group with ``FUNNELCAST_*`` overrides; a server that
    starts anyway (the fault not caught) is stopped after a while and fails the test."""
    command = [str(Path(sys.executable).parent / "funnelcast"), "serve", "--port", SERVE_PORT]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELCAST_")}
    environ |= {
        "FUNNELCAST_DATA_DIR": str(tmp_path / "data"),
        "FUNNELCAST_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        **{f"FUNNELCAST_{k.upper()}": v for k, v in env.items()},
    }
    proc = subprocess.Popen(
        command, env=environ, cwd=tmp_path, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"serve started despite the fault; stderr: {err[-2000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, result.stderr
    text = (result.stdout + result.stderr).strip()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_serve_with_the_online_redis_down_says_so_in_one_line(tmp_path: Path) -> None:
    result = serve(tmp_path, online_store="redis", redis_url=f"{DEAD_REDIS},db=0")
    assert_one_line_error(result, "online store", DEAD_REDIS)


def test_serve_with_the_routing_redis_down_says_so_in_one_line(tmp_path: Path) -> None:
    # a published directory in the SQLite online store, so the routing state is what is missing
    settings = Settings(data_dir=tmp_path / "data")
    deals = pd.DataFrame(columns=["opportunity_id", "expected_close_at"]).set_index("opportunity_id")
    renewals = pd.DataFrame(columns=["account_id", "renewal_at"]).set_index("account_id")
    publish_directory(settings, ServingDirectory(clock.now(), ["r1"], deals, renewals))
    url = f"redis://:secret@{DEAD_REDIS}/0"
    result = serve(tmp_path, routing_store="redis", routing_redis_url=url)
    assert_one_line_error(result, "routing state", f"redis://:***@{DEAD_REDIS}/0")
    assert "secret" not in result.stderr


def test_serve_with_an_mlflow_store_in_a_missing_folder_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    result = serve(tmp_path, mlflow_tracking_uri=f"sqlite:///{missing / 'mlflow.db'}")
    assert_one_line_error(result, "mlflow_tracking_uri", str(missing))
    assert not missing.exists()


@pytest.mark.parametrize(
    ("uri", "folder"),
    [
        ("sqlite:////srv/ml/mlflow.db", "/srv/ml"),
        ("sqlite:///mlflow/mlflow.db", "mlflow"),
        ("sqlite:///mlflow.db?timeout=5", "."),
        ("file:///srv/ml/runs", "/srv/ml/runs"),
        ("/srv/ml/runs", "/srv/ml/runs"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/mlflow", None),
        ("http://127.0.0.1:5000", None),
    ],
)
def test_the_folder_a_tracking_uri_needs(uri: str, folder: str | None) -> None:
    assert local_store_folder(uri) == (None if folder is None else Path(folder))


def test_a_tracking_store_in_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for uri in (f"sqlite:///{missing / 'mlflow.db'}", (missing / "runs").as_uri()):
        settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=uri)
        with pytest.raises(TrackingStoreMissing, match="mlflow_tracking_uri"):
            mlflow_client(settings)  # training's way in
        live = LiveModels(uri, tmp_path / "cache", ["lead_score"])
        errors = live.start()  # the service's: no champion, and the error names the setting
        assert "mlflow_tracking_uri" in errors["lead_score"] and live.get("lead_score") is None
        assert not missing.exists()  # nothing was created in its place
    check_tracking_store(f"sqlite:///{tmp_path / 'mlflow.db'}")  # an existing folder is fine
