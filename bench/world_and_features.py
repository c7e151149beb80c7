"""Benchmark: world generation (demo and 1M leads) and demo materialisation, printed as a table.

Budgets (issue 2, 2-core machine): demo world < 20 s, 1M leads < 60 s, demo materialisation < 60 s.
Run: ``make bench`` (or ``python bench/world_and_features.py --skip-1m``).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-1m", action="store_true", help="skip the 1M-lead generation")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "demo", feast_project="bench")
        t0 = time.perf_counter()
        summary = generate_world(WorldParams(), settings.raw_dir, settings.oracle_dir)
        rows.append(
            (
                "generate demo world (50k leads)",
                time.perf_counter() - t0,
                20,
                f"{summary.rows['leads']:,} leads",
            )
        )
        t0 = time.perf_counter()
        feature_rows = build_all(settings)
        rows.append(
            (
                "build feature tables (demo)",
                time.perf_counter() - t0,
                float("nan"),
                f"{sum(feature_rows.values()):,} rows",
            )
        )
        store = open_store(settings)
        t0 = time.perf_counter()
        apply_definitions(store, settings)
        rows.append(("feast apply (demo)", time.perf_counter() - t0, float("nan"), ""))
        t0 = time.perf_counter()
        reports = materialize(store, latest_feature_time(settings))
        rows.append(("materialise demo to SQLite", time.perf_counter() - t0, 60, f"{len(reports)} views"))
        if not args.skip_1m:
            big = Path(tmp) / "big"
            t0 = time.perf_counter()
            s = generate_world(replace(WorldParams(), n_leads=1_000_000), big / "raw", big / "oracle")
            rows.append(
                (
                    "generate 1M-lead world",
                    time.perf_counter() - t0,
                    60,
                    f"{s.rows['behavior_events']:,} events, {s.rows['opportunities']:,} opps",
                )
            )
    table = Table(title="funnelcast world & features benchmark (seconds)")
    for col in ("step", "seconds", "budget", "within", "size"):
        table.add_column(col)
    for name, secs, budget, size in rows:
        ok = "" if budget != budget else ("yes" if secs <= budget else "NO")
        table.add_row(name, f"{secs:.1f}", "" if budget != budget else f"{budget:.0f}", ok, size)
    Console().print(table)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    Console().print(f"peak resident memory: {peak_gib:.1f} GiB")


if __name__ == "__main__":
    main()
