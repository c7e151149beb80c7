"""What the weekly job leaves for every replica to read: fired rules (alerts) and its scored results,
each week's forecast snapshot (what we said, kept for forecast accuracy) and which monitoring
thresholds were crossed at the last check (so an alert is raised once per crossing).

The job owns the rules: it scores the pipeline, evaluates every rule, and stores here the alerts and,
per open deal, P(win by quarter end) one week before its snapshot (an offline point-in-time join a
replica cannot make) and the rules the deal fired. Manager reads only read this; they never write.
It sits beside the routing state: SQLite under ``service_dir`` by default, Redis when the routing
state is in Redis, so replicas behind a load balancer share it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from funnelcast.core.forecast_accuracy import ForecastSnapshot
from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings
from service.routing.state import open_wal, redis_reachable
from service.rules import Firing


@dataclass(frozen=True)
class WeeklyResults:
    """The weekly job's view of the pipeline it scored (``as_of``: its newest snapshot time)."""

    as_of: datetime | None
    model_version: str
    p_last_week: dict[str, float]  # deal -> P(win by quarter end) a week before ``as_of``
    firings: dict[str, list[dict[str, Any]]]  # deal -> the rules it fired

    def to_json(self) -> str:
        body = asdict(self) | {"as_of": self.as_of.isoformat() if self.as_of else None}
        return json.dumps(body, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> WeeklyResults:
        d = json.loads(text)
        d["as_of"] = datetime.fromisoformat(d["as_of"]) if d["as_of"] else None
        return cls(**d)

    def p_last_week_for(self, deals: pd.Index, as_of: datetime | None) -> pd.Series:
        """Last week's P(win) of ``deals``; NaN throughout when these results are of another snapshot."""
        if as_of is None or self.as_of != as_of:
            return pd.Series(float("nan"), index=deals, dtype=float)
        return pd.Series(self.p_last_week, dtype=float).reindex(deals)


def results_of(
    as_of: datetime | None, model_version: str, p_last_week: pd.Series, firings: list[Firing], deals: pd.Index
) -> WeeklyResults:
    by_deal: dict[str, list[dict[str, Any]]] = {}
    for f in firings:
        if f.entity in deals:
            by_deal.setdefault(f.entity, []).append(
                {"rule": f.rule, "severity": f.severity, "action": f.action, "evidence": f.evidence}
            )
    known = {str(k): float(v) for k, v in p_last_week.items() if pd.notna(v)}
    return WeeklyResults(as_of, model_version, known, json.loads(json.dumps(by_deal, default=str)))


class WeeklyStore(Protocol):
    def add_alerts(self, firings: list[Firing], at: datetime) -> list[Firing]: ...

    def alerts(self, since: datetime | None, rule: str | None, limit: int) -> list[dict[str, Any]]: ...

    def save_results(self, results: WeeklyResults) -> None: ...

    def results(self) -> WeeklyResults | None: ...

    def save_forecast_snapshot(self, snapshot: ForecastSnapshot) -> None: ...

    def forecast_snapshots(self) -> list[ForecastSnapshot]: ...

    def swap_crossings(self, crossed: set[str]) -> set[str]: ...


_ALERT_KEYS = ("rule", "kind", "entity", "severity", "action", "evidence", "fired_at")


def _alert_row(f: Firing, at: datetime) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "kind": f.kind,
        "entity": f.entity,
        "severity": f.severity,
        "action": f.action,
        "evidence": json.loads(json.dumps(f.evidence, default=str)),
        "fired_at": at.isoformat(),
    }


