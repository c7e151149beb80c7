"""The serving directory: which entities a replica serves (reps, open deals, accounts up for renewal).

The online store answers "what are this entity's features" but cannot list its entities, and the
pipeline, the at-risk accounts and the rep directory start from such lists (plus a deal's amount,
owner and expected close, an account's ARR and renewal date). They are published with each
materialisation next to the online store, in the same backend (a SQLite file beside the SQLite
online store, or a key in the online Redis), so a replica reads them where it reads features and
needs no data folder.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from pathlib import Path

import pandas as pd

from features.schema import read_table
from features.store import OnlineStoreUnavailable
from funnelcast.core.redis_client import fail_fast
from funnelcast.core.settings import Settings

DEAL_COLUMNS = ["company_id", "owner_rep_id", "product_line", "amount_cny", "expected_close_at"]
RENEWAL_COLUMNS = ["arr_cny", "renewal_at"]


class DirectoryMissing(RuntimeError):
    """Nothing published yet: run ``funnelcast features materialize``."""


@dataclass(frozen=True)
class ServingDirectory:
    published_at: datetime
    rep_ids: list[str]
    open_deals: pd.DataFrame  # index opportunity_id; DEAL_COLUMNS
    renewals: pd.DataFrame  # index account_id; RENEWAL_COLUMNS (contracts with an undecided renewal)

    def to_json(self) -> str:
        return json.dumps(
            {
                "published_at": self.published_at.isoformat(),
                "rep_ids": self.rep_ids,
                "open_deals": self.open_deals.reset_index().to_json(orient="split", date_format="iso"),
                "renewals": self.renewals.reset_index().to_json(orient="split", date_format="iso"),
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ServingDirectory:
        d = json.loads(text)
        deals = _frame(d["open_deals"], "opportunity_id", ["expected_close_at"])
        renewals = _frame(d["renewals"], "account_id", ["renewal_at"])
        return cls(datetime.fromisoformat(d["published_at"]), list(d["rep_ids"]), deals, renewals)


def _frame(text: str, index: str, dates: list[str]) -> pd.DataFrame:
    frame = pd.read_json(StringIO(text), orient="split", convert_dates=False, dtype={index: str})
    for column in dates:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.set_index(index)


def build_directory(settings: Settings, published_at: datetime) -> ServingDirectory:
    """From the canonical tables and the rep profile feature table (a host with the data folder)."""
    opps = read_table("opportunities", settings.raw_dir)
    deals = opps[opps["outcome"] == "open"].set_index("opportunity_id")[DEAL_COLUMNS]
    contracts = read_table("contracts", settings.raw_dir)
    renewals = (
        contracts[contracts["renewed"].isna()]
        .drop_duplicates("account_id", keep="last")
        .set_index("account_id")[RENEWAL_COLUMNS]
    )
    profile = settings.feature_dir / "rep_profile.parquet"
    reps = sorted(pd.read_parquet(profile, columns=["rep_id"])["rep_id"].unique())
    return ServingDirectory(published_at, [str(r) for r in reps], deals, renewals)


def publish_directory(settings: Settings, directory: ServingDirectory) -> None:
    body = directory.to_json()
    if settings.online_store == "redis":
        _redis(settings).set(_redis_key(settings), body)
        return
    with closing(_sqlite(settings)) as db:
        db.execute("INSERT OR REPLACE INTO directory VALUES (1, ?)", (body,))


def read_directory(settings: Settings) -> ServingDirectory:
    """The last published directory, or ``DirectoryMissing`` saying where it was looked for.

    A store that does not answer (Redis down, SQLite file unreadable) is ``OnlineStoreUnavailable``
    naming it, so a route answers 503 rather than letting a client error through as a 500.
    """
    from redis.exceptions import RedisError

    redis_store = settings.online_store == "redis"
    where = (
        f"Redis at {redis_address(settings.redis_url)}, key {_redis_key(settings)!r}"
        if redis_store
        else str(_sqlite_path(settings))
    )
    try:
        if redis_store:
            body = _redis(settings).get(_redis_key(settings))
        else:
            with closing(_sqlite(settings)) as db:
                row = db.execute("SELECT body FROM directory WHERE id = 1").fetchone()
            body = row[0] if row else None
    except (RedisError, sqlite3.Error, OSError) as err:
        raise OnlineStoreUnavailable(f"online store unavailable ({where}): {str(err)[:200]}") from err
    if not body:
        raise DirectoryMissing(
            f"no serving directory (reps, open deals, renewals) at {where}; "
            "run `funnelcast features materialize`"
        )
    return ServingDirectory.from_json(body)


def _sqlite_path(settings: Settings) -> Path:
    return settings.feast_dir / "directory.db"


def _sqlite(settings: Settings) -> sqlite3.Connection:
    path = _sqlite_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS directory (id INTEGER PRIMARY KEY, body TEXT)")
    return db


def _redis_key(settings: Settings) -> str:
    return f"{settings.feast_project}:serving_directory"


def redis_address(connection: str) -> str:
    """``host:port`` of Feast's Redis connection string, without the password that may follow it."""
    return connection.split(",", 1)[0].strip()


def _redis(settings: Settings):  # type: ignore[no-untyped-def]
    """A client on Feast's connection string (``host:port,db=0,password=...``)."""
    import redis

    address, *options = [part.strip() for part in settings.redis_url.split(",")]
    host, _, port = address.partition(":")
    kwargs = dict(option.split("=", 1) for option in options if "=" in option)
    return redis.Redis(
        host=host,
        port=int(port or 6379),
        db=int(kwargs.get("db", 0)),
        password=kwargs.get("password"),
        ssl=kwargs.get("ssl", "false").lower() == "true",
        **fail_fast(settings.redis_timeout_seconds),
    )
