"""Import the public CRM-style datasets, build features, train and print AUCs beside the references.

    .venv/bin/python bench/import_public_datasets.py [--datasets ../shared/datasets] [--keep DIR]

Each dataset goes through exactly what a team would run — ``funnelcast import`` with the example
mapping in ``features/importers/examples/``, ``features build``, ``features apply``, ``features
materialize``, ``train`` — into its own temporary data dir and MLflow store (nothing is copied into
the repository). The reference figures are those of ``../shared/datasets/README.md`` (5-fold
stratified CV, default settings); ours is one holdout (20% leads / 25% accounts, stratified random
because the exports have no dates), so expect a spread of about ±0.01 around them.
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

from features.importers.run import import_export_file
from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.settings import PROJECT_ROOT, Settings
from training.run import train_model

EXAMPLES = PROJECT_ROOT / "features" / "importers" / "examples"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    export: str  # relative to the datasets folder
    mapping: str
    model: str  # funnelcast train's short name
    reference: str


CASES = (
    Case(
        "X Education leads (sales-team columns excluded)",
        "leads",
        "xeducation_leads/Leads.csv",
        "xeducation_leads.yaml",
        "lead",
        "LR 0.865 / GB 0.875 (5-fold CV)",
    ),
    Case(
        "Telco churn",
        "accounts",
        "telco_churn/WA_Fn-UseC_-Telco-Customer-Churn.csv",
        "telco_churn.yaml",
        "churn",
        "LR 0.845 / GB 0.835 (5-fold CV); published 0.83-0.85",
    ),
    Case(
        "Maven CRM pipeline (opportunities)",
        "opportunities",
        "maven_crm/sales_pipeline.csv",
        "maven_crm_opportunities.yaml",
        "close",
        "none (no reference for a close-date forecast)",
    ),
)


def run_case(case: Case, datasets: Path, root: Path, console: Console) -> dict[str, str]:
    data_dir = root / case.kind
    settings = Settings(
        data_dir=data_dir,
        feast_project=f"bench_{case.kind}",
        mlflow_tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}",
        mlflow_artifact_root=data_dir / "mlflow-artifacts",
    )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    report = import_export_file(settings, case.kind, datasets / case.export, EXAMPLES / case.mapping)
    timings["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    materialize(store, latest_feature_time(settings))
    timings["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = {
        "dataset": case.name,
        "rows read": f"{report.rows_read:,}",
        "rejected": f"{report.rows_rejected:,}"
        + (
            f" ({'; '.join(f'{r}: {len(v):,}' for r, v in report.rejected.items())})"
            if report.rejected
            else ""
        ),
        "label rate": f"{report.label_rate:.1%}",
        "reference": case.reference,
    }
    try:
        run = train_model(settings, case.model)
    except (ValueError, FileNotFoundError) as err:
        result["holdout"] = f"not trained: {err}"
    else:
        metrics = run.metrics
        if "roc_auc" in metrics:
            result["holdout"] = (
                f"ROC-AUC {metrics['roc_auc']:.4f} (PR-AUC {metrics['pr_auc']:.3f}, "
                f"{run.name} v{run.version} in MLflow)"
            )
        else:
            result["holdout"] = (
                f"month-total WAPE {metrics['month_wape']:.3f} vs best baseline "
                f"{metrics['month_best_baseline_wape']:.3f}; 4w {metrics['wape_4w']:.3f} "
                f"({run.name} v{run.version} in MLflow)"
            )
    timings["train"] = time.perf_counter() - t0
    result["seconds"] = " / ".join(f"{k} {v:.0f}" for k, v in timings.items())
    console.print(f"[green]done[/green] {case.name}: {result['holdout']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=PROJECT_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the data dirs here (default: temp).")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("feast").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    console = Console()
    root = args.keep or Path(tempfile.mkdtemp(prefix="funnelcast-import-bench-"))
    try:
        results = [run_case(case, args.datasets, root, console) for case in CASES]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    table = Table(title="public datasets through funnelcast import -> features -> train")
    for column in ("dataset", "rows read", "rejected", "label rate", "holdout", "reference", "seconds"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(
            *(result[c] for c in ("dataset", "rows read", "rejected", "label rate", "holdout")),
            result["reference"],
            result["seconds"],
        )
    console.print(table)


if __name__ == "__main__":
    main()
