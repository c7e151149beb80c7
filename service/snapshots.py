"""Read models built from a champion and the stores, kept while they hold.

A manager read (the open pipeline, the accounts at risk) is a read of state that changes weekly:
scoring it again on every request is a model pass that holds the GIL while single scores wait.
``Refreshed`` keeps one built value until the champion changes or its TTL passes; ``Derived`` lets
what a read computes from that value (explanations, forecasts) be computed once per key.
"""

from __future__ import annotations

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
    """``build(model)``, kept until the champion's version changes or ``ttl`` has passed."""

    def __init__(self, build: Callable[[Any], B], ttl: timedelta) -> None:
        self.build, self.ttl = build, ttl
        self._current: B | None = None

    def get(self, model: Any) -> B:
        current = self._current
        if current is None or current.version != model.version or clock.now() - current.built_at > self.ttl:
            current = self.build(model)
            self._current = current
        return current
