"""Learned rep fit for routing: what history says a lead-rep match and a slow first touch cost.

The lead model scores a lead at creation, before anyone holds it, so it averages over how leads
were routed. Conditional on the lead score ``p``, history shows how conversion moved with the rep
it got: a multiplicative model ``E[converted] = c * p * language^mismatch * timezone^far *
(1 - decay)^delay_hours * lift_rep``, fitted by Poisson maximum likelihood (log link, ``log p`` as
an offset); each rep's lift is then the shrunk ratio of its conversions to the fitted expectation.
The result ships in the lead model's metadata and feeds ``service.routing.policy.RepFit``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from features.timezones import circular_gap_hours, utc_offset_hours

LIFT_PRIOR_LEADS = 30.0  # a rep's lift moves away from 1 only with this many leads' worth of evidence
MAX_DELAY_HOURS = 24 * 30.0


def match_columns(
    leads: pd.DataFrame,
    reps: pd.DataFrame,
    rep_languages: pd.DataFrame,
    min_proficiency: float,
    max_gap: float,
) -> pd.DataFrame:
    """Per historical lead: language mismatch, far time zone and first-touch delay with its rep."""
    prof = rep_languages.set_index(["rep_id", "language"])["proficiency"]
    key = pd.MultiIndex.from_arrays([leads["assigned_rep_id"], leads["language"]])
    proficiency = prof.reindex(key).fillna(0.0).to_numpy()
    rep_zone = reps.set_index("rep_id")["timezone"].reindex(leads["assigned_rep_id"]).to_numpy(dtype=object)
    created = pd.DatetimeIndex(leads["created_at"])
    gap = circular_gap_hours(
        utc_offset_hours(created, np.where(pd.isna(rep_zone), "UTC", rep_zone)),
        utc_offset_hours(created, leads["timezone"].fillna("UTC").to_numpy(dtype=object)),
    )
    delay = (leads["first_touch_at"] - leads["created_at"]).dt.total_seconds().to_numpy() / 3600
    return pd.DataFrame(
        {
            "language_mismatch": (proficiency < min_proficiency).astype(float),
            "timezone_far": (gap > max_gap).astype(float),
            "delay_hours": np.nan_to_num(np.clip(delay, 0, MAX_DELAY_HOURS), nan=MAX_DELAY_HOURS),
        },
        index=leads.index,
    )


def fit_rep_fit(
    y: np.ndarray, p: np.ndarray, match: pd.DataFrame, rep_ids: np.ndarray
) -> dict[str, float | dict[str, float]]:
    """Poisson fit of the match factors and the delay decay, then shrunk per-rep lifts."""
    x = match[["language_mismatch", "timezone_far", "delay_hours"]].to_numpy(float)
    offset = np.log(np.clip(p, 1e-6, 1.0))
    y = np.asarray(y, float)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + theta[0] + x @ theta[1:]
        mu = np.exp(np.minimum(eta, 5.0))
        grad_eta = mu - y
        return float(np.sum(mu - y * eta)), np.concatenate([[grad_eta.sum()], x.T @ grad_eta])

    theta = minimize(loss, np.zeros(4), jac=True, method="L-BFGS-B").x
    expected = np.exp(offset + theta[0] + x @ theta[1:])
    frame = pd.DataFrame({"rep": rep_ids, "y": y, "e": expected}).groupby("rep")[["y", "e"]].sum()
    prior = LIFT_PRIOR_LEADS * float(expected.mean())  # k pseudo-leads converting as expected
    lift = (frame["y"] + prior) / (frame["e"] + prior)
    return {
        "language_mismatch_factor": float(np.exp(theta[1])),
        "timezone_gap_factor": float(np.exp(theta[2])),
        "delay_decay_per_hour": float(1 - np.exp(theta[3])),
        "rep_lift": {str(k): round(float(v), 4) for k, v in lift.items()},
    }
