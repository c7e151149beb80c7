"""Paired bootstrap intervals for the difference of a metric between two scorers on the same rows.

One function, used by the promotion gate (candidate vs champion on one holdout), the forecast
backtest (model vs the best baseline on the same origins) and the notebooks. Rows are resampled
with replacement and both scorers are re-scored on the *same* resample, so what they share (the
rows' difficulty) cancels and only their difference is left to vary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class PairedInterval:
    difference: float  # metric(y, a) - metric(y, b) on all rows
    low: float  # percentile interval of the difference over resamples
    high: float
    level: float
    n_boot: int

    def __str__(self) -> str:
        interval = f"[{self.low:+.4f}, {self.high:+.4f}]"
        return f"{self.difference:+.4f} {interval} ({self.level:.0%}, {self.n_boot} resamples)"


def paired_bootstrap_interval(
    metric: Metric,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> PairedInterval:
    """``metric(y, a) - metric(y, b)`` with its ``level`` percentile interval over paired resamples.

    ``strata`` (e.g. the world seed of each row) resamples within each stratum, keeping each
    stratum's size, so a pooled interval does not mix worlds in random proportions. Resamples where
    the metric is undefined (e.g. one class only for ROC-AUC) are skipped.
    """
    y, a, b = np.asarray(y), np.asarray(a), np.asarray(b)
    groups = (
        [np.arange(len(y))] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    )
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        d = metric(y[idx], a[idx]) - metric(y[idx], b[idx])
        if np.isfinite(d):
            diffs.append(d)
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail]) if diffs else (np.nan, np.nan)
    return PairedInterval(float(metric(y, a) - metric(y, b)), float(low), float(high), level, len(diffs))
