"""The scheduler's runner: every attempt logged, a failed job retried with back-off and, after its last
attempt, alerted through the webhook (a real HTTP receiver), never skipped in silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from funnelcast.core.run_log import read_runs
from funnelcast.core.settings import Settings
from funnelcast.scheduler import run_due

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def settings_for(tmp_path: Path, webhook_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        scheduler_jobs={"flaky": "0 * * * *", "steady": "0 * * * *"},
        scheduler_max_attempts=2,
        scheduler_retry_seconds=60,
        alert_webhook_url=webhook_url,
    )


def test_a_failing_job_is_retried_after_its_back_off_then_alerted_once(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = settings_for(tmp_path, url)
    calls: list[tuple[str, datetime]] = []

    def flaky(s: Settings, now: datetime) -> str:
        calls.append(("flaky", now))
        raise ConnectionError("registry refused the connection")

    def steady(s: Settings, now: datetime) -> str:
        calls.append(("steady", now))
        return "did its work"

    jobs = {"flaky": flaky, "steady": steady}
    assert run_due(settings, T0, jobs) == []  # first sight: watched from 09:00, nothing missed
    first = run_due(settings, T0 + timedelta(hours=1), jobs)  # 10:00 fires for both
    assert [(r.job, r.outcome, r.attempt, r.alerted) for r in first] == [
        ("flaky", "failed", 1, False),
        ("steady", "ok", 1, False),
    ]
    assert received == []  # one attempt left: no alert yet
    assert run_due(settings, T0 + timedelta(hours=1, seconds=59), jobs) == []  # back-off 60 s
    # 60 s after attempt 1 ended (it took a few ms: its end is now + its duration)
    second = run_due(settings, T0 + timedelta(hours=1, seconds=61), jobs)
    assert [(r.job, r.outcome, r.attempt, r.alerted) for r in second] == [("flaky", "failed", 2, True)]
    assert second[0].scheduled_for == T0 + timedelta(hours=1)  # the same fire time, tried again
    assert len(received) == 1
    text = received[0]["text"]["content"]
    assert "scheduled_job_failed flaky" in text and "ConnectionError" in text and "2 attempts" in text
    assert run_due(settings, T0 + timedelta(hours=1, minutes=30), jobs) == []  # alerted: no third try
    assert len(received) == 1
    assert calls == [
        ("flaky", T0 + timedelta(hours=1)),
        ("steady", T0 + timedelta(hours=1)),
        ("flaky", T0 + timedelta(hours=1, seconds=61)),
    ]
    # the log, newest first: each attempt with its scheduled time, start, end, outcome and error
    runs = read_runs(settings.scheduler_db)
    assert [(r.job, r.attempt, r.outcome, r.alerted) for r in runs] == [
        ("flaky", 2, "failed", True),
        ("steady", 1, "ok", False),
        ("flaky", 1, "failed", False),
    ]
    assert runs[0].error == "ConnectionError: registry refused the connection"
    assert runs[1].detail == "did its work" and runs[1].ended_at is not None


def test_a_scheduler_down_for_hours_runs_each_job_once_on_start(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    settings = settings_for(tmp_path, webhook[0])
    ran: list[datetime] = []
    jobs = {"steady": lambda s, now: ran.append(now) or "ok"}
    run_due(settings, T0, jobs)
    results = run_due(settings, T0 + timedelta(hours=6, minutes=10), jobs)  # 10:00 ... 15:00 missed
    assert [(r.scheduled_for, r.covers) for r in results] == [(T0 + timedelta(hours=6), 6)]
    assert run_due(settings, T0 + timedelta(hours=6, minutes=20), jobs) == []
    assert len(ran) == 1


def test_a_job_whose_webhook_is_down_is_still_logged_as_failed_and_not_alerted(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "http://127.0.0.1:9/hook").model_copy(
        update={"scheduler_max_attempts": 1}
    )

    def broken(s: Settings, now: datetime) -> str:
        raise RuntimeError("no milestone_close champion")

    run_due(settings, T0, {"flaky": broken})
    (result,) = run_due(settings, T0 + timedelta(hours=1), {"flaky": broken})
    assert (result.outcome, result.alerted) == ("failed", False)
    assert read_runs(settings.scheduler_db)[0].error == "RuntimeError: no milestone_close champion"


def test_a_run_cut_off_by_a_stopped_scheduler_is_retried_on_the_next_step(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    from funnelcast.core.run_log import RunLog

    settings = settings_for(tmp_path, webhook[0])
    run_due(settings, T0, {"steady": lambda s, now: "ok"})
    log = RunLog(settings.scheduler_db)  # the scheduler died after starting the 10:00 run
    log.start("steady", T0 + timedelta(hours=1), 1, 1, T0 + timedelta(hours=1))
    log.close()
    later = T0 + timedelta(hours=1, minutes=5)
    assert run_due(settings, later, {"steady": lambda s, now: "ok"}) == []  # failed now; back-off 60 s
    (retry,) = run_due(settings, later + timedelta(seconds=60), {"steady": lambda s, now: "ok"})
    assert (retry.kind, retry.scheduled_for, retry.attempt, retry.outcome) == (
        "retry",
        T0 + timedelta(hours=1),
        2,
        "ok",
    )
    assert read_runs(settings.scheduler_db)[1].error == "interrupted: the scheduler stopped during the run"


def test_a_bad_cron_line_is_refused_naming_the_job(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"scheduler_jobs\.sla_sweep"):
        Settings(data_dir=tmp_path, scheduler_jobs={"sla_sweep": "every five minutes"})


def test_a_second_scheduler_leaves_a_job_in_flight_alone_and_runs_the_others(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    """Two scheduler processes on one run log (a cron line per job): while one is in the sweep, the
    other's ``run-due --job sla_sweep`` runs nothing and says so (exit 3), without marking the run
    in flight as interrupted; a different job still runs beside it; the sweep's run ends ``ok``."""
    import json
    import os
    import subprocess
    import sys
    import threading

    settings = settings_for(tmp_path, webhook[0]).model_copy(
        update={"scheduler_jobs": {"sla_sweep": "0 * * * *", "steady": "0 * * * *"}}
    )
    started, release = threading.Event(), threading.Event()

    def slow_sweep(s: Settings, now: datetime) -> str:
        started.set()
        release.wait(60)
        return "swept"

    run_due(settings, T0, {"sla_sweep": slow_sweep, "steady": lambda s, now: "ok"})  # starts watching
    at = T0 + timedelta(hours=1)
    first = threading.Thread(target=run_due, args=(settings, at, {"sla_sweep": slow_sweep}))
    first.start()
    try:
        assert started.wait(30)
        env = {
            **os.environ,
            "FUNNELCAST_DATA_DIR": str(tmp_path),
            "FUNNELCAST_SCHEDULER_JOBS": json.dumps(settings.scheduler_jobs),
        }
        command = [str(Path(sys.executable).parent / "funnelcast"), "scheduler", "run-due"]
        second = subprocess.run(
            [*command, "--now", at.isoformat(), "--job", "sla_sweep"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 3, second.stdout + second.stderr
        assert "another scheduler is running sla_sweep" in " ".join(second.stdout.split())
        (beside,) = run_due(settings, at, {"sla_sweep": slow_sweep, "steady": lambda s, now: "ok"})
        assert (beside.job, beside.outcome) == ("steady", "ok")
        in_flight = [r for r in read_runs(settings.scheduler_db) if r.job == "sla_sweep"]
        assert [r.outcome for r in in_flight] == ["running"]
    finally:
        release.set()
        first.join(30)
    (swept,) = [r for r in read_runs(settings.scheduler_db) if r.job == "sla_sweep"]
    assert (swept.outcome, swept.detail) == ("ok", "swept")
