"""Benchmark: the scoring service over loopback HTTP beside ``mlflow models serve`` on the same model.

Needs the demo world and its champions (``make demo``) and ``wrk`` (``apt-get install wrk``).
Starts ``funnelcast serve`` (its default two uvicorn workers, or ``--workers``; SQLite online store,
fresh routing state for each phase) and ``mlflow models serve`` on the lead-score champion, then
prints one table:

- CPU per scored and routed lead in-process (``score_leads`` and the response's JSON, one lead per
  call, without and with reasons; budgets 1 ms and 2 ms), counted as this process's CPU time
  (``time.process_time``), which other work on the machine does not inflate the way it does wall time;
- fixed-rate latency (open loop, ``bench/loadgen.py``): single-lead score + routing at 200 req/s,
  without and with explanations; budgets p99 <= 5 ms and <= 10 ms; beside it the server's CPU per
  request over HTTP (its processes' user + system time over the phase, divided by the answers);
- sustained requests/s under ``wrk`` (8 connections, 10 s) for our service and for MLflow's;
  budget >= 3x MLflow's while doing more (online features, calibration, grade, routing);
- batch rows/s (1,000 leads per request), and ``/healthz`` latency meanwhile (budget p99 <= 10 ms:
  scoring runs in the thread pool, so the event loop keeps answering the container's health check).

Last line: ``serve: p99_ms=X p99_explain_ms=Y cpu_ms_per_lead=Z`` (Z: in-process, without reasons).

Run: ``python bench/serve_latency.py`` (``--port`` moves both servers' ports). ``--cpu-only
--companies 200`` prints only the in-process CPU, the leads cycling through the world's first 200
companies (a CRM's accounts: their online rows are kept between writes), and the columnar batch's
rows per CPU second (1,000 and 10,000 leads over every company of the world; budget 50,000 per
worker), on any world the ``FUNNELCAST_*`` settings point at, without wrk or servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.request_time import lead_model_columns
from funnelcast.core.settings import PROJECT_ROOT, Settings, get_settings
from service.live_models import LiveModels

BIN = Path(sys.executable).parent
OURS, THEIRS = 8100, 8101
KEY = "X-API-Key: demo-crm-key"
LEAD = (
    '{"lead_id": "bench-{i}", "company_id": "c11228", "channel": "referral",'
    ' "contact_role": "decision_maker", "product_interest": "switchgear", "country": "CN",'
    ' "timezone": "Asia/Shanghai", "language": "zh"}'
)
WRK_LUA = """
counter = 0
template = [[%s]]
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
request = function()
  counter = counter + 1
  local id = tostring(counter) .. "-" .. tostring(math.random(1000000000))
  return wrk.format(nil, nil, nil, (string.gsub(template, "{i}", id)))
end
"""


def wait_until(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    cmd: list[str], env: dict[str, str], health: str, log: Path | None = None
) -> Iterator[subprocess.Popen]:
    """``cmd`` running until the block ends, once ``health`` answers; its stderr to ``log`` if given."""
    err = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(health)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log:
            err.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its descendants (uvicorn's workers)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return total + (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


def compiled_as_served(settings: Settings, model) -> None:  # type: ignore[no-untyped-def]
    """Measure what a warm server runs: its champion's verified compiled trees (when the setting is
    on), compiled now rather than in the background the service uses."""
    from funnelcast.core.compiled_forest import compile_and_attach

    if settings.compile_trees and model is not None:
        compile_and_attach(model.model.booster, settings.service_dir / "model_cache" / "compiled")


def in_process_cpu_ms(settings: Settings, n: int, explain: bool, companies: list[str] | None = None) -> float:
    """CPU ms per lead of ``score_leads`` (score and route one lead) plus its response's JSON, here;
    the leads' companies cycle through ``companies`` (default: the one of ``LEAD``)."""
    from service.observability import Metrics
    from service.rules import load_rules
    from service.runtime import Runtime
    from service.schemas import LeadIn, LeadScore
    from service.scoring import score_leads

    state = settings.model_copy(
        update={"service_state_dir": Path(tempfile.mkdtemp()), "model_poll_seconds": 0}
    )
    runtime = Runtime.start(state, load_rules(state.rules_path), Metrics())
    model = runtime.models.get("lead_score")
    compiled_as_served(state, model)

    accounts = companies or ["c11228"]

    def one(lead_id: str, i: int) -> None:
        body = LEAD.replace("{i}", lead_id).replace('"c11228"', json.dumps(accounts[i % len(accounts)]))
        lead = LeadIn.model_validate_json(body)
        result = score_leads(
            [lead], model, runtime.features, runtime.router, explain, "en", roster=runtime.router.roster()
        )
        LeadScore.of(result[0]).model_dump_json()

    for i in range(200):  # warm up
        one(f"warm-{explain}-{i}", i)
    t0 = time.process_time()
    for i in range(n):
        one(f"cpu-{explain}-{i}", i)
    runtime.stop()
    return (time.process_time() - t0) / n * 1000


