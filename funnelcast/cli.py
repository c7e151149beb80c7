"""The ``funnelcast`` command line: world, features (and later train, serve)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from funnelcast.core import clock
from funnelcast.core.settings import Settings, get_settings

app = typer.Typer(
    help="funnelcast: lead scoring, routing and forecasting for B2B sales.", no_args_is_help=True
)
world_app = typer.Typer(help="The synthetic sales world.", no_args_is_help=True)
features_app = typer.Typer(help="Feature tables and the Feast store.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(features_app, name="features")
console = Console()


@contextmanager
def _steps(total: int, title: str) -> Iterator[callable]:  # type: ignore[valid-type]
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=total)

        def advance(step: str) -> None:
            progress.update(task, advance=1, description=f"{title}: {step}")

        yield advance


def utc_option(option: str, text: str) -> datetime:
    """An ISO time given on the command line, naive = UTC; exit 2 naming the option if it is not one."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        console.print(f"[red]error:[/red] {option} {text!r} is not an ISO time (e.g. 2026-11-02T00:00:00)")
        raise typer.Exit(2) from err
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _settings(data_dir: Path | None) -> Settings:
    settings = get_settings()
    settings = settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings
    if settings.clock == "external":  # jobs run by hand in a live run read the world's time
        from funnelcast.core.shared_clock import use_clock

        use_clock(settings)
    return settings


DataDir = Annotated[
    Path | None, typer.Option(help="Data directory (default: settings / FUNNELCAST_DATA_DIR).")
]


