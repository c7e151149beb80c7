"""Assignment state shared by every worker and durable across restarts: SQLite (default) or Redis.

The one operation that must be atomic is "give this lead to this rep if the rep is below capacity":
``try_assign`` does the check and the increment in one SQLite ``BEGIN IMMEDIATE`` transaction or
one Redis Lua script, so concurrent requests (threads, workers, replicas) never push a rep past
capacity. Load counts a rep's open leads (assigned, not yet converted, lost or re-routed); a touch
clears the first-touch deadline but keeps the lead open. Outcomes are appended for retraining.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from funnelcast.core import clock
from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings
from service.routing.policy import RepLoad


def open_wal(path: Path) -> sqlite3.Connection:
    """A SQLite file in WAL mode shared by this process's threads (callers hold their own lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    return db


RELEASING = {"converted", "lost", "disqualified", "rerouted"}


class RoutingStateUnavailable(RuntimeError):
    """The shared routing state did not answer: a route that needs it answers 503, naming it."""


@dataclass(frozen=True)
class Assignment:
    lead_id: str
    rep_id: str
    assigned_at: datetime
    deadline: datetime | None
    status: str  # open | touched | converted | lost | disqualified | rerouted
    probability: float
    grade: str
    # what the router knew of the lead, kept so a re-route (the SLA sweep) applies the same language,
    # time-zone and segment filters as the first route; None for assignments stored before them
    language: str | None = None
    utc_offset_hours: float | None = None
    industry: str | None = None
    product_line: str | None = None

    def profile(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PROFILE_FIELDS}

    def to_json(self) -> str:
        d = asdict(self)
        d["assigned_at"] = self.assigned_at.isoformat()
        d["deadline"] = self.deadline.isoformat() if self.deadline else None
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str | bytes) -> Assignment:
        d = json.loads(text)
        d["assigned_at"] = datetime.fromisoformat(d["assigned_at"])
        d["deadline"] = datetime.fromisoformat(d["deadline"]) if d["deadline"] else None
        return cls(**d)


PROFILE_FIELDS = ("language", "utc_offset_hours", "industry", "product_line")


class AssignmentStore(Protocol):
    def loads(self) -> dict[str, RepLoad]: ...

    def try_assign(self, assignment: Assignment, capacity: int) -> bool: ...

    def get(self, lead_id: str) -> Assignment | None: ...

    def update_status(self, lead_id: str, status: str, at: datetime) -> Assignment | None: ...

    def transition(
        self, lead_id: str, status: str, at: datetime, only_from: str | None = None
    ) -> tuple[Assignment | None, bool]: ...

    def overdue(self, now: datetime) -> list[Assignment]: ...

    def record_outcome(self, outcome: dict[str, Any]) -> bool: ...

    def outcomes(self) -> list[dict[str, Any]]: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rep_load (
    rep_id TEXT PRIMARY KEY, open_leads INTEGER NOT NULL DEFAULT 0, last_assigned_at TEXT);
CREATE TABLE IF NOT EXISTS assignments (
    lead_id TEXT PRIMARY KEY, rep_id TEXT NOT NULL, assigned_at TEXT NOT NULL, deadline TEXT,
    status TEXT NOT NULL, probability REAL NOT NULL, grade TEXT NOT NULL, profile TEXT);
