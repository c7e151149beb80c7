"""Soak: a real ``funnelcast serve`` under open-loop mixed load for minutes, watching its memory.

Sends ``--rate`` requests/s (default 100) for ``--minutes`` (default 30) with ``bench/loadgen.py``'s
engine (latency from the scheduled send: a stall cannot hide), mixed as a CRM and managers use it:
mostly single lead scores (explained and routed, every one a new lead id), some batches,
re-routes and outcomes of leads scored earlier, the weekly forecast, and the manager reads (at-risk
deals, one deal explained, accounts at risk, the dashboard page) at the same time.

Prints one row per minute: requests, errors, p50/p99 of single scores, p99 of manager reads, and
the server's resident memory (``VmRSS`` summed over uvicorn and its workers) at the end of the
minute (while it runs, on stderr: also the server's and this load's CPU over the minute, and the
load's longest garbage-collection pause, a stall that would read as server latency); then the line
``soak: errors=N p99_ms=X rss_growth=Y%``, the growth measured from the end of minute 5 (after
warm-up; minute 1 in a run of under 6 minutes) to the end.

World: the demo world (``make demo``) by default; ``--world-scale 0.1`` builds (once, reused
after) a small world with its own MLflow store under ``--data-dir``. Run:
``python bench/soak.py --world-scale 0.1 --minutes 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
from loadgen import Call, Result, open_loop, percentile_ms
from rich.console import Console
from rich.table import Table
from serve_latency import BIN, cpu_seconds, process

from features.catalog import CHANNELS
from funnelcast.core.settings import PROJECT_ROOT, get_settings
from service.auth import SESSION_COOKIE

CRM = "X-API-Key: demo-crm-key"
MANAGER = "X-API-Key: demo-manager-key"
FORECASTER = "X-API-Key: demo-forecaster-key"
# per 100 requests; the manager reads are the last four kinds
MIX = {
    "score": 78,
    "batch": 2,
    "route": 3,
    "outcome": 7,
    "forecast": 2,
    "at_risk": 3,
    "deal": 3,
    "accounts": 1,
    "dashboard": 1,
}
MANAGER_READS = ("at_risk", "deal", "accounts", "dashboard")
BATCH_SIZE = 50
BUILD_STEPS = (
    ["world", "generate"],
    ["features", "build"],
    ["features", "apply"],
    ["features", "materialize"],
    ["train", "all"],
    ["score", "weekly"],
)


def world_env(data_dir: Path, scale: float) -> dict[str, str]:
    """The environment of a small world with its own MLflow store, all under ``data_dir``."""
    return {
        "FUNNELCAST_DATA_DIR": str(data_dir),
        "FUNNELCAST_WORLD_SCALE": str(scale),
        "FUNNELCAST_MLFLOW_TRACKING_URI": f"sqlite:///{data_dir / 'mlflow.db'}",
        "FUNNELCAST_MLFLOW_ARTIFACT_ROOT": str(data_dir / "mlflow-artifacts"),
    }


def build_world(data_dir: Path, env: dict[str, str]) -> None:
    """World, features, Feast, champions and the weekly job, as ``make demo`` does; once per folder."""
    done = data_dir / ".soak-world-built"
    if done.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    for step in BUILD_STEPS:
        print(f"building the soak world: funnelcast {' '.join(step)}", file=sys.stderr)
        subprocess.run([str(BIN / "funnelcast"), *step], env=env, check=True, stdout=subprocess.DEVNULL)
    done.touch()


def rss_mb(pid: int) -> float:
    """Resident memory in MB of process ``pid`` and its descendants (uvicorn's workers): the sum of
    their ``VmRSS`` in ``/proc/<pid>/status``."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return total + int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class GcPauses:
    """The longest garbage-collection pause of this (the load's) process since the last ``take``:
    a client pause delays every call in flight and would read as server latency."""

    def __init__(self) -> None:
        self.longest, self._began = 0.0, 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._began)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return round(1000 * longest, 1)


