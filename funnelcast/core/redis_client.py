"""How every funnelcast Redis client is opened: each call answers or fails within a bounded time.

The timeouts were four hard-coded 0.5 s literals; they now come from one setting
(``redis_timeout_seconds``). Retries are switched off explicitly, so no client default can hold a
request through a hang (Feast's own Redis client retried with back-off for 5-12 s, see
``features/redis_online_store.py``): a hung Redis (alive, not answering) fails the call after
``timeout_seconds`` and the route answers 503 naming the store, while ``/healthz`` goes on answering.
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
