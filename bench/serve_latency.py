"""Benchmark: the scoring service over loopback HTTP beside ``mlflow models serve`` on the same model.

Needs the demo world and its champions (``make demo``) and ``wrk`` (``apt-get install wrk``).
Starts ``funnelcast serve`` (one uvicorn worker, SQLite online store, fresh routing state for each
phase) and ``mlflow models serve`` on the lead-score champion, then prints one table:

- fixed-rate latency (open loop, ``bench/loadgen.py``): single-lead score + routing at 200 req/s,
  without and with explanations; budgets p99 <= 5 ms and <= 15 ms;
- sustained requests/s under ``wrk`` (8 connections, 10 s) for our service and for MLflow's;
  budget >= 3x MLflow's while doing more (online features, calibration, grade, routing);
- batch rows/s (1,000 leads per request), and ``/healthz`` latency meanwhile (budget p99 <= 10 ms:
  scoring runs in the thread pool, so the event loop keeps answering the container's health check).

Run: ``python bench/serve_latency.py``.
"""

from __future__ import annotations

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
from funnelcast.core.settings import PROJECT_ROOT, get_settings
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


@contextmanager
def our_service(tmp: Path, phase: str) -> Iterator[None]:
    env = os.environ | {
        "FUNNELCAST_SERVICE_STATE_DIR": str(tmp / phase),  # fresh routing state: capacity is not used up
        "FUNNELCAST_MODEL_POLL_SECONDS": "0",
    }
    cmd = [str(BIN / "funnelcast"), "serve", "--port", str(OURS)]
    with process(cmd, env, f"http://127.0.0.1:{OURS}/healthz"):
        headers = {"X-API-Key": "demo-crm-key"}
        for i in range(300):  # warm up (first-request paths, caches)
            httpx.post(
                f"http://127.0.0.1:{OURS}/v1/leads/score",
                content=LEAD.replace("{i}", f"w{i}"),
                headers=headers,
            )
        yield


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


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    settings = get_settings()
    rows: list[tuple[str, str, str, str]] = []
    score = f"http://127.0.0.1:{OURS}/v1/leads/score"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for explain, budget in (("false", 5.0), ("true", 15.0)):
            with our_service(tmp, f"rate-{explain}"):
                r = loadgen(f"{score}?explain={explain}", 200, 10, LEAD, [KEY])
            rows.append(
                (
                    f"score + route, explain={explain}, 200 req/s open loop",
                    f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms",
                    f"p99 <= {budget} ms",
                    f"{r['ok']}/{r['sent']} ok, {r['rate']} req/s",
                )
            )
        with our_service(tmp, "wrk-route"):
            ours_route = wrk(f"{score}?explain=false", LEAD, [KEY])
        with our_service(tmp, "wrk-noroute"):
            ours_plain = wrk(f"{score}?explain=false&route=false", LEAD, [KEY])
            batch = json.dumps({"leads": [json.loads(LEAD.replace("{i}", f"b{i}")) for i in range(1000)]})

            def batches() -> None:
                for _ in range(5):
                    httpx.post(
                        f"http://127.0.0.1:{OURS}/v1/leads/score:batch",
                        content=batch,
                        headers={"X-API-Key": "demo-crm-key", "Content-Type": "application/json"},
                        timeout=60,
                    ).raise_for_status()

            t0 = time.perf_counter()
            health = probe_while(f"http://127.0.0.1:{OURS}/healthz", batches)
            batch_rows = 5000 / (time.perf_counter() - t0)
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
            "1",
        ]
        with process(cmd, env, f"http://127.0.0.1:{THEIRS}/ping"):
            payload = mlflow_payload(settings)
            for _ in range(100):
                httpx.post(
                    f"http://127.0.0.1:{THEIRS}/invocations",
                    content=payload,
                    headers={"Content-Type": "application/json"},
                )
            theirs = wrk(f"http://127.0.0.1:{THEIRS}/invocations", payload, [])
    rows.append(
        (
            "wrk: score + route (8 conn)",
            f"{ours_route['rps']:.0f} req/s",
            "",
            f"p99 {ours_route['p99_ms']:.1f} ms, non-2xx {ours_route['non2xx']}",
        )
    )
    rows.append(
        (
            "wrk: score, no routing (8 conn)",
            f"{ours_plain['rps']:.0f} req/s",
            "",
            f"p99 {ours_plain['p99_ms']:.1f} ms, non-2xx {ours_plain['non2xx']}",
        )
    )
    rows.append(
        (
            "wrk: mlflow models serve, same model",
            f"{theirs['rps']:.0f} req/s",
            "",
            f"p99 {theirs['p99_ms']:.1f} ms, non-2xx {theirs['non2xx']}",
        )
    )
    rows.append(
        ("ratio ours (with routing) / mlflow", f"{ours_route['rps'] / theirs['rps']:.1f}x", ">= 3x", "")
    )
    rows.append(
        (
            "batch scoring, 1,000 leads per request",
            f"{batch_rows:,.0f} rows/s",
            "",
            "explain=false, route=false",
        )
    )
    rows.append(
        (
            "/healthz while those batches are scored",
            f"p50 {health[0]:.1f} / p99 {health[1]:.1f} ms",
            "p99 <= 10 ms",
            "the event loop is not blocked by scoring",
        )
    )
    table = Table(title="serving benchmark (2 cores, 1 uvicorn worker, SQLite online store, loopback HTTP)")
    for col in ("measure", "result", "budget", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
