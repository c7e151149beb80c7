"""World -> Salesforce / HubSpot export -> bundle import rebuilds the canonical tables, table for table.

The export is written from the tiny world through the shipped bundle mapping's names (real API field
names, CRM stage names, current values with field history, CRLF); importing it back through the same
mapping must give the world's tables. The one loss is Salesforce's CloseDate, a Date field: the rep's
expected close comes back at midnight of its day.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.importers.bundle_mappers import UnmappedValueError
from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.importers.errors import MappingError
from features.jobs.raw import read_raw
from features.schema import CANONICAL_TABLES
from features.world.crm_export import example_mapping_path, export_world, write_export
from features.world.generate import WorldSummary
from funnelcast.cli import app
from funnelcast.core.settings import Settings

SORT_KEYS = {"rep_languages": ["rep_id", "language"], "commodity_prices": ["commodity", "date"]}


def canonical(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows in one order, "" as missing (a CSV cell cannot tell them apart)."""
    keys = SORT_KEYS.get(name, list(frame.columns[:3]))
    out = frame.sort_values(keys, kind="stable", ignore_index=True).replace("", None)
    return out.astype({c: object for c in out.columns if out[c].dtype == "boolean"})


@pytest.fixture(scope="module")
def round_trips(
    tiny_world: tuple[Settings, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, pd.DataFrame], Path]]:
    """The tiny world exported in each format and imported back (once per module): tables, export dir."""
    world, _ = tiny_world
    raw = read_raw(world.raw_dir)
    out = {}
    for fmt in ("salesforce", "hubspot"):
        tmp = tmp_path_factory.mktemp(f"roundtrip_{fmt}")
        mapping = example_mapping_path(fmt)
        write_export(export_world(raw, load_bundle_mapping(mapping), fmt), tmp / "export")
        import_bundle(Settings(data_dir=tmp / "data"), tmp / "export", mapping)
        out[fmt] = (read_raw(tmp / "data" / "raw"), tmp / "export")
    return out


@pytest.mark.parametrize("fmt", ["salesforce", "hubspot"])
def test_a_world_export_imports_back_to_the_same_canonical_tables(
    tiny_world: tuple[Settings, WorldSummary], round_trips: dict, fmt: str
) -> None:
    world, _ = tiny_world
    native = read_raw(world.raw_dir)
    imported, export = round_trips[fmt]
    assert b"\r\n" in (export / next(p.name for p in export.iterdir())).read_bytes()
    for name in CANONICAL_TABLES:
        expected, got = canonical(native[name], name), canonical(imported[name], name)
        if fmt == "salesforce" and name == "opportunities":  # CloseDate is a Date field
            expected["expected_close_at"] = expected["expected_close_at"].dt.floor("D")
        assert len(got) == len(expected), name
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=f"{fmt} {name}")


def test_the_salesforce_export_uses_real_objects_stage_names_and_history(round_trips: dict) -> None:
    _, export = round_trips["salesforce"]
    names = {p.name for p in export.iterdir()}
    assert {
        "Lead.csv",
        "Account.csv",
        "Opportunity.csv",
        "OpportunityHistory.csv",
        "OpportunityFieldHistory.csv",
        "Task.csv",
        "Event.csv",
        "AccountHistory.csv",
    } <= names
    history = pd.read_csv(export / "OpportunityHistory.csv")
    assert {"Prospecting", "Closed Won", "Closed Lost"} <= set(history["StageName"])
    fields = pd.read_csv(export / "OpportunityFieldHistory.csv")
    assert {"CloseDate", "Budget_Confirmed__c", "Contract_Stamped__c"} <= set(fields["Field"])
    lead = pd.read_csv(export / "Lead.csv", nrows=5)
    assert {"Id", "CreatedDate", "LeadSource", "IsConverted", "OwnerId"} <= set(lead.columns)


def test_a_stage_the_mapping_does_not_know_is_named(round_trips: dict, tmp_path: Path) -> None:
    _, export = round_trips["salesforce"]
    mapping = yaml.safe_load(example_mapping_path("salesforce").read_text())
    del mapping["stages"]["Negotiation/Review"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    with pytest.raises(UnmappedValueError, match=r"OpportunityHistory\.csv: stages \['Negotiation/Review'\]"):
        import_bundle(Settings(data_dir=tmp_path / "data"), export, path)
    mapping["stages"]["Negotiation/Review"] = "haggling"
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    with pytest.raises(MappingError, match="not canonical stages"):
        import_bundle(Settings(data_dir=tmp_path / "data"), export, path)


def test_world_export_and_import_bundle_run_from_the_cli(
    tiny_world: tuple[Settings, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    runner = CliRunner()
    exported = runner.invoke(
        app,
        ["world", "export", str(tmp_path / "hs"), "--format", "hubspot", "--data-dir", str(world.data_dir)],
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "hs" / "deal_property_history.csv").exists()
    imported = runner.invoke(
        app,
        [
            "import",
            "bundle",
            str(tmp_path / "hs"),
            "--mapping",
            str(example_mapping_path("hubspot")),
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert imported.exit_code == 0, imported.output
    assert "stage changes" in imported.output
    wrong = runner.invoke(
        app, ["import", "leads", str(tmp_path / "hs"), "--mapping", str(example_mapping_path("hubspot"))]
    )
    assert wrong.exit_code == 2 and "one export file" in wrong.output