def in_process_column_rows_per_s(
    settings: Settings, rows: int, companies: list[str], repeat: int = 5
) -> float:
    """Rows per CPU second of the columnar batch (``POST /v1/leads/score:columns``'s parse, check,
    score and answer stream) here, ``rows`` leads per batch over ``companies`` in turn: what one
    worker can score per second of its CPU (explain and route off, as the endpoint is)."""
    import pyarrow as pa

    from service.lead_columns import answer_stream, read_stream, score_columns
    from service.observability import Metrics
    from service.rules import load_rules
    from service.runtime import Runtime

    state = settings.model_copy(
        update={"service_state_dir": Path(tempfile.mkdtemp()), "model_poll_seconds": 0}
    )
    runtime = Runtime.start(state, load_rules(state.rules_path), Metrics())
    model = runtime.models.get("lead_score")
    compiled_as_served(state, model)
    lead = json.loads(LEAD)
    table = pa.table(
        {"lead_id": [f"col-{i}" for i in range(rows)]}
        | {"company_id": [companies[i % len(companies)] for i in range(rows)]}
        | {name: [value] * rows for name, value in lead.items() if name not in ("lead_id", "company_id")}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()

    def batch() -> None:
        answer_stream(
            *score_columns(read_stream(body), model, runtime.features, runtime.router.roster()), model
        )

    batch()  # warm: the companies' rows read once
    t0 = time.process_time()
    for _ in range(repeat):
        batch()
    runtime.stop()
    return rows * repeat / (time.process_time() - t0)


@contextmanager
def our_service(tmp: Path, phase: str, workers: int | None = None) -> Iterator[subprocess.Popen]:
    env = os.environ | {
        "FUNNELCAST_SERVICE_STATE_DIR": str(tmp / phase),  # fresh routing state: capacity is not used up
        "FUNNELCAST_MODEL_POLL_SECONDS": "0",
    }
    cmd = [str(BIN / "funnelcast"), "serve", "--port", str(OURS)]
    cmd += ["--workers", str(workers)] if workers else []
    with process(cmd, env, f"http://127.0.0.1:{OURS}/healthz") as proc:
        headers = {"X-API-Key": "demo-crm-key"}
        for i in range(300):  # warm up (first-request paths, caches)
            httpx.post(
                f"http://127.0.0.1:{OURS}/v1/leads/score",
                content=LEAD.replace("{i}", f"w{i}"),
                headers=headers,
            )
        yield proc


def loadgen(url: str, rate: float, seconds: float, body: str, headers: list[str]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(body)
    cmd = [sys.executable, str(PROJECT_ROOT / "bench" / "loadgen.py"), url, str(rate), str(seconds), f.name]
    for h in headers:
        cmd += ["--header", h]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def wrk(url: str, body: str, headers: list[str], seconds: int = 10, connections: int = 8) -> dict:
    header_lines = "\n".join(
        f'wrk.headers["{h.split(":")[0]}"] = "{h.split(":", 1)[1].strip()}"' for h in headers
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % (body, header_lines))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def probe_while(url: str, work: Callable[[], None], every: float = 0.01) -> tuple[float, float]:
    """``work`` on a thread while ``url`` is fetched every ``every`` s; (p50, p99) latency in ms."""
    thread = threading.Thread(target=work)
    latencies = []
    with httpx.Client() as client:
        client.get(url)  # connect first: the connection set-up is not the loop's latency
        thread.start()
        while thread.is_alive():
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(every)
    thread.join()
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def mlflow_payload(settings) -> str:  # type: ignore[no-untyped-def]
    """One lead as the champion pyfunc's input row (what a client of ``mlflow models serve`` sends)."""
    live = LiveModels(settings.mlflow_tracking_uri, Path(tempfile.mkdtemp()), ["lead_score"])
    live.start()
    model = live.get("lead_score").model
    request = json.loads(LEAD.replace("{i}", "x"))
    request["created_at"] = [np.datetime64("2026-11-02T10:00:00", "s")]
    columns = lead_model_columns({k: (v if isinstance(v, list) else [v]) for k, v in request.items()})
    row = model.input_frame(pd.DataFrame(columns)).iloc[0]
    record = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
    return json.dumps({"dataframe_records": [record]})


def batch_of(n: int, companies: list[str] | None) -> str:
    """``n`` leads as one batch body: all of the bench's company, or one of ``companies`` each."""
    leads = []
    for i in range(n):
        lead = json.loads(LEAD.replace("{i}", f"b{i}"))
        if companies:
            lead["company_id"] = companies[i % len(companies)]
        leads.append(lead)
    return json.dumps({"leads": leads})


def batch_rows_per_s(body: str, rows: int, repeat: int = 5) -> tuple[float, tuple[float, float]]:
    """Rows/s of ``repeat`` batches sent one after another, and /healthz (p50, p99) meanwhile."""

    def batches() -> None:
        for _ in range(repeat):
            httpx.post(
                f"http://127.0.0.1:{OURS}/v1/leads/score:batch",
                content=body,
                headers={"X-API-Key": "demo-crm-key", "Content-Type": "application/json"},
                timeout=60,
            ).raise_for_status()

    t0 = time.perf_counter()
    health = probe_while(f"http://127.0.0.1:{OURS}/healthz", batches)
    return rows * repeat / (time.perf_counter() - t0), health


def main() -> None:
    global OURS, THEIRS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=OURS, help="our server's port (MLflow's: the next)")
    parser.add_argument("--workers", type=int, help="uvicorn workers (default: settings.service_workers)")
    parser.add_argument("--cpu-leads", type=int, default=2000, help="leads scored in-process per CPU count")
    parser.add_argument("--seconds", type=int, default=10, help="length of each load phase")
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="print only the in-process CPU per lead (no servers, no wrk); with --companies",
    )
    parser.add_argument(
        "--companies",
        type=int,
        default=0,
        help="cycle the in-process leads through the world's first K companies (0: the one of LEAD)",
    )
    args = parser.parse_args()
    OURS, THEIRS = args.port, args.port + 1
    settings = get_settings()
    if args.cpu_only:
        accounts = sorted(pd.read_parquet(settings.raw_dir / "companies.parquet")["company_id"])
        accounts = accounts[: args.companies] if args.companies else None  # type: ignore[assignment]
        for explain in (False, True):
            ms = in_process_cpu_ms(settings, args.cpu_leads, explain, accounts)
            print(f"in-process CPU per scored + routed lead, explain={str(explain).lower()}: {ms:.3f} ms")
        every = sorted(
            set(pd.read_parquet(settings.raw_dir / "leads.parquet", columns=["company_id"])["company_id"])
        )
        for rows in (1_000, 10_000):
            rate = in_process_column_rows_per_s(settings, rows, every)
            where = f"{rows:,} leads over {len(every):,} companies"
            print(f"in-process columnar batch of {where}: {rate:,.0f} rows/s of CPU (budget 50,000)")
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    workers = args.workers or settings.service_workers
    rows: list[tuple[str, str, str, str]] = []
    cpu = {explain: in_process_cpu_ms(settings, args.cpu_leads, explain) for explain in (False, True)}
    for explain, budget in ((False, 1.0), (True, 2.0)):
        rows.append(
            (
                f"in-process CPU per scored + routed lead, explain={str(explain).lower()}",
                f"{cpu[explain]:.3f} ms",
                f"<= {budget} ms",
                f"process CPU time over {args.cpu_leads} leads, one per call, response JSON included",
            )
        )
    score = f"http://127.0.0.1:{OURS}/v1/leads/score"
    p99: dict[str, float] = {}
    companies = sorted(
        set(pd.read_parquet(settings.raw_dir / "leads.parquet", columns=["company_id"])["company_id"])
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for explain, budget in (("false", 5.0), ("true", 10.0)):
            with our_service(tmp, f"rate-{explain}", args.workers) as server:
                before = cpu_seconds(server.pid)
                r = loadgen(f"{score}?explain={explain}", 200, args.seconds, LEAD, [KEY])
                server_ms = (cpu_seconds(server.pid) - before) / max(1, r["ok"]) * 1000
            p99[explain] = r["p99_ms"]
            rows.append(
                (
                    f"score + route, explain={explain}, 200 req/s open loop",
                    f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms",
                    f"p99 <= {budget} ms",
                    f"{r['ok']}/{r['sent']} ok, {r['rate']} req/s; server CPU {server_ms:.2f} ms/request",
                )
            )
        with our_service(tmp, "wrk-route", args.workers):
            ours_route = wrk(f"{score}?explain=false", LEAD, [KEY], args.seconds)
        with our_service(tmp, "wrk-noroute", args.workers) as server:
            ours_plain = wrk(f"{score}?explain=false&route=false", LEAD, [KEY], args.seconds)
            before = cpu_seconds(server.pid)
            one_company, health = batch_rows_per_s(batch_of(1000, None), 1000)
            batch_cpu = (cpu_seconds(server.pid) - before) / 5000
            many_companies, many_health = batch_rows_per_s(batch_of(1000, companies), 1000)
        # mlflow execs `uvicorn` by name, so the venv's bin must be on PATH
        env = os.environ | {
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
        cmd = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/lead_score@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(THEIRS),
            "--workers",
            str(workers),
        ]
        with process(cmd, env, f"http://127.0.0.1:{THEIRS}/ping"):
            payload = mlflow_payload(settings)
            for _ in range(100):
                httpx.post(
                    f"http://127.0.0.1:{THEIRS}/invocations",
                    content=payload,
                    headers={"Content-Type": "application/json"},
                )
            theirs = wrk(f"http://127.0.0.1:{THEIRS}/invocations", payload, [], args.seconds)
    for name, result in (
        ("wrk: score + route (8 conn)", ours_route),
        ("wrk: score, no routing (8 conn)", ours_plain),
        ("wrk: mlflow models serve, same model", theirs),
    ):
        rows.append(
            (
                name,
                f"{result['rps']:.0f} req/s",
                "",
                f"p99 {result['p99_ms']:.1f} ms, non-2xx {result['non2xx']}",
            )
        )
    rows.append(
        ("ratio ours (with routing) / mlflow", f"{ours_route['rps'] / theirs['rps']:.1f}x", ">= 3x", "")
    )
    rows.append(
        (
            "batch scoring, 1,000 leads of one company per request",
            f"{one_company:,.0f} rows/s",
            f">= {50_000 * workers:,} ({workers} workers)",
            f"explain=false, route=false; server CPU {batch_cpu * 1e6:.0f} us/row; 1 request at a time",
        )
    )
    rows.append(
        (
            f"batch scoring, 1,000 leads over the world's {len(companies):,} companies",
            f"{many_companies:,.0f} rows/s",
            "",
            f"/healthz meanwhile p50 {many_health[0]:.1f} / p99 {many_health[1]:.1f} ms",
        )
    )
    rows.append(
        (
            "/healthz while the one-company batches are scored",
            f"p50 {health[0]:.1f} / p99 {health[1]:.1f} ms",
            "p99 <= 10 ms",
            "the event loop is not blocked by scoring",
        )
    )
    table = Table(
        title=f"serving benchmark (2 cores, {workers} uvicorn workers, SQLite online store, loopback HTTP)"
    )
    for col in ("measure", "result", "budget", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=170).print(table)
    print(f"serve: p99_ms={p99['false']} p99_explain_ms={p99['true']} cpu_ms_per_lead={cpu[False]:.3f}")


if __name__ == "__main__":
    main()
