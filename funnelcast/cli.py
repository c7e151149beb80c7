"""The ``funnelcast`` command line: world, features (and later train, serve)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from funnelcast.settings import Settings, get_settings

app = typer.Typer(help="funnelcast: lead scoring, routing and forecasting for B2B sales.", no_args_is_help=True)
world_app = typer.Typer(help="The synthetic sales world.", no_args_is_help=True)
features_app = typer.Typer(help="Feature tables and the Feast store.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(features_app, name="features")
console = Console()


@contextmanager
def _steps(total: int, title: str) -> Iterator[callable]:  # type: ignore[valid-type]
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=total)

        def advance(step: str) -> None:
            progress.update(task, advance=1, description=f"{title}: {step}")

        yield advance


def _settings(data_dir: Path | None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings


DataDir = Annotated[Path | None, typer.Option(help="Data directory (default: settings / FUNNELCAST_DATA_DIR).")]


@world_app.command("generate")
def world_generate(
    seed: Annotated[int | None, typer.Option(help="World seed (default: settings.seed).")] = None,
    scale: Annotated[float | None, typer.Option(min=0.001, help="Size relative to the demo world.")] = None,
    leads: Annotated[int | None, typer.Option(min=200, help="Number of leads (overrides --scale for leads).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Generate the seeded synthetic world and its oracle, then print a summary."""
    from features.world.generate import STEPS, generate_world
    from features.world.params import WorldParams

    settings = _settings(data_dir)
    params = WorldParams(seed=settings.seed if seed is None else seed).scaled(
        settings.world_scale if scale is None else scale
    )
    if leads is not None:
        params = replace(params, n_leads=leads)
    with _steps(len(STEPS), "world") as advance:
        summary = generate_world(params, settings.raw_dir, settings.oracle_dir, progress=advance)
    table = Table(title=f"world seed={params.seed} in {summary.seconds:.1f}s → {settings.raw_dir}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    rates = Table(title="base rates and oracle AUCs")
    rates.add_column("measure")
    rates.add_column("value", justify="right")
    for name, value in summary.base_rates.items():
        rates.add_row(name, f"{value:.3f}")
    for name, value in summary.oracle_auc.items():
        rates.add_row(f"oracle ROC-AUC {name}", f"{value:.3f}")
    console.print(rates)


def main() -> None:
    app()
