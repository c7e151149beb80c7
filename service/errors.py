"""The API's error contract: every error answer is JSON of one of two documented models.

- ``ValidationErrorOut`` for every 422: the validation handler renders pydantic's errors with it,
  and a route that finds an invalid field itself raises ``invalid_field(...)``, which goes through
  that same handler, so a hand-made 422 cannot differ from pydantic's.
- ``ErrorOut`` for every other error status: 401/403 (auth), 404, 408/413/431 (request limits),
  500 (the net in ``TimingMiddleware``), 503 (a store or model not available).

``document_errors`` writes the statuses each operation can return into its OpenAPI ``responses``,
derived from the operation itself (a body, parameters, an API-key security requirement) plus what
the route declares with ``errors(...)`` (the 404s and 503s its handler raises).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, naming the field, store or limit concerned")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the invalid field, e.g. leads.0.created_at")
    message: str


class ValidationErrorOut(BaseModel):
    detail: str = Field(description="One sentence naming every invalid field and why")
    fields: list[FieldError]


def validation_error(fields: Iterable[FieldError]) -> ValidationErrorOut:
    listed = list(fields)
    names = "; ".join(f"{f.field} ({f.message})" for f in listed)
    return ValidationErrorOut(detail=f"invalid field(s): {names}", fields=listed)


def invalid_field(field: str, message: str) -> RequestValidationError:
    """A 422 a route raises itself, answered by the same handler (and model) as pydantic's."""
    return RequestValidationError([{"type": "value_error", "loc": (field,), "msg": message, "input": None}])


def error_body(detail: str) -> bytes:
    """``ErrorOut`` as bytes, for the ASGI layers (limits, the 500 net) that answer without FastAPI."""
    return ErrorOut(detail=detail).model_dump_json().encode()


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming every invalid field, in one sentence and as a list (``ValidationErrorOut``)."""
    fields = []
    for err in exc.errors():
        if err["type"] == "json_invalid":  # its location is a character offset, not a field
            detail = err.get("ctx", {}).get("error", "")
            fields.append(FieldError(field="body", message=f"{err['msg']}: {detail}".rstrip(": ")))
            continue
        loc = [str(p) for p in err["loc"] if p not in ("body", "query", "path", "header")]
        fields.append(FieldError(field=".".join(loc) or "body", message=str(err["msg"])))
    return JSONResponse(status_code=422, content=validation_error(fields).model_dump(mode="json"))


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """401/403/404/405/503 raised by a route or by routing, as ``ErrorOut`` with the exception's headers."""
    body = ErrorOut(detail=str(exc.detail)).model_dump(mode="json")
    return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 saying what is missing: no champion loaded, no serving directory published, or the
    routing state (or another store) not answering."""
    return JSONResponse(status_code=503, content=ErrorOut(detail=str(exc)).model_dump(mode="json"))


DESCRIPTIONS = {
    400: "The request body could not be read (not UTF-8 JSON)",
    401: "No API key, or an unknown one (send it in X-API-Key or as a Bearer token)",
    403: "The key's role may not call this operation",
    404: "The named entity is not known",
    408: "The request body did not arrive within the body timeout",
    409: "The operation does not apply in the service's current mode (named in detail)",
    413: "The request body is over the size limit",
    422: "Invalid input: every invalid field named, with why",
    431: "The request headers are over the size limit",
    500: "An unforeseen error (logged with its traceback)",
    503: "A model or store this operation needs is not available (named in detail)",
}
_SCHEMAS_REF = "#/components/schemas/{model}"


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error ``codes``: JSON of ``ValidationErrorOut`` (422) or
    ``ErrorOut`` (the rest), whatever the operation's own media type (HTML, CSV, Prometheus text)."""
    return {
        code: {
            "description": DESCRIPTIONS[code],
            "content": {
                "application/json": {
                    "schema": {
                        "$ref": _SCHEMAS_REF.format(
                            model=(ValidationErrorOut if code == 422 else ErrorOut).__name__
                        )
                    }
                }
            },
        }
        for code in codes
    }


def document_errors(app: FastAPI) -> None:
    """Document on every operation the error statuses it can return, with their JSON models.

    Read from each operation as FastAPI documents it: every operation can answer 413 and 431
    (``RequestLimits`` runs before routing) and 500 (the net); one with a body also 400 (bytes
    that are not UTF-8 JSON), 408 (its deadline) and 422; one with parameters 422 (FastAPI's own
    ``HTTPValidationError`` is replaced: it is not what the handler sends); one with an API-key
    security requirement 401 and 403. What a
    route declared itself (its 404s and 503s) is kept.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    _document_operation(operation)
            _, defs = models_json_schema(
                [(ErrorOut, "serialization"), (ValidationErrorOut, "serialization")],
                ref_template=_SCHEMAS_REF,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            components.update(defs["$defs"])
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(operation: dict[str, Any]) -> None:
    codes = [413, 431, 500]
    if "requestBody" in operation:
        codes += [400, 408, 422]
    elif operation.get("parameters"):
        codes.append(422)
    if operation.get("security"):
        codes += [401, 403]
    responses = operation.setdefault("responses", {})
    for code, response in errors(*codes).items():
        if code == 422:
            responses[str(code)] = response
        else:
            responses.setdefault(str(code), response)
