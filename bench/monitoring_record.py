"""What monitoring adds to a scoring call: ``ServedRecorder``'s write, per call, in both backends.

    .venv/bin/python bench/monitoring_record.py [--calls 2000] [--inputs 40]

Bins a synthetic training matrix of ``--inputs`` columns (a quarter categorical) into a training
distribution, then records ``--calls`` scoring calls of 1 lead and of a 100-lead batch into a fresh
SQLite served-lead log (WAL, a temporary folder) and a real Redis (127.0.0.1:6379, db 12, keys
deleted after). Printed: a table of the per-call time (binning + write), p50 and p99 in ms; the last
line is ``monitoring_record: sqlite_1=X ms redis_1=Y ms (p50)``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funnelcast.core.drift import training_distribution
from service.monitoring.served_log import (
    RedisServedLog,
    ServedLead,
    ServedLog,
    SqliteServedLog,
    input_histogram,
)

AT = datetime(2026, 11, 2, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--inputs", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = [f"x{j}" for j in range(args.inputs)]
    cats = {n: tuple(f"l{k}" for k in range(6)) for n in names[: args.inputs // 4]}
    train = rng.normal(size=(5000, args.inputs))
    for j in range(len(cats)):
        train[:, j] = rng.integers(0, 6, 5000)
    distribution = training_distribution(train, names, cats)
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    table = Table(title=f"monitoring record per scoring call ({args.calls} calls, {args.inputs} inputs)")
    for col in ("backend", "leads per call", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    p50s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        logs: dict[str, ServedLog] = {
            "sqlite": SqliteServedLog(Path(tmp) / "monitoring.db"),
            "redis": RedisServedLog("redis://127.0.0.1:6379/12", prefix, 0.5),
        }
        for backend, log in logs.items():
            for batch in (1, 100):
                times = []
                for call in range(args.calls if batch == 1 else max(1, args.calls // 10)):
                    x = train[rng.integers(0, len(train), batch)]
                    leads = [
                        ServedLead(f"{batch}-{call}-{i}", AT.isoformat(), 0.3, "B", "1", "r1", None, 1.0, 0.0)
                        for i in range(batch)
                    ]
                    start = time.perf_counter()
                    log.record(leads, input_histogram(distribution, x, "1", AT))
                    times.append(time.perf_counter() - start)
                ms = np.array(times) * 1000
                p50s[f"{backend}_{batch}"] = float(np.percentile(ms, 50))
                table.add_row(
                    backend, str(batch), f"{np.percentile(ms, 50):.3f}", f"{np.percentile(ms, 99):.3f}"
                )
        logs["redis"].clear()  # type: ignore[attr-defined]
    Console().print(table)
    print(f"monitoring_record: sqlite_1={p50s['sqlite_1']:.3f} ms redis_1={p50s['redis_1']:.3f} ms (p50)")


if __name__ == "__main__":
    main()
