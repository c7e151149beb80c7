"""Bundle mapping rules on a hand-written two-deal CRM: no world, no files (pure ``map_bundle``)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.importers.bundle_mappers import UnmappedValueError, map_bundle
from features.importers.bundle_mapping import BundleMapping


def frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    out = pd.DataFrame(rows).astype(object)
    out.index = pd.RangeIndex(1, len(out) + 1)
    return out


FILES = {
    "leads.csv": frame([{"id": "L1", "created": "2024-01-02T09:00:00Z"}]),
    "deals.csv": frame(
        [
            {
                "id": "D1",
                "created": "2024-01-05T10:00:00Z",
                "stage": "won",
                "closedate": "2024-03-01T00:00:00Z",
            },
            {
                "id": "D2",
                "created": "2024-01-06T10:00:00Z",
                "stage": "pilot",
                "closedate": "2024-06-01T00:00:00Z",
            },
        ]
    ),
    "history.csv": frame(
        [  # one property-history file: stages, close dates, a checkbox; no old values (HubSpot-shaped)
            {"obj": "D1", "prop": "dealstage", "value": "new", "ts": "2024-01-05T10:00:00Z"},
            {"obj": "D1", "prop": "closedate", "value": "2024-02-01T00:00:00Z", "ts": "2024-01-05T10:00:00Z"},
            {"obj": "D1", "prop": "dealstage", "value": "pilot", "ts": "2024-01-20T10:00:00Z"},
            {"obj": "D1", "prop": "dealstage", "value": "pilot", "ts": "2024-01-25T10:00:00Z"},  # no change
            {"obj": "D1", "prop": "budget_ok", "value": "true", "ts": "2024-01-22T10:00:00Z"},
            {"obj": "D1", "prop": "closedate", "value": "2024-03-01T00:00:00Z", "ts": "2024-03-01T08:00:00Z"},
            {"obj": "D1", "prop": "dealstage", "value": "won", "ts": "2024-03-01T08:00:00Z"},
            {"obj": "D2", "prop": "dealstage", "value": "new", "ts": "2024-01-06T10:00:00Z"},
            {"obj": "D2", "prop": "closedate", "value": "2024-06-01T00:00:00Z", "ts": "2024-01-06T10:00:00Z"},
            {"obj": "D2", "prop": "dealstage", "value": "pilot", "ts": "2024-02-10T10:00:00Z"},
        ]
    ),
    "notes.csv": frame(
        [
            {
                "deal": "D1",
                "at": "2024-01-10T10:00:00Z",
                "kind": "call",
                "text": "Customer says price too high",
            },
            {"deal": "D1", "at": "2024-01-11T10:00:00Z", "kind": "call", "text": "Great demo, they love it"},
            {"deal": "D2", "at": "2024-01-12T10:00:00Z", "kind": "CALL", "text": "left a voicemail"},
        ]
    ),
}

MAPPING = {
    "kind": "bundle",
    "dates": {"format": "ISO8601"},
    "objects": [
        {"file": "leads.csv", "table": "leads", "columns": {"lead_id": "id", "created_at": "created"}},
        {
            "file": "deals.csv",
            "table": "opportunities",
            "columns": {
                "opportunity_id": "id",
                "created_at": "created",
                "outcome": "stage",
                "expected_close_at": "closedate",
            },
            "values": {"outcome": {"won": "won", "lost": "lost", "*": "open"}},
            "history": {
                "file": "history.csv",
                "id": "obj",
                "field": "prop",
                "new_value": "value",
                "at": "ts",
                "fields": ["closedate"],
            },
        },
        {
            "file": "notes.csv",
            "table": "activities",
            "columns": {"opportunity_id": "deal", "ts": "at", "activity_type": "kind"},
            "values": {"activity_type": {"call": "call"}},
            "sentiment_rule": {
                "text": "text",
                "resistant": ["too high", "not interested"],
                "positive": ["love"],
            },
        },
    ],
    "stage_history": {
        "file": "history.csv",
        "opportunity": "obj",
        "stage": "value",
        "at": "ts",
        "where": {"prop": ["dealstage"]},
    },
    "stages": {"new": "lead_captured", "pilot": "technical_exchange", "won": None, "lost": None},
    "field_history": {"file": "history.csv", "id": "obj", "field": "prop", "new_value": "value", "at": "ts"},
    "milestones": {"budget_confirmed": {"field": "budget_ok"}, "pilot_started": {"stage": "pilot"}},
}


def test_histories_stages_custom_milestones_closes_and_a_sentiment_rule() -> None:
    tables = map_bundle(FILES, BundleMapping.model_validate(MAPPING)).tables
    deals = tables["opportunities"].set_index("opportunity_id")
    # the close date as first entered (not the overwritten one); closed at the entry into "won"
    assert deals.loc["D1", "expected_close_at"] == pd.Timestamp("2024-02-01", tz="UTC")
    assert deals.loc["D1", "closed_at"] == pd.Timestamp("2024-03-01 08:00", tz="UTC")
    assert deals.loc["D2", "outcome"] == "open" and pd.isna(deals.loc["D2", "closed_at"])
    stages = tables["stage_events"]
    assert stages[stages["opportunity_id"] == "D1"]["stage"].tolist() == [
        "lead_captured",
        "technical_exchange",
    ]
    events = tables["milestone_events"].set_index(["opportunity_id", "milestone"])["ts"]
    assert events[("D1", "budget_confirmed")] == pd.Timestamp("2024-01-22 10:00", tz="UTC")
    assert events[("D2", "pilot_started")] == pd.Timestamp("2024-02-10 10:00", tz="UTC")  # a custom milestone
    activities = tables["activities"].sort_values("ts")
    assert activities["sentiment"].tolist() == ["resistant", "positive", "neutral"]
    assert activities["activity_type"].tolist() == [
        "call",
        "call",
        "call",
    ]  # values compare case-insensitively


def test_a_picklist_value_outside_a_closed_value_map_is_named() -> None:
    mapping = BundleMapping.model_validate(MAPPING)
    notes = FILES["notes.csv"].copy()
    notes.loc[2, "kind"] = "fax"
    with pytest.raises(
        UnmappedValueError,
        match=r"notes\.csv: column 'kind' holds values the mapping does not map: \['fax'\]",
    ):
        map_bundle({**FILES, "notes.csv": notes}, mapping)
