"""Times read back from storage (pure): the ISO 8601 strings every store here writes.

``datetime.isoformat()`` drops the fraction of an exact second, so one column holds both
``2026-12-07T07:00:00.123456+00:00`` and ``2026-12-07T07:00:00+00:00`` (a deadline at the start of
working hours, a CRM's whole-second time). pandas infers one format from the first string: without
``format="ISO8601"`` the other kind raises, or with ``errors="coerce"`` silently becomes NaT, and a
monitoring report then loses those outcomes without a word.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def utc_times(values: Any, *, coerce: bool = False) -> Any:
    """UTC timestamps of ISO 8601 strings (or datetimes), with or without a fraction of a second.

    ``coerce``: a time pandas cannot hold (year 1 or 9999, stored before times were range-checked)
    becomes NaT instead of raising; a well-formed time is never coerced away.
    """
    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce" if coerce else "raise")
