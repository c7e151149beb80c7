"""Prometheus metrics and structured JSON logs (no personal data: bodies are never logged)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body


class LiveModelRef(Protocol):
    name: str
    version: str
    source: str


LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "funnelcast_request_seconds",
            "Request latency by route",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "funnelcast_model_version", "Live model version", ["model", "source"], registry=self.registry
        )
        self.degraded = Counter(
            "funnelcast_degraded_total",
            "Answers flagged degraded, by source",
            ["source"],
            registry=self.registry,
        )
        self.routed = Counter(
            "funnelcast_routed_total", "Routing decisions", ["outcome"], registry=self.registry
        )

    def publish_versions(self, live: Iterable[LiveModelRef]) -> None:
        """The live version of each model, under the source it was loaded from (registry or cache)."""
        for model in live:
            for source in ("registry", "cache"):
                value = float(model.version) if source == model.source else 0.0
                self.model_version.labels(model.name, source).set(value)


class TimingMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): latency histogram per route template and a log line.

    It is also the net under the error handlers: an exception none of them answered is logged with
    its traceback and answered as a JSON 500 here. Starlette's own last-resort handler re-raises
    after answering, and uvicorn then closes the connection, failing the client's next keep-alive
    request too. Known faults have their own handlers (422, 503); this is only for the unforeseen.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("funnelcast.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, started
            if message["type"] == "http.response.start":
                status_code, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self.log.exception(
                "unexpected error", extra={"path": scope.get("path"), "method": scope["method"]}
            )
            if started:  # half an answer is out: only closing the connection can say it failed
                raise
            await _internal_error(send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            self.metrics.latency.labels(path, scope["method"], str(status_code)).observe(elapsed)
            if status_code >= 400 or self.log.isEnabledFor(logging.DEBUG):
                self.log.info(
                    "request",
                    extra={
                        "route": path,
                        "method": scope["method"],
                        "status": status_code,
                        "ms": round(elapsed * 1000, 3),
                    },
                )


async def _internal_error(send: Send) -> None:
    body = error_body("internal error (logged)")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("funnelcast")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
