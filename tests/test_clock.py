"""Time comes from one clock: ``funnelcast.core.clock`` is the only reader of the wall clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from funnelcast.core import clock
from funnelcast.core.settings import PROJECT_ROOT

WALL_CLOCK = re.compile(r"datetime\.now\(|datetime\.utcnow\(|pd\.Timestamp\.now\(|time\.time\(\)")
PACKAGES = ("features", "funnelcast", "service", "training")


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    readers = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for package in PACKAGES
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if WALL_CLOCK.search(path.read_text(encoding="utf-8"))
    )
    assert readers == ["funnelcast/core/clock.py"]


def test_a_set_clock_is_what_now_reads_until_restored() -> None:
    fixed = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    clock.set_clock(lambda: fixed)
    try:
        assert clock.now() == fixed
    finally:
        clock.set_clock(None)
    assert clock.now() > fixed and clock.now().tzinfo is not None
