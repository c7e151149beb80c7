"""Read models kept per champion: one build at a time, the old value served while it is rebuilt."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from funnelcast.core import clock
from service.snapshots import Refreshed


@dataclass
class Built:
    version: str
    built_at: datetime
    n: int


@dataclass
class Champion:
    version: str


def test_a_stale_value_is_rebuilt_once_while_readers_keep_reading_the_old_one() -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    now = [start]
    builds: list[int] = []
    release = threading.Event()

    def build(model: Champion) -> Built:
        builds.append(1)
        if len(builds) > 1:
            release.wait(5)  # a slow rebuild (the whole open pipeline)
        return Built(model.version, now[0], len(builds))

    clock.set_clock(lambda: now[0])
    try:
        cache = Refreshed(build, timedelta(minutes=10))
        first = cache.get(Champion("1"))
        now[0] = start + timedelta(minutes=11)  # past the TTL
        answers: list[Built] = []
        readers = [
            threading.Thread(target=lambda: answers.append(cache.get(Champion("1")))) for _ in range(12)
        ]
        for r in readers:
            r.start()
        time.sleep(0.3)
        # every reader but the one rebuilding answered at once, with the old value
        assert sum(a is first for a in answers) == 11
        release.set()
        for r in readers:
            r.join(5)
        assert len(builds) == 2  # one rebuild, not twelve
        assert cache.get(Champion("1")).n == 2
        assert cache.get(Champion("2")).n == 3  # a new champion is built at once
    finally:
        clock.set_clock(None)
