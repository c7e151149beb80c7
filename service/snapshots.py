"""Read models built from a champion and the stores, kept while they hold.

A manager read (the open pipeline, the accounts at risk) is a read of state that changes weekly:
scoring it again on every request is a model pass that holds the GIL while single scores wait.
``Refreshed`` keeps one built value until the champion changes or its TTL passes; ``Derived`` lets
what a read computes from that value (explanations, forecasts) be computed once per key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from funnelcast.core import clock

T = TypeVar("T")


class Derived:
    """What reads compute from an immutable snapshot, once per key (a race computes twice, harmlessly)."""

    def __init__(self) -> None:
        self._derived: dict[Hashable, Any] = {}

    def has(self, key: Hashable) -> bool:
        return key in self._derived

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]


class Built(Protocol):
    version: str  # the champion version it was built with
    built_at: datetime


B = TypeVar("B", bound=Built)


class Refreshed(Generic[B]):
    """``build(model)``, kept until the champion's version changes or ``ttl`` has passed.

    One build at a time: every reader that found the value stale used to build its own, so at each
    TTL a burst of manager reads built the whole pipeline a dozen times at once (RSS +340 MB and a
    45 s stall in the 30-minute soak). Past its TTL the old value is still served while one reader
    rebuilds it; after a new champion, readers wait for the one build.
    """

    def __init__(self, build: Callable[[Any], B], ttl: timedelta) -> None:
        self.build, self.ttl = build, ttl
        self._current: B | None = None
        self._building = threading.Lock()

    def _stale(self, current: B | None, model: Any) -> bool:
        if current is None or current.version != model.version:
            return True
        return clock.now() - current.built_at > self.ttl

    def get(self, model: Any) -> B:
        current = self._current
        if not self._stale(current, model):
            assert current is not None
            return current
        same_champion = current is not None and current.version == model.version
        if same_champion and not self._building.acquire(blocking=False):
            assert current is not None
            return current  # another reader is rebuilding it: the last one serves meanwhile
        if not same_champion:
            self._building.acquire()
        try:
            current = self._current
            if self._stale(current, model):
                current = self.build(model)
                self._current = current
            assert current is not None
            return current
        finally:
            self._building.release()
