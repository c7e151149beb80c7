"""Request and response bodies of the event ingestion API (``POST /v1/events``,
``POST /v1/opportunities/events``). A 422 names the field: ``events.3.at``, ``events.0.stage_change.stage``.

Opportunity events are a union discriminated by ``kind``, so an event is checked against its own
kind's fields only and the error names that kind (``events.2.milestone.milestone``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from features.catalog import ACTIVITY_TYPES, BEHAVIOR_EVENT_TYPES, MILESTONES, SENTIMENTS, STAGES
from service.schemas import ID_PATTERN, _iso_text, in_time_range

MAX_EVENTS = 1000
EventType = Literal[BEHAVIOR_EVENT_TYPES]  # type: ignore[valid-type]
Stage = Literal[STAGES]  # type: ignore[valid-type]
Milestone = Literal[MILESTONES]  # type: ignore[valid-type]
ActivityType = Literal[ACTIVITY_TYPES]  # type: ignore[valid-type]
Sentiment = Literal[SENTIMENTS]  # type: ignore[valid-type]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(
        pattern=ID_PATTERN, description="The CRM's id of the event: a replay changes nothing"
    )
    at: AwareDatetime = Field(description="When it happened, ISO 8601 with a UTC offset")

    _text = field_validator("at", mode="before")(_iso_text)
    _utc = field_validator("at")(in_time_range)


class BehaviorEventIn(_Event):
    company_id: str = Field(pattern=ID_PATTERN)
    lead_id: str | None = Field(None, pattern=ID_PATTERN, description="The lead, when the event is one's")
    event_type: EventType


class BehaviorEventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[BehaviorEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class _OpportunityEvent(_Event):
    opportunity_id: str = Field(pattern=ID_PATTERN)


class StageChangeIn(_OpportunityEvent):
    kind: Literal["stage_change"]
    stage: Stage


class MilestoneIn(_OpportunityEvent):
    kind: Literal["milestone"]
    milestone: Milestone


class ActivityIn(_OpportunityEvent):
    kind: Literal["activity"]
    activity_type: ActivityType
    sentiment: Sentiment


class CloseDateChangeIn(_OpportunityEvent):
    kind: Literal["close_date_change"]
    close_date: AwareDatetime = Field(description="The rep's new expected close date")

    _close_text = field_validator("close_date", mode="before")(_iso_text)
    _close_utc = field_validator("close_date")(in_time_range)


class AmountChangeIn(_OpportunityEvent):
    kind: Literal["amount_change"]
    # strict: false is not 0.0; finite: JSON's Infinity, NaN and 1e309 are not amounts
    amount_cny: float = Field(ge=0, strict=True, allow_inf_nan=False)


OpportunityEventIn = Annotated[
    StageChangeIn | MilestoneIn | ActivityIn | CloseDateChangeIn | AmountChangeIn,
    Field(discriminator="kind"),
]


class OpportunityEventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[OpportunityEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsOut(BaseModel):
    accepted: int = Field(description="Events taken in now: logged durably and applied online")
    duplicates: int = Field(description="Events whose id was taken in before (or repeated in this batch)")
    not_online: int = Field(
        0,
        description="Of the accepted, events of opportunities with no online row (closed, or not "
        "materialised yet): logged for the next build, not applied online",
    )


BEHAVIOR_EXAMPLE = {
    "events": [
        {
            "event_id": "ev-1",
            "company_id": "c11228",
            "event_type": "pricing_view",
            "at": "2026-11-02T09:30:00Z",
        }
    ]
}
OPPORTUNITY_EXAMPLE = {
    "events": [
        {
            "event_id": "oe-1",
            "opportunity_id": "o123",
            "kind": "milestone",
            "milestone": "procurement_committee_approved",
            "at": "2026-11-02T09:30:00Z",
        }
    ]
}
