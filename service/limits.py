"""Limits on what one client may make the server hold: body size, body time, header size, head time.

Two layers, because uvicorn owns the bytes until a request's head is complete and the app owns
them after:

- ``RequestLimits`` (ASGI, in front of routing, auth and body parsing): headers over the limit
  are refused with 431; a declared
  ``Content-Length`` over the limit is refused with 413 before a byte of the body is read; a
  chunked body is counted as it arrives and refused the moment it passes the limit; a body that
  takes longer than its deadline to arrive is refused with 408. So a 200 MB body costs nothing,
  with or without a valid key.
- ``server_limits`` (uvicorn settings for ``funnelcast serve`` and the tests' server): h11 with a
  bound on an incomplete request head (a larger header block is a 400), and a protocol that closes
  a connection whose request head has not arrived within its deadline (a slow client holding a
  partial request), beside uvicorn's own keep-alive timeout for idle connections; and admission:
  past ``max_concurrency`` connections or requests at once, uvicorn answers 503 without reading on.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from funnelcast.core.settings import Settings
from service.errors import error_body


class RequestLimits:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_timeout_seconds: float, max_header_bytes: int
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout_seconds
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # h11 bounds a head still arriving; one that came in a single read is measured here
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            limit = self.max_header_bytes
            await _refuse(
                send, 431, f"request headers too large ({header_bytes} bytes); the limit is {limit} bytes"
            )
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, 413, self._too_large(f"{declared} bytes declared"))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        received, body_done, refused = 0, False, False

        async def bounded_receive() -> Message:
            nonlocal received, body_done, refused
            if body_done:  # after the body, receive only reports a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                refused = True
                await _refuse(send, 408, f"request body not received within {self.body_timeout:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    refused = True
                    await _refuse(send, 413, self._too_large(f"more than {self.max_body_bytes} bytes sent"))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the refusal is the response; the app's reply to a "disconnect" is dropped
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)

    def _too_large(self, seen: str) -> str:
        return f"request body too large ({seen}); the limit is {self.max_body_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser has already refused a malformed length
    return None


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = error_body(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            # close: the unread rest of the body must not be taken for the next request
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request head is not in within
    ``head_seconds``. At module level (not made inside a function) so that uvicorn can pickle it
    into the worker processes it spawns (``--workers N``)."""

    def __init__(self, *args: Any, head_seconds: float, max_requests: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_seconds = head_seconds
        self._max_requests = max_requests
        self._requests = 0

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle and self.cycle is not None:  # a new request head came in
            self._requests += 1
            if self._max_requests and self._requests >= self._max_requests:
                # uvicorn answers a request that asked to close with `Connection: close` and closes
                # after the response, so the client knows not to send more on this connection
                self.cycle.scope["headers"].append((b"connection", b"close"))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self.loop.call_later(self._head_seconds, self._head_deadline, self.cycle)

    def _head_deadline(self, cycle_when_armed: Any) -> None:
        # a new request head creates a new cycle; the same one means no head came in time
        if self.cycle is cycle_when_armed and not self.transport.is_closing():
            self.transport.close()


def head_deadline_protocol(seconds: float, max_requests: int = 0) -> Callable[..., H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request head is not in within ``seconds``,
    and (``max_requests`` > 0) after its ``max_requests``-th request, with ``Connection: close``.

    uvicorn times out idle keep-alive connections, but any byte cancels that timer, so a client
    sending a header line now and then holds its connection (and a slot) for ever. And a worker keeps
    every connection it accepted: a pool of 32 opened at once split 21/11 over two workers (the first
    to wake accepts a burst), one worker ran at 78% and the other at 38%, and the busy one's queue
    set the latency tail. Closing now and then lets the client reconnect to the worker free to accept.
    """
    return functools.partial(HeadDeadlineH11Protocol, head_seconds=seconds, max_requests=max_requests)


def server_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn keyword arguments bounding what a slow or abusive client can hold open."""
    return {
        "http": head_deadline_protocol(
            settings.request_head_timeout_seconds, settings.max_requests_per_connection
        ),
        # above the header limit, so a head that is merely too large gets its clear 431 from
        # RequestLimits however the network split it; this bound only stops unbounded buffering
        "h11_max_incomplete_event_size": 4 * settings.max_header_bytes,
        "timeout_keep_alive": 5,
        # Admission: a client opening connections faster than we answer (an open-loop load past
        # capacity) would otherwise have every request parsed and held, queued on the thread pool,
        # and memory grows with the backlog; past the limit uvicorn answers 503 without reading.
        "limit_concurrency": settings.max_concurrency,
    }
