"""A bundle's leads object can declare custom attributes; they reach the lead model as a leads import's do.

The tiny world is written as a Salesforce export, its Lead.csv given two custom columns (a rating
that mostly says whether the lead converted, and a page-view count), and the shipped mapping given
an ``attributes`` block on the Lead object. The bundle import writes the attribute table and the
leads manifest; the unchanged feature build, Feast apply, materialisation and training then give a
lead champion on ``lead_score_import_v1`` that declares both attributes and leans on the rating.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.importers.errors import MappingError, UnparseableValuesError
from features.importers.manifest import load_manifest
from features.jobs.raw import read_raw
from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from features.world.crm_export import example_mapping_path, export_world, write_export
from features.world.generate import WorldSummary
from funnelcast.core.settings import Settings
from tests.conftest import with_mlflow
from training.registry import load_version, mlflow_client
from training.run import train_model

pytestmark = pytest.mark.integration


def attributed_export(world: Settings, folder) -> tuple:  # type: ignore[no-untyped-def]
    """The world as a Salesforce export with Rating__c and Page_Views__c on Lead.csv, and the
    shipped mapping with those declared as custom attributes of the Lead object."""
    raw = read_raw(world.raw_dir)
    mapping = load_bundle_mapping(example_mapping_path("salesforce"))
    files = export_world(raw, mapping, "salesforce")
    leads = files["Lead.csv"]
    converted = leads["Id"].map(raw["leads"].set_index("lead_id")["converted"]).fillna(False).to_numpy(bool)
    rng = np.random.default_rng(4)
    honest = rng.random(len(leads)) < 0.8  # the rating says the truth for 80% of leads
    hot = np.where(honest, converted, ~converted)
    leads["Rating__c"] = np.where(hot, "Hot", rng.choice(["Warm", "Cold"], len(leads)))
    leads["Page_Views__c"] = rng.poisson(4, len(leads)).astype(str)
    write_export(files, folder / "export")
    document = yaml.safe_load(example_mapping_path("salesforce").read_text(encoding="utf-8"))
    lead_object = next(o for o in document["objects"] if o["table"] == "leads")
    lead_object["attributes"] = {
        "numeric": ["Page_Views__c"],
        "categorical": [{"column": "Rating__c", "name": "rating"}],
    }
    mapping_path = folder / "salesforce_attributes.yaml"
    mapping_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder / "export", mapping_path, document


def test_custom_attributes_declared_in_a_bundle_reach_the_lead_model(
    tiny_world: tuple[Settings, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> None:
    world, _ = tiny_world
    folder = tmp_path_factory.mktemp("bundle_attributes")
    export, mapping_path, _ = attributed_export(world, folder)
    settings = with_mlflow(Settings(data_dir=folder / "data", feast_project="bundle_attrs"), folder)
    report = import_bundle(settings, export, mapping_path)
    assert "custom lead attributes: page_views_c:numeric, rating:categorical" in report.notes
    manifest = load_manifest(settings.raw_dir, "leads")
    assert manifest is not None and [a.name for a in manifest.attributes] == ["page_views_c", "rating"]
    assert {"channel", "contact_role", "product_interest"} <= set(manifest.fields)
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    materialize(store, latest_feature_time(settings))
    run = train_model(settings, "lead")
    model = load_version(mlflow_client(settings), "lead_score", run.version)
    assert model.metadata["feature_service"] == "lead_score_import_v1"
    inputs = {i["name"]: i for i in model.metadata["inputs"]}
    assert inputs["rating"]["source"] == "attribute" and sorted(inputs["rating"]["levels"]) == [
        "Cold",
        "Hot",
        "Warm",
    ]
    assert inputs["page_views_c"]["type"] == "numeric"
    assert inputs["channel"]["source"] == "field"  # the bundle's canonical fields stay inputs too
    # the rating says the label for 80% of leads: the model leans on it above everything else
    assert model.importance().index[0] == "lead_attributes__rating"
    assert run.metrics["roc_auc"] > 0.75


def test_bundle_attributes_are_checked_when_the_mapping_is_read_and_the_export_mapped(
    tiny_world: tuple[Settings, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> None:
    world, _ = tiny_world
    folder = tmp_path_factory.mktemp("bundle_attributes_bad")
    export, mapping_path, document = attributed_export(world, folder)
    account = next(o for o in document["objects"] if o["table"] == "companies")
    account["attributes"] = {"numeric": ["NumberOfEmployees"]}
    wrong_object = folder / "wrong_object.yaml"
    wrong_object.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    with pytest.raises(MappingError, match="leads object only"):
        load_bundle_mapping(wrong_object)
    frame = pd.read_csv(export / "Lead.csv", dtype=str, keep_default_na=False)
    frame.loc[2, "Page_Views__c"] = "lots"
    frame.to_csv(export / "Lead.csv", index=False)
    with pytest.raises(UnparseableValuesError, match=r"Page_Views__c.*rows 3"):
        import_bundle(Settings(data_dir=folder / "data"), export, mapping_path)
