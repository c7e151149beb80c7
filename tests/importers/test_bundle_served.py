"""A CRM bundle with its own milestone list, end to end: import, features, Feast, train, weekly job, serve.

The tiny world is exported as Salesforce would export it, then imported through the shipped mapping
with two edits a real admin makes: one checkbox is the CRM's own milestone (``security_review_passed``,
not one of the canonical twelve) and one canonical milestone is not tracked at all. The close model
must learn the custom milestone as a column, read it online through the import's feature service,
and the forecast, at-risk list, deal view, rules and alerts must all answer on the imported data.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from features.directory import read_directory
from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.jobs.raw import read_raw
from features.jobs.run import build_all
from features.repo.services import MILESTONE_CLOSE_IMPORT_SERVICE
from features.repo.views import CUSTOM_MILESTONE_VIEW
from features.store import apply_definitions, open_store
from features.world.crm_export import example_mapping_path, export_world, write_export
from features.world.generate import WorldSummary
from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.pipeline import open_deals, rep_groups_of, score_pipeline
from service.routing.router import reps_from_feast
from service.weekly import score_weekly
from tests.conftest import serve_ready, with_mlflow
from tests.service.conftest import running

CUSTOM = "security_review_passed"
COLUMN = f"{CUSTOM_MILESTONE_VIEW}__ms_{CUSTOM}"
MANAGER = {"X-API-Key": "demo-manager-key"}
FORECASTER = {"X-API-Key": "demo-forecaster-key"}


@pytest.fixture(scope="module")
def imported_crm(
    tiny_world: tuple[Settings, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    world, _ = tiny_world
    tmp = tmp_path_factory.mktemp("bundle_served")
    shipped = example_mapping_path("salesforce")
    write_export(
        export_world(read_raw(world.raw_dir), load_bundle_mapping(shipped), "salesforce"), tmp / "sf"
    )
    mapping = yaml.safe_load(shipped.read_text())
    milestones = mapping["milestones"]
    milestones[CUSTOM] = milestones.pop("site_survey_done")  # the CRM's own name for that checkbox
    del milestones["sample_poc_passed"]  # a milestone this CRM does not track
    path = tmp / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    settings = with_mlflow(Settings(data_dir=tmp / "data", feast_project="bundle_served"), tmp / "mlflow")
    import_bundle(settings, tmp / "sf", path)
    build_all(settings)
    apply_definitions(open_store(settings), settings)
    serve_ready(settings)
    report = score_weekly(settings)
    assert report.deals and report.firings, "the weekly job scored or fired nothing on the imported CRM"
    return settings


def test_a_custom_milestone_is_a_close_model_column_read_online(imported_crm: Settings) -> None:
    models = LiveModels(
        imported_crm.mlflow_tracking_uri, imported_crm.service_dir / "cache", ["milestone_close"]
    )
    models.start()
    close = models.get("milestone_close")
    assert close is not None
    meta = close.model.metadata
    assert meta["feature_service"] == MILESTONE_CLOSE_IMPORT_SERVICE
    assert COLUMN in close.model.columns
    assert CUSTOM in meta["milestones"] and "sample_poc_passed" not in meta["milestones"]
    assert meta["refit_rounds"] >= 1  # refitted on train + validation after early stopping
    # the live pipeline reads the custom milestone from the online store, as training read it offline
    store = open_store(imported_crm)
    directory = read_directory(imported_crm)
    reps = reps_from_feast(store, directory.rep_ids)
    snap = score_pipeline(store, open_deals(directory.open_deals, rep_groups_of(reps)), close)
    assert COLUMN in snap.deals
    reached = snap.deals[COLUMN].astype(float)
    assert reached.notna().all() and reached.max() == 1.0
    events = read_raw(imported_crm.raw_dir, ["milestone_events"])["milestone_events"]
    done = set(events.loc[events["milestone"] == CUSTOM, "opportunity_id"])
    flagged = set(reached.index[reached == 1.0])
    assert flagged and flagged <= done  # flagged only where the CRM recorded it
    offline = pd.read_parquet(imported_crm.feature_dir / f"{CUSTOM_MILESTONE_VIEW}.parquet")
    latest = offline.sort_values("event_timestamp").groupby("opportunity_id").last()
    common = reached.index.intersection(latest.index)
    assert len(common) == len(reached)
    assert (
        latest.loc[common, f"ms_{CUSTOM}"].astype(float).to_numpy() == reached.loc[common].to_numpy()
    ).all()


def test_forecast_at_risk_rules_and_alerts_answer_on_the_imported_crm(imported_crm: Settings) -> None:
    # the service's own state dir: the weekly job stored its alerts and results there
    with running(imported_crm.model_copy(update={"model_poll_seconds": 0})) as http:
        assert http.get("/readyz").status_code == 200
        forecast = http.get("/v1/forecast/weekly", headers=FORECASTER)
        assert forecast.status_code == 200, forecast.text
        body = forecast.json()
        assert body["rows"] and body["totals"]
        at_risk = http.get("/v1/opportunities/at-risk", params={"k": 200}, headers=MANAGER)
        assert at_risk.status_code == 200, at_risk.text
        items = at_risk.json()["items"]
        assert items and all(i["reasons"] for i in items[:10])  # the deals most at risk say why
        deal = http.get(f"/v1/opportunities/{items[0]['opportunity_id']}", headers=FORECASTER)
        assert deal.status_code == 200, deal.text
        assert len(deal.json()["weekly_close_probability"]) == 13
        alerts = http.get("/v1/alerts", headers=MANAGER)
        assert alerts.status_code == 200, alerts.text
        assert alerts.json()["alerts"], "the weekly job's alerts are not served"
        assert any(i["rules"] for i in items), "no at-risk deal carries the rules that fired on it"
        # the next step walks this CRM's own milestone list: never one it does not track
        steps = [i["missing_milestone"]["milestone"] for i in items if i["missing_milestone"]]
        assert steps and "sample_poc_passed" not in steps
        texts = " ".join(r["text"] for i in items for r in i["reasons"])
        assert "sample poc passed" not in texts
        # the manager's page renders the imported pipeline (signed in through the form)
        signed_in = http.post("/dashboard/login", data={"key": MANAGER["X-API-Key"], "lang": "en"})
        assert signed_in.status_code == 303, signed_in.text
        assert http.get("/dashboard?lang=en").status_code == 200
        assert http.get("/v1/opportunities/at-risk?k=1").status_code == 200  # what the page calls