class SqliteWeeklyStore:
    """Alerts one row per (rule, entity, day); the latest results as one JSON row."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_wal(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS alerts (rule TEXT, kind TEXT, entity TEXT, day TEXT, severity TEXT,"
            " action TEXT, evidence TEXT, fired_at TEXT, PRIMARY KEY (rule, entity, day))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS weekly_results (id INTEGER PRIMARY KEY, body TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS forecast_snapshots (as_of TEXT PRIMARY KEY, body TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS monitoring_crossings (id INTEGER PRIMARY KEY, body TEXT)"
        )

    def add_alerts(self, firings: list[Firing], at: datetime) -> list[Firing]:
        """Store new firings; returns those not already stored today (what to notify)."""
        new = []
        with self._lock:
            for f in firings:
                row = _alert_row(f, at)
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f.rule, f.kind, f.entity, at.date().isoformat(), f.severity, f.action,
                     json.dumps(row["evidence"]), row["fired_at"]),
                )  # fmt: skip
                if cur.rowcount:
                    new.append(f)
        return new

    def alerts(self, since: datetime | None = None, rule: str | None = None, limit: int = 200) -> list[dict]:
        query = "SELECT rule, kind, entity, severity, action, evidence, fired_at FROM alerts WHERE 1=1"
        args: list[Any] = []
        if since is not None:
            query += " AND fired_at >= ?"
            args.append(since.astimezone(UTC).isoformat())
        if rule:
            query += " AND rule = ?"
            args.append(rule)
        query += " ORDER BY fired_at DESC, rule, entity LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [dict(zip(_ALERT_KEYS, r, strict=True)) | {"evidence": json.loads(r[5])} for r in rows]

    def save_results(self, results: WeeklyResults) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO weekly_results VALUES (1, ?)", (results.to_json(),))

    def results(self) -> WeeklyResults | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM weekly_results WHERE id = 1").fetchone()
        return WeeklyResults.from_json(row[0]) if row else None

    def save_forecast_snapshot(self, snapshot: ForecastSnapshot) -> None:
        """One snapshot per ``as_of``: re-running a week replaces that week's."""
        body = json.dumps(snapshot.to_dict(), default=str)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO forecast_snapshots VALUES (?, ?)", (_as_of_key(snapshot), body)
            )

    def forecast_snapshots(self) -> list[ForecastSnapshot]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM forecast_snapshots ORDER BY as_of").fetchall()
        return [ForecastSnapshot.from_dict(json.loads(r[0])) for r in rows]

    def swap_crossings(self, crossed: set[str]) -> set[str]:
        """Store the monitoring thresholds crossed now; returns those crossed at the last check."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # read and write in one step: one job sees each change
            try:
                row = self._db.execute("SELECT body FROM monitoring_crossings WHERE id = 1").fetchone()
                self._db.execute(
                    "INSERT OR REPLACE INTO monitoring_crossings VALUES (1, ?)",
                    (json.dumps(sorted(crossed)),),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return set(json.loads(row[0])) if row else set()


def _as_of_key(snapshot: ForecastSnapshot) -> str:
    return snapshot.as_of.astimezone(UTC).isoformat()


_WHAT = "alert store"


class RedisWeeklyStore:
    """The same in Redis: alerts in a hash keyed by (rule, entity, day), set only if absent.

    A Redis that does not answer in time is ``RoutingStateUnavailable`` naming the alert store (503).
    """

    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, **fail_fast(timeout_seconds))
        self._alerts, self._results = f"{prefix}:alerts", f"{prefix}:weekly_results"
        self._snapshots, self._crossings = f"{prefix}:forecast_snapshots", f"{prefix}:monitoring_crossings"

    def add_alerts(self, firings: list[Firing], at: datetime) -> list[Firing]:
        day = at.date().isoformat()
        rows = [(f, f"{f.rule}|{f.entity}|{day}", json.dumps(_alert_row(f, at))) for f in firings]
        with redis_reachable(_WHAT):
            return [f for f, key, row in rows if self._redis.hsetnx(self._alerts, key, row)]

    def alerts(self, since: datetime | None = None, rule: str | None = None, limit: int = 200) -> list[dict]:
        with redis_reachable(_WHAT):
            rows = [json.loads(v) for v in self._redis.hvals(self._alerts)]
        if since is not None:
            rows = [r for r in rows if r["fired_at"] >= since.astimezone(UTC).isoformat()]
        if rule:
            rows = [r for r in rows if r["rule"] == rule]
        rows.sort(key=lambda r: (r["rule"], r["entity"]))
        rows.sort(key=lambda r: r["fired_at"], reverse=True)
        return rows[:limit]

    def save_results(self, results: WeeklyResults) -> None:
        with redis_reachable(_WHAT):
            self._redis.set(self._results, results.to_json())

    def results(self) -> WeeklyResults | None:
        with redis_reachable(_WHAT):
            body = self._redis.get(self._results)
        return WeeklyResults.from_json(body) if body else None

    def save_forecast_snapshot(self, snapshot: ForecastSnapshot) -> None:
        body = json.dumps(snapshot.to_dict(), default=str)
        with redis_reachable(_WHAT):
            self._redis.hset(self._snapshots, _as_of_key(snapshot), body)

    def forecast_snapshots(self) -> list[ForecastSnapshot]:
        with redis_reachable(_WHAT):
            rows = self._redis.hgetall(self._snapshots)
        return [ForecastSnapshot.from_dict(json.loads(rows[k])) for k in sorted(rows)]

    def swap_crossings(self, crossed: set[str]) -> set[str]:
        with redis_reachable(_WHAT):
            before = self._redis.getset(self._crossings, json.dumps(sorted(crossed)))
        return set(json.loads(before)) if before else set()

    def clear(self) -> None:
        """Delete every key of this store (tests)."""
        self._redis.delete(self._alerts, self._results, self._snapshots, self._crossings)


def weekly_store(settings: Settings) -> WeeklyStore:
    """Beside the routing state: SQLite under ``service_dir`` (default) or Redis."""
    if settings.routing_store == "redis":
        return RedisWeeklyStore(
            settings.routing_redis_url, settings.routing_redis_prefix, settings.redis_timeout_seconds
        )
    return SqliteWeeklyStore(settings.service_dir / "alerts.db")
