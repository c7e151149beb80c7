"""What the scheduler should run now: a pure decision over the jobs' cron lines, their run history and
the one clock's "now".

APScheduler's ``CronTrigger`` does the calendar math (``get_next_fire_time``); we drive it from our
clock instead of letting APScheduler's own loop read the wall clock, so the same schedule runs on the
wall clock in production and on the world's clock in a live run. The rules, per job:

1. A job seen for the first time is *watched* from now: nothing before its first sight is "missed".
2. A failed run with attempts left is retried with the same scheduled time once its back-off
   (``retry_seconds * 2 ** (attempt - 1)`` after it ended) has passed; until then nothing newer runs,
   so runs stay in order. A failed run with no attempts left has been alerted; the job moves on.
3. Otherwise, if fire times fell in (watermark, now], the latest is run once, however many there
   were (a scheduler that was down runs a missed job once on start, and says how many it covered).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from apscheduler.triggers.cron import CronTrigger

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class LastRun:
    """The latest run of a job, as the run log has it."""

    scheduled_for: datetime
    attempt: int
    outcome: Literal["running", "ok", "failed"]
    ended_at: datetime | None


@dataclass(frozen=True)
class JobState:
    watermark: datetime | None  # the latest fire time already handled (None: never seen)
    last: LastRun | None


@dataclass(frozen=True)
class Due:
    job: str
    kind: Literal["watch", "run", "retry"]
    scheduled_for: datetime
    attempt: int = 1
    covers: int = 1  # fire times this one run stands for (more than 1: missed while down)


def trigger_of(cron: str) -> CronTrigger:
    """A crontab line (minute hour day month weekday, UTC) as APScheduler's trigger.

    APScheduler 3 reads a numeric weekday as 0 = Monday (crontab: 0 = Sunday); use names
    (``mon``, ``sun``) in cron lines to mean the same thing in both.
    """
    return CronTrigger.from_crontab(cron, timezone=UTC)


def fire_times(
    trigger: CronTrigger, after: datetime, until: datetime, limit: int = 100_000
) -> list[datetime]:
    """Fire times in (after, until], oldest first (at most ``limit``)."""
    out: list[datetime] = []
    t = trigger.get_next_fire_time(None, after + _TICK)
    while t is not None and t <= until and len(out) < limit:
        out.append(t)
        t = trigger.get_next_fire_time(t, t)
    return out


def retry_at(last: LastRun, retry_seconds: float) -> datetime:
    """When a failed run may be tried again: back-off doubling with each attempt."""
    ended = last.ended_at or last.scheduled_for
    return ended + timedelta(seconds=retry_seconds * 2 ** (last.attempt - 1))


def due_runs(
    crons: Mapping[str, str],
    states: Mapping[str, JobState],
    now: datetime,
    max_attempts: int,
    retry_seconds: float,
) -> list[Due]:
    """What to do for each job at ``now`` (see the module's rules); jobs with nothing due are left out."""
    out: list[Due] = []
    for job, cron in crons.items():
        state = states.get(job, JobState(None, None))
        if state.watermark is None:
            out.append(Due(job, "watch", now, attempt=0, covers=0))
            continue
        last = state.last
        if last is not None and last.outcome == "failed" and last.attempt < max_attempts:
            if now >= retry_at(last, retry_seconds):
                out.append(Due(job, "retry", last.scheduled_for, attempt=last.attempt + 1))
            continue
        fires = fire_times(trigger_of(cron), state.watermark, now)
        if fires:
            out.append(Due(job, "run", fires[-1], attempt=1, covers=len(fires)))
    return out
