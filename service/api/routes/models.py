"""Models: what is live, and a hot reload from the registry."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from features.importers.model_inputs import inputs_of
from service import schemas
from service.api.deps import ADMIN, ANYONE, MetricsDep, ModelsDep, RuntimeDep
from service.errors import errors
from service.live_models import MODEL_NAMES
from service.scoring import ModelNotLoaded

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=list[schemas.LiveModelOut], dependencies=[ANYONE])
def live_models(models: ModelsDep) -> list[schemas.LiveModelOut]:
    """What is live, which version, from where, since when, with its logged metrics; and what is broken."""
    return schemas.LiveModelOut.listing(models)


@router.get(
    "/v1/models/{name}",
    response_model=schemas.LiveModelDetail,
    dependencies=[ANYONE],
    responses=errors(404, 503),
)
def live_model(name: str, models: ModelsDep) -> schemas.LiveModelDetail:
    """One live model, and for the lead model the inputs a scoring request may carry: the fields
    it reads (required or optional) and its custom attributes with their types and levels."""
    if name not in MODEL_NAMES:
        raise HTTPException(404, f"no model named {name!r} (models: {', '.join(MODEL_NAMES)})")
    live = models.get(name)
    if live is None:
        why = models.broken().get(name)
        raise ModelNotLoaded(f"no {name} champion is loaded" + (f": {why}" if why else ""))
    inputs = inputs_of(live.model.metadata) if name == "lead_score" else []
    return schemas.LiveModelDetail.detail(live, inputs)


@router.post("/v1/models/reload", response_model=schemas.ReloadOut, dependencies=[ADMIN])
def reload_models(models: ModelsDep, metrics: MetricsDep, runtime: RuntimeDep) -> schemas.ReloadOut:
    """Pick up newly promoted champions now, in every worker and replica sharing this routing state
    (also done by polling every model_poll_seconds)."""
    changed, errors = models.reload()
    runtime.reloads.announce()  # the other workers follow (service/reload_signal.py)
    metrics.publish_versions(models.all())
    return schemas.ReloadOut(models=schemas.LiveModelOut.listing(models), changed=changed, errors=errors)
