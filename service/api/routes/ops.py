"""Operations: liveness, readiness (each component reports its own health) and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from service.api.deps import FeaturesDep, MetricsDep, ModelsDep, RouterDep

router = APIRouter(tags=["ops"])
log = logging.getLogger("funnelcast.service")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, bool | dict[str, bool]] = Field(
        description="models (loaded, by name), feature_store and routing_state: each answers or not"
    )


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: the checks say what is missing"}},
)
def readyz(models: ModelsDep, features: FeaturesDep, rep_router: RouterDep) -> JSONResponse:
    """Ready when the lead-score champion, the online store and the routing state answer.

    ``problems`` names each component that does not, and why: a broken model (the others are still
    served), a missing online store file, a routing state that does not answer.
    """
    problems: dict[str, str] = {f"model:{name}": why for name, why in models.broken().items()}
    checks: dict[str, Any] = {"models": {n: bool(models.get(n)) for n in models.names}}
    fault = features.fault()
    # a degraded read means the online store did not answer (OnlineFeatures logs why)
    if fault is None and features.lead_features(["__readyz__"])[0].degraded:
        fault = "online store did not answer a read"
    checks["feature_store"] = fault is None
    if fault:
        problems["feature_store"] = fault
    try:
        checks["routing_state"] = rep_router.state.ping()
    except Exception as err:  # any client error: the state store is not usable
        log.warning("routing state not ready", extra={"error": str(err)[:300]})
        checks["routing_state"] = False
        problems["routing_state"] = str(err)[:300]
    ready = checks["models"]["lead_score"] and checks["feature_store"] and checks["routing_state"]
    content = {"ready": ready, "checks": checks, "problems": problems}
    return JSONResponse(status_code=200 if ready else 503, content=content)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(registry: MetricsDep) -> Response:
    """Prometheus text exposition format (not JSON)."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
