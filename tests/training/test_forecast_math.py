"""Forecast math: exact expectations, Monte Carlo ranges that respect one win per deal, the baseline."""

from __future__ import annotations

import numpy as np

from funnelcast.core.forecast import (
    bookings_quantiles,
    expected_bookings,
    expected_close_week,
    p_win_by,
    sample_bookings,
    stage_weighted_bookings,
    weekly_win_probabilities,
)


def test_weekly_probabilities_come_from_the_week_classes_and_accumulate_monotonically() -> None:
    classes = np.array([[0.5, 0.1, 0.2, 0.2], [1.0, 0.0, 0.0, 0.0]])
    p_week = weekly_win_probabilities(classes, weeks=3)
    np.testing.assert_allclose(p_week, [[0.1, 0.2, 0.2], [0, 0, 0]])
    by = np.column_stack([p_win_by(p_week, k) for k in range(4)])
    assert (np.diff(by, axis=1) >= 0).all()
    np.testing.assert_allclose(by[:, -1], [0.5, 0.0])
    np.testing.assert_allclose(expected_close_week(p_week)[0], (0.1 + 0.4 + 0.6) / 0.5)
    assert np.isnan(expected_close_week(p_week)[1])


def test_expected_bookings_are_the_exact_sum_and_samples_agree_with_it() -> None:
    rng = np.random.default_rng(3)
    p_week = rng.dirichlet(np.ones(5), size=300)[:, :4] * 0.6
    amount = rng.lognormal(12, 1, 300)
    exact = expected_bookings(amount, p_week)
    np.testing.assert_allclose(exact, (amount[:, None] * p_week).sum(axis=0))
    samples = sample_bookings(amount, p_week, n_samples=4000, seed=1)
    np.testing.assert_allclose(samples.mean(axis=0), exact, rtol=0.05)


def test_a_deal_is_won_at_most_once_per_sample() -> None:
    # one deal, certain to win within 3 weeks: each sample books its amount in exactly one week
    samples = sample_bookings(np.array([100.0]), np.array([[0.3, 0.3, 0.4]]), n_samples=2000, seed=0)
    np.testing.assert_allclose(samples.sum(axis=1), 100.0)
    np.testing.assert_allclose((samples > 0).mean(axis=0), [0.3, 0.3, 0.4], atol=0.04)


def test_quantiles_of_a_single_deal_are_zero_or_its_amount() -> None:
    q = bookings_quantiles(np.array([50.0]), np.array([[0.95]]), n_samples=1000, seed=2)
    assert q[0, 0] == 50.0 and q[2, 0] == 50.0
    q = bookings_quantiles(np.array([50.0]), np.array([[0.05]]), n_samples=1000, seed=2)
    assert q[0, 0] == 0.0 and q[1, 0] == 0.0
    many = bookings_quantiles(np.full(200, 10.0), np.full((200, 2), 0.2), n_samples=1000, seed=4)
    assert (many[0] <= many[1]).all() and (many[1] <= many[2]).all()


def test_stage_weighted_baseline_places_deals_in_the_reps_week() -> None:
    amount = np.array([100.0, 200.0, 300.0, 400.0])
    rate = np.array([0.5, 0.5, 0.1, 1.0])
    week = np.array([-2.0, 1.5, 3.0, 20.0])  # overdue -> week 1; beyond the horizon -> dropped
    np.testing.assert_allclose(stage_weighted_bookings(amount, rate, week, weeks=4), [50, 100, 30, 0])
