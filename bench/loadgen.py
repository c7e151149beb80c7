"""Open-loop HTTP load generator: POSTs at a fixed rate over keep-alive connections, in its own process.

Latency is measured from each request's *scheduled* send time, so a stalled server cannot hide
its queueing (no coordinated omission). Usage (what ``bench/serve_latency.py`` runs):

    python bench/loadgen.py URL RATE SECONDS BODY_TEMPLATE_FILE [--header K:V ...] [--connections N]

The body template may contain ``{i}``, replaced by the request number (unique lead ids). Prints
one JSON line: sent, ok, errors, achieved rate, p50/p90/p99/max latency in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, path: str, headers: list[str], schedule: asyncio.Queue, body_of, results: list
) -> None:  # type: ignore[no-untyped-def]
    reader, writer = await asyncio.open_connection(host, port)
    head = "".join(f"{h}\r\n" for h in headers)
    while True:
        item = await schedule.get()
        if item is None:
            writer.close()
            return
        i, scheduled = item
        body = body_of(i)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        status = int(status_line.split()[1])
        results.append((status, time.perf_counter() - scheduled))


async def run(
    url: str, rate: float, seconds: float, template: str, headers: list[str], connections: int
) -> dict:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    schedule: asyncio.Queue = asyncio.Queue()
    results: list[tuple[int, float]] = []

    def body_of(i: int) -> bytes:
        return template.replace("{i}", str(i)).encode()

    workers = [
        asyncio.create_task(
            _connection(parts.hostname, parts.port, path, headers, schedule, body_of, results)
        )
        for _ in range(connections)
    ]
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        schedule.put_nowait((i, due))
    for _ in workers:
        schedule.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    lat = sorted(ms * 1000 for status, ms in results if status == 200)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else float("nan")

    return {
        "sent": total,
        "ok": len(lat),
        "errors": len(results) - len(lat),
        "rate": round(len(results) / elapsed, 1),
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 3) if lat else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("rate", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("body_file")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with open(args.body_file) as f:
        template = f.read()
    print(
        json.dumps(
            asyncio.run(run(args.url, args.rate, args.seconds, template, args.header, args.connections))
        )
    )


if __name__ == "__main__":
    main()
