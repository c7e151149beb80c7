"""Feature table ``account_health`` (key ``account_id``): how a paying customer is doing.

Churn rises with low module usage, absent admins, late payments, rising tickets and low NPS, so those
are the columns. Rows sit on Mondays while a contract runs (for monitoring), at each contract's
renewal date minus 90 days (when the churn model scores an account) and at ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.jobs.raw import RawTables, require
from features.jobs.timeline import (
    NS_PER_DAY,
    days_between,
    entity_index,
    feature_table,
    first_monday_at_or_after,
    query_points,
    to_int_ns,
    to_ns,
    utc_timestamp,
    weekly_points,
)
from features.windows import last_event_before, trailing_counts

TABLE = "account_health"
KEY = "account_id"
CHURN_SCORING_LEAD_DAYS = 90
ADMIN_LOGIN_CAP_DAYS = 365.0
PUNCTUALITY_WINDOW_DAYS = 365


def health_points(
    contracts: pd.DataFrame, as_of: pd.Timestamp, accounts: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``(account code, t)`` row times of ``account_health``.

    Mondays with ``start_at <= t < renewal_at`` of some contract, each renewal minus 90 days, as_of;
    only times at or before ``as_of``; the as-of row goes to every account with a started contract.
    """
    as_of_ns = int(to_int_ns([utc_timestamp(as_of)])[0])
    start = to_int_ns(contracts["start_at"])
    renewal = to_int_ns(contracts["renewal_at"])
    keys = accounts.get_indexer(contracts[KEY].to_numpy(dtype=object))
    started = start <= as_of_ns
    last_monday = np.minimum(renewal - 1, as_of_ns)
    week_keys, week_ts = weekly_points(
        first_monday_at_or_after(start[started]), last_monday[started], keys[started]
    )
    scoring = renewal - CHURN_SCORING_LEAD_DAYS * NS_PER_DAY
    scored = scoring <= as_of_ns
    as_of_keys = np.unique(keys[started])
    return query_points(
        np.concatenate([week_keys, keys[scored], as_of_keys]),
        np.concatenate([week_ts, scoring[scored], np.full(len(as_of_keys), as_of_ns)]).astype(
            "datetime64[ns]"
        ),
    )


