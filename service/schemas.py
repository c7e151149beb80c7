"""Request and response bodies of the API (pydantic v2). Validation errors name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, available_timezones

import pytz
from babel import Locale
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.catalog import CHANNELS, CONTACT_ROLES, PRODUCT_LINE_NAMES
from service.online_features import feature_service_of

if TYPE_CHECKING:  # the answers are built from these; importing them at run time would be circular
    from features.importers.model_inputs import ModelInput
    from service.live_models import LiveModel, LiveModels
    from service.routing.policy import RoutingDecision
    from service.scoring import ScoredLead

Channel = Literal[CHANNELS]  # type: ignore[valid-type]
ContactRole = Literal[CONTACT_ROLES]  # type: ignore[valid-type]
ProductLine = Literal[PRODUCT_LINE_NAMES]  # type: ignore[valid-type]
AttributeValue = Annotated[str, Field(max_length=1000)] | int | float | bool | None
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    """IANA zones a place can be in: not ``Factory`` (abbreviation "-00", "local time unknown") nor
    the host's ``localtime`` alias, which ``available_timezones`` also lists."""
    probe = datetime(2026, 1, 1)
    return frozenset(
        z for z in available_timezones() if z != "localtime" and ZoneInfo(z).tzname(probe) != "-00"
    )


@lru_cache(maxsize=1)
def _languages() -> frozenset[str]:
    """ISO 639-1 codes (two letters) CLDR names, through Babel."""
    return frozenset(c for c in Locale("en").languages if len(c) == 2 and c.isalpha() and c.islower())


def _iso_text(value: object) -> object:
    """A date-time must come as ISO 8601 text: a number (``created_at: 0``) is not coerced to one."""
    if value is None or isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string")


def as_utc(value: datetime | None) -> datetime | None:
    """The time in UTC (naive = UTC); a time whose UTC value falls outside years 1-9999 is invalid.

    ``astimezone`` raises ``OverflowError`` there (0001-01-01T00:00+01:00), which pydantic does not
    turn into a validation error: it must be a ``ValueError`` to become a 422 naming the field.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as err:
        raise ValueError("must fall between years 1 and 9999 in UTC") from err


CREATED_AT_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 4, 10, tzinfo=UTC))


def in_time_range(value: datetime | None) -> datetime | None:
    """UTC, and inside the span pandas' nanosecond timestamps hold: the feature tables, the request-
    time features and monitoring read every stored time through pandas, so a time outside it (a
    lead created or an outcome reported in 1433) is no one's and is refused at the door."""
    value = as_utc(value)
    if value is not None and not CREATED_AT_RANGE[0] <= value < CREATED_AT_RANGE[1]:
        raise ValueError("must fall between 1970-01-01 and 2262-04-10 (UTC)")
    return value