CREATE INDEX IF NOT EXISTS assignments_open ON assignments (status, deadline);
CREATE TABLE IF NOT EXISTS outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outcome_ids (outcome_id TEXT PRIMARY KEY);
"""


class SqliteAssignmentStore:
    """One SQLite file in WAL mode; safe across threads (a lock) and processes (SQLite's locks)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_wal(path)
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(assignments)")}
        if "profile" not in columns:  # a state file from before the lead's profile was kept
            self._db.execute("ALTER TABLE assignments ADD COLUMN profile TEXT")
        # Checkpoints (which fsync) run on a background thread, not inside a request's commit.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._path = path
        self._loads: dict[str, RepLoad] | None = None  # what ``loads`` read, at ``_loads_version``
        self._loads_version = -1
        self._written: dict[str, RepLoad] = {}  # rep loads this transaction wrote, as RETURNING gave them
        self._closed = threading.Event()
        threading.Thread(target=self._checkpoint_loop, name="routing-wal-checkpoint", daemon=True).start()

    def _checkpoint_loop(self, every_seconds: float = 2.0) -> None:
        db = sqlite3.connect(self._path, timeout=10.0, isolation_level=None)
        try:
            while not self._closed.wait(every_seconds):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the database went away (tests); nothing left to checkpoint
        finally:
            db.close()

    def close(self) -> None:
        self._closed.set()
        self._db.close()

    def ping(self) -> bool:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()
        return True

    def loads(self) -> dict[str, RepLoad]:
        """Every rep's load, read again only after a commit: every routed lead asks for it, and
        parsing 60 rows per request was a tenth of the scoring CPU. ``PRAGMA data_version`` moves
        when another connection (another worker) commits; this connection's own writes drop the
        copy where they commit."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if self._loads is None or version != self._loads_version:
                rows = self._db.execute(f"SELECT {_LOAD_COLUMNS} FROM rep_load").fetchall()
                self._loads = {
                    rep: RepLoad(n, datetime.fromisoformat(last) if last else None) for rep, n, last in rows
                }
                self._loads_version = version
            return dict(self._loads)

    def _commit(self) -> None:
        """Commit, and bring the copy ``loads`` keeps up to date with this transaction's own writes
        (data_version does not move for them); a commit by another connection meanwhile still moves
        data_version, so the next ``loads`` reads everything again."""
        self._db.execute("COMMIT")
        if self._loads is not None:
            self._loads.update(self._written)
        self._written = {}

    def _rollback(self) -> None:
        self._db.execute("ROLLBACK")
        self._written = {}

    def _wrote_load(self, row: tuple[str, int, str | None] | None) -> bool:
        """Keep a ``rep_load`` row a statement's RETURNING gave; whether there was one."""
        if row is None:
            return False
        rep, n, last = row
        self._written[rep] = RepLoad(n, datetime.fromisoformat(last) if last else None)
        return True

    def try_assign(self, assignment: Assignment, capacity: int) -> bool:
        """Give the lead to the rep if the rep has room; idempotent by lead id (see ``_ASSIGN_LUA``)."""
        a = assignment
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                held = self._db.execute(
                    "SELECT rep_id, status FROM assignments WHERE lead_id = ?", (a.lead_id,)
                ).fetchone()
                holder = held[0] if held and held[1] not in RELEASING else None
                if holder != a.rep_id:
                    self._db.execute("INSERT OR IGNORE INTO rep_load (rep_id) VALUES (?)", (a.rep_id,))
                    cur = self._db.execute(
                        "UPDATE rep_load SET open_leads = open_leads + 1, last_assigned_at = ? "
                        f"WHERE rep_id = ? AND open_leads < ? RETURNING {_LOAD_COLUMNS}",
                        (a.assigned_at.isoformat(), a.rep_id, capacity),
                    )
                    if not self._wrote_load(cur.fetchone()):
                        self._rollback()
                        return False
                    if holder is not None:
                        self._release(holder)
                self._db.execute(
                    f"INSERT OR REPLACE INTO assignments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        a.lead_id,
                        a.rep_id,
                        a.assigned_at.isoformat(),
                        a.deadline.isoformat() if a.deadline else None,
                        a.status,
                        a.probability,
                        a.grade,
                        json.dumps(a.profile()),
                    ),
                )
                self._commit()
                return True
            except BaseException:
                self._rollback()
                raise

    def _release(self, rep_id: str) -> None:
        self._wrote_load(
            self._db.execute(
                "UPDATE rep_load SET open_leads = MAX(open_leads - 1, 0) "
                f"WHERE rep_id = ? RETURNING {_LOAD_COLUMNS}",
                (rep_id,),
            ).fetchone()
        )

    def get(self, lead_id: str) -> Assignment | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM assignments WHERE lead_id = ?", (lead_id,)
            ).fetchone()
        return _assignment(row) if row else None

    def update_status(self, lead_id: str, status: str, at: datetime) -> Assignment | None:
        return self.transition(lead_id, status, at)[0]

    def transition(
        self, lead_id: str, status: str, at: datetime, only_from: str | None = None
    ) -> tuple[Assignment | None, bool]:
        """Move the lead to ``status`` (final states stay final; with ``only_from``, only a lead in
        that status moves); whether this call freed its place.

        Read and write happen in one ``BEGIN IMMEDIATE`` transaction, so of two processes
        converting the same lead exactly one sees it open and reports the release, and a touch
        landing while the SLA sweep decides cannot be undone by the sweep's release.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    f"SELECT {_COLUMNS} FROM assignments WHERE lead_id = ?", (lead_id,)
                ).fetchone()
                if row is None:
                    self._rollback()
                    return None, False
                old = _assignment(row)
                if only_from is not None and old.status != only_from:
                    self._rollback()
                    return old, False
                released = old.status not in RELEASING and status in RELEASING
                if released:
                    self._release(old.rep_id)
                if old.status not in RELEASING:
                    deadline = None if status != "open" else row[3]
                    self._db.execute(
                        "UPDATE assignments SET status = ?, deadline = ? WHERE lead_id = ?",
                        (status, deadline, lead_id),
                    )
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return self.get(lead_id), released

    def overdue(self, now: datetime) -> list[Assignment]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM assignments "
                "WHERE status = 'open' AND deadline IS NOT NULL AND deadline < ?",
                (now.astimezone(UTC).isoformat(),),
            ).fetchall()
        return [_assignment(r) for r in rows]

    def record_outcome(self, outcome: dict[str, Any]) -> bool:
        """Append the outcome; one carrying an ``outcome_id`` seen before is not appended (False)."""
        outcome_id = outcome.get("outcome_id")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if outcome_id is not None:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO outcome_ids (outcome_id) VALUES (?)", (outcome_id,)
                    )
                    if cur.rowcount == 0:
                        self._commit()
                        return False
                self._db.execute(
                    "INSERT INTO outcomes (recorded_at, body) VALUES (?, ?)",
                    (clock.now().isoformat(), json.dumps(outcome, default=str)),
                )
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return True

    def outcomes(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM outcomes ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]


_COLUMNS = "lead_id, rep_id, assigned_at, deadline, status, probability, grade, profile"
_LOAD_COLUMNS = "rep_id, open_leads, last_assigned_at"


def _assignment(row: tuple) -> Assignment:
    lead_id, rep_id, assigned_at, deadline, status, probability, grade, profile = row
    return Assignment(
        lead_id,
        rep_id,
        datetime.fromisoformat(assigned_at),
        datetime.fromisoformat(deadline) if deadline else None,
        status,
        float(probability),
        grade,
        **(json.loads(profile) if profile else {}),
    )


_RELEASING_LUA = "local RELEASING = {" + ", ".join(f"{s} = true" for s in sorted(RELEASING)) + "}\n"
# KEYS: load hash, last-assigned hash, assignments hash; ARGV: rep, capacity, iso time, lead, json.
# Idempotent by lead: a lead still held by this rep (a CRM retry) is not counted again; one held by
# another rep moves, freeing that rep's place in the same step.
_ASSIGN_LUA = (
    _RELEASING_LUA
    + """
