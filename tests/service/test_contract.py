"""The API's contract over real HTTP: what the OpenAPI document says is what the server sends.

A bounded, derandomised Schemathesis run calls every operation with each role's key, with valid
and invalid input; every answer must be documented (status, content type, body schema) and none a
5xx. Error bodies come from one documented model each: ``ValidationErrorOut`` for every 422
(pydantic's and the routes' own), ``ErrorOut`` for the rest, the JSON 500 net included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from funnelcast.core.settings import Settings
from service.api import deps
from service.app import create_app
from tests.service.conftest import CRM, lead, running, service_settings
from tests.service.test_hardening import one_connection

pytestmark = pytest.mark.integration
MANAGER = {"X-API-Key": "demo-manager-key"}
# the columnar batch takes an Arrow IPC stream: generated bodies are sent as the raw bytes they are
# (random bytes must be a 422 naming the body, never a 500)
schemathesis.serializer.alias("application/vnd.apache.arrow.stream", "application/octet-stream")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and mode, bounded so the whole run stays well under a minute: the admin key
# reaches every handler, so it gets the most; each other role mostly meets its 403 or its own routes.
EXAMPLES = {"admin": 3}
EXAMPLES_OTHER_ROLES = 2


def conforms(body: Any, document: dict[str, Any], model: str) -> None:
    """``body`` validates against ``model`` as the OpenAPI document defines it."""
    components = document["components"]["schemas"]
    jsonschema.validate(
        body, {"$ref": f"#/components/schemas/{model}", "components": {"schemas": components}}
    )


def documented(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, (path, method, status, sorted(responses))
    return responses[str(status)]


def fuzz(
    operation: schemathesis.APIOperation,
    base: str,
    headers: dict[str, str],
    mode: GenerationMode,
    examples: int,
) -> int:
    """Call ``operation`` with up to ``examples`` generated requests; raise on the first that fails a
    check. Returns how many calls were made."""
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    calls = 0

    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        response = case.call(base_url=base, headers=headers, timeout=30)
        case.validate_response(response, checks=checks, headers=headers)

    try:
        call()
    except hypothesis.errors.Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # an operation without parameters or body (/healthz): no invalid request exists
    return calls


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    with running(settings) as http:
        base = str(http.base_url).rstrip("/")
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        failures: list[str] = []
        calls = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            for key, role in settings.api_keys.items():
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        examples = EXAMPLES.get(role, EXAMPLES_OTHER_ROLES)
                        calls += fuzz(operation, base, {"X-API-Key": key}, mode, examples)
                    except BaseException as err:  # Schemathesis raises a BaseExceptionGroup; collect all
                        failures.append(f"{operation.label} as {role} ({mode.value}): {err}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert calls > 100, calls  # bounded by EXAMPLES; its time is the suite's, not a budget asserted here


def test_every_422_has_the_one_documented_validation_model(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        document = http.get("/openapi.json").json()
        answers = {
            # pydantic's own
            ("/v1/leads/score", "post"): http.post(
                "/v1/leads/score", json=lead("v1", created_at=0), headers=CRM
            ),
            # raised by the routes themselves
            ("/v1/alerts", "get"): http.get("/v1/alerts", params={"rule": "no_such_rule"}, headers=MANAGER),
            ("/v1/outcomes", "post"): http.post("/v1/outcomes", json={"kind": "converted"}, headers=CRM),
            ("/v1/leads/score:batch", "post"): http.post(
                "/v1/leads/score:batch", json={"leads": [lead("d1"), lead("d1")]}, headers=CRM
            ),
            ("/v1/forecast/weekly", "get"): http.get(
                "/v1/forecast/weekly", params={"as_of": "1900-01-01"}, headers=MANAGER
            ),
        }
        expected_field = {
            "/v1/leads/score": "created_at",
            "/v1/alerts": "rule",
            "/v1/outcomes": "lead_id",
            "/v1/leads/score:batch": "leads.lead_id",
            "/v1/forecast/weekly": "as_of",
        }
        for (path, method), r in answers.items():
            assert r.status_code == 422, (path, r.text)
            assert r.headers["content-type"] == "application/json", path
            schema = documented(document, path, method, 422)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationErrorOut"}, path
            body = r.json()
            conforms(body, document, "ValidationErrorOut")
            assert [f["field"] for f in body["fields"]] == [expected_field[path]], body
            assert expected_field[path] in body["detail"], body
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's unused model


def test_error_statuses_are_documented_with_the_json_error_model(
    served_world: Settings, tmp_path: Path
) -> None:
    with running(service_settings(served_world, tmp_path, max_body_bytes=1024)) as http:
        document = http.get("/openapi.json").json()
        cases = [
            (http.get("/v1/models"), "/v1/models", "get", 401),
            (http.post("/v1/models/reload", headers=CRM), "/v1/models/reload", "post", 403),
            (
                http.get("/v1/opportunities/nope", headers=MANAGER),
                "/v1/opportunities/{opportunity_id}",
                "get",
                404,
            ),
            (
                http.get("/v1/accounts/nope/churn", headers=MANAGER),
                "/v1/accounts/{account_id}/churn",
                "get",
                404,
            ),
            (
                http.post("/v1/leads/score", content=b"x" * 2048, headers=CRM),  # over the 1024-byte limit
                "/v1/leads/score",
                "post",
                413,
            ),
        ]
        for r, path, method, status in cases:
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"] == "application/json", path
            schema = documented(document, path, method, status)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, path
            conforms(r.json(), document, "ErrorOut")
        # Prometheus text, documented as such (it was documented as JSON)
        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "funnelcast_request_seconds" in metrics.text
        assert list(documented(document, "/metrics", "get", 200)["content"]) == ["text/plain"]
        # a forecast as CSV is documented beside the JSON
        assert set(documented(document, "/v1/forecast/weekly", "get", 200)["content"]) == {
            "application/json",
            "text/csv",
        }


def test_an_unforeseen_error_in_a_route_is_a_documented_json_500_and_keeps_the_connection(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    app = create_app(settings)

    def broken_rules() -> list[object]:
        raise RuntimeError("injected fault: the rules could not be read")

    app.dependency_overrides[deps.get_rules] = broken_rules  # the one test-only seam: a real route fails
    with running(settings, app=app) as http:
        document = http.get("/openapi.json").json()
        streams = one_connection(http)
        r = http.get("/v1/alerts", headers=MANAGER)
        assert r.status_code == 500, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "internal error (logged)"}  # the fault's own text is not leaked
        schema = documented(document, "/v1/alerts", "get", 500)["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorOut"}
        conforms(r.json(), document, "ErrorOut")
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/models", headers=MANAGER).status_code == 200
        assert len(streams) == 1  # the 500 did not close the keep-alive connection
