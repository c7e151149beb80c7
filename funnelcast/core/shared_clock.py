"""The external clock: one "now" set by the live driver and read by every worker and the scheduler.

With ``clock = "external"`` (a live run), time is what ``PUT /v1/clock`` last set, kept where the
routing state is (a SQLite file in WAL mode beside ``routing.db``, or a Redis key when the routing
state is Redis), so every process reads the same instant. Time only moves forward: a set earlier than
the stored time is refused (``ClockWentBack``), in one atomic step, so two drivers racing cannot move
it back. Until the first set, the external clock reads the wall clock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from funnelcast.core import clock
from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


class ClockWentBack(ValueError):
    """A set earlier than the stored time; ``current`` is the stored time."""

    def __init__(self, current: datetime) -> None:
        super().__init__(f"time only moves forward: the clock is at {current.isoformat()}")
        self.current = current


class ClockUnavailable(RuntimeError):
    """The store holding the external clock did not answer: a 503 naming it."""


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("the clock takes timezone-aware times")
    return (at - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class SharedClock(Protocol):
    where: str

    def read(self) -> datetime | None: ...

    def advance(self, to: datetime) -> datetime: ...


class SqliteClock:
    """One row in a SQLite file (WAL): a read is one indexed SELECT, a set one ``BEGIN IMMEDIATE``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.where = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), micros INTEGER)"
        )

    def read(self) -> datetime | None:
        try:
            with self._lock:
                row = self._db.execute("SELECT micros FROM clock WHERE id = 1").fetchone()
        except sqlite3.Error as err:
            raise ClockUnavailable(f"external clock unavailable (SQLite at {self.where}): {err}") from err
        return _time(row[0]) if row else None

    def advance(self, to: datetime) -> datetime:
        new = _micros(to)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT micros FROM clock WHERE id = 1").fetchone()
                if row and row[0] > new:
                    self._db.execute("ROLLBACK")
                    raise ClockWentBack(_time(row[0]))
                self._db.execute("INSERT OR REPLACE INTO clock (id, micros) VALUES (1, ?)", (new,))
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise ClockUnavailable(f"external clock unavailable (SQLite at {self.where}): {err}") from err
        return _time(new)


# KEYS: the clock key; ARGV: new micros. Returns the stored micros: equal to ARGV[1] when it moved.
_ADVANCE_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local new = tonumber(ARGV[1])
if cur > new then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return new
"""


class RedisClock:
    """One Redis key; the forward-only set is a Lua script (read, compare, write in one step)."""

    def __init__(self, url: str, key: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._key = key
        self.where = f"Redis key {key}"
        self._advance = self._redis.register_script(_ADVANCE_LUA)

    def read(self) -> datetime | None:
        from redis.exceptions import RedisError

        try:
            raw = self._redis.get(self._key)
        except RedisError as err:
            raise ClockUnavailable(f"external clock unavailable ({self.where}): {err}") from err
        return _time(int(raw)) if raw is not None else None

    def advance(self, to: datetime) -> datetime:
        from redis.exceptions import RedisError

        new = _micros(to)
        try:
            stored = int(self._advance(keys=[self._key], args=[new]))
        except RedisError as err:
            raise ClockUnavailable(f"external clock unavailable ({self.where}): {err}") from err
        if stored != new:
            raise ClockWentBack(_time(stored))
        return _time(new)

    def clear(self) -> None:
        """Forget the time (tests)."""
        self._redis.delete(self._key)


def beside_routing_state(
    settings: Settings, name: str, sqlite: Callable[[Path], T], redis: Callable[[str, str, float], T]
) -> T:
    """A small shared value kept where the routing state is: ``<service_dir>/<name>.db`` (SQLite) or
    the Redis key ``<routing_redis_prefix>:<name>``, so every process that shares one shares the other."""
    if settings.routing_store == "redis":
        key = f"{settings.routing_redis_prefix}:{name}"
        return redis(settings.routing_redis_url, key, settings.redis_timeout_seconds)
    return sqlite(settings.service_dir / f"{name}.db")


def shared_clock(settings: Settings) -> SharedClock:
    """Where the external clock lives: beside the routing state (SQLite file or Redis)."""
    return beside_routing_state(settings, "clock", SqliteClock, RedisClock)


def use_clock(settings: Settings) -> SharedClock | None:
    """Make ``clock.now()`` read what the settings choose; the external store in external mode.

    Called once per process at start (the service's lifespan, the scheduler, the CLI), before anything
    reads the time. Until the live driver's first set, the external clock reads the wall clock. Wall
    mode leaves the process's clock as it is: the wall clock unless whoever embeds the service (a
    test, a replay) set its own.
    """
    if settings.clock == "wall":
        return None
    store = shared_clock(settings)
    clock.set_clock(lambda: store.read() or clock.wall_clock())
    return store
