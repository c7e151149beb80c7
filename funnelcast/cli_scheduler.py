"""``funnelcast scheduler run-due | loop | runs``: the scheduled jobs from the command line.

Registered in ``funnelcast.cli``. ``run-due`` is one step on the one clock (what a live run or a
cron line calls); ``loop`` is the production process; ``runs`` prints the run log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from funnelcast.core.run_log import read_runs
from funnelcast.core.settings import Settings, get_settings
from funnelcast.core.shared_clock import use_clock

console = Console()
scheduler_app = typer.Typer(help="Jobs that run on their own, on the one clock.", no_args_is_help=True)


def _settings(data_dir: Path | None) -> Settings:
    settings = get_settings()
    settings = settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings
    use_clock(settings)
    return settings


DataDir = Annotated[Path | None, typer.Option(help="Data directory (default: settings).")]


@scheduler_app.command("run-due")
def run_due_command(
    now: Annotated[
        str | None, typer.Option(help="Run as of this UTC time (default: the clock's now).")
    ] = None,
    job: Annotated[list[str] | None, typer.Option(help="Only these jobs (repeatable).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run every job that is due now (retries included) once, log it, and print what ran."""
    from funnelcast.cli import utc_option
    from funnelcast.scheduler import JOBS, SchedulerBusy, run_due

    settings = _settings(data_dir)
    at = utc_option("--now", now) if now is not None else None
    unknown = sorted(set(job or []) - set(JOBS))
    if unknown:
        console.print(f"[red]error:[/red] --job {', '.join(unknown)}: jobs are {', '.join(JOBS)}")
        raise typer.Exit(2)
    jobs = {name: fn for name, fn in JOBS.items() if not job or name in job}
    try:
        results = run_due(settings, at, jobs)
    except SchedulerBusy as busy:
        console.print(f"[yellow]busy:[/yellow] {busy}; nothing run (try again when it is done)")
        raise typer.Exit(3) from None
    table = Table(title=f"scheduler: {len(results)} run(s) due")
    for col in ("job", "scheduled for", "attempt", "covers", "outcome", "detail / error", "alerted"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.job, f"{r.scheduled_for:%Y-%m-%d %H:%M}", str(r.attempt), str(r.covers), r.outcome,
            (r.detail or r.error or "")[:120], "yes" if r.alerted else "",
        )  # fmt: skip
    console.print(table)
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


@scheduler_app.command("loop")
def loop_command(data_dir: DataDir = None) -> None:
    """Run due jobs every scheduler_tick_seconds until interrupted (the production process)."""
    from funnelcast.scheduler import loop

    settings = _settings(data_dir)
    console.print(f"scheduler: {settings.scheduler_jobs}, run log {settings.scheduler_db}")
    try:
        loop(settings)
    except KeyboardInterrupt:
        console.print("scheduler stopped")


@scheduler_app.command("runs")
def runs_command(
    job: Annotated[str | None, typer.Option(help="Only this job.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data_dir: DataDir = None,
) -> None:
    """The run log, newest first."""
    settings = _settings(data_dir)
    table = Table(title=f"scheduler runs ({settings.scheduler_db})")
    for col in ("job", "scheduled for", "attempt", "started", "ended", "outcome", "error", "alerted"):
        table.add_column(col)
    for r in read_runs(settings.scheduler_db, job, limit):
        ended = f"{r.ended_at:%m-%d %H:%M:%S}" if r.ended_at else ""
        table.add_row(
            r.job, f"{r.scheduled_for:%Y-%m-%d %H:%M}", str(r.attempt), f"{r.started_at:%m-%d %H:%M:%S}",
            ended, r.outcome, (r.error or "")[:80], "yes" if r.alerted else "",
        )  # fmt: skip
    console.print(table)
