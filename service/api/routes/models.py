"""Models: what is live, and a hot reload from the registry."""

from __future__ import annotations

from fastapi import APIRouter

from service import schemas
from service.api.deps import ADMIN, ANYONE, MetricsDep, ModelsDep

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=list[schemas.LiveModelOut], dependencies=[ANYONE])
def live_models(models: ModelsDep) -> list[schemas.LiveModelOut]:
    """What is live, which version, from where, since when, with its logged metrics; and what is broken."""
    return schemas.LiveModelOut.listing(models)


@router.post("/v1/models/reload", response_model=schemas.ReloadOut, dependencies=[ADMIN])
def reload_models(models: ModelsDep, metrics: MetricsDep) -> schemas.ReloadOut:
    """Pick up newly promoted champions now (also done by polling every model_poll_seconds)."""
    changed, errors = models.reload()
    metrics.publish_versions(models.all())
    return schemas.ReloadOut(models=schemas.LiveModelOut.listing(models), changed=changed, errors=errors)
