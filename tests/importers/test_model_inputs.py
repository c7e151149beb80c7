"""The inputs a lead model declares, and the one check of a request's custom attributes."""

from __future__ import annotations

from datetime import UTC, datetime

from features.importers.manifest import AttributeSpec, ImportManifest
from features.importers.model_inputs import check_attributes, lead_inputs


def manifest() -> ImportManifest:
    return ImportManifest(
        kind="leads",
        export="x.csv",
        mapping="m.yaml",
        mapping_sha256="0" * 64,
        imported_at=datetime(2024, 7, 1, tzinfo=UTC),
        as_of=datetime(2024, 7, 1, tzinfo=UTC),
        undated=False,
        time_source="created_at",
        fields=["created_at", "country"],
        attributes=[
            AttributeSpec(name="visits", column="Visits", type="numeric"),
            AttributeSpec(name="source", column="Source", type="categorical", levels=["web", "fair", "expo"]),
        ],
    )


def test_a_world_model_reads_the_request_fields_and_an_import_only_what_its_mapping_filled() -> None:
    world = {i.name for i in lead_inputs(None, {})}
    assert {"channel", "contact_role", "product_interest", "country"} <= world
    inputs = lead_inputs(manifest(), {"lead_attributes__source": ("fair", "web")})
    assert [(i.name, i.source, i.type) for i in inputs] == [
        ("country", "field", "text"),
        ("visits", "attribute", "numeric"),
        ("source", "attribute", "categorical"),
    ]
    assert inputs[2].levels == ["fair", "web"]  # the trained model's levels, not every level in the export


def test_attributes_are_checked_against_the_declared_inputs_and_missing_ones_are_named() -> None:
    inputs = lead_inputs(manifest(), {"lead_attributes__source": ("fair", "web")})
    ok = check_attributes({"visits": "3", "source": "web"}, inputs)
    assert ok.values == {"visits": 3.0, "source": "web"} and not ok.missing and not ok.errors
    partial = check_attributes({"source": "fair"}, inputs)
    assert partial.missing == ["missing:visits"] and not partial.errors
    bad = check_attributes({"visits": "many", "source": "expo", "colour": "red"}, inputs)
    assert bad.errors == [
        "attributes.colour: not an input of this model (its attributes: visits, source)",
        "attributes.visits: 'many' is not a number",
        "attributes.source: 'expo' is not a level the model knows (fair, web)",
    ]
