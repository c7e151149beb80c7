"""What is due when: ``due_runs`` over cron lines, run history and the clock's now (pure, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from funnelcast.core.schedule import Due, JobState, LastRun, due_runs, fire_times, trigger_of

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday
HOURLY = {"job": "0 * * * *"}


def due(state: JobState, now: datetime, crons: dict[str, str] = HOURLY) -> list[Due]:
    return due_runs(crons, {"job": state}, now, max_attempts=3, retry_seconds=60)


def test_a_job_seen_for_the_first_time_is_only_watched() -> None:
    assert due(JobState(None, None), T0 + timedelta(minutes=30)) == [
        Due("job", "watch", T0 + timedelta(minutes=30), attempt=0, covers=0)
    ]


def test_nothing_is_due_before_the_next_fire_time() -> None:
    assert due(JobState(T0, None), T0 + timedelta(minutes=59)) == []


def test_a_fire_time_at_now_is_due() -> None:
    assert due(JobState(T0, None), T0 + timedelta(hours=1)) == [Due("job", "run", T0 + timedelta(hours=1))]


def test_runs_missed_while_down_run_once_covering_all_of_them() -> None:
    # down from 09:00 to 14:30: fires at 10, 11, 12, 13, 14 -> one run for 14:00 standing for five
    assert due(JobState(T0, None), T0 + timedelta(hours=5, minutes=30)) == [
        Due("job", "run", T0 + timedelta(hours=5), covers=5)
    ]


def failed(attempt: int, ended: datetime) -> LastRun:
    return LastRun(T0, attempt, "failed", ended)


@pytest.mark.parametrize(
    ("attempt", "seconds_after", "expected"),
    [
        (1, 59, []),  # back-off 60 s after attempt 1: not yet
        (1, 60, [Due("job", "retry", T0, attempt=2)]),
        (2, 119, []),  # back-off doubles: 120 s after attempt 2
        (2, 120, [Due("job", "retry", T0, attempt=3)]),
    ],
)
def test_a_failed_run_is_retried_for_the_same_fire_time_after_a_doubling_back_off(
    attempt: int, seconds_after: int, expected: list[Due]
) -> None:
    ended = T0 + timedelta(minutes=1)
    assert due(JobState(T0, failed(attempt, ended)), ended + timedelta(seconds=seconds_after)) == expected


def test_a_retry_waits_before_anything_newer_runs() -> None:
    # the 09:00 run failed at 10:30; 10:00 has fired since, but nothing newer runs before its retry (10:31)
    ended = T0 + timedelta(minutes=90)
    assert due(JobState(T0, failed(1, ended)), ended + timedelta(seconds=30)) == []


def test_after_the_last_attempt_failed_the_job_moves_on_to_its_next_fire_time() -> None:
    ended = T0 + timedelta(minutes=5)
    assert due(JobState(T0, failed(3, ended)), T0 + timedelta(minutes=30)) == []
    assert due(JobState(T0, failed(3, ended)), T0 + timedelta(hours=1)) == [
        Due("job", "run", T0 + timedelta(hours=1))
    ]


def test_a_run_that_succeeded_is_not_run_again_for_the_same_fire_time() -> None:
    ok = LastRun(T0, 1, "ok", T0 + timedelta(minutes=1))
    assert due(JobState(T0, ok), T0 + timedelta(minutes=2)) == []


def test_each_job_is_decided_on_its_own_cron_line() -> None:
    crons = {"often": "*/15 * * * *", "weekly": "0 6 * * mon"}
    states = {"often": JobState(T0, None), "weekly": JobState(T0 - timedelta(days=1), None)}
    # Monday 09:00 watermark for "often" -> 09:15 due at 09:20; "weekly" from Sunday 09:00: Monday 06:00 fired
    assert due_runs(crons, states, T0 + timedelta(minutes=20), 3, 60) == [
        Due("often", "run", T0 + timedelta(minutes=15)),
        Due("weekly", "run", T0 - timedelta(hours=3)),
    ]


def test_weekday_names_mean_the_same_days_as_in_crontab() -> None:
    # 2026-11-08 is a Sunday: "sun" must fire on it (APScheduler 3 reads the number 0 as Monday)
    fires = fire_times(trigger_of("0 2 * * sun"), T0, T0 + timedelta(days=7))
    assert [f.date().isoformat() for f in fires] == ["2026-11-08"]
