"""The retraining notebook runs top to bottom on the tiny world for every model."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from funnelcast.core.settings import PROJECT_ROOT, Settings
from tests.conftest import with_mlflow

NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain_and_promote.ipynb"


def _notebook_settings_from_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook's kernel builds ``Settings()`` from the environment, like the CLI."""
    for key, value in {
        "FUNNELCAST_DATA_DIR": settings.data_dir,
        "FUNNELCAST_FEAST_PROJECT": settings.feast_project,
        "FUNNELCAST_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "FUNNELCAST_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
    }.items():
        monkeypatch.setenv(key, str(value))


@pytest.mark.slow  # runs a whole notebook: make test-slow
@pytest.mark.integration
@pytest.mark.parametrize("model", ["lead", "close", "churn"])
def test_retrain_notebook_runs_and_registers(
    model: str, tiny_feast: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_mlflow(tiny_feast, tmp_path)
    _notebook_settings_from_env(settings, monkeypatch)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f'MODEL = "{model}"\nFORCE = False'
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    last = "".join(out.get("text", "") for out in notebook.cells[-1].outputs)
    assert "v1: champion - no champion yet" in last


NEW_FEATURE = PROJECT_ROOT / "notebooks" / "new_feature.ipynb"


@pytest.mark.slow  # runs a whole notebook: make test-slow
@pytest.mark.integration
def test_new_feature_notebook_publishes_v2_logs_its_comparison_and_serving_follows_the_champion(
    tiny_feast: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.repo.services import LEAD_SCORE_SERVICE, LEAD_SCORE_V2_SERVICE
    from features.store import latest_feature_time, materialize, open_store
    from mlflow import MlflowClient
    from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
    from training.registry import CHAMPION
    from training.run import train_model

    settings = with_mlflow(tiny_feast, tmp_path / "mlflow")
    _notebook_settings_from_env(settings, monkeypatch)
    materialize(open_store(settings), latest_feature_time(settings))
    assert train_model(settings, "lead").version == "1"  # the demo's champion, on lead_score_v1
    notebook = nbformat.read(NEW_FEATURE, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    # a _v2 service exists beside v1, with the new view
    services = {s.name: s for s in open_store(settings).list_feature_services()}
    assert LEAD_SCORE_SERVICE in services
    assert "company_behavior_trend" in [
        p.name for p in services[LEAD_SCORE_V2_SERVICE].feature_view_projections
    ]

    # a model trained on it is logged with its comparison with the champion
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    v2 = client.get_model_version("lead_score", "2")
    run = client.get_run(v2.run_id).data
    assert run.params["feature_service"] == LEAD_SCORE_V2_SERVICE
    assert "company_behavior_trend__events_wow_log_ratio" in run.params["columns"]
    low, high = (
        run.metrics["vs_champion.roc_auc_difference_low"],
        run.metrics["vs_champion.roc_auc_difference_high"],
    )
    assert low <= run.metrics["vs_champion.roc_auc_difference"] <= high
    assert run.metrics["vs_champion.roc_auc_difference"] == pytest.approx(
        run.metrics["roc_auc"] - run.metrics["vs_champion.roc_auc_champion"]
    )
    artifacts = {a.path for a in client.list_artifacts(v2.run_id, "tables")}
    assert {"tables/champion_comparison.csv", "tables/segment_metrics.csv"} <= artifacts
    assert run.tags["gate.decision"] in ("promoted", "refused")
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert f"lead_score v2 on {LEAD_SCORE_V2_SERVICE}: " in printed

    # serving reads the feature service of whichever version is champion, before and after a switch
    champion = str(client.get_model_version_by_alias("lead_score", CHAMPION).version)
    expected = {"1": LEAD_SCORE_SERVICE, "2": LEAD_SCORE_V2_SERVICE}
    assert f"champion: v{champion}; the service reads {expected[champion]}" in printed
    other = "1" if champion == "2" else "2"
    with running(service_settings(settings, tmp_path)) as http:
        for version in (champion, other):
            client.set_registered_model_alias("lead_score", CHAMPION, version)
            assert http.post("/v1/models/reload", headers=ADMIN).status_code == 200
            answer = http.post("/v1/leads/score", json=lead("nb-1"), headers=CRM).json()
            assert answer["model"] == {
                "name": "lead_score",
                "version": version,
                "feature_service": expected[version],
            }
