"""World -> CRM export -> bundle import -> train, beside the native path on the same world.

    .venv/bin/python bench/import_roundtrip.py [--scale 0.2] [--seed 7] [--formats salesforce hubspot]

The native path generates a world and trains the three models on its canonical tables. Each export
path writes that world with ``funnelcast world export --format F`` (through the shipped mapping),
imports it into a fresh data dir with ``funnelcast import bundle``, and runs the same feature build,
Feast apply, materialisation and training (MLflow, a store per path), then the weekly scoring job
(forecast, at-risk list, process rules) on the imported data. Printed: lead and churn holdout
ROC-AUC and the close model's 4-week WAPE per path, each gap to native, the weekly job's counts;
the last line is ``roundtrip: max gap X`` (bounds: ROC-AUC 0.005, WAPE 0.01).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features.directory import build_directory, publish_directory
from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.jobs.raw import read_raw
from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from features.world.crm_export import FORMATS, example_mapping_path, export_world, write_export
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings
from service.weekly import score_weekly
from training.run import train_model

METRICS = (("lead", "roc_auc", 0.005), ("churn", "roc_auc", 0.005), ("close", "wape_4w", 0.01))


def path_settings(root: Path, name: str) -> Settings:
    data = root / name
    return Settings(
        data_dir=data,
        feast_project=f"roundtrip_{name}",
        mlflow_tracking_uri=f"sqlite:///{data / 'mlflow.db'}",
        mlflow_artifact_root=data / "mlflow-artifacts",
    )


def train_path(settings: Settings, console: Console) -> dict[str, str | float]:
    """Features, Feast, training of the three models and the weekly job; the figures of one path."""
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    end = latest_feature_time(settings)
    materialize(store, end)
    publish_directory(settings, build_directory(settings, end))  # what the weekly job reads
    result: dict[str, str | float] = {}
    for model, metric, _ in METRICS:
        run = train_model(settings, model, force=True)
        result[model] = run.metrics[metric]
        console.print(f"  {settings.data_dir.name} {model}: {metric} {run.metrics[metric]:.4f}")
    weekly = score_weekly(settings)
    result["weekly"] = f"{weekly.deals:,} deals, {len(weekly.firings):,} rule firings"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.2, help="World size relative to the demo world.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the data dirs here (default: temp).")
    args = parser.parse_args()
    for name in ("mlflow", "feast", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    console = Console(width=150)
    root = args.keep or Path(tempfile.mkdtemp(prefix="funnelcast-roundtrip-"))
    try:
        native = path_settings(root, "native")
        params = WorldParams(seed=args.seed).scaled(args.scale)
        generate_world(params, native.raw_dir, native.oracle_dir)
        results = {"native": train_path(native, console)}
        raw = read_raw(native.raw_dir)
        for fmt in args.formats:
            mapping = example_mapping_path(fmt)
            export_dir = root / f"{fmt}-export"
            write_export(export_world(raw, load_bundle_mapping(mapping), fmt), export_dir)
            settings = path_settings(root, fmt)
            import_bundle(settings, export_dir, mapping)
            results[fmt] = train_path(settings, console)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    table = Table(
        title=f"round trip: world (seed {args.seed}, scale {args.scale}) vs its CRM exports re-imported"
    )
    table.add_column("path")
    for model, metric, bound in METRICS:
        table.add_column(f"{model} {metric}", justify="right")
        table.add_column(f"gap (≤ {bound})", justify="right")
    table.add_column("weekly job (forecast, at-risk, rules)")
    gaps = []
    for path, result in results.items():
        cells = []
        for model, _, _bound in METRICS:
            gap = abs(float(result[model]) - float(results["native"][model]))
            if path != "native":
                gaps.append(gap)
            cells += [f"{float(result[model]):.4f}", "" if path == "native" else f"{gap:.4f}"]
        table.add_row(path, *cells, str(result["weekly"]))
    console.print(table)
    within = all(
        abs(float(r[m]) - float(results["native"][m])) <= b for r in results.values() for m, _, b in METRICS
    )
    console.print(f"all gaps within their bounds: {'yes' if within else 'NO'}")
    print(f"roundtrip: max gap {max(gaps) if gaps else 0.0:.4f}")


if __name__ == "__main__":
    main()
