"""Forecast math over open deals (pure functions; training's backtest and the service share them).

A deal's close model gives ``p_week[i, k-1]`` = P(deal i is won in week k after the snapshot),
k = 1..13; the rest, ``1 - sum_k p_week[i, k-1]``, is "not won within 13 weeks". From it:
P(win by a date), the expected close week, and weekly bookings with P10/P50/P90.

Ranges come from a Monte Carlo over deals: each sample draws every deal's outcome week once from
its own categorical distribution. Deals are not independent: a commodity swing or a slow quarter
hits every exposed deal at once, so each sample draws one shared shock (lognormal, mean 1) that
scales every deal's win probabilities, and one per commodity group for the deals exposed to it;
their sizes are fitted on validation residuals (``funnelcast.intervals``). A deal can be won at most once,
so weeks are dependent within a deal; sampling the outcome week keeps that, which an exact
per-week Poisson-binomial would not (it would also not handle unequal amounts). Expected values
are exact sums, not sampled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from features.catalog import COMMODITIES
from funnelcast.core.deals import HORIZON_WEEKS
from funnelcast.core.intervals import widen

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
    amount: np.ndarray,
    p_week: np.ndarray,
    n_samples: int = 1000,
    seed: int = 0,
    chunk: int = 250,
    shock_sd: float = 0.0,
    groups: np.ndarray | None = None,
    group_shock_sd: float = 0.0,
) -> np.ndarray:
    """``[sample, week-1]`` total bookings per week in ``n_samples`` joint draws of every deal's outcome.

    With ``shock_sd`` > 0 each sample scales every deal's weekly win probabilities by one shared
    lognormal factor (mean 1, log-sd ``shock_sd``); with ``groups`` (an integer per deal, e.g. its
    commodity exposure; -1 = none) and ``group_shock_sd`` > 0, also by one factor per group.
    """
    amount = np.asarray(amount, float)
    p = np.clip(np.asarray(p_week, float), 0.0, 1.0)
    n, weeks = p.shape
    out = np.zeros((n_samples, weeks))
    if n == 0:
        return out
    cum = np.minimum(np.cumsum(p, axis=1), 1.0)  # P(won by week k)
    rng = np.random.default_rng(seed)
    group = np.full(n, -1) if groups is None else np.asarray(groups, int)
    n_groups = int(group.max()) + 1 if len(group) else 0
    for lo in range(0, n_samples, chunk):
        hi = min(n_samples, lo + chunk)
        u = rng.random((hi - lo, n), dtype=np.float32)
        scale = _shock(rng, hi - lo, shock_sd)[:, None] * np.ones((1, n))
        if n_groups and group_shock_sd > 0:
            per_group = np.stack([_shock(rng, hi - lo, group_shock_sd) for _ in range(n_groups)], axis=1)
            exposed = group >= 0
            scale[:, exposed] *= per_group[:, group[exposed]]
        scale = scale.astype(np.float32)
        # outcome week index: how many "won by week k" thresholds u passes (weeks = not won)
        week = np.zeros((hi - lo, n), dtype=np.int16)
        for k in range(weeks):
            week += u >= np.minimum(cum[:, k].astype(np.float32) * scale, 1.0)
        won = week < weeks
        rows = np.broadcast_to(np.arange(hi - lo)[:, None], week.shape)[won]
        flat = rows * weeks + week[won]
        totals = np.bincount(
            flat, weights=np.broadcast_to(amount, week.shape)[won], minlength=(hi - lo) * weeks
        )
        out[lo:hi] = totals.reshape(hi - lo, weeks)
    return out


def _shock(rng: np.random.Generator, size: int, sd: float) -> np.ndarray:
    """Lognormal factors with mean 1 (ones when ``sd`` is 0, drawing nothing)."""
    if sd <= 0:
        return np.ones(size)
    return np.exp(sd * rng.standard_normal(size) - sd * sd / 2)


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


BaselineOf = Callable[[str, np.ndarray, int], np.ndarray]  # (group, deal mask, weeks) -> [week-1]


def weekly_forecast(
    deals: pd.DataFrame,
    p_week: np.ndarray,
    group_by: str,
    baseline_of: BaselineOf,
    amount: str,
    n_samples: int = 500,
    seed: int = 0,
    shocks: tuple[float, float] = (0.0, 0.0),
    margins: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (group, week): expected bookings, P10/P50/P90, expected wins and the chosen baseline; and
    per group the total over all weeks with its P10-P90 band and the baseline's total.

    The Monte Carlo draws ``shocks`` (shared, per commodity group) and the band is widened by the
    conformal ``margins`` fitted in the backtest (``funnelcast.intervals``): ``weekly`` for weeks,
    ``quarter`` for a 13-week total, ``month`` for a shorter one of at least 4 weeks.
    """
    weeks = p_week.shape[1]
    margins = margins or {}
    total_level = "quarter" if weeks >= 13 else "month" if weeks >= 4 else "weekly"
    rows, totals = [], []
    keys = deals[group_by].fillna("unknown").to_numpy() if group_by != "all" else np.full(len(deals), "all")
    commodity = deals.get("opportunity_snapshots__commodity")
    groups = None if commodity is None else pd.Categorical(commodity, categories=COMMODITIES).codes
    for g_index, group in enumerate(sorted(set(keys))):
        mask = keys == group
        a = deals.loc[mask, amount].to_numpy(float)
        p = p_week[mask]
        mean = expected_bookings(a, p)
        samples = sample_bookings(
            a,
            p,
            n_samples=n_samples,
            seed=seed + g_index,
            shock_sd=shocks[0],
            groups=None if groups is None else groups[mask],
            group_shock_sd=shocks[1],
        )
        q = np.maximum(np.quantile(samples, QUANTILES, axis=0), 0.0)
        low, high = widen(q[0], q[2], q[2] - q[0], margins.get("weekly", 0.0))
        low, high = np.minimum(low, q[1]), np.maximum(high, q[1])  # a narrowed band still holds P50
        base = baseline_of(str(group), mask, weeks)
        for k in range(weeks):
            rows.append(
                {
                    "group": str(group),
                    "week": k + 1,
                    "expected_bookings": float(mean[k]),
                    "p10": float(low[k]),
                    "p50": float(q[1, k]),
                    "p90": float(high[k]),
                    "expected_wins": float(p[:, k].sum()),
                    "baseline": float(base[k]),
                    "deals": int(mask.sum()),
                }
            )
        total = samples.sum(axis=1)
        t_q = np.quantile(total, [QUANTILES[0], QUANTILES[2]])
        t_low, t_high = widen(t_q[:1], t_q[1:], t_q[1:] - t_q[:1], margins.get(total_level, 0.0))
        t_mid = float(np.quantile(total, QUANTILES[1]))
        totals.append(
            {
                "group": str(group),
                "weeks": weeks,
                "expected_bookings": float(mean.sum()),
                "p10": min(float(t_low[0]), t_mid),
                "p50": t_mid,
                "p90": max(float(t_high[0]), t_mid),
                "baseline": float(base.sum()),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(totals)
