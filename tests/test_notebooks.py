"""The retraining notebook runs top to bottom on the tiny world for every model."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from funnelcast.core.settings import PROJECT_ROOT, Settings
from tests.conftest import with_mlflow

NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain_and_promote.ipynb"


@pytest.mark.integration
@pytest.mark.parametrize("model", ["lead", "close", "churn"])
def test_retrain_notebook_runs_and_registers(
    model: str, tiny_feast: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_mlflow(tiny_feast, tmp_path)
    for key, value in {
        "FUNNELCAST_DATA_DIR": settings.data_dir,
        "FUNNELCAST_FEAST_PROJECT": settings.feast_project,
        "FUNNELCAST_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "FUNNELCAST_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
    }.items():
        monkeypatch.setenv(key, str(value))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f'MODEL = "{model}"\nFORCE = False'
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    last = "".join(out.get("text", "") for out in notebook.cells[-1].outputs)
    assert "v1: champion - no champion yet" in last
