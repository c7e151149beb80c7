"""Forecasts against what forecasters already use, over several world seeds (prints tables).

For each seed: generate a world (``--leads`` per world), build and register its features, train the
close model and run its rolling-origin backtest against every baseline; then pool the seeds. Per seed
and pooled: WAPE of monthly and quarterly totals first, weekly WAPE at 1/4/13 weeks second, the
model's P10-P90 coverage by level, and the model against the best baseline with a 95% paired-bootstrap
interval of the WAPE difference (pooled: resampled within each seed). Last line:
``forecast: quarter_gain=X month_gain=Y coverage=[a,b]`` (gains vs the best baseline on the same
origins; coverage = lowest and highest P10-P90 coverage over every seed and level).

    .venv/bin/python bench/forecast_seeds.py --seeds 1 2 3 4 5 --leads 30000 --work /tmp/fc

Each seed's backtest is kept in its data dir (``backtest-<leads>.pkl``; delete it after changing the
code), so seeds can run in parallel processes and a last call pools them.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from features.store import open_store
from funnelcast.core.forecast_baselines import BASELINES
from funnelcast.core.settings import Settings
from training import milestone_close
from training.forecast_backtest import SPANS, Backtest, forecast_metrics

LEVELS = tuple(SPANS)
CLI = str(Path(sys.executable).parent / "funnelcast")


def seed_backtest(seed: int, leads: int, work: Path) -> tuple[Backtest, dict[str, float], str]:
    """The seed's world (made once in ``work``), its close model and backtest; the strongest baseline
    and the reconciliation chosen on validation."""
    data_dir = work / f"seed{seed}"
    env = {"FUNNELCAST_DATA_DIR": str(data_dir)}
    if not (data_dir / "features" / "opportunity_snapshots.parquet").exists():
        cli = [CLI]
        for step in (
            ["world", "generate", "--seed", str(seed), "--leads", str(leads)],
            ["features", "build"],
        ):
            subprocess.run([*cli, *step], check=True, env={**_base_env(), **env}, capture_output=True)
    if not (data_dir / "feast").exists() or not any((data_dir / "feast").iterdir()):
        subprocess.run(
            [CLI, "features", "apply"],
            check=True,
            env={**_base_env(), **env},
            capture_output=True,
        )
    cached = data_dir / f"backtest-{leads}.pkl"  # lets seeds run in parallel processes, then pool
    if cached.exists():
        with cached.open("rb") as f:
            return pickle.load(f)
    settings = Settings(data_dir=data_dir)
    data = milestone_close.build_dataset(open_store(settings), settings.raw_dir, settings.oracle_dir)
    model = milestone_close.train(data)
    metrics, bt = milestone_close.evaluate(model, data)
    mix = f"reconciled = {model.metadata['reconciled_model_weight']:.1f} x model + rest x stage_week_table"
    result = (bt, metrics, f"{model.metadata['strongest_baseline']}; {mix}")
    with cached.open("wb") as f:
        pickle.dump(result, f)
    return result


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def table(bt: Backtest, title: str) -> tuple[str, dict[str, float]]:
    names = ["model", "reconciled", *(["oracle"] if "oracle_mean" in bt.weekly else []), *BASELINES]
    metrics, intervals = forecast_metrics(bt, names)
    lines = [
        f"\n## {title}",
        "",
        "| forecaster | month | quarter | wk1 | wk4 | wk13 |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        p = "" if name == "model" else f"{name}."
        cells = [metrics[f"{p}{lvl}_wape"] for lvl in LEVELS] + [metrics[f"{p}wape_{h}w"] for h in (1, 4, 13)]
        lines.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    lines.append("")
    for name in ("model", "reconciled"):
        prefix = "" if name == "model" else f"{name}."
        for level in LEVELS:
            lines.append(
                f"{name} {level}: {metrics[f'{prefix}{level}_wape']:.3f}"
                f" vs best baseline {metrics[f'{level}_best_baseline_wape']:.3f}"
                f" (gain {metrics[f'{prefix}{level}_gain_vs_best']:+.1%});"
                f" WAPE difference {intervals[f'{prefix}{level}']}"
            )
    cov = {lvl: metrics[f"{lvl}_coverage_p10_p90"] for lvl in LEVELS} | {
        "weekly": metrics["coverage_p10_p90"]
    }
    lines.append("P10-P90 coverage: " + ", ".join(f"{k} {v:.1%}" for k, v in cov.items()))
    known = bt.totals.dropna(subset=["actual"])
    lines.append(
        "origins with a known total: "
        + ", ".join(f"{lvl} {int((known['level'] == lvl).sum())}" for lvl in LEVELS)
        + (
            ""
            if "seed" in bt.totals
            else f"; shock sd {bt.shock_sd:.3f}, group shock sd {bt.group_shock_sd:.3f}"
        )
    )  # pooled: each seed has its own shocks
    return "\n".join(lines), metrics | {f"cov_{k}": v for k, v in cov.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--leads", type=int, default=30_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/funnelcast-forecast-seeds"))
    args = parser.parse_args()
    weekly, totals, coverages = [], [], []
    for seed in args.seeds:
        start = time.perf_counter()
        bt, _, strongest = seed_backtest(seed, args.leads, args.work)
        text, metrics = table(bt, f"seed {seed} ({args.leads} leads; strongest on validation: {strongest})")
        print(text)
        print(f"({time.perf_counter() - start:.0f} s)")
        coverages += [metrics[f"cov_{k}"] for k in ("weekly", *LEVELS)]
        weekly.append(bt.weekly.assign(seed=seed))
        totals.append(bt.totals.assign(seed=seed))
    pooled = Backtest(pd.concat(weekly, ignore_index=True), pd.concat(totals, ignore_index=True))
    text, metrics = table(pooled, f"pooled over seeds {', '.join(map(str, args.seeds))}")
    print(text)
    # the served forecast is the reconciled one (the model alone when validation gives it weight 1)
    print(
        f"forecast: quarter_gain={metrics['reconciled.quarter_gain_vs_best']:.3f}"
        f" month_gain={metrics['reconciled.month_gain_vs_best']:.3f}"
        f" coverage=[{min(coverages):.3f},{max(coverages):.3f}]"
    )


if __name__ == "__main__":
    main()
