"""Events folded into the online rows the next request reads: pure functions, no store.

A behaviour event changes a company's ``company_behavior`` row the way the feature job would have
written it had the event been in the raw table: one more in the daily bucket of its UTC day
(``<type>_daily``, ``[k]`` = day ``behavior_stored_day - k``), buckets shifted when the event starts a
later day, ``last_event_at`` moved forward. Scoring then counts windows and ages from those at the
request's time (``features.request_time``), so the change shows at once and ages correctly after.
The row-dated counts stored beside them are re-counted at the row's new time by that same
request-time function, never by a second implementation.

An opportunity event changes the deal's latest ``opportunity_snapshots`` row, the one the open
pipeline reads: ages move forward to the event, then the event applies (a stage resets
``days_in_stage``, a milestone sets its flag, an activity counts in the 7- and 30-day windows and
resets ``days_since_last_activity``, a close-date or amount change replaces the value). Windows of
activities do not decay between events here; the next ``features build`` recounts them from the
logged events (``features.event_log``).

Each fold returns the row's new event time: strictly after the old one (Feast's Redis store keeps an
older-or-equal write out), and never before the newest event folded in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from features.catalog import (
    BEHAVIOR_EVENT_TYPES,
    BEHAVIOR_WINDOWS_DAYS,
    LEGAL_PREREVIEW_INDEX,
    MILESTONES,
    STAGES,
)
from features.request_time import (
    BEHAVIOR_BUCKET_DAYS,
    BEHAVIOR_STORED_DAY,
    LAST_EVENT_AT,
    daily_column,
    trailing_features,
)

Row = dict[str, object]
_TICK = timedelta(microseconds=1)
_DAY_S = 86_400.0


@dataclass(frozen=True)
class BehaviorEvent:
    company_id: str
    event_type: str
    at: datetime  # aware


OpportunityEventKind = Literal["stage_change", "milestone", "activity", "close_date_change", "amount_change"]


@dataclass(frozen=True)
class OpportunityEvent:
    opportunity_id: str
    kind: OpportunityEventKind
    at: datetime  # aware
    stage: str | None = None
    milestone: str | None = None
    activity_type: str | None = None
    sentiment: str | None = None
    close_date: datetime | None = None
    amount_cny: float | None = None


def new_row_time(row_time: datetime | None, events_at: Sequence[datetime]) -> datetime:
    """The folded row's event time: after ``row_time`` and at or after the newest event."""
    newest = max(events_at)
    return newest if row_time is None or newest > row_time else row_time + _TICK


def _number(value: object) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)  # type: ignore[arg-type]


