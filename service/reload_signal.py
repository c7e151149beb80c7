"""A model reload asked of one worker reaches every worker: announced in the shared state, followed.

``POST /v1/models/reload`` lands on one uvicorn worker (or one replica). That worker reloads and
announces it by bumping a generation counter kept beside the routing state (the same SQLite file
under ``service_dir``, or the same Redis); every worker checks the counter every
``reload_watch_seconds`` and reloads when it moved. Alias polling (``model_poll_seconds``) still
catches promotions nobody announced; the signal makes an announced one live everywhere within a
second instead of within a poll period. Reading the counter is one indexed row or one ``GET``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings
from service.routing.state import open_wal, redis_reachable

log = logging.getLogger("funnelcast.models")


class ReloadSignal(Protocol):
    def announce(self) -> int: ...

    def generation(self) -> int: ...


class SqliteReloadSignal:
    """The counter as one row of a table in the routing state's SQLite file (WAL, shared by processes)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_wal(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS model_reloads (id INTEGER PRIMARY KEY, generation INTEGER NOT NULL)"
        )

    def announce(self) -> int:
        with self._lock:
            self._db.execute(
                "INSERT INTO model_reloads (id, generation) VALUES (1, 1) "
                "ON CONFLICT (id) DO UPDATE SET generation = generation + 1"
            )
            return self._generation()

    def generation(self) -> int:
        with self._lock:
            return self._generation()

    def _generation(self) -> int:
        row = self._db.execute("SELECT generation FROM model_reloads WHERE id = 1").fetchone()
        return int(row[0]) if row else 0


class RedisReloadSignal:
    """The counter as one Redis key beside the routing state's keys."""

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._key = f"{prefix}:model_reloads"

    def announce(self) -> int:
        with redis_reachable("model reload signal"):
            return int(self._redis.incr(self._key))

    def generation(self) -> int:
        with redis_reachable("model reload signal"):
            return int(self._redis.get(self._key) or 0)


def reload_signal(settings: Settings) -> ReloadSignal:
    """The signal beside the routing state the settings choose (SQLite under ``service_dir`` or Redis)."""
    if settings.routing_store == "redis":
        return RedisReloadSignal(
            settings.routing_redis_url, settings.routing_redis_prefix, settings.redis_timeout_seconds
        )
    return SqliteReloadSignal(settings.service_dir / "routing.db")


def follow(
    signal: ReloadSignal, reload: Callable[[], object], every_seconds: float, stop: threading.Event
) -> threading.Thread | None:
    """A daemon thread calling ``reload`` whenever the announced generation moves (none if
    ``every_seconds`` is 0). A signal that cannot be read is logged and tried again next time."""
    if every_seconds <= 0:
        return None
    try:
        seen = signal.generation()
    except Exception as err:  # the shared state is down at start: follow from the first reading
        log.warning("model reload signal unreadable", extra={"error": f"{type(err).__name__}: {err}"[:300]})
        seen = None

    def loop() -> None:
        nonlocal seen
        while not stop.wait(every_seconds):
            try:
                now = signal.generation()
                if seen is not None and now != seen:
                    reload()
                seen = now
            except Exception as err:  # a follower must never die: the next tick tries again
                why = f"{type(err).__name__}: {err}"[:300]
                log.warning("model reload not followed", extra={"error": why})

    thread = threading.Thread(target=loop, name="model-reload-follower", daemon=True)
    thread.start()
    return thread
