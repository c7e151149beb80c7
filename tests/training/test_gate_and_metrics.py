"""Pure pieces of training: the gate rule, grades, calibration choice and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from funnelcast.core.grades import grade_of, score_0_100, score_quantiles
from training.bootstrap import PairedInterval, paired_bootstrap_interval
from training.fitting import choose_calibrator
from training.metrics import (
    classification_metrics,
    expected_calibration_error,
    interval_coverage,
    roc_auc,
    wape,
)
from training.registry import decide
from training.splits import time_split


def test_gate_promotes_only_when_the_improvements_lower_bound_clears_the_minimum_effect() -> None:
    def gain(low: float, high: float) -> PairedInterval:
        return PairedInterval((low + high) / 2, low, high, 0.95, 1000)

    assert decide(0.7, None, None, None, False).promoted
    assert decide(0.74, 0.70, "3", gain(0.01, 0.07), False).promoted
    refused = decide(0.72, 0.70, "3", gain(-0.01, 0.05), False)
    assert not refused.promoted and "does not beat champion v3" in refused.reason
    assert "[-0.0100, +0.0500]" in refused.reason  # the interval is in the reason
    assert not decide(0.74, 0.70, "3", gain(0.01, 0.07), False, min_effect=0.02).promoted
    assert not decide(float("nan"), 0.5, "1", gain(float("nan"), float("nan")), False).promoted
    forced = decide(0.5, 0.7, "3", gain(-0.3, -0.1), True)
    assert forced.promoted and forced.forced and forced.reason.startswith("forced:")


def test_paired_bootstrap_interval_excludes_zero_only_for_a_real_difference() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    noise = rng.normal(size=2000)
    good = y + noise  # informative
    same = y + noise + rng.normal(scale=0.05, size=2000)  # the same scorer, jittered
    worse = y + 3 * rng.normal(size=2000)
    real = paired_bootstrap_interval(roc_auc, y, good, worse, n_boot=300)
    assert real.low > 0 and real.difference > 0
    tie = paired_bootstrap_interval(roc_auc, y, same, good, n_boot=300)
    assert tie.low < 0 < tie.high


def test_score_is_the_percentile_on_the_models_scale_and_grades_cut_it() -> None:
    q = score_quantiles(np.linspace(0.0, 1.0, 1001))
    np.testing.assert_allclose(score_0_100(np.array([0.0, 0.25, 0.905, 1.0, 2.0]), q), [0, 25, 90, 100, 100])
    assert grade_of(np.array([95, 90, 75, 40, 39, 0])).tolist() == ["A", "A", "B", "C", "D", "D"]


def test_calibration_repairs_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.02, 0.5, 20_000)
    y = (rng.random(20_000) < true_p).astype(int)
    logit = np.log(true_p / (1 - true_p))
    raw = 1 / (1 + np.exp(-(2.0 * logit + 0.8)))  # systematically overconfident
    calibrator, scores = choose_calibrator(raw, y)
    assert calibrator.method in ("isotonic", "platt")
    assert expected_calibration_error(y, calibrator(raw)) < 0.01 < expected_calibration_error(y, raw)
    assert scores[calibrator.method] < scores["none"]


def test_metrics_on_known_cases() -> None:
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))
    assert m["roc_auc"] == 1.0 and m["lift_top_decile"] == 2.0
    assert wape(np.array([10.0, 10.0]), np.array([12.0, 7.0])) == pytest.approx(0.25)
    assert interval_coverage(np.array([1, 5, 9]), np.array([0, 6, 0]), np.array([2, 7, 10])) == pytest.approx(
        2 / 3
    )


def test_time_split_orders_train_valid_holdout() -> None:
    import pandas as pd

    times = pd.Series(pd.date_range("2026-01-01", periods=100, freq="D", tz="UTC"))
    split = time_split(times, valid_share=0.2, holdout_share=0.2)
    assert (
        times[split.train].max()
        < times[split.valid].min()
        <= times[split.valid].max()
        < times[split.holdout].min()
    )
    with pytest.raises(ValueError, match="sum below 1"):
        time_split(times, 0.6, 0.5)


def test_purged_split_drops_rows_whose_label_resolves_inside_the_next_split() -> None:
    import pandas as pd

    times = pd.Series(pd.date_range("2026-01-01", periods=100, freq="D", tz="UTC"))
    plain = time_split(times, valid_share=0.2, holdout_share=0.2)
    purged = time_split(times, valid_share=0.2, holdout_share=0.2, label_window=pd.Timedelta(days=10))
    # a row's 10-day label resolves before the next split starts, or the row is dropped
    assert (times[purged.train] + pd.Timedelta(days=10) < purged.valid_from).all()
    assert (times[purged.valid] + pd.Timedelta(days=10) < purged.holdout_from).all()
    assert plain.train.sum() - purged.train.sum() == 10 and plain.valid.sum() - purged.valid.sum() == 10
    assert (purged.holdout == plain.holdout).all()  # the holdout keeps every row
