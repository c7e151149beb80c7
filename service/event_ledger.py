"""The event ids already taken in: what makes a replayed event change nothing.

``claim(stream, ids)`` atomically records the ids not seen before and returns exactly those, so two
replicas (or two threads) posting the same id apply it once. An ingest that then fails releases
what it claimed (``release_batch``), so the client's retry is taken in, not refused as a duplicate.
Ids are per stream (``behavior``, ``opportunity``): the two endpoints' ids are the CRM's and need
not be disjoint.

SQLite in WAL mode beside the routing state by default (``<service_dir>/events.db``); Redis keys
(``SET NX``) when the online store is Redis, so every replica sharing that Redis shares the ledger.

Each claim carries the batch that made it, so a batch cut off by a killed process can be undone
later by id *and* batch (``release_batch``): an id an earlier batch took in stays taken.
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
    def claim(self, stream: str, ids: Sequence[str], batch: str = "") -> list[str]: ...

    def release_batch(self, stream: str, ids: Sequence[str], batch: str) -> int: ...

    def ping(self) -> bool: ...


class SqliteEventLedger:
    def __init__(self, path: Path) -> None:
        self._db = open_wal(path)
        self._db.execute("PRAGMA synchronous=FULL")  # a claimed id is on disk before the 200
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (stream TEXT, event_id TEXT, batch TEXT, "
            "PRIMARY KEY (stream, event_id))"
        )
        if "batch" not in {row[1] for row in self._db.execute("PRAGMA table_info(seen)")}:
            self._db.execute("ALTER TABLE seen ADD COLUMN batch TEXT")  # a ledger from before batches
        self._lock = threading.Lock()

    def claim(self, stream: str, ids: Sequence[str], batch: str = "") -> list[str]:
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
                self._db.executemany(
                    "INSERT INTO seen (stream, event_id, batch) VALUES (?, ?, ?)",
                    [(stream, i, batch) for i in new],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return new

    def release_batch(self, stream: str, ids: Sequence[str], batch: str) -> int:
        with self._lock:
            cur = self._db.executemany(
                "DELETE FROM seen WHERE stream = ? AND event_id = ? AND batch = ?",
                [(stream, i, batch) for i in ids],
            )
            return cur.rowcount

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True


# KEYS: the ids' keys; ARGV[1]: the batch. Deletes the keys that batch set; how many.
_RELEASE_IF_BATCH = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


class RedisEventLedger:
    """One key per id (``<prefix>:<stream>:<id>``), set with NX: Redis answers which were new."""

    def __init__(self, client: object, prefix: str, where: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._where = where

    def _key(self, stream: str, event_id: str) -> str:
        return f"{self._prefix}:{stream}:{event_id}"

    def claim(self, stream: str, ids: Sequence[str], batch: str = "") -> list[str]:
        unique = list(dict.fromkeys(ids))
        with redis_reachable("event ledger", self._where):
            pipe = self._redis.pipeline(transaction=False)  # type: ignore[attr-defined]
            for event_id in unique:
                pipe.set(self._key(stream, event_id), batch or "1", nx=True)
            answers = pipe.execute()
        return [i for i, fresh in zip(unique, answers, strict=True) if fresh]

    def release_batch(self, stream: str, ids: Sequence[str], batch: str) -> int:
        if not ids:
            return 0
        with redis_reachable("event ledger", self._where):
            keys = [self._key(stream, i) for i in ids]
            return int(self._redis.eval(_RELEASE_IF_BATCH, len(keys), *keys, batch))  # type: ignore[attr-defined]

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
