"""A champion trained on an import with custom attributes, served for real (uvicorn over HTTP).

The service reads the feature service the champion was trained on (``lead_score_import_v1``):
the company views from the online store, the lead attribute view from the request's
``attributes``, checked against the inputs the champion declares. The world's champion keeps
requiring its own fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from funnelcast.core.settings import Settings
from tests.importers.attribute_leads import LEVELS, Holdout, holdout_requests, imported_lead_champion
from tests.service.conftest import CRM, lead, running, service_settings

pytestmark = pytest.mark.integration


STALE = {"stale:company_behavior", "stale:company_tenders"}


def named(body: dict) -> list[str]:
    """The fields a 422 names (``ValidationErrorOut.fields``), in order."""
    return [f["field"] for f in body["fields"]]


def missing(result: dict) -> list[str]:
    return sorted(d for d in result["degraded"] if d.startswith("missing:"))


@pytest.fixture(scope="module")
def import_champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Holdout]:
    # 2 numeric + 2 categorical attributes: score_1, score_2, segment_1, segment_2
    settings = imported_lead_champion(
        tmp_path_factory.mktemp("attrs_serve"), "attrs_serve", n=1_200, seed=3, numeric=2, categorical=2
    )
    return settings, holdout_requests(settings)


def test_each_holdout_lead_served_with_its_attributes_gets_the_offline_probability(
    import_champion: tuple[Settings, Holdout], tmp_path: Path
) -> None:
    settings, holdout = import_champion
    assert len(holdout.requests) > 100 and holdout.attributes == [
        "score_1",
        "score_2",
        "segment_1",
        "segment_2",
    ]
    with running(service_settings(settings, tmp_path)) as http:
        r = http.post("/v1/leads/score:batch", json={"leads": holdout.requests}, headers=CRM)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
    served = np.array([x["probability"] for x in results])
    # the answer is rounded to 6 decimals (at most 5e-7 off), inside the 1e-6 asked for
    assert np.abs(served - holdout.offline).max() < 1e-6
    # the attributes are what separates these leads: the champion is not answering a constant
    assert np.unique(np.round(served, 6)).size > 20
    assert {x["model"]["feature_service"] for x in results} == {"lead_score_import_v1"}
    for request, result in zip(holdout.requests, results, strict=True):
        blank = sorted(f"missing:{a}" for a in holdout.attributes if a not in request["attributes"])
        # a blank attribute (about 3% each) is named; nothing else is missing (the behaviour and
        # tender views read stale: the export is from 2023, the service's clock is now)
        assert missing(result) == blank, (request, result["degraded"])
        assert not set(result["degraded"]) - set(blank) - STALE


def test_an_attribute_left_out_is_named_missing_and_fields_the_model_does_not_read_are_optional(
    import_champion: tuple[Settings, Holdout], tmp_path: Path
) -> None:
    settings, holdout = import_champion
    full = next(r for r in holdout.requests if len(r["attributes"]) == 4)  # type: ignore[arg-type]
    dropped = {**full, "attributes": {k: v for k, v in full["attributes"].items() if k != "score_1"}}  # type: ignore[union-attr]
    with running(service_settings(settings, tmp_path)) as http:
        # no channel, contact role or product interest: this champion does not read them
        r = http.post("/v1/leads/score?route=false", json=dropped, headers=CRM)
        assert r.status_code == 200, r.text
        assert missing(r.json()) == ["missing:score_1"]
        again = http.post("/v1/leads/score?route=false", json=full, headers=CRM).json()
        assert missing(again) == []
        # a field the champion does not read is accepted and ignored, not fed to the model
        extra = {**full, "channel": "referral", "timezone": "Asia/Tokyo", "country": "JP"}
        assert (
            http.post("/v1/leads/score?route=false", json=extra, headers=CRM).json()["probability"]
            == (again["probability"])
        )


def test_a_bad_level_type_or_name_of_an_attribute_is_a_422_naming_it(
    import_champion: tuple[Settings, Holdout], tmp_path: Path
) -> None:
    settings, holdout = import_champion
    full = holdout.requests[0]

    def send(**attributes: object) -> tuple[int, dict]:
        body = {**full, "attributes": {**full["attributes"], **attributes}}  # type: ignore[dict-item]
        r = http.post("/v1/leads/score?route=false", json=body, headers=CRM)
        return r.status_code, r.json()

    with running(service_settings(settings, tmp_path)) as http:
        status, body = send(segment_1="omega")
        assert status == 422 and named(body) == ["attributes.segment_1"]
        assert all(level in body["fields"][0]["message"] for level in LEVELS)
        status, body = send(score_2="many")
        assert status == 422 and named(body) == ["attributes.score_2"]
        status, body = send(score_1=True)  # a boolean is not a number
        assert status == 422 and named(body) == ["attributes.score_1"]
        status, body = send(score_1=[1, 2])  # not a scalar: refused by the request model itself
        assert status == 422 and named(body)[0].startswith("attributes.score_1")
        status, body = send(colour="red")
        assert status == 422 and "attributes.colour" in named(body)
        batch = http.post(
            "/v1/leads/score:batch",
            json={"leads": [full, {**holdout.requests[1], "attributes": {"segment_2": 7}}]},
            headers=CRM,
        )
        assert batch.status_code == 422 and named(batch.json()) == ["leads.1.attributes.segment_2"]


def test_the_model_route_lists_the_inputs_a_caller_may_send(
    import_champion: tuple[Settings, Holdout], tmp_path: Path
) -> None:
    settings, _ = import_champion
    with running(service_settings(settings, tmp_path)) as http:
        r = http.get("/v1/models/lead_score", headers=CRM)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["feature_service"] == "lead_score_import_v1"
        inputs = {i["name"]: i for i in body["inputs"]}
        assert set(inputs) == {"score_1", "score_2", "segment_1", "segment_2"}
        assert inputs["score_1"] == {
            "name": "score_1",
            "source": "attribute",
            "type": "numeric",
            "levels": [],
            "required": False,
        }
        assert sorted(inputs["segment_1"]["levels"]) == sorted(LEVELS)
        assert http.get("/v1/models/nope", headers=CRM).status_code == 404
        schema = http.get("/openapi.json").json()
        assert "inputs" in schema["components"]["schemas"]["LiveModelDetail"]["properties"]


def test_the_world_champion_still_requires_its_fields_and_refuses_attributes(
    served_world: Settings, tmp_path: Path
) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        inputs = {i["name"]: i for i in http.get("/v1/models/lead_score", headers=CRM).json()["inputs"]}
        assert {n for n, i in inputs.items() if i["required"]} == {
            "channel",
            "contact_role",
            "product_interest",
        }
        assert inputs["country"]["required"] is False and "referral" in inputs["channel"]["levels"]
        ok = http.post("/v1/leads/score", json=lead("w-1"), headers=CRM)
        assert ok.status_code == 200 and ok.json()["degraded"] == []
        r = http.post("/v1/leads/score", json=lead("w-2", channel=None, contact_role=None), headers=CRM)
        assert r.status_code == 422 and named(r.json()) == ["channel", "contact_role"]
        r = http.post("/v1/leads/score", json=lead("w-3", attributes={"visits": 3}), headers=CRM)
        assert r.status_code == 422 and named(r.json()) == ["attributes.visits"]
        # re-routing refuses the same lead before it releases anything
        r = http.post("/v1/leads/route", json={"lead": lead("w-4", product_interest=None)}, headers=CRM)
        assert r.status_code == 422 and named(r.json()) == ["lead.product_interest"]
        # a world lead whose place cannot be known or inferred is scored, and says what it lacked
        r = http.post(
            "/v1/leads/score", json=lead("w-5", country=None, timezone=None, language=None), headers=CRM
        )
        assert r.status_code == 200
        assert {"missing:country", "missing:timezone", "missing:language"} <= set(r.json()["degraded"])
