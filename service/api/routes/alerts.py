"""Alerts: the rules the weekly job fired, newest first (a read; the job stores them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from service.api.deps import MANAGER, RulesDep, WeeklyDep
from service.errors import errors, invalid_field
from service.manager import since_days_ago
from service.monitoring.alerting import RULE as MONITORING_RULE

router = APIRouter(tags=["rules"], dependencies=[MANAGER])


@router.get("/v1/alerts", responses=errors(503))
def alerts(
    rules: RulesDep,
    weekly: WeeklyDep,
    since_days: Annotated[int, Query(ge=0, le=366)] = 7,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSONResponse:
    """Fired rules from the weekly scoring job, newest first."""
    # the configured rules, and monitoring's own (the weekly check's threshold crossings)
    if rule is not None and rule not in {r.name for r in rules} | {MONITORING_RULE}:
        raise invalid_field("rule", f"unknown rule {rule!r}")
    return JSONResponse({"alerts": weekly.alerts(since_days_ago(since_days), rule, limit)})
