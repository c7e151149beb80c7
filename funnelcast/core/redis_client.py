"""How every funnelcast Redis client is opened: each call answers or fails within a bounded time.

redis-py 7 retries a timed-out or refused call three times with exponential back-off (up to 10 s
a step), so a hung Redis (alive, not answering) held a request for the whole hang and then answered
it late. A service must instead fail the call after ``timeout_seconds`` and answer 503 naming the
store (or a degraded answer), while the health probe and other routes go on answering.
"""

from __future__ import annotations

from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry


def fail_fast(timeout_seconds: float) -> dict[str, Any]:
    """Client options (``redis.Redis(**...)``): socket connect and read timeouts, and no retries."""
    return {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
    }
