"""What the service served, kept for monitoring: each lead's score and routing, and the model inputs'
histogram per model version and week.

The routing state keeps only routed leads and overwrites a lead on re-route; monitoring needs the
probability each lead was first served with (routed or not), so this is its own small record,
written once per scoring call (``record``): the leads (first serving kept: a retry or a re-route
does not replace what the lead was scored at) and, per input, the count of served values in each
of the training distribution's bins (``funnelcast.core.drift``). Both are durable and shared by
workers: SQLite (WAL) under ``service_dir`` by default, Redis when the routing state is in Redis.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from funnelcast.core.drift import InputBins, bin_counts, distribution_of
from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings
from service.routing.state import open_wal, redis_reachable

if TYPE_CHECKING:
    from service.schemas import LeadIn
    from service.scoring import ScoredLead

log = logging.getLogger("funnelcast.monitoring")


@dataclass(frozen=True)
class ServedLead:
    lead_id: str
    served_at: str  # ISO 8601 UTC
    probability: float
    grade: str
    model_version: str
    rep_id: str | None
    deadline: str | None
    language_proficiency: float | None
    timezone_gap_hours: float | None
    segments: str | None = None  # JSON {field: level} of SEGMENT_FIELDS the request gave


SERVED_COLUMNS = list(ServedLead.__dataclass_fields__)
# the request's categorical fields that segment calibration splits leads by
SEGMENT_FIELDS = ("channel", "contact_role", "product_interest")


@dataclass(frozen=True)
class BinCounts:
    """One scoring call's input histogram: per input name, counts per bin."""

    model_version: str
    week: str  # Monday of the serving week, ISO date
    counts: dict[str, list[int]]


def input_histogram(
    distribution: Sequence[InputBins], encoded: np.ndarray, model_version: str, at: datetime
) -> BinCounts:
    """``encoded`` (rows x the model's columns, as ``TabularModel.encode`` gives them) binned on the
    training distribution; inputs are matched by position, as training stored them."""
    counts = bin_counts(list(distribution), encoded)
    named = {b.name: c.tolist() for b, c in zip(distribution, counts, strict=True)}
    return BinCounts(model_version, serving_week(at), named)


def serving_week(at: datetime) -> str:
    """Monday of ``at``'s UTC week, ISO date (as ``lead_quality.week_start``)."""
    utc = at.astimezone(UTC)
    return (utc.date() - timedelta(days=utc.weekday())).isoformat()


class ServedLog(Protocol):
    def record(self, leads: Sequence[ServedLead], bins: BinCounts | None) -> None: ...

    def leads(self) -> pd.DataFrame: ...

    def histogram(self, model_version: str) -> dict[str, dict[str, np.ndarray]]: ...


_INSERT_LEAD = (
    f"INSERT OR IGNORE INTO served_leads ({', '.join(SERVED_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(SERVED_COLUMNS))})"
)


class SqliteServedLog:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_wal(path)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS served_leads (lead_id TEXT PRIMARY KEY, served_at TEXT,"
            " probability REAL, grade TEXT, model_version TEXT, rep_id TEXT, deadline TEXT,"
            " language_proficiency REAL, timezone_gap_hours REAL, segments TEXT)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(served_leads)")}
        if "segments" not in columns:  # a log written before segment calibration
            self._db.execute("ALTER TABLE served_leads ADD COLUMN segments TEXT")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS served_bins (model_version TEXT, week TEXT, input TEXT, bin INTEGER,"
            " n INTEGER, PRIMARY KEY (model_version, week, input, bin))"
        )

    def record(self, leads: Sequence[ServedLead], bins: BinCounts | None) -> None:
        rows = [tuple(asdict(x).values()) for x in leads]
        increments = _increments(bins)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_INSERT_LEAD, rows)
                self._db.executemany(
                    "INSERT INTO served_bins VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    increments,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def leads(self) -> pd.DataFrame:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(SERVED_COLUMNS)} FROM served_leads").fetchall()
        return pd.DataFrame(rows, columns=SERVED_COLUMNS)

    def histogram(self, model_version: str) -> dict[str, dict[str, np.ndarray]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT week, input, bin, n FROM served_bins WHERE model_version = ?", (model_version,)
            ).fetchall()
        return _histogram(rows)


def _increments(bins: BinCounts | None) -> list[tuple[str, str, str, int, int]]:
    if bins is None:
        return []
    return [
        (bins.model_version, bins.week, name, b, int(n))
        for name, counts in bins.counts.items()
        for b, n in enumerate(counts)
        if n
    ]


def _histogram(rows: Sequence[tuple[str, str, int, int]]) -> dict[str, dict[str, np.ndarray]]:
    """week -> input -> counts per bin (as long as the highest bin seen; callers pad to their bins)."""
    out: dict[str, dict[str, dict[int, int]]] = {}
    for week, name, b, n in rows:
        out.setdefault(week, {}).setdefault(name, {})[int(b)] = int(n)
    return {
        week: {name: np.bincount(list(c), weights=list(c.values())).astype(int) for name, c in inputs.items()}
        for week, inputs in out.items()
    }


_WHAT = "served-lead log"


