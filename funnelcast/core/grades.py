"""Lead score 0-100 and grade A-D from a calibrated probability (pure; thresholds come with the model).

The score is the probability's percentile among the validation leads the model was calibrated on,
so "80" means "hotter than 80% of recent leads" whatever the base rate; the grade cuts the score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Grade -> lowest score in it: A is the top decile, B the next 20%, C the next 30%, D the rest.
DEFAULT_GRADE_CUTS: dict[str, float] = {"A": 90.0, "B": 70.0, "C": 40.0, "D": 0.0}


def score_quantiles(probabilities: np.ndarray) -> list[float]:
    """The 101 percentiles (0..100) of ``probabilities``: the model's score scale."""
    return [float(q) for q in np.quantile(np.asarray(probabilities, float), np.linspace(0, 1, 101))]


def score_0_100(probability: np.ndarray | float, quantiles: Sequence[float]) -> np.ndarray:
    """Percentile of each probability on the model's scale, 0..100 (ties take the middle)."""
    q = np.asarray(quantiles, float)
    p = np.atleast_1d(np.asarray(probability, float))
    lo = np.searchsorted(q, p, side="left")
    hi = np.searchsorted(q, p, side="right")
    return np.clip((lo + hi) / 2.0 - 0.5, 0, 100).round(0)


def grade_of(score: np.ndarray | float, cuts: dict[str, float] = DEFAULT_GRADE_CUTS) -> np.ndarray:
    """Grade letter for each score: the first grade (A, B, ...) whose lowest score it reaches."""
    s = np.atleast_1d(np.asarray(score, float))
    ordered = sorted(cuts.items(), key=lambda kv: -kv[1])
    out = np.full(len(s), ordered[-1][0], dtype=object)
    for letter, low in reversed(ordered):
        out[s >= low] = letter
    return out