@world_app.command("generate")
def world_generate(
    seed: Annotated[int | None, typer.Option(help="World seed (default: settings.seed).")] = None,
    scale: Annotated[float | None, typer.Option(min=0.001, help="Size relative to the demo world.")] = None,
    leads: Annotated[
        int | None, typer.Option(min=200, help="Number of leads (overrides --scale for leads).")
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The world's last day, moved back to its week's Monday (default: this week's Monday, "
            "so the demo's features are fresh; a seed and an end always give the same world).",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Generate the seeded synthetic world and its oracle, then print a summary."""
    from features.world.generate import STEPS, generate_world
    from features.world.params import WorldParams, monday_of

    settings = _settings(data_dir)
    params = WorldParams(
        seed=settings.seed if seed is None else seed, end=monday_of(end or clock.now())
    ).scaled(settings.world_scale if scale is None else scale)
    if leads is not None:
        params = replace(params, n_leads=leads)
    with _steps(len(STEPS), "world") as advance:
        summary = generate_world(params, settings.raw_dir, settings.oracle_dir, progress=advance)
    from funnelcast.cli_import import count_table

    ending = f"ending {params.end:%Y-%m-%d}"
    title = f"world seed={params.seed} {ending} in {summary.seconds:.1f}s → {settings.raw_dir}"
    console.print(count_table(title, "table", summary.rows))
    rates = Table(title="base rates and oracle AUCs")
    rates.add_column("measure")
    rates.add_column("value", justify="right")
    for name, value in summary.base_rates.items():
        rates.add_row(name, f"{value:.3f}")
    for name, value in summary.oracle_auc.items():
        rates.add_row(f"oracle ROC-AUC {name}", f"{value:.3f}")
    console.print(rates)


@world_app.command("export")
def world_export(
    directory: Annotated[
        Path, typer.Argument(file_okay=False, help="Where to write the export's CSV files.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="salesforce or hubspot.")] = "salesforce",
    data_dir: DataDir = None,
) -> None:
    """Write the world as a Salesforce- or HubSpot-shaped CRM export (the shipped mapping reads it back)."""
    from features.importers.bundle_mapping import load_bundle_mapping
    from features.jobs.raw import read_raw
    from features.world.crm_export import FORMATS, example_mapping_path, export_world, write_export
    from funnelcast.cli_import import count_table

    if fmt not in FORMATS:
        console.print(f"[red]error:[/red] --format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        raise typer.Exit(2)
    settings = _settings(data_dir)
    mapping = example_mapping_path(fmt)
    rows = write_export(
        export_world(read_raw(settings.raw_dir), load_bundle_mapping(mapping), fmt), directory
    )
    title = f"world → {fmt} export in {directory} (import with --mapping {mapping})"
    console.print(count_table(title, "file", rows))


def main() -> None:
    app()


@features_app.command("build")
def features_build(data_dir: DataDir = None) -> None:
    """Turn the canonical tables into feature tables (Parquet) for the Feast offline store."""
    from features.jobs.run import FEATURE_JOBS, build_all
    from funnelcast.cli_import import count_table

    settings = _settings(data_dir)
    with _steps(len(FEATURE_JOBS), "feature tables") as advance:
        rows = build_all(settings, progress=advance)
    console.print(count_table(f"feature tables → {settings.feature_dir}", "table", rows))


@features_app.command("apply")
def features_apply(data_dir: DataDir = None) -> None:
    """Register entities, feature views and feature services in the Feast registry."""
    from features.store import FeatureTablesMissing, apply_definitions, open_store

    settings = _settings(data_dir)
    try:
        names = apply_definitions(open_store(settings), settings)
    except FeatureTablesMissing as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    console.print(f"applied {len(names)} objects to project {settings.feast_project!r}: {', '.join(names)}")
    from features.feature_store_yaml import write_feature_store_yaml

    console.print(f"Feast CLI/UI config: {write_feature_store_yaml(settings)}")


@features_app.command("materialize")
def features_materialize(
    end: Annotated[
        str | None, typer.Option(help="Materialise up to this UTC time (default: newest feature row).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Incrementally write the latest feature values each entity needs to the online store."""
    from features.directory import build_directory, publish_directory
    from features.store import MaterializationIncomplete, latest_feature_time, materialize, open_store

    settings = _settings(data_dir)
    store = open_store(settings)
    end_at = latest_feature_time(settings) if end is None else utc_option("--end", end)
    views = store.list_feature_views()
    if not views:
        console.print("[red]error:[/red] no feature views registered; run `funnelcast features apply` first")
        raise typer.Exit(2)
    try:
        with _steps(len(views), "materialise") as advance:
            reports = materialize(store, end_at, progress=advance)
    except MaterializationIncomplete as err:
        console.print(f"[red]error:[/red] materialisation to {settings.online_store} incomplete: {err}")
        raise typer.Exit(1) from err
    directory = build_directory(settings, end_at)
    publish_directory(settings, directory)
    table = Table(title=f"materialised to {settings.online_store} up to {end_at:%Y-%m-%d %H:%M} UTC")
    for col in ("view", "from", "entities online", "seconds"):
        table.add_column(col)
    for r in reports:
        start = f"{r.start:%Y-%m-%d}" + (" (refilled: store lacked entities)" if r.refilled else "")
        table.add_row(r.view, start, str(r.entities), f"{r.seconds:.2f}")
    console.print(table)
    console.print(
        f"serving directory published: {len(directory.rep_ids)} reps, "
        f"{len(directory.open_deals):,} open deals, {len(directory.renewals):,} renewals"
    )


@app.command("train")
def train(
    model: Annotated[str, typer.Argument(help="lead | close | churn | all")],
    force: Annotated[
        bool, typer.Option("--force", help="Make the new version champion even if it does not beat it.")
    ] = False,
    service: Annotated[
        str | None,
        typer.Option(help="Lead model only: train on this feature service version (e.g. lead_score_v2)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Train a model on its feature service, log it to MLflow, register it and apply the promotion gate."""
    from training.run import MODELS, STEPS_PER_MODEL, train_model

    names = list(MODELS) if model == "all" else [model]
    if any(name not in MODELS for name in names):
        console.print(f"[red]error:[/red] MODEL must be one of {', '.join([*MODELS, 'all'])}, not {model!r}")
        raise typer.Exit(2)
    settings = _settings(data_dir)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # MLflow's INFO lines drown the progress bar
    results = []
    with _steps(STEPS_PER_MODEL * len(names), "train") as advance:
        for name in names:
            try:
                results.append(train_model(settings, name, force=force, progress=advance, service=service))
            except (FileNotFoundError, ValueError) as err:
                console.print(f"[red]error:[/red] {name}: {err}")
                raise typer.Exit(2) from err
    for run in results:
        table = Table(title=f"{run.name} v{run.version} (run {run.run_id[:8]})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in run.metrics.items():
            table.add_row(key, f"{value:.4f}")
        console.print(table)
        verdict = "[green]champion[/green]" if run.gate.promoted else "[yellow]not promoted[/yellow]"
        console.print(f"{run.name} v{run.version}: {verdict} — {run.gate.reason}")
        if run.gate.forced:
            console.print("[yellow]--force overrode the gate[/yellow]")
    console.print(f"MLflow: {settings.mlflow_tracking_uri}")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.service_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.service_port).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="uvicorn worker processes (default: settings.service_workers, 2)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the API (scoring, routing, models, metrics) with uvicorn."""
    import os

    import uvicorn

    if data_dir is not None:
        os.environ["FUNNELCAST_DATA_DIR"] = str(data_dir)  # the app factory reads settings itself
    from features.directory import DirectoryMissing
    from features.store import OnlineStoreUnavailable
    from funnelcast.core.tracking_store import TrackingStoreMissing
    from service.limits import server_limits
    from service.routing.state import RoutingStateUnavailable
    from service.rules import RulesError, load_rules
    from service.runtime import check_stores

    settings = _settings(data_dir)
    try:
        load_rules(settings.rules_path)  # refuse to start on a bad rules file, with line and reason
    except RulesError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    try:
        check_stores(settings)
    except DirectoryMissing as err:
        typer.echo(f"error: {err} (or `make demo` for the whole way there)", err=True)
        raise typer.Exit(2) from err
    except (OnlineStoreUnavailable, RoutingStateUnavailable, TrackingStoreMissing) as err:
        # one line on stderr, unwrapped (rich would fold it at the terminal's width), no traceback
        typer.echo("error: " + " ".join(str(err).split()), err=True)
        raise typer.Exit(2) from err
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host or settings.service_host,
        port=port or settings.service_port,
        workers=workers or settings.service_workers,
        log_level="warning",
        access_log=False,
        **server_limits(settings),
    )


score_app = typer.Typer(help="Scheduled scoring jobs.", no_args_is_help=True)
app.add_typer(score_app, name="score")


@score_app.command("weekly")
def score_weekly_command(data_dir: DataDir = None) -> None:
    """Score the open pipeline, evaluate the process rules, store alerts and notify the webhook."""
    from service.rules import RulesError
    from service.weekly import score_weekly

    settings = _settings(data_dir)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        with console.status("scoring the pipeline and evaluating rules"):
            report = score_weekly(settings)
    except (RulesError, RuntimeError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    table = Table(
        title=f"weekly scoring: {report.deals:,} open deals, milestone_close v{report.model_version}"
    )
    for col in ("rule", "fired"):
        table.add_column(col)
    counts: dict[str, int] = {}
    for f in report.firings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    for rule, n in sorted(counts.items()):
        table.add_row(rule, str(n))
    console.print(table)
    webhook = {None: "no webhook configured", True: "sent", False: "FAILED after retries"}[
        report.webhook_sent
    ]
    console.print(f"{report.new_alerts} new alert(s) stored; webhook: {webhook}")
    raised = ", ".join(report.monitoring_raised) or "none"
    console.print(f"monitoring thresholds newly crossed (alerted once): {raised}")


def _register_import() -> None:
    # `import` is a Python keyword: the command is registered by name
    from funnelcast.cli_import import import_export

    app.command("import", help="Import a CRM export (CSV/Parquet) onto the canonical tables via a mapping.")(
        import_export
    )


_register_import()


def _register_ui() -> None:
    from funnelcast.cli_ui import features_yaml, ui_app

    app.add_typer(ui_app, name="ui")
    features_app.command("yaml")(features_yaml)


_register_ui()


def _register_live() -> None:
    from funnelcast.cli_live import world_live

    world_app.command("live")(world_live)


_register_live()


def _register_scheduler() -> None:
    from funnelcast.cli_scheduler import scheduler_app

    app.add_typer(scheduler_app, name="scheduler")


_register_scheduler()
