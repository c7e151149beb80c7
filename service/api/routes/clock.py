"""The clock: what time the service lives in, and (external mode) the live driver moving it forward."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelcast.core import clock
from funnelcast.core.shared_clock import ClockWentBack
from service.api.deps import ADMIN, ANYONE, ClockDep, SettingsDep
from service.errors import errors, invalid_field
from service.schemas import _iso_text, as_utc

router = APIRouter(tags=["clock"])


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: datetime = Field(description="The new time (ISO 8601; naive = UTC); never earlier than the current")

    _text = field_validator("now", mode="before")(_iso_text)

    @field_validator("now")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)  # type: ignore[return-value]


class ClockOut(BaseModel):
    now: datetime
    mode: Literal["wall", "external"]
    set: bool = Field(description="External mode: whether the driver has set it yet (until then: wall clock)")
    where: str | None = Field(None, description="Where the external clock is kept")


@router.get("/v1/clock", response_model=ClockOut, dependencies=[ANYONE], responses=errors(503))
def read_clock(settings: SettingsDep, shared: ClockDep) -> ClockOut:
    """The service's "now" and where it comes from."""
    if shared is None:
        return ClockOut(now=clock.now(), mode="wall", set=True)
    stored = shared.read()
    return ClockOut(now=stored or clock.now(), mode="external", set=stored is not None, where=shared.where)


@router.put("/v1/clock", response_model=ClockOut, dependencies=[ADMIN], responses=errors(409, 503))
def set_clock(body: ClockIn, settings: SettingsDep, shared: ClockDep) -> ClockOut:
    """Move the external clock forward (the live driver); every worker and the scheduler read it."""
    if shared is None:
        raise HTTPException(409, "the clock is the wall clock (clock='wall'); set FUNNELCAST_CLOCK=external")
    try:
        at = shared.advance(body.now)
    except ClockWentBack as err:
        raise invalid_field(
            "now", f"earlier than the clock's {err.current.isoformat()}; time only moves forward"
        ) from None
    return ClockOut(now=at, mode="external", set=True, where=shared.where)
