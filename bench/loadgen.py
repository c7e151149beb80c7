"""Open-loop HTTP load generator: requests sent at a fixed rate over keep-alive connections.

Latency is measured from each request's *scheduled* send time, so a stalled server cannot hide
its queueing (no coordinated omission). ``open_loop`` is the one engine: ``bench/serve_latency.py``
runs it as a process over one body template (below), ``bench/soak.py`` in-process over a mix of
routes. Usage of the command line:

    python bench/loadgen.py URL RATE SECONDS BODY_TEMPLATE_FILE [--header K:V ...] [--connections N]

The body template may contain ``{i}``, replaced by the request number (unique lead ids). Prints
one JSON line: sent, ok, errors, achieved rate, p50/p90/p99/max latency in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# status recorded when no HTTP answer came back (connection refused or reset, or the timeout)
NO_ANSWER = 0


@dataclass(frozen=True)
class Call:
    """One request of the load: ``kind`` names it in the results (e.g. ``score``, ``at_risk``)."""

    kind: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    kind: str
    scheduled: float  # seconds after the start of the run
    status: int  # NO_ANSWER when the server did not answer
    latency: float  # seconds from the scheduled send to the last byte of the answer


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (Content-Length or chunked body); its status code, and whether the
    server said ``Connection: close`` (then, as any HTTP/1.1 client, send nothing more on it)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the server")
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    else:
        await reader.readexactly(length)
    return int(status_line.split()[1]), close


async def _connection(
    host: str,
    port: int,
    schedule: asyncio.Queue[tuple[Call, float] | None],
    start: float,
    results: list[Result],
    timeout: float,
    give_up_at: float,
) -> None:
    """Take scheduled calls one after another on one keep-alive connection, reconnecting after a failure."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while (item := await schedule.get()) is not None:
        call, due = item
        if time.perf_counter() > give_up_at:  # never sent: the server fell that far behind
            results.append(Result(call.kind, due - start, NO_ANSWER, time.perf_counter() - due))
            continue
        head = "".join(f"{h}\r\n" for h in call.headers)
        request = (
            f"{call.method} {call.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{head}Content-Length: {len(call.body)}\r\n\r\n"
        ).encode() + call.body
        try:
            async with asyncio.timeout(timeout):
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(request)
                await writer.drain()
                status, close = await _read_response(reader)
            if close:
                writer.close()
                reader = writer = None
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            status = NO_ANSWER
            if writer is not None:
                writer.close()
            reader = writer = None
        results.append(Result(call.kind, due - start, status, time.perf_counter() - due))
    if writer is not None:
        writer.close()


async def open_loop(
    url: str,
    rate: float,
    seconds: float,
    call_of: Callable[[int], Call],
    connections: int = 8,
    timeout: float = 30.0,
    results: list[Result] | None = None,
    drain_seconds: float = float("inf"),
) -> list[Result]:
    """Send ``call_of(i)`` at ``start + i / rate`` for ``seconds``, whatever the answers; every result.

    A call waits for a free connection only when all ``connections`` are busy, and that wait counts
    in its latency. Calls still unsent ``drain_seconds`` after the end are recorded unanswered
    (``NO_ANSWER``), so a run against a server that cannot keep up still ends. ``results`` may be
    passed in to watch the run while it goes (``bench/soak.py``).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    schedule: asyncio.Queue[tuple[Call, float] | None] = asyncio.Queue()
    out: list[Result] = [] if results is None else results
    start = time.perf_counter()
    workers = [
        asyncio.create_task(
            _connection(host, port, schedule, start, out, timeout, start + seconds + drain_seconds)
        )
        for _ in range(connections)
    ]
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        schedule.put_nowait((call_of(i), due))
    for _ in workers:
        schedule.put_nowait(None)
    await asyncio.gather(*workers)
    return out


def percentile_ms(latencies: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of latencies in seconds, in ms; NaN for none."""
    lat = sorted(latencies)
    return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3) if lat else float("nan")


def summary(results: Sequence[Result], sent: int, elapsed: float) -> dict[str, float | int]:
    ok = [r.latency for r in results if r.status == 200]
    return {
        "sent": sent,
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "rate": round(len(results) / elapsed, 1),
        "p50_ms": percentile_ms(ok, 0.5),
        "p90_ms": percentile_ms(ok, 0.9),
        "p99_ms": percentile_ms(ok, 0.99),
        "max_ms": round(max(ok) * 1000, 3) if ok else float("nan"),
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
    parts = urlsplit(args.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = tuple(args.header)

    def call_of(i: int) -> Call:
        return Call("post", "POST", path, template.replace("{i}", str(i)).encode(), headers)

    t0 = time.perf_counter()
    results = asyncio.run(open_loop(args.url, args.rate, args.seconds, call_of, args.connections))
    print(json.dumps(summary(results, int(args.rate * args.seconds), time.perf_counter() - t0)))


if __name__ == "__main__":
    main()
