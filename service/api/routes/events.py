"""Events from the CRM: behaviour (``POST /v1/events``) and deal progress (``POST /v1/opportunities/events``).

Handlers are plain ``def``: the ledger, the log's fsync and the online write block, so FastAPI runs
them in its thread pool and the event loop stays free. A batch is taken in whole or not at all
(``service.ingest``): a store that fails is a 503 naming it, with nothing written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body

from funnelcast.core import clock
from service.api.deps import CRM, IngestDep, SettingsDep
from service.errors import errors, invalid_field
from service.event_schemas import (
    BEHAVIOR_EXAMPLE,
    OPPORTUNITY_EXAMPLE,
    BehaviorEventsIn,
    EventsOut,
    OpportunityEventsIn,
)
from service.ingest import IngestResult

router = APIRouter(tags=["events"], dependencies=[CRM], responses=errors(503))


def _not_ahead(events: Sequence[Any], ahead: timedelta) -> None:
    """A 422 naming the first event dated after now (plus the allowed clock skew): the stored daily
    buckets would count it before it happened."""
    latest = clock.now() + ahead
    for i, event in enumerate(events):
        if event.at > latest:
            raise invalid_field(f"events.{i}.at", f"is after now ({latest:%Y-%m-%dT%H:%M:%SZ} with skew)")


def _out(result: IngestResult) -> EventsOut:
    return EventsOut(accepted=result.accepted, duplicates=result.duplicates, not_online=result.not_online)


@router.post("/v1/events", response_model=EventsOut)
def behavior_events(
    body: Annotated[BehaviorEventsIn, Body(examples=[BEHAVIOR_EXAMPLE])],
    ingest: IngestDep,
    settings: SettingsDep,
) -> EventsOut:
    """Take in up to 1,000 behaviour events; a replayed ``event_id`` changes nothing.

    Durable before the answer (the offline log), and read by the next score of the company's leads.
    """
    _not_ahead(body.events, timedelta(seconds=settings.event_max_ahead_seconds))
    return _out(ingest.behavior(body.events))


@router.post("/v1/opportunities/events", response_model=EventsOut)
def opportunity_events(
    body: Annotated[OpportunityEventsIn, Body(examples=[OPPORTUNITY_EXAMPLE])],
    ingest: IngestDep,
    settings: SettingsDep,
) -> EventsOut:
    """Take in up to 1,000 stage changes, milestones, activities, close-date and amount changes.

    Durable before the answer (the offline log: stage, milestone and activity tables, and
    ``opportunity_changes``) and folded into the deal's online row, which the open pipeline reads.
    """
    _not_ahead(body.events, timedelta(seconds=settings.event_max_ahead_seconds))
    return _out(ingest.opportunity(body.events))