def fold_behavior(
    row: Mapping[str, object] | None, row_time: datetime | None, events: Sequence[BehaviorEvent]
) -> tuple[Row, datetime]:
    """``company_behavior``'s buckets, stored day and last event time after ``events`` (one company's),
    and the row's new time (``fold_behaviors`` adds the row-dated counts).

    ``row`` is the stored row (None or empty when the company has none: every bucket starts at 0).
    Events older than the buckets reach (31 days before the stored day) change only the last event
    time if at all; the offline log still holds them.
    """
    row = row or {}
    buckets = {t: _buckets(row.get(daily_column(t))) for t in BEHAVIOR_EVENT_TYPES}
    stored = _number(row.get(BEHAVIOR_STORED_DAY))
    stored_day = int(stored) if stored is not None else None
    last = _number(row.get(LAST_EVENT_AT))
    for event in sorted(events, key=lambda e: e.at):
        seconds = event.at.timestamp()
        day = int(seconds // _DAY_S)
        if stored_day is None:
            stored_day = day
        elif day > stored_day:
            shift = day - stored_day
            for t in BEHAVIOR_EVENT_TYPES:
                buckets[t] = ([0] * shift + buckets[t])[:BEHAVIOR_BUCKET_DAYS]
            stored_day = day
        k = stored_day - day
        if k < BEHAVIOR_BUCKET_DAYS:
            buckets[event.event_type][k] += 1
        last = seconds if last is None else max(last, seconds)
    at = new_row_time(row_time, [e.at for e in events])
    out: Row = {
        BEHAVIOR_STORED_DAY: stored_day,
        LAST_EVENT_AT: last,
        **{daily_column(t): buckets[t] for t in BEHAVIOR_EVENT_TYPES},
    }
    return out, at


def fold_behaviors(
    stored: Sequence[tuple[Mapping[str, object] | None, datetime | None, Sequence[BehaviorEvent]]],
) -> list[tuple[Row, datetime]]:
    """``fold_behavior`` for many companies ``(row, row_time, events)``, with the row-dated counts.

    The counts (``<type>_<w>d``, ``events_30d``, ``intent_combo``, ``days_since_last_event``) are the
    request-time function's at each row's new time, computed once for all rows.
    """
    folded = [fold_behavior(row, row_time, events) for row, row_time, events in stored]
    if not folded:
        return []
    names = [BEHAVIOR_STORED_DAY, LAST_EVENT_AT, *(daily_column(t) for t in BEHAVIOR_EVENT_TYPES)]
    windows = trailing_features(
        {f"company_behavior__{name}": [row[name] for row, _ in folded] for name in names},
        np.array([at.astimezone(UTC).replace(tzinfo=None) for _, at in folded], dtype="datetime64[us]"),
    )
    counts = [f"{t}_{w}d" for t in BEHAVIOR_EVENT_TYPES for w in BEHAVIOR_WINDOWS_DAYS]
    for i, (row, _) in enumerate(folded):
        for name in (*counts, "events_30d", "intent_combo"):
            row[name] = int(windows[f"company_behavior__{name}"][i])
        row["days_since_last_event"] = float(windows["company_behavior__days_since_last_event"][i])
    return folded


def _buckets(value: object) -> list[int]:
    stored = [] if value is None or isinstance(value, float) else [int(v) for v in value]  # type: ignore[attr-defined]
    return (stored + [0] * BEHAVIOR_BUCKET_DAYS)[:BEHAVIOR_BUCKET_DAYS]


def fold_opportunity(
    row: Mapping[str, object], row_time: datetime, events: Sequence[OpportunityEvent]
) -> tuple[Row, datetime]:
    """``opportunity_snapshots``' row after ``events`` (one deal's), and its time (see the module doc)."""
    out: Row = dict(row)
    at = new_row_time(row_time, [e.at for e in events])
    passed = (at - row_time).total_seconds() / _DAY_S
    for name, sign in (("days_in_stage", 1), ("days_since_last_activity", 1), ("days_to_expected_close", -1)):
        value = _number(out.get(name))
        if value is not None:
            out[name] = value + sign * passed
    weeks = _number(out.get("weeks_open"))
    if weeks is not None:
        out["weeks_open"] = weeks + passed / 7.0
    for event in sorted(events, key=lambda e: e.at):
        age = max((at - event.at).total_seconds() / _DAY_S, 0.0)
        if event.kind == "stage_change" and event.stage is not None:
            out["stage_index"] = STAGES.index(event.stage)
            out["days_in_stage"] = age
        elif event.kind == "milestone" and event.milestone is not None:
            if not out.get(f"ms_{event.milestone}"):
                out[f"ms_{event.milestone}"] = 1
                out["milestones_reached"] = int(_number(out.get("milestones_reached")) or 0) + 1
        elif event.kind == "activity":
            last = _number(out.get("days_since_last_activity"))
            out["days_since_last_activity"] = age if last is None else min(last, age)
            for window in (7, 30):
                if age < window:
                    out[f"activities_{window}d"] = int(_number(out.get(f"activities_{window}d")) or 0) + 1
            if event.sentiment in ("resistant", "positive") and age < 7:
                name = f"{event.sentiment}_7d"
                out[name] = int(_number(out.get(name)) or 0) + 1
        elif event.kind == "close_date_change" and event.close_date is not None:
            out["days_to_expected_close"] = (event.close_date - at).total_seconds() / _DAY_S
        elif event.kind == "amount_change" and event.amount_cny is not None:
            out["amount_cny"] = float(event.amount_cny)
            out["log_amount"] = math.log10(1.0 + float(event.amount_cny))
    after_legal = any(out.get(f"ms_{m}") for m in MILESTONES[LEGAL_PREREVIEW_INDEX + 1 :])
    legal = out.get(f"ms_{MILESTONES[LEGAL_PREREVIEW_INDEX]}")
    out["legal_prereview_skipped"] = int(bool(after_legal) and not legal)
    return out, at
