"""Feature tables ``company_behavior`` (key ``company_id``) and ``lead_behavior`` (key ``lead_id``).

Both are the same computation over behaviour events, grouped by a different key, so both call
``behavior_features``: windowed counts per event type (1 / 7 / 30 days), total 30-day events,
recency, and the intent combination the field reports as a strong buy signal (≥3 competitor
comparisons, a whitepaper and a service-needs form within 30 days). Rows sit at every event time
(the state right after it), at every lead's creation (what scoring that lead sees) and at ``as_of``
(the latest state, which materialisation pushes online).

What models read is computed at request time (``features.request_time``) from what each row also
stores: an array of daily buckets per event type (``<type>_daily``), the day they end on
(``behavior_stored_day``) and the last event's time (``last_event_at``). The windowed counts
above are the same facts dated at the row, for analysis; a request at a later time re-ages the
buckets instead of reading them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import BEHAVIOR_EVENT_TYPES, BEHAVIOR_WINDOWS_DAYS, INTENT_COMBO_MIN_COMPARISONS
from features.jobs.raw import RawTables, require
from features.jobs.timeline import (
    days_between,
    entity_index,
    epoch_seconds,
    feature_table,
    query_points,
    to_ns,
    utc_timestamp,
)
from features.request_time import (
    BEHAVIOR_BUCKET_DAYS,
    BEHAVIOR_STORED_DAY,
    LAST_EVENT_AT,
    daily_column,
    rows_of_buckets,
)
from features.windows import daily_buckets, last_event_before, trailing_counts, utc_day

WINDOWS_DAYS = BEHAVIOR_WINDOWS_DAYS
INTENT_MIN_COMPETITOR_VIEWS_30D = INTENT_COMBO_MIN_COMPARISONS


def behavior_columns(request_time: bool = True) -> list[str]:
    """Feature columns of a behaviour table, in table order (Feast views declare these).

    ``request_time`` adds what request-time windows are computed from: only the company table,
    which the lead model reads, carries it (nine arrays of 31 days are most of a row).
    """
    counts = [f"{t}_{w}d" for t in BEHAVIOR_EVENT_TYPES for w in WINDOWS_DAYS]
    base = [*counts, "events_30d", "days_since_last_event", "intent_combo"]
    if not request_time:
        return base
    return [*base, BEHAVIOR_STORED_DAY, LAST_EVENT_AT, *(daily_column(t) for t in BEHAVIOR_EVENT_TYPES)]


def behavior_features(
    event_ids: pd.Series,
    event_ts: pd.Series,
    event_types: pd.Series,
    point_ids: pd.Series,
    point_ts: pd.Series,
    key: str,
    as_of: pd.Timestamp,
    request_time: bool = True,
) -> pd.DataFrame:
    """Behaviour features of entity ``key`` at the given points, the events' times and ``as_of``.

    Only events at or before ``as_of`` are used, and a row at ``t`` counts only events in
    ``(t - w, t]``, so no row sees the future. Points after ``as_of`` are dropped; every entity with
    an event also gets a row at ``as_of``; repeated (entity, time) rows appear
    once. Entities that appear only at points get zero counts and NaN recency.
    """
    # Every entity with an event gets an ``as_of`` row, however quiet: serving reads its last event
    # time from it (a company silent for 40 days still has a recency, as in training).
    as_of_ns = to_ns([utc_timestamp(as_of)])[0]
    ev_ts = to_ns(event_ts)
    ev_ok = event_ids.notna().to_numpy() & ~np.isnat(ev_ts) & (ev_ts <= as_of_ns)
    ev_ids = event_ids.to_numpy(dtype=object)[ev_ok]
    ev_ts = ev_ts[ev_ok]
    ev_types = event_types.to_numpy(dtype=object)[ev_ok]

    pt_ts = to_ns(point_ts)
    pt_ok = point_ids.notna().to_numpy() & ~np.isnat(pt_ts) & (pt_ts <= as_of_ns)
    pt_ids = point_ids.to_numpy(dtype=object)[pt_ok]
    entities = entity_index(ev_ids, pt_ids)
    ev_keys = entities.get_indexer(ev_ids)
    with_events = np.unique(ev_keys)
    q_keys, q_ts = query_points(
        np.concatenate([ev_keys, entities.get_indexer(pt_ids), with_events]),
        np.concatenate([ev_ts, pt_ts[pt_ok], np.full(len(with_events), as_of_ns)]),
    )

    columns: dict[str, np.ndarray] = {}
    for event_type in BEHAVIOR_EVENT_TYPES:
        is_type = ev_types == event_type
        for window in WINDOWS_DAYS:
            columns[f"{event_type}_{window}d"] = trailing_counts(
                ev_keys[is_type], ev_ts[is_type], q_keys, q_ts, window
            )
        if request_time:
            buckets = daily_buckets(ev_keys[is_type], ev_ts[is_type], q_keys, q_ts, BEHAVIOR_BUCKET_DAYS)
            columns[daily_column(event_type)] = rows_of_buckets(buckets)
    columns["events_30d"] = trailing_counts(ev_keys, ev_ts, q_keys, q_ts, 30)
    last = last_event_before(ev_keys, ev_ts, q_keys, q_ts)
    columns["days_since_last_event"] = days_between(q_ts, last)
    columns[BEHAVIOR_STORED_DAY] = utc_day(q_ts)
    columns[LAST_EVENT_AT] = epoch_seconds(last)
    columns["intent_combo"] = (
        (columns["competitor_comparison_view_30d"] >= INTENT_MIN_COMPETITOR_VIEWS_30D)
        & (columns["whitepaper_download_30d"] >= 1)
        & (columns["service_needs_form_30d"] >= 1)
    ).astype(np.int64)
    ordered = {name: columns[name] for name in behavior_columns(request_time)}
    return feature_table(key, entities.to_numpy(dtype=object)[q_keys], q_ts, ordered)


def build_company_behavior(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """``company_behavior``: all of a company's behaviour events; points at its leads' creation times."""
    events, leads = require(raw, "behavior_events", "leads")
    return behavior_features(
        events["company_id"],
        events["ts"],
        events["event_type"],
        leads["company_id"],
        leads["created_at"],
        "company_id",
        as_of,
    )


def build_lead_behavior(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """``lead_behavior``: only events tied to a lead (engagement once it exists); points at creation."""
    events, leads = require(raw, "behavior_events", "leads")
    return behavior_features(
        events["lead_id"],
        events["ts"],
        events["event_type"],
        leads["lead_id"],
        leads["created_at"],
        "lead_id",
        as_of,
        request_time=False,
    )