@dataclass
class Mix:
    """The calls of the soak, drawn in a seeded order; leads scored earlier are re-routed and closed."""

    company_ids: list[str]
    opportunity_ids: list[str]
    seed: int = 7
    session: str = ""  # the manager page's session cookie (``Cookie: ...``), from its sign-in form

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._kinds = list(MIX)
        self._weights = list(MIX.values())

    def _lead(self, lead_id: str) -> dict[str, str]:
        return {
            "lead_id": lead_id,
            "company_id": self._rng.choice(self.company_ids),
            "channel": self._rng.choice(CHANNELS),
            "contact_role": "decision_maker",
            "product_interest": "switchgear",
            "country": "CN",
            "timezone": "Asia/Shanghai",
            "language": "zh",
        }

    def _earlier_lead(self, i: int) -> str:
        return f"soak-{self._rng.randrange(max(1, i))}"

    def call(self, i: int) -> Call:
        """The ``i``-th call of the soak: its kind drawn by ``MIX``."""
        return self.of_kind(self._rng.choices(self._kinds, self._weights)[0], i)

    def of_kind(self, kind: str, i: int) -> Call:
        if kind == "score":
            body = json.dumps(self._lead(f"soak-{i}")).encode()
            return Call(kind, "POST", "/v1/leads/score", body, (CRM,))
        if kind == "batch":
            leads = [self._lead(f"soak-{i}-b{j}") for j in range(BATCH_SIZE)]
            return Call(kind, "POST", "/v1/leads/score:batch", json.dumps({"leads": leads}).encode(), (CRM,))
        if kind == "route":
            body = json.dumps({"lead": self._lead(self._earlier_lead(i)), "reason": "deadline_passed"})
            return Call(kind, "POST", "/v1/leads/route", body.encode(), (CRM,))
        if kind == "outcome":
            outcome = {"kind": self._rng.choice(["touched", "converted", "disqualified"])}
            outcome["lead_id"] = self._earlier_lead(i)
            return Call(kind, "POST", "/v1/outcomes", json.dumps(outcome).encode(), (CRM,))
        if kind == "forecast":
            group = self._rng.choice(["all", "team", "region", "rep"])
            return Call(kind, "GET", f"/v1/forecast/weekly?group_by={group}", b"", (FORECASTER,))
        if kind == "at_risk":
            return Call(kind, "GET", "/v1/opportunities/at-risk?k=20", b"", (MANAGER,))
        if kind == "deal":
            deal = self._rng.choice(self.opportunity_ids)
            return Call(kind, "GET", f"/v1/opportunities/{deal}", b"", (MANAGER,))
        if kind == "accounts":
            return Call(kind, "GET", "/v1/accounts/at-risk?k=20", b"", (MANAGER,))
        return Call(kind, "GET", "/dashboard?lang=en", b"", (self.session,))


def signed_in(url: str) -> str:
    """The manager page's session as a ``Cookie`` header: signed in once through its form, as a
    manager's browser does (the page no longer takes a key in its address)."""
    answer = httpx.post(
        f"{url}/dashboard/login", data={"key": "demo-manager-key", "lang": "en"}, follow_redirects=False
    )
    token = answer.cookies.get(SESSION_COOKIE)
    if answer.status_code != 303 or token is None:
        raise RuntimeError(f"dashboard sign-in failed: {answer.status_code} {answer.text[:200]}")
    return f"Cookie: {SESSION_COOKIE}={token}"


