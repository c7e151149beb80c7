"""Feature table ``rep_profile`` (key ``rep_id``): who a rep is and how they have been doing.

Routing needs each rep's languages, hours and capacity, and the learned fit needs their recent
conversion. Rows sit on the 1st of every month across the data span and at ``as_of``; the static
attributes repeat on each row so a point-in-time join always finds them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import LANGUAGES
from features.jobs.raw import RawTables, require
from features.jobs.timeline import (
    NS_PER_DAY,
    feature_table,
    month_starts,
    to_ns,
    utc_timestamp,
)
from features.windows import trailing_counts

TABLE = "rep_profile"
KEY = "rep_id"
RECENT_DAYS = 90
DECISION_DAYS = 30  # a lead's label is "converts within 30 days": younger leads are undecided
PRIOR_CONVERSIONS, PRIOR_LEADS = 1.0, 6.0


def build_rep_profile(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Static rep attributes plus recent load, conversion and open pipeline at each month start.

    ``leads_90d`` counts leads assigned to the rep and created in the last 90 days.
    ``conversion_rate_90d`` uses only decided leads — created 30 to 90 days before ``t`` — and counts
    one as converted only when it converted within its 30 days, which for a decided lead is at or
    before ``t``: no outcome after ``t`` is seen. It is smoothed toward 1/6, ``(conv + 1) /
    (decided + 6)``, so a rep with few leads is not ranked by luck. ``open_opportunities`` are the
    rep's deals created by ``t`` and not closed by ``t``.
    """
    reps, rep_languages, leads, opportunities = require(
        raw, "reps", "rep_languages", "leads", "opportunities"
    )
    as_of_ts = utc_timestamp(as_of)
    as_of_ns = to_ns([as_of_ts])[0]
    rep_index = pd.Index(reps[KEY].to_numpy(dtype=object))
    starts = [to_ns(leads["created_at"]), to_ns(opportunities["created_at"])]
    span_start = min((s[~np.isnat(s)].min() for s in starts if (~np.isnat(s)).any()), default=as_of_ns)
    times = np.unique(np.append(month_starts(pd.Timestamp(span_start, tz="UTC"), as_of_ts), as_of_ns))
    q_keys = np.repeat(np.arange(len(rep_index)), len(times))
    q_ts = np.tile(times, len(rep_index))
    columns: dict[str, np.ndarray] = {}

    rep = reps.iloc[q_keys]
    for name in ("team", "region", "timezone"):
        columns[name] = rep[name].to_numpy(dtype=object)
    for name in ("work_start_hour", "work_end_hour", "capacity"):
        columns[name] = rep[name].to_numpy(dtype=np.int64)
    proficiency = (
        rep_languages.pivot_table(index=KEY, columns="language", values="proficiency", aggfunc="max")
        .reindex(index=rep_index, columns=list(LANGUAGES))
        .fillna(0.0)
    )
    for language in LANGUAGES:
        columns[f"lang_{language}"] = proficiency[language].to_numpy(dtype=np.float64)[q_keys]

    l_keys = rep_index.get_indexer(leads["assigned_rep_id"].to_numpy(dtype=object))
    created = to_ns(leads["created_at"])
    converted_at = to_ns(leads["converted_at"])
    l_ok = (l_keys >= 0) & ~np.isnat(created) & (created <= as_of_ns)
    in_time = ~np.isnat(converted_at) & (
        converted_at.astype(np.int64) - created.astype(np.int64) <= DECISION_DAYS * NS_PER_DAY
    )
    converted = leads["converted"].fillna(False).to_numpy(dtype=bool) & in_time
    leads_90d = trailing_counts(l_keys[l_ok], created[l_ok], q_keys, q_ts, RECENT_DAYS)
    undecided = trailing_counts(l_keys[l_ok], created[l_ok], q_keys, q_ts, DECISION_DAYS)
    won = l_ok & converted
    conv = trailing_counts(l_keys[won], created[won], q_keys, q_ts, RECENT_DAYS) - trailing_counts(
        l_keys[won], created[won], q_keys, q_ts, DECISION_DAYS
    )
    columns["leads_90d"] = leads_90d
    columns["conversion_rate_90d"] = (conv + PRIOR_CONVERSIONS) / ((leads_90d - undecided) + PRIOR_LEADS)

    o_keys = rep_index.get_indexer(opportunities["owner_rep_id"].to_numpy(dtype=object))
    o_created = to_ns(opportunities["created_at"])
    o_closed = to_ns(opportunities["closed_at"])
    o_ok = (o_keys >= 0) & ~np.isnat(o_created)
    opened = trailing_counts(o_keys[o_ok], o_created[o_ok], q_keys, q_ts, None)
    closes = o_ok & ~np.isnat(o_closed)
    closed = trailing_counts(o_keys[closes], o_closed[closes], q_keys, q_ts, None)
    columns["open_opportunities"] = opened - closed

    return feature_table(KEY, rep_index.to_numpy(dtype=object)[q_keys], q_ts, columns)
