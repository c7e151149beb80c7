"""Pure pieces of training: the gate rule, grades, calibration choice and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from funnelcast.core.grades import grade_of, score_0_100, score_quantiles
from training.fitting import choose_calibrator
from training.metrics import classification_metrics, expected_calibration_error, interval_coverage, wape
from training.registry import decide
from training.splits import time_split


def test_gate_promotes_only_a_strictly_better_candidate_unless_forced() -> None:
    assert decide(0.7, None, None, True, False).promoted
    assert decide(0.71, 0.70, "3", True, False).promoted
    refused = decide(0.70, 0.70, "3", True, False)
    assert not refused.promoted and "does not beat champion v3" in refused.reason
    assert decide(0.10, 0.12, "1", False, False).promoted  # lower WAPE is better
    assert not decide(float("nan"), 0.5, "1", True, False).promoted
    forced = decide(0.5, 0.7, "3", True, True)
    assert forced.promoted and forced.forced and forced.reason.startswith("forced:")


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
