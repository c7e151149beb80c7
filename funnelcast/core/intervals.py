"""Forecast bands that cover: shared-shock size and split-conformal widening (pure functions, no I/O).

A Monte Carlo over independent deals gives bands that are too narrow for totals, because a shared
shock (a commodity swing, a slow month) moves every exposed deal at once. Two steps fix it, both
fitted on forecasts whose outcomes were already known when the band is made (validation origins,
then backtest origins whose horizon has passed), never on the outcomes being judged:

1. ``shared_shock_sd``: the log-sd of a multiplicative shock shared by all deals, by the method of
   moments: the squared relative error of a total beyond what deal-level (binomial) noise explains.
2. ``conformal_margin``: normalised conformalised quantile regression (Romano et al., 2019). The
   score of a past forecast is how far its outcome fell outside its own P10-P90 band, in units of
   that band's width (so one margin fits a small team and the whole company, a young world and a
   grown one); the margin is the score's ``coverage`` quantile, added to (or, when bands were too
   wide, taken from) both ends in units of the new band's width.

The margin aims at the band's nominal 80%, not at split conformal's "at least 80%": it is the
score at rank 0.8 (n+1) of n (interpolated; numpy's Weibull quantile), the rank a new
exchangeable score falls below with probability 0.8. A quarterly band is calibrated on about 13
known quarter totals; rounding that rank up to 12 aims at 12/14 = 86%, next to the top of the
72-88% a forecaster expects from a P10-P90 band (the earlier ``method="higher"`` even took the
13th, the largest score: 93%).
"""

from __future__ import annotations

import numpy as np

BAND = 0.8  # P10-P90


def shared_shock_sd(actual: np.ndarray, mean: np.ndarray, deal_variance: np.ndarray) -> float:
    """Log-sd of a shared multiplicative shock: E[(y - m)^2 - v] / E[m^2], floored at zero.

    ``deal_variance`` is each forecast's variance with independent deals (from the Monte Carlo);
    the excess over it, relative to the mean's size, is what deals moving together add.
    """
    y, m, v = (np.asarray(a, float) for a in (actual, mean, deal_variance))
    ok = np.isfinite(y) & np.isfinite(m) & (m > 0)
    if ok.sum() < 3:
        return 0.0
    excess = np.sum((y[ok] - m[ok]) ** 2 - v[ok]) / np.sum(m[ok] ** 2)
    return float(np.sqrt(np.log1p(max(excess, 0.0))))


def conformal_margin(
    actual: np.ndarray, low: np.ndarray, high: np.ndarray, scale: np.ndarray, coverage: float = BAND
) -> float:
    """Relative margin so that ``[low - q*scale, high + q*scale]`` covers ``coverage`` of past outcomes.

    The scores' quantile at rank ``coverage`` (n+1) (see the module doc); 0 when fewer than 5 are known.
    """
    y, lo, hi, s = (np.asarray(a, float) for a in (actual, low, high, scale))
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi) & (s > 0)
    n = int(ok.sum())
    if n < 5:
        return 0.0
    score = np.maximum(lo[ok] - y[ok], y[ok] - hi[ok]) / s[ok]
    return float(np.quantile(score, coverage, method="weibull"))


def widen(
    low: np.ndarray, high: np.ndarray, scale: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """The band moved out by ``margin * scale`` at both ends (in by a negative margin), never below 0
    and never crossed."""
    lo = np.asarray(low, float) - margin * np.asarray(scale, float)
    hi = np.asarray(high, float) + margin * np.asarray(scale, float)
    mid = (np.asarray(low, float) + np.asarray(high, float)) / 2
    return np.maximum(np.minimum(lo, mid), 0.0), np.maximum(hi, mid)
