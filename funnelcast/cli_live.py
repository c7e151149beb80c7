"""``funnelcast world live``: play the world forward against a running service (``funnelcast.live``).

Registered under the ``world`` command group in ``funnelcast.cli``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


def world_live(
    weeks: Annotated[int, typer.Option(min=1, help="Weeks of world time to play from the world's end.")] = 12,
    speed: Annotated[
        str, typer.Option(help="World seconds per wall second; 0 or 'max': as fast as possible.")
    ] = "max",
    url: Annotated[
        str, typer.Option(help="The running service (started with FUNNELCAST_CLOCK=external).")
    ] = ("http://127.0.0.1:8000"),
    seed: Annotated[int | None, typer.Option(help="World seed (default: settings.seed).")] = None,
    state: Annotated[
        Path | None, typer.Option(help="State file: a run given the same one resumes where it stopped.")
    ] = None,
    drift: Annotated[
        str | None, typer.Option(help="Inject a change: channel_halves@WEEK (referral conversion halves).")
    ] = None,
    step_hours: Annotated[int, typer.Option(min=1, max=168, help="World hours per step (divides 168).")] = 6,
    scheduler: Annotated[bool, typer.Option(help="Run the scheduler's due jobs after each step.")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (default: settings).")] = None,
) -> None:
    """Play the world forward against the service: events, leads scored and routed by it, outcomes
    drawn from the reps it chose, the scheduler on the world's clock. Resumable with --state."""
    from funnelcast.cli import _settings
    from funnelcast.cli_import import count_table
    from funnelcast.live import LiveRun, LiveRunError, parse_drift, scheduler_runner

    settings = _settings(data_dir)
    if settings.clock != "external":
        console.print(
            "[red]error:[/red] set FUNNELCAST_CLOCK=external (the service's too): the run moves the clock"
        )
        raise typer.Exit(2)
    try:
        x = 0.0 if speed == "max" else float(speed)
        injected = parse_drift(drift)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    seed = settings.seed if seed is None else seed
    path = state or settings.service_dir / f"live-{seed}.json"
    run = LiveRun(
        settings, url, path, seed, step_hours, injected, scheduler_runner(settings) if scheduler else None
    )
    totals: dict[str, int] = {}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(
                "live", total=weeks * run.steps_per_week, completed=run.state.finished_steps
            )
            for r in run.run(weeks, x):
                for name in ("events_posted", "events_accepted", "leads_scored", "leads_unrouted",
                             "outcomes_posted", "outcomes_recorded"):  # fmt: skip
                    totals[name] = totals.get(name, 0) + getattr(r, name)
                for job in r.jobs:
                    totals[f"job {job}"] = totals.get(f"job {job}", 0) + 1
                progress.update(task, completed=r.step + 1, description=f"live {r.now:%Y-%m-%d %H:%M}")
    except (LiveRunError, httpx_error()) as err:
        console.print(f"[red]error:[/red] {err} (run again with the same --state to resume)")
        raise typer.Exit(1) from err
    finally:
        run.close()
    title = f"world live seed={seed}: {run.state.finished_steps} steps done, state {path}"
    console.print(count_table(title, "what", totals, counted="count"))


def httpx_error() -> type[Exception]:
    import httpx

    return httpx.HTTPError