def _window_mean(
    keys: np.ndarray, ts: np.ndarray, values: np.ndarray, q_keys: np.ndarray, q_ts: np.ndarray, days: int
) -> np.ndarray:
    """Mean of the non-null ``values`` dated in ``(t - days, t]``; NaN where there are none."""
    ok = ~np.isnan(values)
    n = trailing_counts(keys[ok], ts[ok], q_keys, q_ts, days)
    total = trailing_counts(keys[ok], ts[ok], q_keys, q_ts, days, values[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _latest_value(
    keys: np.ndarray, ts: np.ndarray, values: np.ndarray, q_keys: np.ndarray, q_ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(value, time)`` of the latest event at or before each query (NaN / NaT when none).

    Ties at one instant resolve to the last row given, so callers pass events in a stable order.
    """
    last = last_event_before(keys, ts, q_keys, q_ts)
    at = pd.Series(values).groupby([keys, ts], sort=False).last()
    found = ~np.isnat(last)
    out = np.full(len(q_keys), np.nan)
    out[found] = at.reindex(pd.MultiIndex.from_arrays([q_keys[found], last[found]])).to_numpy(
        dtype=np.float64
    )
    return out, last


def build_account_health(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Usage, support, satisfaction, payment and contract features at each row, from data dated <= t.

    Daily usage rows count at their ``date``. Ticket counts compare the last 30 days with the 30
    before (31–60 days back) so a trend is visible. Punctuality takes invoices due in the last year
    and already due at ``t``: paid by the due date counts on time, anything else — paid late or
    still unpaid — late; both are knowable at the due date, so keying them there does not leak.
    Contract features come from the latest contract started at or before ``t``.
    """
    contracts, usage, invoices = require(raw, "contracts", "account_usage", "invoices")
    as_of_ns = to_ns([utc_timestamp(as_of)])[0]
    accounts = entity_index(contracts[KEY].to_numpy(dtype=object))
    q_keys, q_ts = health_points(contracts.loc[contracts[KEY].notna()], as_of, accounts)
    columns: dict[str, np.ndarray] = {}

    u_keys = accounts.get_indexer(usage[KEY].to_numpy(dtype=object))
    u_ts = to_ns(usage["date"])
    u_ok = (u_keys >= 0) & ~np.isnat(u_ts) & (u_ts <= as_of_ns)
    usage = usage.loc[u_ok]
    u_keys, u_ts = u_keys[u_ok], u_ts[u_ok]

    def col(name: str) -> np.ndarray:
        return usage[name].to_numpy(dtype=np.float64, na_value=np.nan)

    active, seats = col("active_users"), col("seats")
    with np.errstate(invalid="ignore", divide="ignore"):
        utilization = np.where(seats > 0, active / seats, np.nan)
    columns["usage_rate_30d"] = _window_mean(u_keys, u_ts, col("module_usage_rate"), q_keys, q_ts, 30)
    columns["active_users_30d"] = _window_mean(u_keys, u_ts, active, q_keys, q_ts, 30)
    columns["seat_utilization_30d"] = _window_mean(u_keys, u_ts, utilization, q_keys, q_ts, 30)
    admin = np.nan_to_num(col("admin_logins")) > 0
    last_admin = last_event_before(u_keys[admin], u_ts[admin], q_keys, q_ts)
    columns["days_since_admin_login"] = np.minimum(
        np.nan_to_num(days_between(q_ts, last_admin), nan=ADMIN_LOGIN_CAP_DAYS), ADMIN_LOGIN_CAP_DAYS
    )
    alerts, tickets = np.nan_to_num(col("alerts")), np.nan_to_num(col("support_tickets"))
    alerts_30d = trailing_counts(u_keys, u_ts, q_keys, q_ts, 30, alerts)
    tickets_30d = trailing_counts(u_keys, u_ts, q_keys, q_ts, 30, tickets)
    tickets_60d = trailing_counts(u_keys, u_ts, q_keys, q_ts, 60, tickets)
    columns["alerts_30d"] = np.rint(alerts_30d).astype(np.int64)
    columns["tickets_30d"] = np.rint(tickets_30d).astype(np.int64)
    columns["tickets_prev_30d"] = np.rint(tickets_60d - tickets_30d).astype(np.int64)
    columns["ticket_trend"] = columns["tickets_30d"] - columns["tickets_prev_30d"]
    nps = col("nps")
    has_nps = ~np.isnan(nps)
    columns["last_nps"], _ = _latest_value(u_keys[has_nps], u_ts[has_nps], nps[has_nps], q_keys, q_ts)

    i_keys = accounts.get_indexer(invoices[KEY].to_numpy(dtype=object))
    due = to_ns(invoices["due_at"])
    paid = to_ns(invoices["paid_at"])
    i_ok = (i_keys >= 0) & ~np.isnat(due)
    on_time = (~np.isnat(paid) & (paid <= due))[i_ok]
    i_keys, due = i_keys[i_ok], due[i_ok]
    due_12m = trailing_counts(i_keys, due, q_keys, q_ts, PUNCTUALITY_WINDOW_DAYS)
    on_time_12m = trailing_counts(i_keys[on_time], due[on_time], q_keys, q_ts, PUNCTUALITY_WINDOW_DAYS)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["payment_punctuality_12m"] = np.where(due_12m > 0, on_time_12m / due_12m, np.nan)

    c_keys = accounts.get_indexer(contracts[KEY].to_numpy(dtype=object))
    c_start = to_ns(contracts["start_at"])
    c_ok = (c_keys >= 0) & ~np.isnat(c_start)
    c_keys, c_start = c_keys[c_ok], c_start[c_ok]
    order = np.argsort(c_start, kind="stable")
    arr, current_start = _latest_value(
        c_keys[order],
        c_start[order],
        contracts["arr_cny"].to_numpy(dtype=np.float64)[c_ok][order],
        q_keys,
        q_ts,
    )
    renewal_at = to_ns(contracts["renewal_at"])[c_ok][order]
    renewal_ns = np.where(np.isnat(renewal_at), np.nan, renewal_at.astype(np.int64).astype(np.float64))
    renewal, _ = _latest_value(c_keys[order], c_start[order], renewal_ns, q_keys, q_ts)
    columns["arr_cny"] = arr
    columns["days_to_renewal"] = np.where(
        np.isnat(current_start), np.nan, (renewal - q_ts.astype(np.int64)) / NS_PER_DAY
    )
    first_start = pd.Series(c_start).groupby(c_keys).min()
    first = first_start.reindex(q_keys).to_numpy(dtype="datetime64[ns]")
    tenure = days_between(q_ts, first)
    columns["tenure_days"] = np.where(tenure >= 0, tenure, np.nan)

    return feature_table(KEY, accounts.to_numpy(dtype=object)[q_keys], q_ts, columns)
