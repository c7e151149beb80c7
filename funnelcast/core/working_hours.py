"""When a rep works: the one definition routing, the world and the lead model's roster facts share.

A rep works on local weekdays (Monday..Friday) from ``work_start_hour`` up to, not including,
``work_end_hour`` of their own time zone.
"""

from __future__ import annotations

import numpy as np

WEEKDAYS = 5  # Monday..Friday


def hours_until_working(
    weekday: np.ndarray, hour: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Wall-clock hours until a rep works (0 while working), from the rep's local ``weekday``
    (0 = Monday) and ``hour`` of day (fractional); broadcasts. A DST switch inside the wait is
    ignored (a deadline computed once per decision respects it)."""
    workday = weekday < WEEKDAYS
    later_today = workday & (hour < start)
    # the next day that can start a shift: today if it starts later, else tomorrow, skipping the weekend
    ahead = np.where(later_today, 0, 1)
    nxt = (weekday + ahead) % 7
    ahead = ahead + np.where(nxt == 5, 2, 0) + np.where(nxt == 6, 1, 0)
    wait = ahead * 24.0 + start - hour
    return np.where(workday & (start <= hour) & (hour < end), 0.0, wait)
