"""The paired-bootstrap interval of a ROC-AUC difference, and per-segment metrics (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.comparison import paired_bootstrap_auc_difference
from training.metrics import segment_metrics


def test_a_model_compared_with_itself_differs_by_exactly_zero() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = rng.random(400)
    same = paired_bootstrap_auc_difference(y, p, p, resamples=200)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not same.significant


def test_a_clearly_better_candidate_has_an_interval_above_zero_and_the_exact_point_estimate() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    champion = rng.random(1000) + 0.3 * y  # weak signal
    candidate = rng.random(1000) + 1.5 * y  # strong signal on the same rows
    result = paired_bootstrap_auc_difference(y, candidate, champion, resamples=300)
    assert result.candidate == pytest.approx(roc_auc_score(y, candidate))
    assert result.champion == pytest.approx(roc_auc_score(y, champion))
    assert 0 < result.low < result.difference < result.high
    assert result.significant and result.resamples == 300


def test_pairing_matters_the_interval_of_two_near_identical_models_is_narrow() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 800)
    base = rng.random(800) + 0.5 * y
    result = paired_bootstrap_auc_difference(y, base + rng.normal(0, 0.01, 800), base, resamples=300)
    # the AUC itself varies by ~0.02 across resamples; the paired difference by far less
    assert result.high - result.low < 0.01


def test_different_row_counts_are_refused_with_the_names_of_the_inputs() -> None:
    with pytest.raises(ValueError, match="p_candidate and p_champion"):
        paired_bootstrap_auc_difference(np.array([0, 1]), np.array([0.1, 0.9]), np.array([0.5]))


def test_segment_metrics_partition_the_rows_and_name_missing_values() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7])
    table = segment_metrics(y, p, {"channel": np.array(["a", "a", "a", "b", "b", None], dtype=object)})
    rows = table.set_index(["segment", "value"])
    assert rows.loc[("all", "all"), "rows"] == 6
    assert rows.loc[("channel", "a"), "roc_auc"] == 1.0  # 0.1, 0.2 below 0.9
    assert rows.loc[("channel", "b"), "positives"] == 2 and np.isnan(rows.loc[("channel", "b"), "roc_auc"])
    assert rows.loc[("channel", "(missing)"), "rows"] == 1