local held = redis.call('HGET', KEYS[3], ARGV[4])
local holder = nil
if held then
  local old = cjson.decode(held)
  if not RELEASING[old.status] then holder = old.rep_id end
end
if holder ~= ARGV[1] then
  local load = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  if load >= tonumber(ARGV[2]) then return 0 end
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  if holder and tonumber(redis.call('HGET', KEYS[1], holder) or '0') > 0 then
    redis.call('HINCRBY', KEYS[1], holder, -1)
  end
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return 1
"""
)
# KEYS: load hash, assignments hash; ARGV: lead, new status, the only status it may move from ('':
# any). Returns {} (no such lead) or
# {released 1/0, assignment json}: the status is read, decided on and written in one script, so
# two processes converting the same lead cannot both release it.
_STATUS_LUA = (
    _RELEASING_LUA
    + """
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {} end
local a = cjson.decode(raw)
if RELEASING[a.status] then return {0, raw} end
if ARGV[3] ~= '' and a.status ~= ARGV[3] then return {0, raw} end
local released = 0
if RELEASING[ARGV[2]] then
  if tonumber(redis.call('HGET', KEYS[1], a.rep_id) or '0') > 0 then
    redis.call('HINCRBY', KEYS[1], a.rep_id, -1)
  end
  released = 1
