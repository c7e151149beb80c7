"""Customer accounts: yearly contracts, daily product usage, monthly invoices, and renewal or churn.

Each account's health drifts day by day (an AR(1) process); usage, admin logins, tickets and NPS
follow it. At each renewal the account churns with a probability computed from what its data
showed 90 days earlier (usage under 30%, no admin login for 30 days, payment punctuality under
85%, rising tickets, low NPS), which is also the oracle: exactly what was knowable then.
Daily usage rows are stamped at the end of their day (00:00 UTC of the next day), when known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.world.params import ChurnMechanism

_PLANS = ("standard", "professional", "enterprise")
HEALTH_PERSISTENCE = 0.97


@dataclass
class AccountWorld:
    contracts: pd.DataFrame
    usage: pd.DataFrame
    invoices: pd.DataFrame
    oracle: pd.DataFrame


def churn_probability(
    usage_rate_30d: np.ndarray,
    days_since_admin_login: np.ndarray,
    punctuality_12m: np.ndarray,
    ticket_trend: np.ndarray,
    last_nps: np.ndarray,
    m: ChurnMechanism,
) -> np.ndarray:
    logit = (
        m.base_logit
        + m.low_usage_logit * (usage_rate_30d < m.low_usage_threshold)
        + m.usage_logit_per_unit * usage_rate_30d
        + m.no_admin_login_logit * (days_since_admin_login >= m.no_admin_login_days)
        + m.late_payer_logit * (np.nan_to_num(punctuality_12m, nan=1.0) < m.punctuality_threshold)
        + m.ticket_trend_logit_per_ticket * ticket_trend
        + m.nps_logit_per_point * (np.nan_to_num(last_nps, nan=7.0) - 7.0)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def simulate_accounts(
    rng: np.random.Generator,
    company_ids: np.ndarray,
    first_win_at: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp,
    m: ChurnMechanism,
) -> AccountWorld:
    """Contracts start at ``first_win_at`` (naive UTC); with NaT, one began before or in the window."""
    n = len(company_ids)
    start_n, end_n = start.tz_localize(None), end.tz_localize(None)
    days = pd.date_range(start_n - pd.Timedelta(days=400), end_n, freq="D").to_numpy()
    n_days = len(days)
    random_start = (
        start_n
        - pd.Timedelta(days=365)
        + pd.to_timedelta(rng.random(n) * ((end_n - start_n).days + 265), unit="D")
    )
    contract_start = np.where(pd.isna(first_win_at), random_start.to_numpy(), first_win_at).astype(
        "datetime64[D]"
    )
    start_day = np.searchsorted(days.astype("datetime64[D]"), contract_start)
    seats = np.clip(np.exp(rng.normal(np.log(60), 0.9, n)), 5, 2000).astype(np.int64)
    arr = np.round(seats * np.exp(rng.normal(np.log(3000), 0.4, n)), -2)
    plan = rng.choice(_PLANS, size=n, p=[0.5, 0.35, 0.15])
    payer = rng.beta(9, 1.2, n)  # each account's habit of paying on time

    mean_health = rng.normal(0.6, 0.9, n)
    health = np.zeros((n, n_days), dtype=np.float32)
    h = mean_health + rng.normal(0, 0.5, n)
    noise = rng.normal(0, 0.18, (n, n_days)).astype(np.float32)
    for d in range(n_days):
        h = HEALTH_PERSISTENCE * h + (1 - HEALTH_PERSISTENCE) * mean_health + noise[:, d]
        health[:, d] = h
    usage_rate = 1 / (1 + np.exp(-(health + rng.normal(0, 0.25, health.shape)) + 0.2))
    weekday = pd.DatetimeIndex(days).weekday.to_numpy() < 5
    admin = rng.poisson(0.35 * np.exp(np.clip(health, -3, 3)) * weekday)
    tickets = rng.poisson(0.04 * np.exp(-np.clip(health, -3, 3)))
    alerts = rng.poisson(0.2, health.shape)
    survey = (np.arange(n_days)[None, :] - rng.integers(0, 90, n)[:, None]) % 90 == 0
    nps = np.where(
        survey, np.clip(np.round(7 + 1.6 * health + rng.normal(0, 1.5, health.shape)), 0, 10), np.nan
    )

    # monthly invoices, due on the contract's day of month
    per_account = np.maximum(0, (n_days - start_day + 29) // 30)
    inv_acc = np.repeat(np.arange(n), per_account)
    starts = np.repeat(np.cumsum(per_account) - per_account, per_account)
    inv_due = start_day[inv_acc] + 30 * (np.arange(len(inv_acc)) - starts)
    inv_late = rng.random(len(inv_acc)) > np.clip(payer[inv_acc] + 0.05 * health[inv_acc, inv_due], 0, 1)
    inv_delay = np.where(inv_late, rng.exponential(25, len(inv_acc)) + 1, -rng.uniform(0, 10, len(inv_acc)))
    bounds = np.concatenate([[0], np.cumsum(per_account)])
    inv_due_day = [inv_due[bounds[i] : bounds[i + 1]] for i in range(n)]
    delay_days = [inv_delay[bounds[i] : bounds[i + 1]] for i in range(n)]

    active = np.zeros((n, n_days), dtype=bool)
    contract_rows, oracle_rows = [], []
    for i in range(n):
        s = start_day[i]
        while s < n_days:
            renew = s + 365
            score_day = renew - m.score_days_before_renewal
            if renew >= n_days:
                active[i, s:] = True
                contract_rows.append((i, s, renew, None))
                break
            active[i, s:renew] = True
            feats = _knowable(i, score_day, usage_rate, admin, tickets, nps, inv_due_day[i], delay_days[i])
            p = float(churn_probability(*[np.array([f]) for f in feats], m=m)[0])
            churned = rng.random() < p
            if days[score_day] >= start_n.to_datetime64():
                oracle_rows.append((i, score_day, renew, p, *feats))
            contract_rows.append((i, s, renew, not churned))
            if churned:
                break
            s = renew
    last_day = np.full(n, -1)
    for i, _start, renew, renewed in contract_rows:
        last_day[i] = max(last_day[i], min(renew, n_days) if renewed is not None else n_days)

    day_end = days + np.timedelta64(1, "D")
    keep = active & (day_end > np.datetime64(start_n - pd.Timedelta(days=120)))[None, :]
    ii, dd = np.nonzero(keep)
    usage = pd.DataFrame(
        {
            "account_id": company_ids[ii],
            "date": pd.DatetimeIndex(day_end[dd]).tz_localize("UTC"),
            "active_users": np.minimum(
                seats[ii], rng.binomial(seats[ii], np.clip(usage_rate[ii, dd] * 0.9, 0, 1))
            ).astype(np.int32),
            "seats": seats[ii].astype(np.int32),
            "module_usage_rate": np.round(usage_rate[ii, dd], 4),
            "admin_logins": admin[ii, dd].astype(np.int32),
            "alerts": alerts[ii, dd].astype(np.int32),
            "support_tickets": tickets[ii, dd].astype(np.int32),
            "nps": nps[ii, dd],
        }
    )
    ok = inv_due < last_day[inv_acc]
    due_ts = days[inv_due[ok]] + np.timedelta64(1, "D")
    paid = due_ts + (inv_delay[ok] * 86400).astype("timedelta64[s]")
    paid = np.where(paid <= np.datetime64(end_n), paid, np.datetime64("NaT"))
    invoices = pd.DataFrame(
        {
            "account_id": company_ids[inv_acc[ok]],
            "due_at": pd.DatetimeIndex(due_ts).tz_localize("UTC").floor("s"),
            "paid_at": pd.DatetimeIndex(paid).tz_localize("UTC").floor("s"),
            "amount_cny": arr[inv_acc[ok]] / 12,
        }
    )
    invoices = invoices[invoices["due_at"] >= (start - pd.Timedelta(days=400))]

    c = np.array(contract_rows, dtype=object)
    contracts = pd.DataFrame(
        {
            "account_id": company_ids[c[:, 0].astype(int)],
            "start_at": pd.DatetimeIndex(days[c[:, 1].astype(int)]).tz_localize("UTC"),
            "renewal_at": pd.DatetimeIndex(
                days[0] + c[:, 2].astype(int).astype("timedelta64[D]")
            ).tz_localize("UTC"),
            "arr_cny": arr[c[:, 0].astype(int)],
            "plan": plan[c[:, 0].astype(int)],
            "renewed": pd.array(c[:, 3], dtype="boolean"),
        }
    )
    o = np.array(oracle_rows, dtype=object) if oracle_rows else np.zeros((0, 9), dtype=object)
    oracle = pd.DataFrame(
        {
            "account_id": company_ids[o[:, 0].astype(int)],
            "scored_at": pd.DatetimeIndex(days[o[:, 1].astype(int)]).tz_localize("UTC"),
            "renewal_at": pd.DatetimeIndex(
                days[0] + o[:, 2].astype(int).astype("timedelta64[D]")
            ).tz_localize("UTC"),
            "p_churn": o[:, 3].astype(float),
            "usage_rate_30d": o[:, 4].astype(float),
            "days_since_admin_login": o[:, 5].astype(float),
            "payment_punctuality_12m": o[:, 6].astype(float),
            "ticket_trend": o[:, 7].astype(float),
            "last_nps": o[:, 8].astype(float),
        }
    )
    return AccountWorld(contracts, usage, invoices, oracle)


def _knowable(
    i: int,
    t: int,
    usage_rate: np.ndarray,
    admin: np.ndarray,
    tickets: np.ndarray,
    nps: np.ndarray,
    due_days: np.ndarray,
    delay_days: np.ndarray,
) -> tuple[float, float, float, float, float]:
    """What account ``i``'s data showed at the start of day ``t`` (days before t only)."""
    lo = max(0, t - 30)
    usage_30 = float(usage_rate[i, lo:t].mean()) if t > lo else np.nan
    logins = np.flatnonzero(admin[i, :t] > 0)
    # measured from the end of the last day with a login, when its row was stamped
    since_login = float(min(365, t - logins[-1] - 1)) if len(logins) else 365.0
    trend = float(tickets[i, lo:t].sum() - tickets[i, max(0, t - 60) : lo].sum())
    seen = np.flatnonzero(~np.isnan(nps[i, :t]))
    last_nps = float(nps[i, seen[-1]]) if len(seen) else np.nan
    # invoices due (at the end of their day) in the 365 days before t; unpaid and past due is late
    due_end = due_days + 1
    window = (due_end <= t) & (due_end > t - 365)
    if window.any():
        paid_by_due = delay_days[window] <= 0
        punctual = float(paid_by_due.mean())
    else:
        punctual = np.nan
    return usage_30, since_login, punctual, trend, last_nps
