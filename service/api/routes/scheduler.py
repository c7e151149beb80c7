"""The scheduler's run log (a read: ``funnelcast scheduler`` writes it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from funnelcast.core.run_log import RunRecord, read_runs
from service.api.deps import MANAGER, SettingsDep

router = APIRouter(tags=["scheduler"], dependencies=[MANAGER])


class RunsOut(BaseModel):
    runs: list[RunRecord]


@router.get("/v1/scheduler/runs", response_model=RunsOut)
def scheduler_runs(
    settings: SettingsDep,
    job: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> RunsOut:
    """Scheduled runs newest first: job, scheduled time, start, end, outcome, error, attempt, alerted."""
    records = read_runs(settings.scheduler_db, job, limit)
    return RunsOut(runs=records)
