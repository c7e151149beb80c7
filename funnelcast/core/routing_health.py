"""First-touch SLA compliance, routing match rates and per-rep load from served leads (pure)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from funnelcast.core.timestamps import utc_times


def sla_compliance(deadline: pd.Series, first_touch: pd.Series, now: datetime) -> tuple[int, int]:
    """(met, due): of the leads whose deadline has passed or that were touched, how many were
    touched by their deadline. A lead still inside its deadline and untouched is not yet due."""
    d = utc_times(deadline)
    t = utc_times(first_touch)
    has = d.notna()
    due = has & (t.notna() | (d < pd.Timestamp(now)))
    met = due & t.notna() & (t <= d)
    return int(met.sum()), int(due.sum())


def match_rates(
    language_proficiency: pd.Series,
    timezone_gap_hours: pd.Series,
    min_proficiency: float,
    max_gap_hours: float,
) -> dict[str, float | None]:
    """Share of assigned leads whose rep speaks their language (proficiency at least the routing
    filter's) and sits within the filter's time-zone gap; None where nothing is known."""
    lang = pd.to_numeric(language_proficiency, errors="coerce").dropna()
    gap = pd.to_numeric(timezone_gap_hours, errors="coerce").dropna()
    return {
        "language": float((lang >= min_proficiency).mean()) if len(lang) else None,
        "timezone": float((gap <= max_gap_hours).mean()) if len(gap) else None,
    }


def rep_shares(rep_id: pd.Series) -> dict[str, float]:
    """Each rep's share of the assigned leads (reps with none are not listed)."""
    assigned = rep_id.dropna()
    if assigned.empty:
        return {}
    counts = assigned.value_counts()
    return {str(k): float(v) for k, v in (counts / counts.sum()).sort_index().items()}
