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


def _masked_sums(
    buckets: np.ndarray, stored: np.ndarray, now: np.ndarray, windows: tuple[int, ...]
) -> np.ndarray:
    """The windows as first written: every kept bucket summed, the others masked to zero."""
    days = buckets.shape[2]
    known = ~np.isnan(stored)
    shift = np.where(known, np.maximum(now - np.where(known, stored, 0), 0), days)
    filled = np.nan_to_num(buckets)
    keep = np.arange(days)[None, None, :] <= (np.asarray(windows)[None, :] - shift[:, None])[:, :, None]
    return np.where(keep[:, None, :, :], filled[:, :, None, :], 0.0).sum(axis=3)


def test_counts_by_prefix_sums_and_amounts_by_masked_sums_equal_the_masked_sums_to_the_bit() -> None:
    """Count series take a prefix-sum path (whole numbers add exactly in any order), amounts the
    masked sums; together they must give the masked sums' bytes, for any stored and request day."""
    rng = np.random.default_rng(5)
    rows, days = 400, 91
    counts = rng.integers(0, 40, (rows, 3, days)).astype(float)
    counts[:, 2] *= 2**40  # large whole numbers: still exact
    amounts = rng.lognormal(12, 2, (rows, 1, days)) * rng.random((rows, 1, days))
    buckets = np.concatenate([counts, amounts], axis=1)
    buckets[rng.random(buckets.shape) < 0.1] = np.nan
    stored = rng.integers(19_000, 19_030, rows).astype(float)
    stored[:10] = np.nan
    now = stored + rng.integers(-3, 100, rows)
    now[:10] = 19_010
    now[10:20] = stored[10:20] + 0.5  # half a day on: a 0-day window keeps nothing, as masked
    windows = (0, 7, 30, 90)
    got = bucket_windows(buckets, stored, now, windows)
    assert got.tobytes() == _masked_sums(buckets, stored, now, windows).tobytes()
    only_counts = bucket_windows(buckets[:, :3], stored, now, windows)
    assert only_counts.tobytes() == _masked_sums(buckets[:, :3], stored, now, windows).tobytes()