class RedisServedLog:
    """The same in Redis: leads in a hash set only if absent, bins as hash counters per version and week."""

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._leads, self._bins = f"{prefix}:served_leads", f"{prefix}:served_bins"

    def record(self, leads: Sequence[ServedLead], bins: BinCounts | None) -> None:
        with redis_reachable(_WHAT):
            pipe = self._redis.pipeline(transaction=True)
            for x in leads:
                pipe.hsetnx(self._leads, x.lead_id, json.dumps(asdict(x)))
            for version, week, name, b, n in _increments(bins):
                pipe.hincrby(self._bins, f"{version}|{week}|{name}|{b}", n)
            pipe.execute()

    def leads(self) -> pd.DataFrame:
        with redis_reachable(_WHAT):
            values = self._redis.hvals(self._leads)
        return pd.DataFrame([json.loads(v) for v in values], columns=SERVED_COLUMNS)

    def histogram(self, model_version: str) -> dict[str, dict[str, np.ndarray]]:
        with redis_reachable(_WHAT):
            fields = self._redis.hgetall(self._bins)
        rows = []
        for key, n in fields.items():
            version, week, name, b = key.decode().rsplit("|", 3)
            if version == model_version:
                rows.append((week, name, int(b), int(n)))
        return _histogram(rows)

    def clear(self) -> None:
        """Delete every key of this log (tests)."""
        self._redis.delete(self._leads, self._bins)


def served_log(settings: Settings) -> ServedLog:
    """Beside the routing state: SQLite under ``service_dir`` (default) or Redis."""
    if settings.routing_store == "redis":
        return RedisServedLog(
            settings.routing_redis_url,
            f"{settings.routing_redis_prefix}:monitoring",
            settings.redis_timeout_seconds,
        )
    return SqliteServedLog(settings.service_dir / "monitoring.db")


class ServedRecorder:
    """The scoring path's one call into monitoring: what ``score_leads`` served, recorded.

    The write is off the request's path: a call queues what was served and a writer thread records
    the queue every ``flush_seconds`` in one write (about 1 ms per scoring call on SQLite, 3.7 ms on
    Redis, were it made in the request: the whole serving budget). The cost is that a kill -9 loses
    at most the last ``flush_seconds`` of monitoring records; the leads' scores, routing and outcomes
    are stored by their own paths and lose nothing. A log that cannot be written (Redis down, disk
    full) costs the monitoring record, not the answer: it is logged and the lead is still scored.
    """

    def __init__(self, log: ServedLog, flush_seconds: float = 0.5) -> None:
        self.log = log
        self._flush_seconds = flush_seconds
        self._distributions: dict[str, list[InputBins]] = {}  # model version -> its training bins
        self._pending: queue.SimpleQueue[tuple[Sequence[ScoredLead], np.ndarray, datetime] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write_loop, name="served-log", daemon=True)
        self._writer.start()

    def __call__(self, results: Sequence[ScoredLead], encoded: np.ndarray, at: datetime) -> None:
        if results:
            self._pending.put((results, encoded, at))

    def close(self) -> None:
        """Record what is queued and stop the writer (the service's shutdown)."""
        self._pending.put(None)
        self._writer.join(timeout=10)

    def _write_loop(self) -> None:
        while True:
            first = self._pending.get()
            stop = first is None
            batch = [] if first is None else [first]
            time.sleep(0 if stop else self._flush_seconds)
            while not self._pending.empty():
                item = self._pending.get()
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            self._record_all(batch)
            if stop:
                return

    def _record_all(self, batch: list[tuple[Sequence[ScoredLead], np.ndarray, datetime]]) -> None:
        """Everything queued since the last flush in one write per model version and serving week:
        one histogram over the calls' stacked inputs (the sum of theirs) and all their leads. A write
        per scoring call was a SQLite transaction and a dozen numpy passes each, under the GIL the
        request threads need."""
        groups: dict[tuple[str, str], list[tuple[Sequence[ScoredLead], np.ndarray, datetime]]] = {}
        for results, encoded, at in batch:
            groups.setdefault((results[0].model.version, serving_week(at)), []).append((results, encoded, at))
        for calls in groups.values():
            self._record(calls)

    def _record(self, calls: list[tuple[Sequence[ScoredLead], np.ndarray, datetime]]) -> None:
        """Calls of one model version in one serving week."""
        model = calls[0][0][0].model
        distribution = self._distributions.get(model.version)
        if distribution is None:
            distribution = self._distributions[model.version] = distribution_of(model.model.metadata)
        encoded = np.vstack([rows for _, rows, _ in calls])
        bins = input_histogram(distribution, encoded, model.version, calls[0][2]) if distribution else None
        try:
            self.log.record([served_lead(r, at) for results, _, at in calls for r in results], bins)
        except Exception as err:  # the writer thread outlives any one failed write
            log.warning("served-lead log not written", extra={"error": f"{type(err).__name__}: {err}"[:300]})


def served_lead(result: ScoredLead, at: datetime) -> ServedLead:
    routing = result.routing
    chosen = routing.chosen if routing is not None else None
    deadline = routing.first_touch_deadline if routing is not None else None
    return ServedLead(
        lead_id=result.lead.lead_id,
        served_at=at.isoformat(),
        probability=result.probability,
        grade=result.grade,
        model_version=result.model.version,
        rep_id=routing.rep_id if routing is not None else None,
        deadline=deadline.isoformat() if deadline else None,
        language_proficiency=chosen.language_proficiency if chosen else None,
        timezone_gap_hours=chosen.timezone_gap_hours if chosen else None,
        segments=segments_of(result.lead),
    )


def segments_of(lead: LeadIn) -> str | None:
    levels = {name: value for name in SEGMENT_FIELDS if isinstance(value := getattr(lead, name, None), str)}
    return json.dumps(levels, sort_keys=True) if levels else None
