"""The promotion signal: a counter the scheduler bumps after its retrain promoted a champion, and every
worker process watches, so each reloads from the registry within a second instead of at its next
poll (``model_poll_seconds``). Kept beside the routing state: a SQLite file (WAL) or a Redis key."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings
from funnelcast.core.shared_clock import beside_routing_state


class PromotionSignal(Protocol):
    def generation(self) -> int: ...

    def bump(self) -> int: ...


class SqlitePromotions:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS promotions (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER)"
        )

    def generation(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT n FROM promotions WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def bump(self) -> int:
        with self._lock:
            self._db.execute("INSERT INTO promotions VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1")
        return self.generation()


class RedisPromotions:
    def __init__(self, url: str, key: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._key = key

    def generation(self) -> int:
        return int(self._redis.get(self._key) or 0)

    def bump(self) -> int:
        return int(self._redis.incr(self._key))


def promotion_signal(settings: Settings) -> PromotionSignal:
    return beside_routing_state(settings, "promotions", SqlitePromotions, RedisPromotions)
