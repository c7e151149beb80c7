"""The event ids already taken in: what makes a replayed event change nothing.

``claim(stream, ids)`` atomically records the ids not seen before and returns exactly those, so two
replicas (or two threads) posting the same id apply it once. An ingest that then fails ``release``s
what it claimed, so the client's retry is taken in, not refused as a duplicate. Ids are per stream
(``behavior``, ``opportunity``): the two endpoints' ids are the CRM's and need not be disjoint.

SQLite in WAL mode beside the routing state by default (``<service_dir>/events.db``); Redis keys
(``SET NX``) when the online store is Redis, so every replica sharing that Redis shares the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from funnelcast.core.settings import Settings
from service.routing.state import open_wal, redis_reachable

_CHUNK = 500  # ids per statement: under SQLite's bound-parameter limit


class EventLedger(Protocol):
    def claim(self, stream: str, ids: Sequence[str]) -> list[str]: ...

    def release(self, stream: str, ids: Sequence[str]) -> None: ...

    def ping(self) -> bool: ...


class SqliteEventLedger:
    def __init__(self, path: Path) -> None:
        self._db = open_wal(path)
        self._db.execute("PRAGMA synchronous=FULL")  # a claimed id is on disk before the 200
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (stream TEXT, event_id TEXT, PRIMARY KEY (stream, event_id))"
        )
        self._lock = threading.Lock()

    def claim(self, stream: str, ids: Sequence[str]) -> list[str]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known: set[str] = set()
                for i in range(0, len(ids), _CHUNK):
                    chunk = list(ids[i : i + _CHUNK])
                    marks = ",".join("?" * len(chunk))
                    known.update(
                        r[0]
                        for r in self._db.execute(
                            f"SELECT event_id FROM seen WHERE stream = ? AND event_id IN ({marks})",
                            [stream, *chunk],
                        )
                    )
                new = [i for i in dict.fromkeys(ids) if i not in known]
                self._db.executemany("INSERT INTO seen VALUES (?, ?)", [(stream, i) for i in new])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return new

    def release(self, stream: str, ids: Sequence[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM seen WHERE stream = ? AND event_id = ?", [(stream, i) for i in ids]
            )

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True


class RedisEventLedger:
    """One key per id (``<prefix>:<stream>:<id>``), set with NX: Redis answers which were new."""

    def __init__(self, client: object, prefix: str, where: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._where = where

    def _key(self, stream: str, event_id: str) -> str:
        return f"{self._prefix}:{stream}:{event_id}"

    def claim(self, stream: str, ids: Sequence[str]) -> list[str]:
        unique = list(dict.fromkeys(ids))
        with redis_reachable("event ledger", self._where):
            pipe = self._redis.pipeline(transaction=False)  # type: ignore[attr-defined]
            for event_id in unique:
                pipe.set(self._key(stream, event_id), 1, nx=True)
            answers = pipe.execute()
        return [i for i, fresh in zip(unique, answers, strict=True) if fresh]

    def release(self, stream: str, ids: Sequence[str]) -> None:
        if ids:
            with redis_reachable("event ledger", self._where):
                self._redis.delete(*(self._key(stream, i) for i in ids))  # type: ignore[attr-defined]

    def ping(self) -> bool:
        with redis_reachable("event ledger", self._where):
            return bool(self._redis.ping())  # type: ignore[attr-defined]


def event_ledger(settings: Settings) -> EventLedger:
    """Redis when the online store is Redis (on its server), else SQLite beside the routing state."""
    if settings.online_store == "redis":
        from features.directory import _redis, redis_address  # the client on Feast's connection string

        return RedisEventLedger(
            _redis(settings), f"{settings.feast_project}:events", redis_address(settings.redis_url)
        )
    return SqliteEventLedger(settings.service_dir / "events.db")
