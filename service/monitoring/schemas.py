"""The monitoring answer (``GET /v1/monitoring``): typed, so OpenAPI documents every field."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WeekQuality(BaseModel):
    week: datetime = Field(description="Monday 00:00 UTC of the week the leads were scored")
    leads: int
    resolved: int = Field(description="Leads whose label is known (converted, disqualified or window over)")
    converted: int
    roc_auc: float | None = Field(description="Of the resolved leads; null with one class only")


class GradeCalibration(BaseModel):
    grade: str
    leads: int = Field(description="Resolved leads served with this grade")
    predicted: float = Field(description="Mean served probability")
    actual: float = Field(description="Share that converted within the label window")


class SegmentShift(BaseModel):
    segment: str = Field(description="The lead field the leads are split by, e.g. `channel`")
    level: str
    leads: int = Field(description="Leads of this level served in the trailing segment window")
    predicted: float = Field(description="Sum of their predicted conversion probabilities")
    observed: float = Field(description="Their conversions seen so far (within the label window)")
    shift: float | None = Field(
        description="(observed / predicted) of this level over the same of the other leads; 1 = as predicted"
    )
    z: float | None = Field(description="Standard errors from no shift")


class LeadQuality(BaseModel):
    model_version: str | None
    label_days: int
    weeks: list[WeekQuality]
    calibration: list[GradeCalibration]
    segment_days: int = Field(description="The trailing days the segment calibration reads")
    segments: list[SegmentShift] = Field(
        description="Per segment level, conversion seen against predicted, relative to the other leads: "
        "a change in how a kind of lead converts, visible before its label window closes"
    )


class AccuracyRow(BaseModel):
    as_of: datetime = Field(description="When the forecast was made (the weekly snapshot)")
    horizon: int = Field(description="Weeks ahead of as_of (1 = the week starting at as_of)")
    group_by: str
    group: str
    week_start: datetime
    said: float = Field(description="Expected bookings the snapshot said for that week")
    p10: float
    p90: float
    realised: float = Field(description="Won amounts of the snapshot's deals in that week")
    error: float = Field(description="realised - said")
    inside: bool = Field(description="realised within P10-P90")


class HorizonAccuracy(BaseModel):
    horizon: int
    weeks: int
    wape: float | None = Field(description="sum |error| / sum realised (all group); null if nothing booked")
    coverage: float = Field(description="Share of weeks inside P10-P90")


class ForecastAccuracy(BaseModel):
    snapshots: int
    by_horizon: list[HorizonAccuracy]
    rows: list[AccuracyRow]


class InputDrift(BaseModel):
    input: str
    term: str = Field(description="The business term it belongs to (the reason codes' groups)")
    psi: float | None = Field(description="Population stability index vs training; null without rows")
    rows: int


class WeekDrift(BaseModel):
    week: datetime
    rows: int
    max_psi: float | None


class FeatureDrift(BaseModel):
    model_version: str | None
    week: datetime | None = Field(description="The latest week with served inputs; `inputs` are of it")
    inputs: list[InputDrift]
    top_movers: list[InputDrift]
    weeks: list[WeekDrift]


class RepLoad(BaseModel):
    shares: dict[str, float] = Field(description="rep -> share of the assigned leads")
    value_shares: dict[str, float] = Field(
        description="rep -> share of the assigned leads' expected value (their served probability)"
    )
    load_gini: float = Field(
        description="Gini of the team's lead counts (0: all even; toward 1: one rep takes all); "
        "reps with no lead count"
    )
    min_share: float = Field(description="The smallest rep's share of the assigned leads (0 if one has none)")


class RoutingHealth(BaseModel):
    assigned: int
    sla_met: int
    sla_due: int = Field(description="Leads touched or past their first-touch deadline")
    sla_compliance: float | None
    language_match: float | None = Field(
        description="Share of assigned leads whose rep speaks their language"
    )
    timezone_match: float | None = Field(description="Share within the routing filter's time-zone gap")
    rep_load: RepLoad


class Crossing(BaseModel):
    key: str = Field(description="What crossed, e.g. `psi:channel`, `lead_auc`, `sla`")
    value: float
    threshold: float


class MonitoringOut(BaseModel):
    now: datetime
    lead_quality: LeadQuality
    forecast_accuracy: ForecastAccuracy
    drift: FeatureDrift
    routing: RoutingHealth
    crossed: list[Crossing] = Field(
        description="Thresholds crossed now (the weekly job alerts each crossing once, through the webhook)"
    )
