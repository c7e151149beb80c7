"""``funnelcast scheduler``: the jobs that run on their own, on the one clock.

``run_due(settings, now)`` is one step: ask ``funnelcast.core.schedule.due_runs`` (pure) what is due at
``now``, run it, and log every attempt in the run log (``funnelcast.core.run_log``). A failed run is
retried with back-off on later steps, up to ``scheduler_max_attempts``; the last failure is alerted
through the webhook (``service.webhook``) and marked ``alerted`` in the log, never skipped in silence.
``loop`` calls ``run_due`` every ``scheduler_tick_seconds`` on the wall clock (production); a live run
calls ``funnelcast scheduler run-due`` (or ``run_due``) after each move of the world's clock.

The jobs sit above both service and training (like the CLI): incremental materialisation and the
serving directory, the SLA sweep, the weekly scoring job, and retraining through the champion gate.
A promotion reaches every worker through its poll of the registry (``model_poll_seconds``).
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from funnelcast.core import clock
from funnelcast.core.run_log import RunLog
from funnelcast.core.schedule import Due, due_runs
from funnelcast.core.settings import Settings
from service.reload_signal import reload_signal

log = logging.getLogger("funnelcast.scheduler")

Job = Callable[[Settings, datetime], str]  # returns one line saying what it did


def materialize_job(settings: Settings, now: datetime) -> str:
    """Online store up to now (incremental), then the serving directory as of now."""
    from features.directory import build_directory, publish_directory
    from features.store import materialize, open_store

    reports = materialize(open_store(settings), now)
    publish_directory(settings, build_directory(settings, now))
    return ", ".join(f"{r.view}: {r.entities}" for r in reports) or "nothing to materialise"


def sla_sweep_job(settings: Settings, now: datetime) -> str:
    from service.sla_sweep import sweep

    return sweep(settings, now).summary()


def weekly_job(settings: Settings, now: datetime) -> str:
    from service.weekly import score_weekly

    report = score_weekly(settings, now)
    return (
        f"{report.deals} deals by milestone_close v{report.model_version}, {report.new_alerts} new alert(s)"
    )


def retrain_job(settings: Settings, now: datetime) -> str:
    """Every model trained and put through the champion gate; promotions are what workers reload."""
    from training.run import train_model

    done = []
    promoted = False
    for short in settings.scheduler_retrain_models:
        run = train_model(settings, short)
        promoted = promoted or run.gate.promoted
        verdict = "promoted" if run.gate.promoted else "kept champion"
        done.append(f"{run.name} v{run.version} {verdict}")
    if promoted:
        reload_signal(settings).announce()  # every worker reloads within reload_watch_seconds
    return "; ".join(done)


JOBS: dict[str, Job] = {
    "materialize": materialize_job,
    "sla_sweep": sla_sweep_job,
    "score_weekly": weekly_job,
    "retrain": retrain_job,
}


@dataclass(frozen=True)
class RunResult:
    job: str
    kind: str
    scheduled_for: datetime
    attempt: int
    covers: int
    outcome: str  # ok | failed
    detail: str | None
    error: str | None
    alerted: bool


def alert_failure(settings: Settings, due: Due, error: str, now: datetime) -> bool:
    """Tell the webhook a job has failed its last attempt; whether the webhook took it."""
    from service.rules import Firing
    from service.webhook import send_alerts

    firing = Firing(
        rule="scheduled_job_failed",
        kind="scheduler",
        entity=due.job,
        severity="critical",
        action=f"fix and re-run `funnelcast scheduler run-due` ({due.attempt} attempts failed)",
        evidence={
            "scheduled_for": due.scheduled_for.isoformat(),
            "error": error[:300],
            "at": now.isoformat(),
        },
    )
    if not settings.alert_webhook_url:
        log.error("job %s failed its last attempt and no alert_webhook_url is set: %s", due.job, error)
        return False
    return send_alerts(settings.alert_webhook_url, [firing])


class SchedulerBusy(RuntimeError):
    """Another scheduler process is running every job asked for: this one runs nothing."""


@contextmanager
def job_locks(run_log: Path, jobs: list[str]) -> Iterator[list[str]]:
    """Exclusive locks (``<run log>.<job>.lock``) on each of ``jobs`` this process can take now; the
    jobs it holds. Per job, so a long retrain in one process (a cron line per job) does not hold up
    another's SLA sweep, while no two processes run the same job or mark each other's run in flight
    as interrupted. ``flock`` goes with its process: a scheduler killed mid-run leaves no stale lock
    (the run log on a local disk)."""
    run_log.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        held = []
        for job in jobs:
            handle = stack.enter_context(open(run_log.with_name(f"{run_log.name}.{job}.lock"), "a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another scheduler is in this job's step; closing the file drops nothing
            held.append(job)
        yield held


def run_due(
    settings: Settings, now: datetime | None = None, jobs: Mapping[str, Job] | None = None
) -> list[RunResult]:
    """Run what is due at ``now`` (default: the clock's now) and log it; what ran, in order.

    A job another scheduler process is in the middle of is left to it for this step; when that is
    every job asked for, ``SchedulerBusy``."""
    now = now or clock.now()
    table = JOBS if jobs is None else jobs
    crons = {job: cron for job, cron in settings.scheduler_jobs.items() if job in table}
    if jobs is None and (unknown := sorted(set(settings.scheduler_jobs) - set(JOBS))):
        log.error("scheduler_jobs names jobs that do not exist: %s (jobs: %s)", unknown, ", ".join(JOBS))
    with job_locks(settings.scheduler_db, sorted(crons)) as held:
        if busy := sorted(set(crons) - set(held)):
            if not held:
                raise SchedulerBusy(
                    f"another scheduler is running {', '.join(busy)} on {settings.scheduler_db}"
                )
            log.info("left to the scheduler running them: %s", ", ".join(busy))
        return _run_due_locked(settings, now, table, {job: crons[job] for job in held})


def _run_due_locked(
    settings: Settings, now: datetime, table: Mapping[str, Job], crons: dict[str, str]
) -> list[RunResult]:
    runs = RunLog(settings.scheduler_db)
    results = []
    try:
        runs.interrupted(now, list(crons))
        decided = due_runs(
            crons,
            runs.states(list(crons)),
            now,
            settings.scheduler_max_attempts,
            settings.scheduler_retry_seconds,
        )
        for due in decided:
            if due.kind == "watch":
                runs.watch(due.job, now)
                continue
            results.append(_run_one(settings, runs, due, table[due.job], now))
    finally:
        runs.close()
    return results


def _run_one(settings: Settings, runs: RunLog, due: Due, job: Job, now: datetime) -> RunResult:
    run_id = runs.start(due.job, due.scheduled_for, due.attempt, due.covers, now)
    t0 = time.monotonic()  # start and end on the timeline of ``now`` (the world's, in a live run)
    detail = error = None
    try:
        detail = job(settings, now)
        outcome = "ok"
    except Exception as err:  # any failure of a job is logged, retried and finally alerted
        outcome, error = "failed", f"{type(err).__name__}: {str(err)[:500]}"
        log.warning("job %s attempt %d failed: %s", due.job, due.attempt, error)
    alerted = False
    if outcome == "failed" and due.attempt >= settings.scheduler_max_attempts:
        alerted = alert_failure(settings, due, error or "", now)
    ended = now + timedelta(seconds=time.monotonic() - t0)
    runs.finish(run_id, ended, outcome, detail, error, alerted)
    return RunResult(
        due.job, due.kind, due.scheduled_for, due.attempt, due.covers, outcome, detail, error, alerted
    )


def loop(settings: Settings, stop: Callable[[], bool] = lambda: False) -> None:
    """Production: one ``run_due`` per tick of ``scheduler_tick_seconds`` until ``stop()``."""
    while not stop():
        try:
            for r in run_due(settings):
                log.info("job %s %s (attempt %d): %s", r.job, r.outcome, r.attempt, r.detail or r.error)
        except SchedulerBusy as busy:
            log.warning("%s; this one waits a tick", busy)
        time.sleep(settings.scheduler_tick_seconds)
