"""Feature table ``company_tenders`` (key ``company_id``): public tenders (招投标公告) a company issued.

A buyer with an open tender in our product line is actively purchasing, which is why the lead and
opportunity models both read this table. Rows sit where those models look — each lead's creation
time, each weekly opportunity snapshot of the company's deals — plus every tender's publication and
deadline (where the state changes) and ``as_of`` for every company that has published a tender.

Models read the windowed counts and the recency through ``features.request_time``, at the request's
time, from what each row stores for it: daily buckets of notices and budgets (``tenders_daily``,
``tender_budget_daily``), the day they end on (``tender_stored_day``) and ``last_tender_at``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import PRODUCT_LINE_NAMES
from features.jobs.opportunity_snapshots import snapshot_points
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
    LAST_TENDER_AT,
    TENDER_BUCKET_DAYS,
    TENDER_STORED_DAY,
    daily_column,
    rows_of_buckets,
)
from features.windows import daily_buckets, last_event_before, trailing_counts, utc_day

TABLE = "company_tenders"
KEY = "company_id"


def _open_at(
    pub_keys: np.ndarray, pub_ts: np.ndarray, dl_ts: np.ndarray, q_keys: np.ndarray, q_ts: np.ndarray
) -> np.ndarray:
    """Tenders with ``published_at <= t < deadline_at``: published by t minus deadlines passed by t.

    A tender with no deadline stays open; one whose deadline is not after its publication never is.
    """
    valid = np.isnat(dl_ts) | (dl_ts > pub_ts)
    published = trailing_counts(pub_keys[valid], pub_ts[valid], q_keys, q_ts, None)
    closes = valid & ~np.isnat(dl_ts)
    closed = trailing_counts(pub_keys[closes], dl_ts[closes], q_keys, q_ts, None)
    return published - closed


def build_company_tenders(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Tender activity of each company at its rows, from tenders published at or before the row only.

    Counts are over publication times in ``(t - w, t]``; ``tender_budget_90d_cny`` sums budgets the
    same way; ``open_tenders[_<product line>]`` counts tenders open at ``t``; recency is NaN for a
    company that has published none yet. A deadline lying in the future is public at publication, so
    using it to decide "open at t" does not leak.
    """
    tenders, leads, opportunities = require(raw, "tenders", "leads", "opportunities")
    as_of_ns = to_ns([utc_timestamp(as_of)])[0]
    pub_ts = to_ns(tenders["published_at"])
    dl_ts = to_ns(tenders["deadline_at"])
    keep = tenders[KEY].notna().to_numpy() & ~np.isnat(pub_ts) & (pub_ts <= as_of_ns)
    tenders = tenders.loc[keep]
    pub_ts, dl_ts = pub_ts[keep], dl_ts[keep]

    opp_rows, opp_t = snapshot_points(opportunities, as_of)
    lead_ts = to_ns(leads["created_at"])
    point_ids = np.concatenate(
        [
            tenders[KEY].to_numpy(dtype=object),
            tenders[KEY].to_numpy(dtype=object),
            leads[KEY].to_numpy(dtype=object),
            opportunities[KEY].to_numpy(dtype=object)[opp_rows],
        ]
    )
    point_ts = np.concatenate([pub_ts, dl_ts, lead_ts, opp_t.astype("datetime64[ns]")])
    ok = pd.notna(point_ids) & ~np.isnat(point_ts) & (point_ts <= as_of_ns)
    companies = entity_index(point_ids[ok])
    # ``as_of`` rows for every company with a tender, however old: serving reads its last
    # publication time from it (recency 200 days, as in training, not unknown).
    active_companies = np.unique(companies.get_indexer(tenders[KEY].to_numpy(dtype=object)))
    q_keys, q_ts = query_points(
        np.concatenate([companies.get_indexer(point_ids[ok]), active_companies]),
        np.concatenate([point_ts[ok], np.full(len(active_companies), as_of_ns)]),
    )

    keys = companies.get_indexer(tenders[KEY].to_numpy(dtype=object))
    budget = tenders["budget_cny"].to_numpy(dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    columns["tenders_30d"] = trailing_counts(keys, pub_ts, q_keys, q_ts, 30)
    columns["tenders_90d"] = trailing_counts(keys, pub_ts, q_keys, q_ts, 90)
    has_budget = ~np.isnan(budget)
    columns["tender_budget_90d_cny"] = trailing_counts(
        keys[has_budget], pub_ts[has_budget], q_keys, q_ts, 90, budget[has_budget]
    )
    columns["open_tenders"] = _open_at(keys, pub_ts, dl_ts, q_keys, q_ts)
    category = tenders["category"].to_numpy(dtype=object)
    for line in PRODUCT_LINE_NAMES:
        sel = category == line
        columns[f"open_tenders_{line}"] = _open_at(keys[sel], pub_ts[sel], dl_ts[sel], q_keys, q_ts)
    last = last_event_before(keys, pub_ts, q_keys, q_ts)
    columns["days_since_last_tender"] = days_between(q_ts, last)
    columns[TENDER_STORED_DAY] = utc_day(q_ts)
    columns[LAST_TENDER_AT] = epoch_seconds(last)
    notices = daily_buckets(keys, pub_ts, q_keys, q_ts, TENDER_BUCKET_DAYS)
    columns[daily_column("tenders")] = rows_of_buckets(notices)
    budgets = daily_buckets(
        keys[has_budget], pub_ts[has_budget], q_keys, q_ts, TENDER_BUCKET_DAYS, budget[has_budget]
    )
    columns[daily_column("tender_budget")] = rows_of_buckets(budgets)

    return feature_table(KEY, companies.to_numpy(dtype=object)[q_keys], q_ts, columns)
