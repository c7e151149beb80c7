"""Forecast math over open deals (pure functions; training's backtest and the service share them).

A deal's close model gives ``p_week[i, k-1]`` = P(deal i is won in week k after the snapshot),
k = 1..13; the rest, ``1 - sum_k p_week[i, k-1]``, is "not won within 13 weeks". From it:
P(win by a date), the expected close week, and weekly bookings with P10/P50/P90.

Ranges come from a Monte Carlo over deals: each sample draws every deal's outcome week once from
its own categorical distribution (deals independent of each other). A deal can be won at most once,
so weeks are dependent within a deal; sampling the outcome week keeps that, which an exact
per-week Poisson-binomial would not (it would also not handle unequal amounts). Expected values
are exact sums, not sampled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from funnelcast.core.deals import HORIZON_WEEKS

QUANTILES = (0.1, 0.5, 0.9)


def weekly_win_probabilities(class_probs: np.ndarray, weeks: int = HORIZON_WEEKS) -> np.ndarray:
    """``[deal, week-1]`` P(won in that week) from the close model's classes (0 = not within 13 w)."""
    probs = np.asarray(class_probs, float)
    return probs[:, 1 : weeks + 1]


def p_win_by(p_week: np.ndarray, weeks: int) -> np.ndarray:
    """P(won within the first ``weeks`` weeks), per deal."""
    return np.asarray(p_week, float)[:, : max(0, weeks)].sum(axis=1)


def expected_close_week(p_week: np.ndarray) -> np.ndarray:
    """Expected week of winning given a win within the horizon (NaN when that is ~impossible)."""
    p = np.asarray(p_week, float)
    total = p.sum(axis=1)
    weeks = np.arange(1, p.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 1e-9, (p * weeks).sum(axis=1) / total, np.nan)


def expected_bookings(amount: np.ndarray, p_week: np.ndarray) -> np.ndarray:
    """Expected bookings per week: sum over deals of amount x P(won that week)."""
    return np.asarray(amount, float) @ np.asarray(p_week, float)


def sample_bookings(
    amount: np.ndarray, p_week: np.ndarray, n_samples: int = 1000, seed: int = 0, chunk: int = 250
) -> np.ndarray:
    """``[sample, week-1]`` total bookings per week in ``n_samples`` joint draws of every deal's outcome."""
    amount = np.asarray(amount, float)
    p = np.clip(np.asarray(p_week, float), 0.0, 1.0)
    n, weeks = p.shape
    out = np.zeros((n_samples, weeks))
    if n == 0:
        return out
    cum = np.minimum(np.cumsum(p, axis=1), 1.0)  # P(won by week k)
    rng = np.random.default_rng(seed)
    for lo in range(0, n_samples, chunk):
        hi = min(n_samples, lo + chunk)
        u = rng.random((hi - lo, n), dtype=np.float32)
        # outcome week index: how many "won by week k" thresholds u passes (weeks = not won)
        week = np.zeros((hi - lo, n), dtype=np.int16)
        for k in range(weeks):
            week += u >= cum[:, k].astype(np.float32)
        won = week < weeks
        rows = np.broadcast_to(np.arange(hi - lo)[:, None], week.shape)[won]
        flat = rows * weeks + week[won]
        totals = np.bincount(
            flat, weights=np.broadcast_to(amount, week.shape)[won], minlength=(hi - lo) * weeks
        )
        out[lo:hi] = totals.reshape(hi - lo, weeks)
    return out


def bookings_quantiles(
    amount: np.ndarray,
    p_week: np.ndarray,
    quantiles: tuple[float, ...] = QUANTILES,
    n_samples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """``[quantile, week-1]`` bookings quantiles per week (Monte Carlo, see the module doc)."""
    samples = sample_bookings(amount, p_week, n_samples=n_samples, seed=seed)
    return np.quantile(samples, quantiles, axis=0)


def stage_weighted_bookings(
    amount: np.ndarray, stage_win_rate: np.ndarray, expected_week: np.ndarray, weeks: int = HORIZON_WEEKS
) -> np.ndarray:
    """The pipeline baseline: amount x the stage's historical win rate, placed in the rep's close week.

    ``expected_week`` is the week (1-based) holding the rep's expected close date; a date already
    past counts in week 1 (the rep still expects it), one beyond the horizon drops out.
    """
    week = np.maximum(np.ceil(np.asarray(expected_week, float)), 1)
    value = np.asarray(amount, float) * np.asarray(stage_win_rate, float)
    inside = np.isfinite(week) & (week <= weeks)
    return np.bincount((week[inside] - 1).astype(int), weights=value[inside], minlength=weeks)[:weeks]


def weekly_forecast(
    deals: pd.DataFrame,
    p_week: np.ndarray,
    group_by: str,
    stage_win_rate: np.ndarray,
    amount: str,
    stage: str,
    days_to_close: str,
    n_samples: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (group, week): expected bookings, P10/P50/P90, expected wins, baseline."""
    weeks = p_week.shape[1]
    rows = []
    keys = deals[group_by].fillna("unknown").to_numpy() if group_by != "all" else np.full(len(deals), "all")
    for g_index, group in enumerate(sorted(set(keys))):
        mask = keys == group
        a = deals.loc[mask, amount].to_numpy(float)
        p = p_week[mask]
        mean = expected_bookings(a, p)
        q = np.quantile(sample_bookings(a, p, n_samples=n_samples, seed=seed + g_index), QUANTILES, axis=0)
        q = np.maximum(q, 0.0)
        rate = stage_win_rate[deals.loc[mask, stage].fillna(0).astype(int).clip(0, len(stage_win_rate) - 1)]
        base = stage_weighted_bookings(a, rate, deals.loc[mask, days_to_close].to_numpy(float) / 7.0, weeks)
        for k in range(weeks):
            rows.append(
                {
                    "group": str(group),
                    "week": k + 1,
                    "expected_bookings": float(mean[k]),
                    "p10": float(q[0, k]),
                    "p50": float(q[1, k]),
                    "p90": float(q[2, k]),
                    "expected_wins": float(p[:, k].sum()),
                    "baseline": float(base[k]),
                    "deals": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows)
