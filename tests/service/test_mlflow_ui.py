"""MLflow's own UI on the tracking store the training runs log to (a real ``mlflow ui`` process started
by the command ``make mlflow-ui`` runs, a real headless Chromium; screenshot in ``tests/artifacts/``)."""

from __future__ import annotations

import os
import shutil

import pytest

from funnelcast.cli_ui import mlflow_ui_command
from funnelcast.core.settings import Settings
from mlflow import MlflowClient
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS, needs_chromium, subprocess_server
from tests.service.conftest import free_port


@needs_chromium
@pytest.mark.slow  # the MLflow UI in headless chromium: make test-slow
@pytest.mark.integration
def test_mlflow_ui_shows_a_runs_shap_and_segment_artifacts_in_headless_chromium(
    served_world: Settings,
) -> None:
    from playwright.sync_api import sync_playwright

    client = MlflowClient(served_world.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(served_world.mlflow_experiment)
    run = client.search_runs([experiment.experiment_id], "tags.model = 'lead_score'", max_results=1)[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = mlflow_ui_command(served_world, "127.0.0.1", port)
    with subprocess_server(command, dict(os.environ), f"{base}/health"), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(
            f"{base}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
            "/artifacts/plots/shap_summary.png"
        )
        page.get_by_text("segment_roc_auc.png").first.wait_for(timeout=90_000)
        assert page.get_by_text("shap_summary.png").count() >= 1
        page.get_by_text("tables", exact=True).first.wait_for()
        page.wait_for_timeout(1500)  # the selected plot finishes drawing
        page.screenshot(path=str(ARTIFACTS / "mlflow_ui.png"))
        browser.close()
    assert (ARTIFACTS / "mlflow_ui.png").stat().st_size > 10_000
