"""The scheduler's durable run log: one row per attempt (job, scheduled time, start, end, outcome,
error, attempt, whether it was alerted) and each job's watermark, in one SQLite file
(``Settings.scheduler_db``, ``data/service/scheduler.db`` by default).

The scheduler writes it; ``GET /v1/scheduler/runs`` reads it through ``read_runs``, which opens the
file read-only, so a read never creates or changes anything.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from funnelcast.core.schedule import JobState, LastRun

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, scheduled_for TEXT NOT NULL,
    attempt INTEGER NOT NULL, covers INTEGER NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    outcome TEXT NOT NULL, detail TEXT, error TEXT, alerted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id);
CREATE TABLE IF NOT EXISTS watermarks (job TEXT PRIMARY KEY, handled_until TEXT NOT NULL);
"""


class RunRecord(BaseModel):
    """One attempt of a job, as logged (also the body ``GET /v1/scheduler/runs`` answers with)."""

    model_config = ConfigDict(frozen=True)
    id: int
    job: str
    scheduled_for: datetime
    attempt: int
    covers: int
    started_at: datetime
    ended_at: datetime | None
    outcome: str  # running | ok | failed
    detail: str | None
    error: str | None
    alerted: bool


def _record(row: tuple) -> RunRecord:
    rid, job, scheduled, attempt, covers, started, ended, outcome, detail, error, alerted = row
    return RunRecord(
        id=rid,
        job=job,
        scheduled_for=datetime.fromisoformat(scheduled),
        attempt=attempt,
        covers=covers,
        started_at=datetime.fromisoformat(started),
        ended_at=datetime.fromisoformat(ended) if ended else None,
        outcome=outcome,
        detail=detail,
        error=error,
        alerted=bool(alerted),
    )


class RunLog:
    """The scheduler's side: one connection per scheduler process; the job locks in
    ``funnelcast.scheduler`` keep two processes off the same job."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def states(self, jobs: list[str]) -> dict[str, JobState]:
        marks = dict(self._db.execute("SELECT job, handled_until FROM watermarks").fetchall())
        out = {}
        for job in jobs:
            row = self._db.execute(
                "SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1", (job,)
            ).fetchone()
            last = None
            if row is not None:
                r = _record(row)
                last = LastRun(r.scheduled_for, r.attempt, r.outcome, r.ended_at)  # type: ignore[arg-type]
            mark = marks.get(job)
            out[job] = JobState(datetime.fromisoformat(mark) if mark else None, last)
        return out

    def watch(self, job: str, until: datetime) -> None:
        """Mark fire times up to ``until`` handled (a new job, or a run being started)."""
        self._db.execute(
            "INSERT INTO watermarks VALUES (?, ?) ON CONFLICT(job) DO UPDATE SET handled_until = "
            "MAX(handled_until, excluded.handled_until)",
            (job, until.isoformat()),
        )

    def start(self, job: str, scheduled_for: datetime, attempt: int, covers: int, at: datetime) -> int:
        """Record the attempt as running and its fire time as handled, in one transaction: a crash
        mid-run leaves a ``running`` row, never a fire time that runs twice."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                "INSERT INTO runs (job, scheduled_for, attempt, covers, started_at, outcome) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                (job, scheduled_for.isoformat(), attempt, covers, at.isoformat()),
            )
            self.watch(job, scheduled_for)
        return int(cur.lastrowid or 0)

    def interrupted(self, at: datetime, jobs: list[str]) -> int:
        """Runs of ``jobs`` still ``running`` when a scheduler starts a step were cut off (the caller
        holds these jobs' locks, so no live process is running them): they become failures, so they
        are retried and alerted like any other."""
        marks = ", ".join("?" for _ in jobs)
        cur = self._db.execute(
            "UPDATE runs SET outcome = 'failed', ended_at = ?, error = ? "
            f"WHERE outcome = 'running' AND job IN ({marks})",
            (at.isoformat(), "interrupted: the scheduler stopped during the run", *jobs),
        )
        return cur.rowcount

    def finish(
        self, run_id: int, at: datetime, outcome: str, detail: str | None, error: str | None, alerted: bool
    ) -> None:
        self._db.execute(
            "UPDATE runs SET ended_at = ?, outcome = ?, detail = ?, error = ?, alerted = ? WHERE id = ?",
            (at.isoformat(), outcome, detail, error, int(alerted), run_id),
        )


def read_runs(path: Path, job: str | None = None, limit: int = 200) -> list[RunRecord]:
    """The newest runs first (of ``job`` if given); none when the scheduler has never run."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)) as db:
        try:
            where, args = ("WHERE job = ?", (job, limit)) if job else ("", (limit,))
            rows = db.execute(f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?", args).fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return []
            raise
    return [_record(r) for r in rows]
