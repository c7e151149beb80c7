"""Every shipped mapping (or yours) through import -> features -> train, beside reference models.

    .venv/bin/python bench/import_public_datasets.py [--datasets ../shared/datasets] [--world-scale 0.1]
    .venv/bin/python bench/import_public_datasets.py --mapping MY_MAPPING.yaml --export MY_EXPORT

Each case goes through what a team runs — ``funnelcast import`` (a single-kind export, or a bundle
folder), ``features build``, ``features apply``, ``features materialize`` — into its own temporary
data dir; then the project's model is trained as ``funnelcast train`` trains it (split, early
stopping, refit, calibration) and scored on its holdout. Beside it, on the identical rows: a
logistic regression (one-hot categories, median-imputed scaled numerics with missing indicators)
and LightGBM with default settings, both fitted on the project's train + validation rows and scored
on its holdout. ``project - best reference`` is the holdout ROC-AUC difference to the better
reference, with a paired-bootstrap 95% interval (1,000 resamples of the holdout rows); the project
is "below" only when the whole interval is below zero.

Shipped cases: the public datasets in ``../shared/datasets`` (X Education leads, Telco churn, Maven
pipeline: the last is a close-date forecast, which has no classifier reference), and the Salesforce
and HubSpot bundle mappings on a world written as their export (``--world-scale``; 0 skips them).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sklearn.metrics import average_precision_score, roc_auc_score

from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.importers.mapping import read_mapping_document
from features.importers.run import import_export_file
from features.jobs.raw import read_raw
from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from features.world.crm_export import export_world, write_export
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import PROJECT_ROOT, Settings
from training import churn, lead_score, milestone_close
from training.bootstrap import paired_bootstrap_interval
from training.metrics import roc_auc
from training.references import reference_predictions

EXAMPLES = PROJECT_ROOT / "features" / "importers" / "examples"
MODELS_OF_KIND = {
    "leads": ("lead",),
    "accounts": ("churn",),
    "opportunities": ("close",),
    "bundle": ("lead", "churn"),
}
RESAMPLES = 1000


@dataclass(frozen=True)
class Case:
    name: str
    mapping: Path
    export: Path  # a file, or a folder for a bundle


def shipped_cases(datasets: Path) -> list[Case]:
    return [
        Case(
            "X Education leads",
            EXAMPLES / "xeducation_leads.yaml",
            datasets / "xeducation_leads" / "Leads.csv",
        ),
        Case(
            "Telco churn",
            EXAMPLES / "telco_churn.yaml",
            datasets / "telco_churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv",
        ),
        Case(
            "Maven CRM pipeline",
            EXAMPLES / "maven_crm_opportunities.yaml",
            datasets / "maven_crm" / "sales_pipeline.csv",
        ),
    ]


def world_export_cases(root: Path, scale: float, seed: int) -> list[Case]:
    """The world written through the Salesforce and HubSpot mappings (their example export)."""
    world = Settings(data_dir=root / "world")
    generate_world(WorldParams(seed=seed).scaled(scale), world.raw_dir, world.oracle_dir)
    raw = read_raw(world.raw_dir)
    cases = []
    for fmt in ("salesforce", "hubspot"):
        mapping = EXAMPLES / f"{fmt}_bundle.yaml"
        write_export(export_world(raw, load_bundle_mapping(mapping), fmt), root / f"{fmt}-export")
        cases.append(Case(f"world as a {fmt} export (scale {scale})", mapping, root / f"{fmt}-export"))
    return cases


def imported_settings(case: Case, root: Path, index: int) -> Settings:
    data_dir = root / f"case{index}"
    kind = read_mapping_document(case.mapping).get("kind", "?")
    settings = Settings(data_dir=data_dir, feast_project=f"bench_case{index}")
    if kind == "bundle":
        import_bundle(settings, case.export, case.mapping)
    else:
        import_export_file(settings, kind, case.export, case.mapping)
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    materialize(store, latest_feature_time(settings))
    return settings


def classifier_row(case: Case, short: str, settings: Settings) -> dict[str, str]:
    """The project's holdout ROC-AUC / PR-AUC beside both references, and the paired interval."""
    module = {"lead": lead_score, "churn": churn}[short]
    store = open_store(settings)
    data = module.build_dataset(store, settings.raw_dir, settings.oracle_dir)
    model = module.train(data)
    frame = data.frame if short == "lead" else data.rows
    split, y = data.split, data.y
    seen, hold = split.train | split.valid, split.holdout
    categorical, numeric = data.model_columns()
    scores = {
        "project": model.predict(frame[hold]),
        **reference_predictions(frame, y, seen, hold, categorical, numeric),
    }
    y_hold = y[hold]
    auc = {name: roc_auc_score(y_hold, p) for name, p in scores.items()}
    pr = {name: average_precision_score(y_hold, p) for name, p in scores.items()}
    best = max(("logistic regression", "LightGBM default"), key=auc.get)
    interval = paired_bootstrap_interval(roc_auc, y_hold, scores["project"], scores[best], RESAMPLES, seed=7)
    diff, low, high = interval.difference, interval.low, interval.high
    verdict = "below" if high < 0 else ("above" if low > 0 else "level")
    return {
        "case": f"{case.name} ({short}, {split.method} split)",
        "rows": f"{int(seen.sum()):,} / {int(hold.sum()):,}",
        "project": f"{auc['project']:.4f} / {pr['project']:.3f}",
        "logistic regression": f"{auc['logistic regression']:.4f} / {pr['logistic regression']:.3f}",
        "LightGBM default": f"{auc['LightGBM default']:.4f} / {pr['LightGBM default']:.3f}",
        "project - best reference": f"{diff:+.4f} [{low:+.4f}, {high:+.4f}] vs {best}: {verdict}",
    }


