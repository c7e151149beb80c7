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

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

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


def run_due(
    settings: Settings, now: datetime | None = None, jobs: Mapping[str, Job] | None = None
) -> list[RunResult]:
    """Run what is due at ``now`` (default: the clock's now) and log it; what ran, in order."""
    now = now or clock.now()
    table = JOBS if jobs is None else jobs
    crons = {job: cron for job, cron in settings.scheduler_jobs.items() if job in table}
    if jobs is None and (unknown := sorted(set(settings.scheduler_jobs) - set(JOBS))):
        log.error("scheduler_jobs names jobs that do not exist: %s (jobs: %s)", unknown, ", ".join(JOBS))
    runs = RunLog(settings.scheduler_db)
    results = []
    try:
        runs.interrupted(now)
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
        for r in run_due(settings):
            log.info("job %s %s (attempt %d): %s", r.job, r.outcome, r.attempt, r.detail or r.error)
        time.sleep(settings.scheduler_tick_seconds)
