"""``funnelcast import leads|opportunities|accounts EXPORT --mapping MAPPING.yaml``.

Registered in ``funnelcast.cli`` as the ``import`` command. It maps a CRM export (CSV or Parquet)
onto the canonical tables through a column mapping (``features/importers/README.md``) and prints
what it did: rows read and rejected (with reasons and rows), each column's role and type, the label
rate, how rows were dated, and the custom attributes that will reach the model. Any problem with
the export or the mapping exits with code 2 and a message naming the column and rows.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.importers.errors import ExportError, row_list
from features.importers.report import ImportReport
from funnelcast.core.settings import Settings, get_settings

console = Console()


class ExportKind(StrEnum):
    leads = "leads"
    opportunities = "opportunities"
    accounts = "accounts"
    bundle = "bundle"
    commodity_prices = "commodity-prices"
    tenders = "tenders"


def import_export(
    kind: Annotated[
        ExportKind,
        typer.Argument(
            help="What the export holds: leads, opportunities or accounts (one file), or bundle "
            "(a folder of CRM objects with their histories)."
        ),
    ],
    export: Annotated[
        Path,
        typer.Argument(
            exists=True,
            readable=True,
            help="The CRM export: a CSV or Parquet file, or a folder for a bundle.",
        ),
    ],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Column mapping (YAML); examples in features/importers/examples/.",
        ),
    ],
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default: settings / FUNNELCAST_DATA_DIR).")
    ] = None,
) -> None:
    """Import a CRM export through a column mapping (then `features build/apply/materialize`, `train`)."""
    from features.importers.run import STEPS, import_export_file

    settings = get_settings()
    settings = settings.model_copy(update={"data_dir": data_dir}) if data_dir else settings
    if (kind == ExportKind.bundle) != export.is_dir():
        what = "a folder of export files" if kind == ExportKind.bundle else "one export file, not a folder"
        console.print(f"[red]error:[/red] EXPORT for `import {kind.value}` must be {what}: {export}")
        raise typer.Exit(2)
    if kind == ExportKind.bundle:
        _import_bundle(settings, export, mapping)
        return
    if kind in (ExportKind.commodity_prices, ExportKind.tenders):
        _import_feed(settings, kind.value.replace("-", "_"), export, mapping)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"import {kind.value}", total=len(STEPS))

            def advance(step: str) -> None:
                progress.update(task, advance=1, description=f"import {kind.value}: {step}")

            report = import_export_file(settings, kind.value, export, mapping, progress=advance)
    except ExportError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    print_report(report, settings, console)


def count_table(title: str, what: str, rows: dict[str, int], counted: str = "rows") -> Table:
    """A two-column table: each name and its count (of rows, unless ``counted`` says otherwise)."""
    table = Table(title=title)
    table.add_column(what)
    table.add_column(counted, justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    return table


def _import_feed(settings: Settings, kind: str, path: Path, mapping: Path) -> None:
    from features.importers.signals_run import import_feed

    try:
        with console.status(f"importing {kind.replace('_', ' ')}"):
            report = import_feed(settings, kind, path, mapping)  # type: ignore[arg-type]
    except ExportError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    console.print(
        f"import {report.kind} ← {path.name}: {report.rows_read:,} rows read, {report.rows_imported:,} "
        f"imported into {settings.raw_dir}"
    )
    for note in report.notes:
        console.print(f"• {note}")
    matches = report.matches
    if matches is None:
        return
    console.print(
        f"buyers: {matches.buyers:,} distinct; matched {len(matches.matched):,} ({matches.match_rate:.1%}), "
        f"ambiguous {len(matches.ambiguous):,}, unmatched {len(matches.unmatched):,}"
    )
    table = Table(title="buyers not matched (ambiguous: two companies too close; unmatched: best too weak)")
    for column in ("buyer on the notices", "why", "closest CRM companies (score)"):
        table.add_column(column)
    for buyer, candidates in matches.ambiguous.items():
        table.add_row(
            buyer, "ambiguous", "; ".join(f"{c.name} ({c.company_id}) ({c.score:.0f})" for c in candidates)
        )
    for buyer, best in matches.unmatched.items():
        table.add_row(
            buyer, "unmatched", f"{best.name} ({best.company_id}) ({best.score:.0f})" if best else ""
        )
    if matches.ambiguous or matches.unmatched:
        console.print(table)


def _import_bundle(settings: Settings, export_dir: Path, mapping: Path) -> None:
    from features.importers.bundle_run import BUNDLE_STEPS, import_bundle

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("import bundle", total=len(BUNDLE_STEPS))
            report = import_bundle(
                settings,
                export_dir,
                mapping,
                progress=lambda step: progress.update(task, advance=1, description=f"import bundle: {step}"),
            )
    except ExportError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    title = f"import bundle ← {export_dir} ({report.source or 'CRM export'})"
    console.print(count_table(title, "export file", report.rows_read))
    tables = count_table(f"canonical tables written to {settings.raw_dir}", "table", report.tables)
    for name in report.kept:
        tables.add_row(name, "kept (not in the bundle)")
    console.print(tables)
    for note in report.notes:
        console.print(f"• {note}")
    console.print(
        "next: funnelcast features build && funnelcast features apply && funnelcast features materialize "
        "&& funnelcast train all"
    )


def print_report(report: ImportReport, settings: Settings, out: Console) -> None:
    """The import report as rich tables: summary, rejections, columns, attributes, notes."""
    summary = Table(title=f"import {report.kind} ← {Path(report.export).name}", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    summary.add_row("rows read", f"{report.rows_read:,}")
    summary.add_row("rows imported", f"{report.rows_imported:,}")
    summary.add_row("rows rejected", f"{report.rows_rejected:,}")
    positive, negative = report.label_names
    counts = report.label_counts
    label = f"{counts['positive']:,} {positive}, {counts['negative']:,} {negative}"
    if counts.get("open"):
        label += f", {counts['open']:,} open"
    summary.add_row("labels", label)
    summary.add_row("label rate", f"{report.label_rate:.1%} {positive} (of decided rows)")
    if report.undecided:
        summary.add_row(
            "too young to label", f"{report.undecided:,} (imported and scoreable; left out of training)"
        )
    summary.add_row("dated", report.time_source)
    summary.add_row("as of", f"{report.as_of:%Y-%m-%d %H:%M} UTC")
    summary.add_row("custom attributes", f"{len(report.attributes)} → feature view (see below)")
    summary.add_row("written to", str(settings.raw_dir))
    out.print(summary)
    if report.undated:
        out.print(
            "[yellow]undated export:[/yellow] every row has the same timestamp; "
            "training uses a seeded random split stratified by label instead of a time split."
        )
    if report.rejected:
        rejected = Table(title="rejected rows (1-based data rows)")
        for name in ("reason", "rows", "first rows"):
            rejected.add_column(name, justify="right" if name == "rows" else "left")
        for reason, rows in report.rejected.items():
            rejected.add_row(reason, f"{len(rows):,}", row_list(rows))
        out.print(rejected)
    columns = Table(title="columns")
    for name in ("column", "role", "type", "missing", "distinct", "placeholders"):
        columns.add_column(
            name, justify="right" if name in ("missing", "distinct", "placeholders") else "left"
        )
    for column in report.columns:
        role = column.role if not column.role.startswith("ignored") else f"[dim]{column.role}[/dim]"
        columns.add_row(
            column.name,
            role,
            column.type,
            f"{column.missing:.1%}",
            f"{column.distinct:,}",
            f"{column.placeholders:,}" if column.placeholders else "",
        )
    out.print(columns)
    if report.attributes:
        attributes = Table(title="custom attributes (feature view columns)")
        for name in ("feature", "from column", "type", "levels"):
            attributes.add_column(name)
        for a in report.attributes:
            levels = ", ".join(a.levels[:5]) + (f" … ({len(a.levels)})" if len(a.levels) > 5 else "")
            attributes.add_row(a.name, a.column, a.type, levels)
        out.print(attributes)
    for note in report.notes:
        out.print(f"• {note}")
    model = {"leads": "lead", "opportunities": "close", "accounts": "churn"}[report.kind]
    out.print(
        "next: funnelcast features build && funnelcast features apply && funnelcast features materialize "
        f"&& funnelcast train {model}"
    )