def close_row(case: Case, settings: Settings) -> dict[str, str]:
    store = open_store(settings)
    try:
        data = milestone_close.build_dataset(store, settings.raw_dir, settings.oracle_dir)
        model = milestone_close.train(data)
        metrics, _ = milestone_close.evaluate(model, data)
        result = (
            f"month-total WAPE {metrics['month_wape']:.3f} vs best baseline "
            f"{metrics['month_best_baseline_wape']:.3f}; 4w {metrics['wape_4w']:.3f}"
        )
    except ValueError as err:
        result = f"not trained: {err}"
    return {
        "case": f"{case.name} (close)",
        "rows": "",
        "project": result,
        "logistic regression": "n/a (a forecast)",
        "LightGBM default": "n/a",
        "project - best reference": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=PROJECT_ROOT.parent / "shared" / "datasets")
    parser.add_argument(
        "--mapping", type=Path, default=None, help="Your mapping (with --export): only this case."
    )
    parser.add_argument("--export", type=Path, default=None, help="Your export file (or bundle folder).")
    parser.add_argument(
        "--world-scale", type=float, default=0.1, help="World size for the bundle cases; 0 skips."
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the data dirs here (default: temp).")
    args = parser.parse_args()
    if (args.mapping is None) != (args.export is None):
        parser.error("--mapping and --export go together")
    for name in ("mlflow", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    console = Console(width=200)
    root = args.keep or Path(tempfile.mkdtemp(prefix="funnelcast-import-bench-"))
    rows = []
    try:
        if args.mapping is not None:
            cases = [Case(args.export.name, args.mapping, args.export)]
        else:
            cases = shipped_cases(args.datasets)
            if args.world_scale > 0:
                cases += world_export_cases(root, args.world_scale, args.seed)
        for index, case in enumerate(cases):
            t0 = time.perf_counter()
            settings = imported_settings(case, root, index)
            kind = read_mapping_document(case.mapping).get("kind", "?")
            for short in MODELS_OF_KIND.get(kind, ()):
                row = close_row(case, settings) if short == "close" else classifier_row(case, short, settings)
                rows.append(row)
                console.print(
                    f"[green]done[/green] {row['case']}: {row['project']} ({time.perf_counter() - t0:.0f}s)"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    table = Table(
        title="holdout ROC-AUC / PR-AUC: the project beside references fitted on the same train + valid rows"
    )
    columns = (
        "case",
        "rows",
        "project",
        "logistic regression",
        "LightGBM default",
        "project - best reference",
    )
    for column in columns:
        table.add_column(column if column != "rows" else "fit / holdout rows", overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    below = [r["case"] for r in rows if r["project - best reference"].endswith(": below")]
    print(
        f"references: project below the better reference beyond the interval on {len(below)} "
        f"of {len(rows)} cases"
    )


if __name__ == "__main__":
    main()
