"""The event ledger on both stores: an id is taken in once, across threads, until its batch releases it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from funnelcast.core.redis_client import fail_fast
from service.event_ledger import EventLedger, RedisEventLedger, SqliteEventLedger


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> EventLedger:
    if request.param == "sqlite":
        return SqliteEventLedger(tmp_path / "events.db")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    prefix = f"test-ledger-{uuid.uuid4().hex}"
    request.addfinalizer(lambda: [client.delete(k) for k in client.scan_iter(f"{prefix}:*")])
    return RedisEventLedger(client, prefix, "127.0.0.1:6379")


def test_an_id_is_claimed_once_per_stream_and_again_after_its_batch_releases_it(
    ledger: EventLedger,
) -> None:
    assert ledger.claim("behavior", ["a", "b", "a"], "batch1") == ["a", "b"]
    assert ledger.claim("behavior", ["b", "c"], "batch2") == ["c"]
    assert ledger.claim("opportunity", ["a"], "batch3") == ["a"]  # the other endpoint's ids are its own
    # batch 2 (cut off) releases what it claimed: "c", not "b", which batch 1 took in
    assert ledger.release_batch("behavior", ["b", "c"], "batch2") == 1
    assert ledger.claim("behavior", ["a", "b", "c"], "batch4") == ["c"]
    assert ledger.release_batch("behavior", ["a", "c"], "batch1") == 1  # "c" is batch 4's now
    assert ledger.claim("behavior", ["a", "c"], "batch5") == ["a"]


def test_eight_threads_replaying_the_same_ids_take_each_in_exactly_once(ledger: EventLedger) -> None:
    ids = [f"e{i}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: ledger.claim("behavior", ids), range(8)))
    assert sorted(i for claimed in taken for i in claimed) == sorted(ids)


def test_a_dead_redis_is_named_not_a_bare_client_error() -> None:
    from service.routing.state import RoutingStateUnavailable

    dead = RedisEventLedger(redis.Redis(host="127.0.0.1", port=1, **fail_fast(0.2)), "x", "127.0.0.1:1")
    with pytest.raises(RoutingStateUnavailable, match="event ledger"):
        dead.claim("behavior", ["a"])
