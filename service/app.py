"""The FastAPI app: ``create_app(settings)`` assembles it; the routes live in ``service.api.routes``.

Run with ``funnelcast serve`` (uvicorn, factory mode). Every route validates its input (422 names
the field), authenticates by API key and role, and never lets a dependency failure become a 500
where a degraded answer is possible. The edges (Feast, MLflow, shared state) open once, in the
lifespan, as one ``Runtime`` the routes reach through typed dependencies (``service.api.deps``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.directory import DirectoryMissing
from features.store import OnlineStoreUnavailable
from funnelcast.core.settings import Settings, get_settings
from funnelcast.core.shared_clock import ClockUnavailable
from service.api.routes import (
    accounts,
    alerts,
    dashboard,
    events,
    forecast,
    leads,
    models,
    monitoring,
    ops,
    scheduler,
)
from service.api.routes import clock as clock_routes
from service.errors import FieldError, document_errors, http_error, invalid, unavailable, validation_error
from service.ingest import IngestUnavailable
from service.limits import RequestLimits
from service.observability import Metrics, TimingMiddleware, configure_logging
from service.routing.router import RepDirectoryUnavailable
from service.routing.state import RoutingStateUnavailable
from service.rules import load_rules
from service.runtime import Runtime
from service.scoring import InvalidLeadInput, ModelNotLoaded


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = Runtime.start(app.state.settings, app.state.rules, app.state.metrics)
    app.state.runtime = runtime
    yield
    runtime.stop()


async def refused(request: Request, exc: InvalidLeadInput) -> JSONResponse:
    """422 naming every lead field the champion refuses (required by it, or an attribute it does
    not know or cannot read), in the one validation-error shape (``ValidationErrorOut``)."""
    fields = [FieldError(field=name, message=message) for name, message in exc.fields()]
    return JSONResponse(status_code=422, content=validation_error(fields).model_dump(mode="json"))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    app = FastAPI(
        title="funnelcast",
        version="1",
        summary="Lead scoring, routing and forecasting for B2B sales teams.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rules = load_rules(
        settings.rules_path
    )  # a bad rules file stops the start, with line and reason
    app.state.metrics = Metrics()
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
    )  # inside the timing, so refusals are counted; before routing, auth and body parsing
    app.add_middleware(TimingMiddleware, metrics=app.state.metrics)
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidLeadInput, refused)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ModelNotLoaded, unavailable)
    app.add_exception_handler(DirectoryMissing, unavailable)
    app.add_exception_handler(RoutingStateUnavailable, unavailable)
    app.add_exception_handler(OnlineStoreUnavailable, unavailable)
    app.add_exception_handler(RepDirectoryUnavailable, unavailable)
    app.add_exception_handler(IngestUnavailable, unavailable)
    app.add_exception_handler(ClockUnavailable, unavailable)
    routers = (
        leads,
        events,
        models,
        forecast,
        accounts,
        alerts,
        monitoring,
        dashboard,
        ops,
        clock_routes,
        scheduler,
    )
    for module in routers:
        app.include_router(module.router)
    document_errors(app)
    return app