class LeadIn(BaseModel):
    """What the CRM knows about a lead when it is created."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lead_id: str = Field(pattern=ID_PATTERN, description="CRM lead id")
    company_id: str = Field(pattern=ID_PATTERN, description="CRM account/company id")
    created_at: datetime | None = Field(None, description="Creation time (default: now; naive = UTC)")
    # channel, contact role and product interest are required when the champion reads them (a 422
    # naming the field) and ignored when it does not (a model trained on an import without them)
    channel: Channel | None = None
    utm_source: str | None = Field(None, max_length=100)
    utm_campaign: str | None = Field(None, max_length=100)
    contact_role: ContactRole | None = None
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, e.g. CN")
    timezone: str | None = Field(None, description="IANA time zone, e.g. Asia/Shanghai")
    language: str | None = Field(None, description="ISO 639-1, e.g. zh")
    product_interest: ProductLine | None = None
    phone: str | None = Field(None, max_length=40, description="Used only to infer country/time zone")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    message: str | None = Field(None, max_length=5000, description="Used only to infer the language")
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        max_length=500,
        description="Custom attributes the champion was trained on (GET /v1/models/lead_score lists "
        "them with their types and levels); checked against it, a 422 names attributes.<name>",
    )

    _text = field_validator("created_at", mode="before")(_iso_text)

    _in_range = field_validator("created_at")(in_time_range)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.upper()
        if value not in pytz.country_names:  # tzdata's iso3166.tab: assigned codes only, no ZZ
            raise ValueError("must be an ISO 3166-1 alpha-2 code such as CN or DE")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _zones():
            raise ValueError("must be an IANA time zone such as Asia/Shanghai")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        if value not in _languages():
            raise ValueError("must be an ISO 639-1 code such as zh or en")
        return value


class LeadBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    leads: list[LeadIn] = Field(min_length=1, max_length=1000)


class RouteIn(BaseModel):
    """Re-route a lead (e.g. its first-touch deadline passed untouched). Send the lead again."""

    model_config = ConfigDict(extra="forbid")
    lead: LeadIn
    reason: Literal["deadline_passed", "rep_unavailable", "manual"] = "manual"


class Reason(BaseModel):
    code: str
    direction: Literal["up", "down"]
    impact: float = Field(description="Log-odds contribution of this group of features")
    text: str


class Candidate(BaseModel):
    rep_id: str
    expected_value: float
    fit: float
    availability: float
    timezone_gap_hours: float | None
    language_proficiency: float | None
    load: str


class Routing(BaseModel):
    rep_id: str | None
    first_touch_deadline: datetime | None
    reasons: list[str]
    relaxed_filters: list[str]
    runners_up: list[Candidate]

    @classmethod
    def of(cls, d: RoutingDecision) -> Routing:
        return cls(
            rep_id=d.rep_id,
            first_touch_deadline=d.first_touch_deadline,
            reasons=list(d.reasons),
            relaxed_filters=list(d.relaxed),
            runners_up=[
                Candidate(
                    rep_id=c.rep_id,
                    expected_value=round(c.expected_value, 5),
                    fit=round(c.fit, 4),
                    availability=round(c.availability, 4),
                    timezone_gap_hours=c.timezone_gap_hours,
                    language_proficiency=c.language_proficiency,
                    load=f"{c.open_leads}/{c.capacity}",
                )
                for c in d.runners_up
            ],
        )


class ModelRef(BaseModel):
    name: str
    version: str
    feature_service: str | None = Field(
        None, description="The feature service this version was trained on, and so read for this answer"
    )


class LeadScore(BaseModel):
    lead_id: str
    probability: float
    score: int
    grade: Literal["A", "B", "C", "D"]
    model: ModelRef
    feature_snapshot_time: datetime | None
    reasons: list[Reason] | None
    routing: Routing | None
    inferred: dict[str, str] = Field(description="Field -> what it was inferred from")
    degraded: list[str] = Field(description="Feature sources unavailable or stale (empty: none)")
    unknown_entity: bool

    @classmethod
    def of(cls, r: ScoredLead) -> LeadScore:
        """The answer for one scored lead (rounded for the wire)."""
        return cls(
            lead_id=r.lead.lead_id,
            probability=round(r.probability, 6),
            score=r.score,
            grade=r.grade,  # type: ignore[arg-type]
            model=ModelRef(
                name=r.model.name,
                version=r.model.version,
                feature_service=feature_service_of(r.model.model.metadata),
            ),
            feature_snapshot_time=r.snapshot_time,
            reasons=None
            if r.reasons is None
            else [
                Reason(code=x.code, direction=x.direction, impact=x.impact, text=x.text) for x in r.reasons
            ],
            routing=None if r.routing is None else Routing.of(r.routing),
            inferred=r.inferred,
            degraded=list(r.degraded),
            unknown_entity=r.unknown_entity,
        )


class LeadBatchOut(BaseModel):
    results: list[LeadScore]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["touched", "converted", "disqualified", "opportunity_won", "opportunity_lost"]
    outcome_id: str | None = Field(
        None, pattern=ID_PATTERN, description="The CRM's id of this report: a replay changes nothing"
    )
    lead_id: str | None = Field(None, pattern=ID_PATTERN)
    opportunity_id: str | None = Field(None, pattern=ID_PATTERN)
    rep_id: str | None = Field(None, pattern=ID_PATTERN)
    at: datetime | None = None
    # strict: false is not 0.0; finite: JSON's Infinity, NaN and 1e309 (inf) are not amounts
    amount_cny: float | None = Field(None, ge=0, strict=True, allow_inf_nan=False)

    _text = field_validator("at", mode="before")(_iso_text)
    _in_range = field_validator("at")(in_time_range)


class OutcomeOut(BaseModel):
    recorded: bool = Field(description="False: an outcome_id recorded before (a replay, nothing changed)")
    released_capacity: bool
    lead_status: str | None


class LiveModelOut(BaseModel):
    """A served model; or, with ``status = "broken"``, one that is not served and ``error`` says why."""

    name: str
    status: Literal["live", "broken"] = "live"
    version: str | None
    source: Literal["registry", "cache"]
    live_since: datetime | None
    run_id: str | None
    metrics: dict[str, float]
    error: str | None = None

    @classmethod
    def of(cls, live: LiveModel) -> LiveModelOut:
        return cls(
            name=live.name,
            version=live.version,
            source=live.source,  # type: ignore[arg-type]
            live_since=live.live_since,
            run_id=live.run_id,
            metrics=live.metrics,
        )

    @classmethod
    def broken(cls, name: str, error: str) -> LiveModelOut:
        return cls(
            name=name,
            status="broken",
            version=None,
            source="cache",
            live_since=None,
            run_id=None,
            metrics={},
            error=error,
        )

    @classmethod
    def listing(cls, models: LiveModels) -> list[LiveModelOut]:
        """Every live model, then every broken one."""
        live = [cls.of(m) for m in models.all()]
        return live + [cls.broken(name, why) for name, why in models.broken().items()]


class ModelInputOut(BaseModel):
    """One input a caller may send the model: a request field, or one of its ``attributes``."""

    name: str
    source: Literal["field", "attribute"] = Field(
        description="field: a top-level request field; attribute: a key of the request's attributes"
    )
    type: Literal["numeric", "categorical", "text"]
    levels: list[str] = Field(description="categorical: the values the model knows (others are a 422)")
    required: bool = Field(
        description="required: absent is a 422 naming it; optional: absent is scored as unknown and "
        "named missing:<name> in degraded (country, time zone and language are inferred first)"
    )


class LiveModelDetail(LiveModelOut):
    feature_service: str | None = Field(None, description="The feature service it was trained on")
    inputs: list[ModelInputOut] = Field(description="What a scoring request may carry (lead model only)")

    @classmethod
    def detail(cls, live: LiveModel, inputs: list[ModelInput]) -> LiveModelDetail:
        service = live.model.metadata.get("feature_service")
        return cls(
            **LiveModelOut.of(live).model_dump(),
            feature_service=None if service is None else str(service),
            inputs=[
                ModelInputOut(name=i.name, source=i.source, type=i.type, levels=i.levels, required=i.required)
                for i in inputs
            ],
        )


class ReloadOut(BaseModel):
    models: list[LiveModelOut]
    changed: list[str]
    errors: dict[str, str]