def minute_rows(results: list[Result], rss: list[float], minutes: int) -> list[dict[str, float | int]]:
    """Per minute of scheduled send time: requests, errors, score p50/p99, manager p99, RSS at its end."""
    by_minute: list[list[Result]] = [[] for _ in range(minutes)]
    for r in results:
        by_minute[min(minutes - 1, int(r.scheduled // 60))].append(r)
    rows = []
    for m, inside in enumerate(by_minute):
        scores = [r.latency for r in inside if r.kind == "score" and r.status == 200]
        reads = [r.latency for r in inside if r.kind in MANAGER_READS and r.status == 200]
        rows.append(
            {
                "minute": m + 1,
                "requests": len(inside),
                "errors": sum(r.status != 200 for r in inside),
                "score_p50_ms": percentile_ms(scores, 0.5),
                "score_p99_ms": percentile_ms(scores, 0.99),
                "manager_p99_ms": percentile_ms(reads, 0.99),
                "rss_mb": round(rss[m], 1) if m < len(rss) else float("nan"),
            }
        )
    return rows


def rss_growth(rss: list[float]) -> float:
    """Growth in % of RSS from the end of minute 5 (minute 1 for runs under 6 minutes) to the end."""
    base = rss[4] if len(rss) >= 6 else rss[0]
    return round(100 * (rss[-1] - base) / base, 2)


async def soak(url: str, pid: int, rate: float, minutes: int, mix: Mix, connections: int) -> tuple:
    results: list[Result] = []
    rss: list[float] = []

    gc.collect()
    gc.freeze()  # what the load imported and built before the run (pandas, the mix) is never garbage
    pauses = GcPauses()

    async def watch() -> None:
        start, seen = time.perf_counter(), 0
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        for m in range(1, minutes + 1):
            await asyncio.sleep(max(0.0, start + 60 * m - time.perf_counter()))
            rss.append(rss_mb(pid))
            server_now, client_now = cpu_seconds(pid), time.process_time()
            # only the answers that came in this minute: a scan of the whole run would stall the
            # loop that sends (for seconds, 30 minutes in) and show up as latency
            new, seen = results[seen:], len(results)
            scores = [r.latency for r in new if r.kind == "score" and r.status == 200]
            line = {
                "answers": len(new),
                "errors": sum(r.status != 200 for r in new),
                "score_p99_ms": percentile_ms(scores, 0.99),
                "rss_mb": round(rss[-1], 1),
                # CPU in % of one core over the minute: the server's processes, and this load's own
                "server_cpu_pct": round(100 * (server_now - server_cpu) / 60, 1),
                "client_cpu_pct": round(100 * (client_now - client_cpu) / 60, 1),
                "client_gc_max_ms": pauses.take(),
            }
            server_cpu, client_cpu = server_now, client_now
            # the results so far live to the end: frozen, the client's full collections (135-155 ms
            # at 15 and 29 minutes in, delaying every call in flight) do not walk them again
            gc.freeze()
            print(f"minute {m}: {json.dumps(line)}", file=sys.stderr, flush=True)

    watcher = asyncio.create_task(watch())
    # calls the server has not taken 30 s after the end count as errors: the run ends on time
    await open_loop(url, rate, minutes * 60, mix.call, connections, results=results, drain_seconds=30)
    await watcher
    return results, rss


def warm_up(url: str, mix: Mix, connections: int = 8) -> None:
    """Every kind once, then 100 scores, on each of ``connections`` new connections (so every worker
    gets some): first-request paths and the live pipeline are built now."""
    for c in range(connections):
        with httpx.Client(base_url=url, timeout=120) as client:
            for kind in MIX:
                call = mix.of_kind(kind, 0)
                headers = dict(h.split(": ", 1) for h in call.headers) | {"Content-Type": "application/json"}
                client.request(call.method, call.path, content=call.body, headers=headers)
            for i in range(100):
                lead = mix._lead(f"warm-{c}-{i}")
                client.post("/v1/leads/score", json=lead, headers={"X-API-Key": "demo-crm-key"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s (open loop)")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--world-scale", type=float, help="build and use a small world of this scale")
    parser.add_argument("--data-dir", type=Path, help="where the small world lives")
    parser.add_argument("--port", type=int, default=8140)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, help="uvicorn workers (default: settings.service_workers)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    env = dict(os.environ)
    data_dir = get_settings().data_dir
    if args.world_scale is not None:
        data_dir = (args.data_dir or PROJECT_ROOT / "data" / f"soak-{args.world_scale:g}").resolve()
        env |= world_env(data_dir, args.world_scale)
        build_world(data_dir, env)
    leads = pd.read_parquet(data_dir / "raw" / "leads.parquet", columns=["company_id"])
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as state:
        env |= {"FUNNELCAST_SERVICE_STATE_DIR": state}  # fresh routing state: capacity is not used up
        cmd = [str(BIN / "funnelcast"), "serve", "--port", str(args.port)]
        cmd += ["--workers", str(args.workers)] if args.workers else []
        log = data_dir / "soak-server.log"  # the server's own log (errors with their tracebacks)
        with process(cmd, env, f"{url}/healthz", log) as server:
            deals = httpx.get(
                f"{url}/v1/opportunities/at-risk?k=200",
                headers={"X-API-Key": "demo-manager-key"},
                timeout=120,
            ).json()["items"]
            mix = Mix(
                sorted(set(leads["company_id"])),
                [d["opportunity_id"] for d in deals],
                args.seed,
                signed_in(url),
            )
            warm_up(url, mix)
            results, rss = asyncio.run(soak(url, server.pid, args.rate, args.minutes, mix, args.connections))
    rows = minute_rows(results, rss, args.minutes)
    workers = args.workers or get_settings().service_workers
    table = Table(title=f"soak: {args.rate:g} req/s open loop, {args.minutes} min, {workers} uvicorn workers")
    for col in rows[0]:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=150).print(table)
    kinds = sorted({r.kind for r in results})
    for kind in kinds:
        ok = [r.latency for r in results if r.kind == kind and r.status == 200]
        errors = sum(r.kind == kind and r.status != 200 for r in results)
        print(
            f"{kind}: n={len(ok) + errors} errors={errors}"
            f" p50_ms={percentile_ms(ok, 0.5)} p99_ms={percentile_ms(ok, 0.99)}"
        )
    scores = [r.latency for r in results if r.kind == "score" and r.status == 200]
    errors = sum(r.status != 200 for r in results)
    print(f"soak: errors={errors} p99_ms={percentile_ms(scores, 0.99)} rss_growth={rss_growth(rss)}%")


if __name__ == "__main__":
    main()