end
a.status = ARGV[2]
if ARGV[2] ~= 'open' then a.deadline = cjson.null end
local new = cjson.encode(a)
redis.call('HSET', KEYS[2], ARGV[1], new)
return {released, new}
"""
)


# KEYS: outcome id set, outcomes list; ARGV: outcome id, body. 1 appended, 0 a replay.
_RECORD_LUA = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""


@contextmanager
def redis_reachable(what: str = "routing state", where: str = "") -> Iterator[None]:
    """A Redis client error (refused, timed out, reset) as ``RoutingStateUnavailable`` naming ``what``
    and ``where`` (the URL without its password)."""
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as err:
        at = f" at {where}" if where else ""
        raise RoutingStateUnavailable(f"{what} unavailable (Redis{at}): {str(err)[:200]}") from err


def _without_password(url: str) -> str:
    """The Redis URL as it may be shown in an error or a log: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class RedisAssignmentStore:
    """The same state in Redis hashes; atomic steps are Lua scripts. Durable as the server is configured.

    Every call that reaches Redis runs inside ``redis_reachable``, so a dead server surfaces as
    ``RoutingStateUnavailable`` (503 naming the routing state), never as a bare client error (500).
    """

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._where = _without_password(url)
        self._keys = {k: f"{prefix}:{k}" for k in ("load", "last", "assignments", "outcomes", "outcome_ids")}
        self._assign = self._redis.register_script(_ASSIGN_LUA)
        self._status = self._redis.register_script(_STATUS_LUA)
        self._record = self._redis.register_script(_RECORD_LUA)

    def ping(self) -> bool:
        with redis_reachable(where=self._where):
            return bool(self._redis.ping())

    def loads(self) -> dict[str, RepLoad]:
        with redis_reachable(where=self._where):  # one round trip for both hashes
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self._keys["load"])
            pipe.hgetall(self._keys["last"])
            load, last = pipe.execute()
        reps = {k.decode() for k in (*load, *last)}
        return {
            rep: RepLoad(
                int(load.get(rep.encode(), 0)),
                datetime.fromisoformat(last[rep.encode()].decode()) if rep.encode() in last else None,
            )
            for rep in reps
        }

    def try_assign(self, assignment: Assignment, capacity: int) -> bool:
        a = assignment
        keys = [self._keys["load"], self._keys["last"], self._keys["assignments"]]
        args = [a.rep_id, capacity, a.assigned_at.isoformat(), a.lead_id, a.to_json()]
        with redis_reachable(where=self._where):
            return bool(self._assign(keys=keys, args=args))

    def get(self, lead_id: str) -> Assignment | None:
        with redis_reachable(where=self._where):
            raw = self._redis.hget(self._keys["assignments"], lead_id)
        return Assignment.from_json(raw) if raw else None

    def update_status(self, lead_id: str, status: str, at: datetime) -> Assignment | None:
        return self.transition(lead_id, status, at)[0]

    def transition(
        self, lead_id: str, status: str, at: datetime, only_from: str | None = None
    ) -> tuple[Assignment | None, bool]:
        """Move the lead to ``status`` (final states stay final; with ``only_from``, only a lead in
        that status moves); whether this call freed its place."""
        keys = [self._keys["load"], self._keys["assignments"]]
        with redis_reachable(where=self._where):
            answer = self._status(keys=keys, args=[lead_id, status, only_from or ""])
        if not answer:
            return None, False
        released, raw = answer
        return Assignment.from_json(raw), bool(released)

    def overdue(self, now: datetime) -> list[Assignment]:
        with redis_reachable(where=self._where):
            values = self._redis.hvals(self._keys["assignments"])
        out = []
        for raw in values:
            a = Assignment.from_json(raw)
            if a.status == "open" and a.deadline is not None and a.deadline < now:
                out.append(a)
        return out

    def record_outcome(self, outcome: dict[str, Any]) -> bool:
        """Append the outcome; one carrying an ``outcome_id`` seen before is not appended (False).

        The id check and the append are one Lua script, so two workers given the same replayed
        outcome append it once."""
        outcome_id = outcome.get("outcome_id")
        body = json.dumps(outcome, default=str)
        with redis_reachable(where=self._where):
            if outcome_id is None:
                self._redis.rpush(self._keys["outcomes"], body)
                return True
            keys = [self._keys["outcome_ids"], self._keys["outcomes"]]
            return bool(self._record(keys=keys, args=[outcome_id, body]))

    def outcomes(self) -> list[dict[str, Any]]:
        with redis_reachable(where=self._where):
            values = self._redis.lrange(self._keys["outcomes"], 0, -1)
        return [json.loads(x) for x in values]

    def clear(self) -> None:
        """Delete every key of this store (tests)."""
        self._redis.delete(*self._keys.values())

    def close(self) -> None:
        self._redis.close()


LEAD_OUTCOMES = ("touched", "converted", "disqualified")


def apply_outcome(
    store: AssignmentStore, record: dict[str, Any], lead_id: str | None, kind: str, at: datetime
) -> tuple[str | None, bool, bool]:
    """Append the outcome; a lead outcome also moves its status. Returns (status, capacity released,
    recorded).

    A replayed outcome (its ``outcome_id`` recorded before) changes nothing: the lead's current
    status is returned and no capacity is released."""
    recorded = store.record_outcome(record)
    if not (lead_id and kind in LEAD_OUTCOMES):
        return None, False, recorded
    if not recorded:
        current = store.get(lead_id)
        return (current.status if current else None), False, False
    after, released = store.transition(lead_id, kind, at)  # one atomic step: counted once
    return (after.status if after else None), released, True


@contextmanager
def opened_assignment_store(settings: Settings) -> Iterator[AssignmentStore]:
    """``assignment_store`` for one job (the SLA sweep, the weekly job, a start-up check), closed
    after it: a SQLite store left open keeps its checkpoint thread and two connections for the life
    of the process, one more per scheduled run (a 12-week live run had hundreds)."""
    store = assignment_store(settings)
    try:
        yield store
    finally:
        store.close()


def assignment_store(settings: Settings) -> AssignmentStore:
    """The store the settings choose: SQLite under ``service_dir`` (default) or Redis. A long-lived
    owner (the service's runtime) closes it at its end; a job uses ``opened_assignment_store``."""
    if settings.routing_store == "redis":
        return RedisAssignmentStore(
            settings.routing_redis_url, settings.routing_redis_prefix, settings.redis_timeout_seconds
        )
    return SqliteAssignmentStore(settings.service_dir / "routing.db")
