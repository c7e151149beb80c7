"""An imported CRM export goes through the unchanged feature build, Feast and training path.

Two small generated exports go into one data dir: dated leads with a company column (firmographics
with gaps) and undated accounts. Then ``build_all``, Feast apply and materialise (real file
registry, SQLite online store), and ``train_model`` for the lead and churn models against a real
MLflow SQLite store: the models must register, log their metrics, and learn from the custom
attributes that reach them through the attribute feature views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.importers.manifest import load_manifest
from features.importers.run import import_export_file
from features.jobs.run import build_all
from features.schema import read_table, write_table
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings
from mlflow import MlflowClient
from tests.conftest import with_mlflow
from training.registry import CHAMPION, RegisteredRun, load_version, mlflow_client
from training.run import train_model

pytestmark = pytest.mark.integration


def leads_export(n: int, seed: int) -> pd.DataFrame:
    """Dated leads whose conversion depends on two custom attributes (source, visits) only."""
    rng = np.random.default_rng(seed)
    source = rng.choice(["Referral", "Google", "Olark Chat", "Select"], n, p=[0.25, 0.35, 0.3, 0.1])
    visits = rng.poisson(3.0, n)
    logit = -1.0 + 2.0 * (source == "Referral") - 1.5 * (source == "Olark Chat") + 0.3 * (visits - 3)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    created = pd.Timestamp("2023-01-02") + pd.to_timedelta(np.sort(rng.uniform(0, 360, n)), unit="D")
    company = rng.integers(0, 40, n)
    return pd.DataFrame(
        {
            "Lead ID": [f"L{i:05d}" for i in range(n)],
            "Created On": created.strftime("%d/%m/%Y %H:%M"),
            "Lead Source": source,
            "Visits": visits.astype(str),
            "Company": [f"Co {c}" for c in company],
            "Employees": np.where(company % 4 == 0, "", (company * 37 + 5).astype(str)),
            "Founded": np.where(company % 5 == 0, "unknown", (1960 + company).astype(str)),
            "Stage Notes": np.where(converted, "qualified by sales", "no answer"),  # leaks the label
            "Converted": np.where(converted, "Yes", "No"),
        }
    )


def accounts_export(n: int, seed: int) -> pd.DataFrame:
    """Undated accounts whose churn depends on the contract type and tenure (custom attributes)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(0, 72, n)
    logit = -1.2 + 1.8 * (contract == "Month-to-month") - 0.04 * (tenure - 24)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customerID": [f"C-{i:05d}" for i in range(n)],
            "Contract": contract,
            "tenure": tenure.astype(str),
            "MonthlyCharges": np.round(rng.uniform(20, 110, n), 2).astype(str),
            "Churn": np.where(churned, "Yes", "No"),
        }
    )


LEADS_MAPPING = {
    "kind": "leads",
    "id": "Lead ID",
    "label": "Converted",
    "fields": {"created_at": "Created On", "company_id": "Company"},
    "dates": {"format": "%d/%m/%Y %H:%M"},
    "company": {"insured_headcount": "Employees", "founded_year": "Founded"},
    "attributes": {"numeric": ["Visits"], "categorical": ["Lead Source"]},
    "exclude": ["Stage Notes"],
    "missing_by_column": {"Lead Source": ["Select"]},  # 10% of rows: a frequent default, so say it
}
ACCOUNTS_MAPPING = {
    "kind": "accounts",
    "id": "customerID",
    "label": {"column": "Churn", "positive": ["Yes"], "negative": ["No"]},
    "attributes": {"numeric": ["tenure", "MonthlyCharges"], "categorical": ["Contract"]},
}


def import_file(settings: Settings, folder: Path, frame: pd.DataFrame, mapping: dict) -> None:
    export, mapping_path = folder / f"{mapping['kind']}.csv", folder / f"{mapping['kind']}.yaml"
    frame.to_csv(export, index=False)
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    import_export_file(settings, mapping["kind"], export, mapping_path)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, RegisteredRun]]:
    folder = tmp_path_factory.mktemp("crm_import")
    settings = with_mlflow(Settings(data_dir=folder / "data", feast_project="crm_import"), folder)
    import_file(settings, folder, leads_export(1_200, seed=5), LEADS_MAPPING)
    import_file(settings, folder, accounts_export(1_000, seed=6), ACCOUNTS_MAPPING)
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    materialize(store, latest_feature_time(settings))
    return settings, {short: train_model(settings, short) for short in ("lead", "churn")}


def test_an_imported_export_trains_and_registers_models_whose_metrics_are_in_mlflow(
    imported: tuple[Settings, dict[str, RegisteredRun]],
) -> None:
    settings, runs = imported
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    expected = {
        "lead": ("lead_score_import_v1", "time", "lead_source:categorical"),
        "churn": ("churn_import_v1", "stratified_random", "contract:categorical"),
    }
    for short, run in runs.items():
        service, split, attribute = expected[short]
        assert run.gate.promoted and run.gate.reason == "no champion yet"
        assert str(client.get_model_version_by_alias(run.name, CHAMPION).version) == run.version
        logged = client.get_run(run.run_id).data
        assert {"roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"} <= set(logged.metrics)
        assert logged.metrics["roc_auc"] == pytest.approx(run.metrics["roc_auc"])
        assert logged.params["feature_service"] == service
        assert logged.params["split"] == split
        assert attribute in logged.params["custom_attributes"]
        assert logged.params["import_kind"] in ("leads", "accounts")


