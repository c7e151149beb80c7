"""Benchmark: event ingestion against a real ``funnelcast serve`` (port 18300), end to end.

Builds the fault bench's small world in a temporary folder (``bench/faults.py``: ~3k leads, features
materialised, lead-score and churn champions), serves it, then:

1. posts ``--events`` behaviour events (batches of 1,000, from ``--clients`` threads) over the
   companies of the world, dated in the day after its end, and counts what the offline log holds
   afterwards (``features.event_log``): events/s posted (acknowledged) and stored;
2. replays 5% of them (random, in batches): every one must come back a duplicate, and the log must
   not change: lost = acknowledged ids not in the log, duplicated = ids logged more than once;
3. event-to-visible latency, ``--probes`` times: one event for a company, then scores of a lead of
   that company until the score's ``feature_snapshot_time`` is the event's time (the online row the
   score read holds it); the time from sending the event to that answer, p50 / p99.

Run: ``python bench/events_ingest.py [--events 20000] [--clients 4] [--probes 100]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.faults import BIN, build_world, env_of
from features.catalog import BEHAVIOR_EVENT_TYPES
from features.event_log import read_logged
from features.schema import read_table
from features.store import latest_feature_time
from tests.conftest import subprocess_server
from tests.service.conftest import lead

PORT = 18300
BASE = f"http://127.0.0.1:{PORT}"
CRM = {"X-API-Key": "demo-crm-key"}
BATCH = 1000


def behaviour_events(companies: list[str], n: int, start: datetime, seed: int = 5) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    who = rng.choice(companies, n)
    what = rng.choice(BEHAVIOR_EVENT_TYPES, n)
    when = np.sort(rng.integers(0, 86_400, n))
    return [
        {
            "event_id": f"bench-{i}",
            "company_id": str(c),
            "event_type": str(t),
            "at": (start + timedelta(seconds=int(s))).isoformat(),
        }
        for i, (c, t, s) in enumerate(zip(who, what, when, strict=True))
    ]


def post_all(client: httpx.Client, events: list[dict[str, str]], clients: int) -> tuple[list[dict], float]:
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(
            pool.map(lambda b: client.post("/v1/events", json={"events": b}, headers=CRM), batches)
        )
    seconds = time.perf_counter() - t0
    return [a.json() if a.status_code == 200 else {"status": a.status_code} for a in answers], seconds


def visible_latency(client: httpx.Client, companies: list[str], start: datetime, probes: int) -> list[float]:
    """Seconds from sending one event to the first score whose snapshot time is that event's time."""
    out = []
    for i in range(probes):
        company = companies[i % len(companies)]
        at = start + timedelta(days=1, seconds=10 * i + 5)  # after every bulk event: the row's newest
        event = {
            "event_id": f"probe-{i}",
            "company_id": company,
            "event_type": "pricing_view",
            "at": at.isoformat(),
        }
        body = lead(f"probe-lead-{i}", company_id=company, created_at=(at + timedelta(seconds=1)).isoformat())
        t0 = time.perf_counter()
        client.post("/v1/events", json={"events": [event]}, headers=CRM).raise_for_status()
        while True:
            score = client.post("/v1/leads/score?route=false&explain=false", json=body, headers=CRM).json()
            if datetime.fromisoformat(score["feature_snapshot_time"]) == at:
                out.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 5:
                out.append(float("inf"))
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="events-bench-") as tmp:
        console.print("building the small world ...")
        settings = build_world(Path(tmp))
        start = latest_feature_time(settings) + timedelta(minutes=1)
        companies = sorted(read_table("leads", settings.raw_dir)["company_id"].unique().tolist())
        events = behaviour_events(companies, args.events, start)
        command = [str(BIN / "funnelcast"), "serve", "--port", str(PORT)]
        with (
            subprocess_server(command, env_of(settings), f"{BASE}/healthz"),
            httpx.Client(base_url=BASE, timeout=60) as client,
        ):
            answers, seconds = post_all(client, events, args.clients)
            acknowledged = sum(a.get("accepted", 0) for a in answers)
            refused = sum(1 for a in answers if "status" in a)
            logged = read_logged(settings.raw_dir, "behavior_events")
            stored_ids = logged["event_id"] if logged is not None else []
            stored = len(stored_ids)
            rng = np.random.default_rng(9)
            replayed = [events[i] for i in rng.choice(len(events), len(events) // 20, replace=False)]
            replay_answers, _ = post_all(client, replayed, args.clients)
            replay_dups = sum(a.get("duplicates", 0) for a in replay_answers)
            replay_accepted = sum(a.get("accepted", 0) for a in replay_answers)
            after = read_logged(settings.raw_dir, "behavior_events")
            assert after is not None
            ids = after["event_id"]
            lost = len({e["event_id"] for e in events} - set(ids))
            duplicated = int(len(ids) - ids.nunique())
            latency = np.array(visible_latency(client, companies, start, args.probes)) * 1000

    table = Table(
        title=f"event ingestion: {args.events} behaviour events, {args.clients} clients, batches of {BATCH}"
    )
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("posted (acknowledged) events/s", f"{acknowledged / seconds:,.0f}")
    table.add_row("stored (in the offline log) events/s", f"{stored / seconds:,.0f}")
    table.add_row("batches refused (non-200)", str(refused))
    table.add_row("replayed (5%)", f"{len(replayed)}: {replay_dups} duplicates, {replay_accepted} accepted")
    table.add_row("lost / duplicated after the replay", f"{lost} / {duplicated}")
    table.add_row(
        f"event -> visible in score, p50 ({args.probes} probes)", f"{np.percentile(latency, 50):.1f} ms"
    )
    table.add_row("event -> visible in score, p99", f"{np.percentile(latency, 99):.1f} ms")
    console.print(table)
    print(
        f"events: posted={acknowledged} stored={stored} lost={lost} duplicated={duplicated} "
        f"visible_p99_ms={np.percentile(latency, 99):.1f}"
    )


if __name__ == "__main__":
    main()
