"""Leads: score (one or a batch), re-route, and outcomes reported by the CRM.

The handlers are plain ``def``: scoring, Feast reads and the routing state block, so FastAPI runs
them in its thread pool and the event loop stays free for health checks and other requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from funnelcast.core import clock
from service import schemas
from service.api.deps import CRM, FeaturesDep, MetricsDep, ModelsDep, RouterDep, ServedDep, champion
from service.errors import errors, invalid_field
from service.lead_columns import ARROW_STREAM, InvalidColumn, answer_stream, read_stream, score_columns
from service.live_models import LiveModels
from service.monitoring.served_log import ServedRecorder
from service.observability import Metrics
from service.online_features import OnlineFeatures
from service.reasons import language_of
from service.routing.router import Router
from service.routing.state import LEAD_OUTCOMES, apply_outcome
from service.scoring import InvalidLeadInput, ScoredLead, score_leads, validate_leads

# scoring answers 503 without a lead champion; routing and outcomes without the routing state
router = APIRouter(tags=["leads"], dependencies=[CRM], responses=errors(503))


def scored(
    models: LiveModels,
    features: OnlineFeatures,
    rep_router: Router,
    route: bool,
    metrics: Metrics,
    leads: list[schemas.LeadIn],
    explain: bool,
    accept: str | None,
    exclude: dict[str, frozenset[str]] | None = None,
    served: ServedRecorder | None = None,
) -> list[ScoredLead]:
    """Score (and route, given ``route``) and count what was degraded and how routing went."""
    ready = rep_router if route and rep_router.ready() else None
    results = score_leads(
        leads,
        champion(models, "lead_score"),  # none live: a 503 naming it (and why, if broken)
        features,
        ready,
        explain=explain,
        lang=language_of(accept),
        exclude=exclude,
        served=served,
        roster=rep_router.roster(),  # scoring reads the routing facts whether or not it routes
    )
    if route and ready is None:  # no rep directory (e.g. online store down since start)
        for r in results:
            r.degraded.append("routing")
    for r in results:
        for source in r.degraded:
            metrics.degraded.labels(source.split(":")[0]).inc()
        if route:
            metrics.routed.labels("assigned" if r.routing and r.routing.rep_id else "queued").inc()
    return results


@router.post("/v1/leads/score", response_model=schemas.LeadScore)
def score_lead(
    lead: schemas.LeadIn,
    models: ModelsDep,
    features: FeaturesDep,
    rep_router: RouterDep,
    metrics: MetricsDep,
    served: ServedDep,
    explain: Annotated[bool, Query(description="Add reason codes from SHAP contributions")] = True,
    route: Annotated[bool, Query(description="Also route the lead to a rep")] = True,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    """Score one new lead (probability, 0-100 score, grade, reasons) and route it."""
    results = scored(
        models,
        features,
        rep_router,
        route,
        metrics,
        [lead],
        explain,
        accept_language,
        served=served,
    )
    return _json(schemas.LeadScore.of(results[0]))


@router.post("/v1/leads/score:batch", response_model=schemas.LeadBatchOut)
def score_batch(
    body: schemas.LeadBatchIn,
    models: ModelsDep,
    features: FeaturesDep,
    rep_router: RouterDep,
    metrics: MetricsDep,
    served: ServedDep,
    explain: bool = False,
    route: bool = False,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    """Score up to 1,000 leads in one call (routing off by default: batches are usually backfills)."""
    ids = [lead.lead_id for lead in body.leads]
    if len(set(ids)) != len(ids):
        raise invalid_field("leads.lead_id", "duplicate ids in one batch")
    try:
        results = scored(
            models,
            features,
            rep_router,
            route,
            metrics,
            body.leads,
            explain,
            accept_language,
            served=served,
        )
    except InvalidLeadInput as err:
        raise InvalidLeadInput(err.errors, "leads.{i}.") from None
    return _json(schemas.LeadBatchOut.model_construct(results=[schemas.LeadScore.of(r) for r in results]))


@router.post(
    "/v1/leads/score:columns",
    response_class=Response,
    responses={200: {"description": "The scored rows", "content": {ARROW_STREAM: {}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def score_lead_columns(
    request: Request, models: ModelsDep, features: FeaturesDep, rep_router: RouterDep
) -> Response:
    """Score a backfill given as columns (an Arrow IPC stream, ``service/lead_columns.py``): the
    same probabilities as the JSON batch, checked and scored column by column; no routing or reasons."""
    body = await request.body()
    model = champion(models, "lead_score")

    def scored_stream() -> bytes:  # off the event loop: parsing and scoring block
        try:
            leads, predicted = score_columns(read_stream(body), model, features, rep_router.roster())
        except InvalidColumn as err:
            raise invalid_field(err.column, err.why) from None
        return answer_stream(leads, predicted, model)

    return Response(await run_in_threadpool(scored_stream), media_type=ARROW_STREAM)


@router.post("/v1/leads/route", response_model=schemas.LeadScore)
def reroute(
    body: schemas.RouteIn,
    models: ModelsDep,
    features: FeaturesDep,
    rep_router: RouterDep,
    metrics: MetricsDep,
    served: ServedDep,
    accept_language: Annotated[str | None, Header()] = None,
) -> schemas.LeadScore:
    """Re-route a lead: its current assignment is released and its current rep excluded."""
    if not rep_router.ready():
        raise HTTPException(503, "routing unavailable: no rep directory")
    try:  # refused before the current assignment is released
        validate_leads([body.lead], models.get("lead_score"))
    except InvalidLeadInput as err:
        raise InvalidLeadInput(err.errors, "lead.") from None
    excluded = rep_router.release_for_reroute(body.lead.lead_id, clock.now())
    exclude = {body.lead.lead_id: excluded} if excluded else {}
    result = scored(
        models, features, rep_router, True, metrics, [body.lead], False, accept_language, exclude, served
    )
    return schemas.LeadScore.of(result[0])


@router.post("/v1/outcomes", response_model=schemas.OutcomeOut)
def outcome(body: schemas.OutcomeIn, rep_router: RouterDep) -> schemas.OutcomeOut:
    """Record a touch, conversion, disqualification, win or loss; lead outcomes release capacity.

    Idempotent by ``outcome_id`` when the CRM sends one: a replay answers ``recorded: false``."""
    if body.kind in LEAD_OUTCOMES and not body.lead_id:
        raise invalid_field("lead_id", "required for lead outcomes")
    if body.kind.startswith("opportunity_") and not body.opportunity_id:
        raise invalid_field("opportunity_id", "required for opportunity outcomes")
    at = body.at or clock.now()
    record = body.model_dump(mode="json") | {"at": at.isoformat()}
    status, released, recorded = apply_outcome(rep_router.state, record, body.lead_id, body.kind, at)
    return schemas.OutcomeOut(recorded=recorded, released_capacity=released, lead_status=status)


def _json(body: BaseModel) -> Response:
    """The already-validated response model serialised by pydantic's own (Rust) JSON encoder.

    Returning a ``Response`` skips FastAPI's second validation and its ``jsonable_encoder`` pass
    (~0.3 ms per lead); the route's ``response_model`` still documents the shape in OpenAPI.
    """
    return Response(content=body.model_dump_json(), media_type="application/json")