def test_the_models_learn_from_the_custom_attributes(
    imported: tuple[Settings, dict[str, RegisteredRun]],
) -> None:
    settings, runs = imported
    # The generated labels depend on the custom attributes only, so the models' signal is theirs.
    assert runs["lead"].metrics["roc_auc"] > 0.75
    assert runs["churn"].metrics["roc_auc"] > 0.75
    client = mlflow_client(settings)
    lead = load_version(client, "lead_score", runs["lead"].version)
    # the training window's levels, most frequent first ("Select" read as missing)
    levels = lead.categorical_levels["lead_attributes__lead_source"]
    assert sorted(levels) == ["Google", "Olark Chat", "Referral"]
    assert set(lead.importance().head(2).index) == {"lead_attributes__lead_source", "lead_attributes__visits"}
    assert lead.metadata["feature_service"] == "lead_score_import_v1"
    # what a caller may send: the export's attributes; channel & co. are not inputs of this model
    inputs = {i["name"]: i for i in lead.metadata["inputs"]}
    assert set(inputs) == {"visits", "lead_source"} and inputs["visits"]["type"] == "numeric"
    assert inputs["lead_source"]["levels"] == list(levels)
    churn = load_version(client, "churn", runs["churn"].version)
    assert churn.importance().index[0] in {"account_attributes__contract", "account_attributes__tenure"}


def test_materialize_serves_the_imported_attributes_and_firmographics_online(
    imported: tuple[Settings, dict[str, RegisteredRun]],
) -> None:
    settings, _ = imported
    store = open_store(settings)
    leads = leads_export(1_200, seed=5).set_index("Lead ID")
    online = store.get_online_features(
        features=["lead_attributes:lead_source", "lead_attributes:visits"],
        entity_rows=[{"lead_id": "L00000"}, {"lead_id": "L00001"}],
    ).to_dict()
    expected_source = [None if s == "Select" else s for s in leads.loc[["L00000", "L00001"], "Lead Source"]]
    assert online["lead_source"] == expected_source
    assert online["visits"] == [float(v) for v in leads.loc[["L00000", "L00001"], "Visits"]]
    firmographics = store.get_online_features(
        features=["company_firmographics:insured_headcount", "company_firmographics:company_age_years"],
        entity_rows=[{"company_id": "Co 0"}, {"company_id": "Co 1"}],
    ).to_dict()
    assert firmographics["insured_headcount"] == [None, 42]  # "Co 0" has no headcount in the export
    assert firmographics["company_age_years"][0] is None  # ... nor a founding year ("unknown")


def test_a_later_world_overwriting_the_import_drops_its_attribute_tables(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    import_file(settings, tmp_path, leads_export(200, seed=1), LEADS_MAPPING)
    build_all(settings)
    assert (settings.feature_dir / "lead_attributes.parquet").exists()
    leads = read_table("leads", settings.raw_dir)
    write_table("leads", leads.iloc[:50], settings.raw_dir)  # another source rewrites the table
    assert load_manifest(settings.raw_dir, "leads") is None
    rows = build_all(settings)
    assert "lead_attributes" not in rows and not (settings.feature_dir / "lead_attributes.parquet").exists()


def test_after_an_import_the_unchanged_cli_commands_build_apply_materialize_and_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from funnelcast.cli import app
    from funnelcast.cli_import import import_export
    from funnelcast.core.settings import get_settings

    importer = typer.Typer()
    importer.command("import")(import_export)
    importer.command("other")(lambda: None)
    frame = leads_export(600, seed=9).drop(columns=["Created On"])  # an undated export
    mapping = {**LEADS_MAPPING, "fields": {"company_id": "Company"}, "dates": {}}
    export, mapping_path = tmp_path / "leads.csv", tmp_path / "leads.yaml"
    frame.to_csv(export, index=False)
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    monkeypatch.setenv("FUNNELCAST_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("FUNNELCAST_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("FUNNELCAST_FEAST_PROJECT", "cli_import")
    get_settings.cache_clear()
    try:
        runner, data = CliRunner(), ["--data-dir", str(tmp_path / "data")]
        env = {"COLUMNS": "200"}
        result = runner.invoke(
            importer, ["import", "leads", str(export), "--mapping", str(mapping_path), *data], env=env
        )
        assert result.exit_code == 0, result.output
        assert "undated export" in result.output and "stratified" in result.output
        for command in (["features", "build"], ["features", "apply"], ["features", "materialize"]):
            result = runner.invoke(app, [*command, *data], env=env)
            assert result.exit_code == 0, result.output
        assert "lead_score_import_v1" in runner.invoke(app, ["features", "apply", *data]).output
        result = runner.invoke(app, ["train", "lead", *data], env=env)
        assert result.exit_code == 0, result.output
        assert "lead_score v1" in result.output and "champion" in result.output
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
        version = client.get_model_version_by_alias("lead_score", CHAMPION)
        params = client.get_run(version.run_id).data.params
        assert params["split"] == "stratified_random" and params["import_undated"] == "true"
    finally:
        get_settings.cache_clear()
