"""Feature table ``company_behavior_trend`` (key ``company_id``): is a company's engagement rising?

The signal behind ``lead_score_v2`` (the worked example in ``notebooks/new_feature.ipynb``): the
behaviour view counts events in fixed windows, but says nothing of direction. A buyer whose visits
doubled this week is in a different place from one who is tailing off at the same 30-day count.
Per company and row time ``t``:

- ``events_7d``: behaviour events in ``(t - 7 d, t]``;
- ``events_prev_7d``: events in the week before, ``(t - 14 d, t - 7 d]``;
- ``events_wow_log_ratio``: ``log((1 + events_7d) / (1 + events_prev_7d))``, the week-over-week
  change in intensity (0 = flat, +0.69 = doubled), defined for quiet companies too.

Rows sit at each lead's creation (what scoring that lead sees, exactly) and at ``as_of`` for every
company (the state materialisation pushes online, so a company quiet for two weeks reads 0 / 0 / 0
online, as it would in training, rather than a missing row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.jobs.raw import RawTables, require
from features.jobs.timeline import entity_index, feature_table, query_points, to_ns, utc_timestamp
from features.windows import trailing_counts

TABLE = "company_behavior_trend"
KEY = "company_id"


def behavior_trend_columns(
    event_keys: np.ndarray, event_ts: np.ndarray, query_keys: np.ndarray, query_ts: np.ndarray
) -> dict[str, np.ndarray]:
    """The three trend features at each query ``(key, t)`` from the events' ``(key, time)``."""
    last_7 = trailing_counts(event_keys, event_ts, query_keys, query_ts, 7)
    last_14 = trailing_counts(event_keys, event_ts, query_keys, query_ts, 14)
    previous_7 = last_14 - last_7
    return {
        "events_7d": last_7,
        "events_prev_7d": previous_7,
        "events_wow_log_ratio": np.log1p(last_7) - np.log1p(previous_7),
    }


def build_company_behavior_trend(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Trend features per company at its leads' creation times and at ``as_of``; no event after a row."""
    events, leads = require(raw, "behavior_events", "leads")
    as_of_ns = to_ns([utc_timestamp(as_of)])[0]
    ev_ts = to_ns(events["ts"])
    ok = events[KEY].notna().to_numpy() & ~np.isnat(ev_ts) & (ev_ts <= as_of_ns)
    ev_ids = events[KEY].to_numpy(dtype=object)[ok]
    ev_ts = ev_ts[ok]
    lead_ts = to_ns(leads["created_at"])
    lead_ok = leads[KEY].notna().to_numpy() & ~np.isnat(lead_ts) & (lead_ts <= as_of_ns)
    lead_ids = leads[KEY].to_numpy(dtype=object)[lead_ok]
    companies = entity_index(ev_ids, lead_ids)
    every = np.arange(len(companies))
    q_keys, q_ts = query_points(
        np.concatenate([companies.get_indexer(lead_ids), every]),
        np.concatenate([lead_ts[lead_ok], np.full(len(every), as_of_ns)]),
    )
    columns = behavior_trend_columns(companies.get_indexer(ev_ids), ev_ts, q_keys, q_ts)
    return feature_table(KEY, companies.to_numpy(dtype=object)[q_keys], q_ts, columns)
