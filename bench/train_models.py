"""Benchmark: training all three models (dataset, fit, evaluation, MLflow logging) on the demo world
and on a 1M-lead world, printed as a table.

Budget (issue 3, 2-core machine): all three on the demo world in under 3 minutes.
Run: ``python bench/train_models.py`` (demo world only: ``--skip-1m``). Each world is generated and
featurised in a temporary directory with its own MLflow store, so the project's store is untouched.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features.jobs.run import build_all
from features.store import apply_definitions, open_store
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings
from training.registry import log_and_register
from training.run import MODELS, build_outcome, registered_name

DEMO_BUDGET_SECONDS = 180


def train_world(label: str, params: WorldParams, root: Path, rows: list[tuple[str, str, float, str]]) -> None:
    settings = Settings(
        data_dir=root / label,
        feast_project="bench",
        mlflow_tracking_uri=f"sqlite:///{root / label / 'mlflow.db'}",
        mlflow_artifact_root=root / label / "artifacts",
    )
    t0 = time.perf_counter()
    generate_world(params, settings.raw_dir, settings.oracle_dir)
    build_all(settings)
    apply_definitions(open_store(settings), settings)
    rows.append((label, "world + features + apply (not training)", time.perf_counter() - t0, ""))
    total = 0.0
    for short in MODELS:
        t0 = time.perf_counter()
        outcome = build_outcome(settings, short)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = log_and_register(settings, registered_name(short), outcome)
        logged = time.perf_counter() - t0
        total += fit + logged
        key = outcome.primary_metric
        rows.append((label, f"{short}: dataset + train + evaluate", fit, f"{key} {run.metrics[key]:.4f}"))
        rows.append((label, f"{short}: MLflow log + register", logged, f"v{run.version}"))
        print(
            f"{label}: {short} {fit:.1f} s + MLflow {logged:.1f} s, {key} {run.metrics[key]:.4f}", flush=True
        )
    budget = f"budget {DEMO_BUDGET_SECONDS} s" if label == "demo" else ""
    rows.append((label, "all three models", total, budget))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-1m", action="store_true", help="demo world only")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        train_world("demo", WorldParams(), Path(tmp), rows)
        if not args.skip_1m:
            big = WorldParams().scaled(20.0)
            train_world("1M leads", replace(big, n_leads=1_000_000), Path(tmp), rows)
    table = Table(title="training benchmark (2 cores)")
    for col in ("world", "step", "seconds", "note"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for world, step, seconds, note in rows:
        table.add_row(world, step, f"{seconds:.1f}", note)
    Console().print(table)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    Console().print(f"peak RSS {peak_gb:.1f} GB")


if __name__ == "__main__":
    main()
