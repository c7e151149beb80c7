"""Trailing windows over stored daily buckets: every series and window of a view in one pass."""

from __future__ import annotations

import numpy as np

from features.windows import bucket_window, bucket_windows


def test_a_window_drops_one_far_bucket_per_day_passed_since_the_row_was_stored() -> None:
    # buckets [today, 1 day ago, 2, 3] = [1, 2, 4, 8], stored on day 100
    buckets = np.array([[1.0, 2.0, 4.0, 8.0]])
    at = {
        day: bucket_window(buckets, np.array([100.0]), np.array([day]), 2)[0] for day in (99, 100, 101, 103)
    }
    # a 2-day window on day 100 holds today and 2 days before (1 + 2 + 4); a day later the far
    # bucket (4) falls off; three days later nothing is left; before the row, the row as it stands
    assert at == {99: 7.0, 100: 7.0, 101: 3.0, 103: 0.0}


def test_all_series_and_windows_at_once_equal_each_counted_by_hand() -> None:
    rng = np.random.default_rng(3)
    rows, series, days = 50, 4, 31
    buckets = rng.integers(0, 5, (rows, series, days)).astype(float)
    buckets[rng.random(buckets.shape) < 0.05] = np.nan  # a missing bucket counts nothing
    stored = rng.integers(19_000, 19_030, rows).astype(float)
    stored[:5] = np.nan  # no stored row: zero
    now = stored + rng.integers(-3, 40, rows)
    now[:5] = 19_010
    together = bucket_windows(buckets, stored, now, (1, 7, 30))
    for i in range(rows):
        passed = days if np.isnan(stored[i]) else max(now[i] - stored[i], 0)
        for s in range(series):
            for w, window in enumerate((1, 7, 30)):
                kept = [buckets[i, s, k] for k in range(days) if k <= window - passed]
                assert together[i, s, w] == np.nansum(kept), (i, s, window)
    assert (together[:5] == 0).all()


def test_windows_counted_together_equal_each_window_alone_to_the_bit() -> None:
    """Budgets are not whole numbers: a different order of adding would move the last bits, and the
    served probability with them (offline equals online, before and after any speed work)."""
    rng = np.random.default_rng(11)
    rows, series, days = 300, 3, 91
    buckets = rng.lognormal(12, 2, (rows, series, days)) * rng.random((rows, series, days))
    buckets[rng.random(buckets.shape) < 0.1] = np.nan
    stored = rng.integers(19_000, 19_030, rows).astype(float)
    now = stored + rng.integers(-3, 100, rows)
    windows = (7, 30, 90)
    together = bucket_windows(buckets, stored, now, windows)
    for w, window in enumerate(windows):
        alone = bucket_windows(buckets, stored, now, (window,))[:, :, 0]
        assert together[:, :, w].tobytes() == alone.tobytes()
