"""Comparing a candidate with the champion on the same holdout: a paired-bootstrap interval.

Both models score the same holdout rows, so their errors are correlated; resampling rows (not each
model's scores separately) keeps that pairing, and the interval of the difference is much tighter
than two separate intervals would suggest. Pure: labels and two score vectors in, numbers out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from training.bootstrap import paired_bootstrap_interval

if TYPE_CHECKING:
    from training.registry import TrainingOutcome


@dataclass(frozen=True)
class AucDifference:
    """ROC-AUC of candidate minus champion on one holdout, with a percentile bootstrap interval."""

    candidate: float
    champion: float
    difference: float
    low: float
    high: float
    level: float
    resamples: int  # resamples holding both classes (others cannot have an AUC)

    @property
    def significant(self) -> bool:
        """The interval lies above zero: the candidate is better beyond resampling noise."""
        return self.low > 0

    def as_metrics(self, prefix: str = "vs_champion") -> dict[str, float]:
        return {
            f"{prefix}.roc_auc_champion": self.champion,
            f"{prefix}.roc_auc_difference": self.difference,
            f"{prefix}.roc_auc_difference_low": self.low,
            f"{prefix}.roc_auc_difference_high": self.high,
        }


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC (ties count half), NaN without both classes."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def paired_bootstrap_auc_difference(
    y: np.ndarray,
    p_candidate: np.ndarray,
    p_champion: np.ndarray,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> AucDifference:
    """AUC(candidate) - AUC(champion) on the same rows, with a paired percentile bootstrap interval.

    Each resample draws holdout rows with replacement and scores both models on the *same* draw.
    """
    y = np.asarray(y, int)
    p_candidate, p_champion = np.asarray(p_candidate, float), np.asarray(p_champion, float)
    if not len(y) == len(p_candidate) == len(p_champion):
        raise ValueError(
            f"y, p_candidate and p_champion must be the same holdout rows "
            f"(got {len(y)}, {len(p_candidate)}, {len(p_champion)})"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    interval = paired_bootstrap_interval(
        _roc_auc, y, p_candidate, p_champion, n_boot=resamples, level=level, seed=seed
    )
    return AucDifference(
        _roc_auc(y, p_candidate),
        _roc_auc(y, p_champion),
        interval.difference,
        interval.low,
        interval.high,
        level,
        interval.n_boot,
    )


def with_comparison(outcome: TrainingOutcome, comparison: AucDifference, champion: str) -> TrainingOutcome:
    """``outcome`` carrying its comparison with champion version ``champion``: the interval as metrics
    (``vs_champion.*``) and as a one-row table (``tables/champion_comparison.csv``) on the run."""
    table = pd.DataFrame([{"champion_version": champion, **asdict(comparison)}])
    return replace(
        outcome,
        metrics={**outcome.metrics, **comparison.as_metrics()},
        tables={**outcome.tables, "champion_comparison": table},
    )
