"""The one source of "now" for the service, the jobs and training's records.

The wall clock in production; a live run (the world playing the CRM, issue 13) or a test sets its own
with ``set_clock``, so every part of the system agrees on what time it is. Nothing else calls
``datetime.now``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def wall_clock() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = wall_clock


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _source()


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Read time from ``source`` from now on (``None`` restores the wall clock)."""
    global _source
    _source = source or wall_clock
