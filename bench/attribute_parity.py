"""Offline equals online for a champion trained on an import with custom attributes.

    .venv/bin/python bench/attribute_parity.py [--leads 3000] [--numeric 6] [--categorical 5] [--port 8100]

Generates a dated lead export whose conversion depends on its custom attributes (``--numeric`` +
``--categorical``, at least 10 together; about 3% of each value blank), imports it, builds, applies,
materialises and trains the lead champion (``lead_score_import_v1``) in a temporary data dir with
its own MLflow store, serves it with uvicorn on ``--port`` and replays every holdout lead over HTTP
with the attributes its training row joined (a blank one left out, as a CRM would). Each served
probability is compared with the champion's probability for that lead's training-set row.
Printed: a sample of leads, the summary table; the last line is
``attribute_parity: N/M within 1e-6``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

# the tests' harness (real uvicorn in a thread) is imported from the repository's tests package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.importers.attribute_leads import holdout_requests, imported_lead_champion
from tests.service.conftest import CRM, running, service_settings

TOLERANCE = 1e-6
BATCH = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--numeric", type=int, default=6)
    parser.add_argument("--categorical", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    if args.numeric + args.categorical < 10:
        parser.error("the bench is for at least 10 custom attributes")
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    console = Console(width=140)
    with tempfile.TemporaryDirectory(prefix="attribute_parity_") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        settings = imported_lead_champion(
            folder, "attribute_parity", args.leads, args.seed, args.numeric, args.categorical
        )
        holdout = holdout_requests(settings)
        prepared = time.perf_counter() - started
        served, degraded, seconds = [], [], []
        with running(service_settings(settings, folder), port=args.port) as http:
            for start in range(0, len(holdout.requests), BATCH):
                chunk = holdout.requests[start : start + BATCH]
                t0 = time.perf_counter()
                r = http.post("/v1/leads/score:batch", json={"leads": chunk}, headers=CRM)
                seconds.append(time.perf_counter() - t0)
                r.raise_for_status()
                for result in r.json()["results"]:
                    served.append(result["probability"])
                    degraded.append(result["degraded"])
    diff = np.abs(np.asarray(served) - holdout.offline)
    within = int((diff < TOLERANCE).sum())
    flagged = sum(1 for d in degraded if any(x.startswith("missing:") for x in d))
    sample = Table(title="holdout leads (first 8)")
    for column in ("lead", "attributes sent", "offline", "served", "|diff|", "degraded"):
        sample.add_column(column)
    for i in range(min(8, len(served))):
        sample.add_row(
            str(holdout.requests[i]["lead_id"]),
            str(len(holdout.requests[i]["attributes"])),  # type: ignore[arg-type]
            f"{holdout.offline[i]:.6f}",
            f"{served[i]:.6f}",
            f"{diff[i]:.1e}",
            ", ".join(degraded[i]) or "-",
        )
    console.print(sample)
    summary = Table(
        title=f"attribute parity: {len(holdout.attributes)} custom attributes, champion v{holdout.version}"
    )
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for name, value in (
        ("export leads / holdout leads replayed", f"{args.leads} / {len(served)}"),
        ("custom attributes", ", ".join(holdout.attributes)),
        ("served within 1e-6 of offline", f"{within}/{len(served)}"),
        ("max |served - offline|", f"{diff.max():.2e}"),
        ("leads with a blank attribute (named missing:<name>)", str(flagged)),
        ("distinct served probabilities (6 dp)", str(np.unique(np.round(served, 6)).size)),
        ("HTTP batches of 200: median seconds", f"{np.median(seconds):.3f}"),
        ("import + build + train + holdout (s)", f"{prepared:.0f}"),
    ):
        summary.add_row(name, value)
    console.print(summary)
    print(f"attribute_parity: {within}/{len(served)} within 1e-6")


if __name__ == "__main__":
    main()
