"""Counting events in trailing time windows at query points, vectorised.

The one primitive behind every windowed aggregate: the world generator uses it to apply its
mechanisms (what a company had done before a lead was created) and the feature jobs use it to
build feature tables, so "events in the 7 days before t" means the same thing everywhere.
Events at exactly ``t`` count; events at ``t - window`` do not: the window is ``(t - w, t]``.
"""

from __future__ import annotations

import numpy as np

_S_PER_DAY = 86_400


def _keyed(keys: np.ndarray, ts_ns: np.ndarray, span_ns: int) -> np.ndarray:
    # Lay entities end to end on one axis so a single searchsorted serves all of them; whole
    # seconds keep key * span inside int64 for tens of millions of entities.
    return keys.astype(np.int64) * span_ns + ts_ns


def trailing_counts(
    event_keys: np.ndarray,
    event_ts: np.ndarray,
    query_keys: np.ndarray,
    query_ts: np.ndarray,
    window_days: float | None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """For each query (key, t): count (or sum ``weights``) of events with that key in ``(t - w, t]``.

    Keys are non-negative integer codes; timestamps are ``datetime64`` (UTC, naive) arrays, compared
    at whole-second resolution (canonical tables store seconds).
    ``window_days=None`` means all history up to ``t``.
    """
    ev_ns = event_ts.astype("datetime64[s]").astype(np.int64)
    q_ns = query_ts.astype("datetime64[s]").astype(np.int64)
    if len(ev_ns) == 0:
        return np.zeros(len(q_ns), dtype=np.float64 if weights is not None else np.int64)
    lo = min(ev_ns.min(), q_ns.min() if len(q_ns) else ev_ns.min())
    hi = max(ev_ns.max(), q_ns.max() if len(q_ns) else ev_ns.max())
    pad = int((window_days or 0) * _S_PER_DAY) + 1
    span = int(hi - lo) + 2 * pad + 1
    ev = _keyed(event_keys, ev_ns - lo + pad, span)
    order = np.argsort(ev, kind="stable")
    ev_sorted = ev[order]
    q_hi = _keyed(query_keys, q_ns - lo + pad, span)
    right = np.searchsorted(ev_sorted, q_hi, side="right")
    if window_days is None:
        left = np.searchsorted(ev_sorted, query_keys.astype(np.int64) * span, side="left")
    else:
        left = np.searchsorted(ev_sorted, q_hi - int(window_days * _S_PER_DAY), side="right")
    if weights is None:
        return (right - left).astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(weights, dtype=np.float64)[order])])
    return cum[right] - cum[left]


def last_event_before(
    event_keys: np.ndarray, event_ts: np.ndarray, query_keys: np.ndarray, query_ts: np.ndarray
) -> np.ndarray:
    """Timestamp of the latest event with the query's key at or before t (NaT when none)."""
    ev_ns = event_ts.astype("datetime64[s]").astype(np.int64)
    q_ns = query_ts.astype("datetime64[s]").astype(np.int64)
    out = np.full(len(q_ns), np.datetime64("NaT"), dtype="datetime64[ns]")
    if len(ev_ns) == 0:
        return out
    lo = min(ev_ns.min(), q_ns.min() if len(q_ns) else ev_ns.min())
    hi = max(ev_ns.max(), q_ns.max() if len(q_ns) else ev_ns.max())
    span = int(hi - lo) + 2
    ev = _keyed(event_keys, ev_ns - lo + 1, span)
    order = np.argsort(ev, kind="stable")
    ev_sorted = ev[order]
    q = _keyed(query_keys, q_ns - lo + 1, span)
    idx = np.searchsorted(ev_sorted, q, side="right") - 1
    valid = idx >= 0
    valid[valid] = (ev_sorted[idx[valid]] // span) == query_keys[valid].astype(np.int64)
    out[valid] = (ev_ns[order][idx[valid]]).astype("datetime64[s]").astype("datetime64[ns]")
    return out


def utc_day(ts: np.ndarray) -> np.ndarray:
    """Whole UTC days since the epoch of each instant (``datetime64``; NaT is not allowed)."""
    return np.floor_divide(ts.astype("datetime64[s]").astype(np.int64), _S_PER_DAY)


def daily_buckets(
    event_keys: np.ndarray,
    event_ts: np.ndarray,
    query_keys: np.ndarray,
    query_ts: np.ndarray,
    days: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``[query, k]``: count (or sum of ``weights``) of the key's events on UTC day ``day(t) - k``.

    ``k = 0`` is the query's own day up to and including ``t``; ``k = 1 .. days - 1`` are whole days
    before it. Stored beside ``utc_day(t)``, these let :func:`bucket_window` count any trailing
    window of up to ``days - 1`` whole days at any later instant, which is what request-time
    features need: the stored row does not have to be dated at the request.
    """
    ev_s = event_ts.astype("datetime64[s]").astype(np.int64)
    q_s = query_ts.astype("datetime64[s]").astype(np.int64)
    out = np.zeros((len(q_s), days), dtype=np.float64 if weights is not None else np.int64)
    if len(ev_s) == 0 or len(q_s) == 0:
        return out
    lo = min(ev_s.min(), q_s.min()) - days * _S_PER_DAY - 1
    hi = max(ev_s.max(), q_s.max()) + 1
    span = int(hi - lo) + 1
    ev = _keyed(event_keys, ev_s - lo, span)
    order = np.argsort(ev, kind="stable")
    ev_sorted = ev[order]
    w = np.ones(len(ev_s)) if weights is None else np.asarray(weights, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(w[order])])

    def upto(instant_s: np.ndarray) -> np.ndarray:  # events of the key at or before each instant
        return cum[np.searchsorted(ev_sorted, _keyed(query_keys, instant_s - lo, span), side="right")]

    midnight = np.floor_divide(q_s, _S_PER_DAY) * _S_PER_DAY
    later = upto(q_s)
    for k in range(days):
        earlier = upto(midnight - k * _S_PER_DAY - 1)
        out[:, k] = np.rint(later - earlier) if weights is None else later - earlier
        later = earlier
    return out


def bucket_window(
    buckets: np.ndarray, stored_day: np.ndarray, now_day: np.ndarray, window_days: int
) -> np.ndarray:
    """Sum of ``daily_buckets`` (stored on ``stored_day``) over the window at ``now_day``.

    The window is today so far plus the ``window_days`` whole UTC days before it. Days between the
    stored row and now have no events (a later event would have written a later row), so each day
    passed drops one stored bucket off the far end. A request dated before its stored row cannot
    forget what the row saw: it reads the row as it stands (no negative shift). Rows with no stored
    day (NaN) read zero.
    """
    return bucket_windows(buckets[:, None, :], stored_day, now_day, (window_days,))[:, 0, 0]


def bucket_windows(
    buckets: np.ndarray, stored_day: np.ndarray, now_day: np.ndarray, windows_days: tuple[int, ...]
) -> np.ndarray:
    """``[row, series, window]``: :func:`bucket_window` of every series of ``buckets`` (``[row,
    series, k]``, all stored on the row's ``stored_day``) for every window, in one pass.

    The series of one view share their stored day, so the day arithmetic is done once for all of
    them; for one lead this was 25 separate passes of a dozen numpy calls each.
    """
    days = buckets.shape[2]
    known = ~np.isnan(stored_day)
    shift = np.where(known, np.maximum(now_day - np.where(known, stored_day, 0), 0), days)
    filled = np.array(buckets, dtype=np.float64)
    np.copyto(filled, 0.0, where=np.isnan(filled))  # a missing bucket counts nothing
    if np.isinf(filled).any():  # as ``nan_to_num`` reads an infinite one (never a count)
        filled = np.nan_to_num(filled)
    # a window keeps buckets ``k <= window - shift``: ``last[row, window]`` (-1 keeps none)
    last = np.clip(np.floor(np.asarray(windows_days)[None, :] - shift[:, None]), -1, days - 1).astype(
        np.int64
    )
    out = np.empty((filled.shape[0], filled.shape[1], len(windows_days)))
    whole = _whole_number_series(filled)
    if whole.any():
        # counts: a prefix sum read at ``last``. Sums of whole numbers below 2**53 are exact in any
        # order, so this equals the masked sum below to the last bit, at a fraction of its work
        prefix = np.zeros((filled.shape[0], int(whole.sum()), days + 1))
        np.cumsum(filled[:, whole], axis=2, out=prefix[:, :, 1:])
        out[:, whole] = np.take_along_axis(
            prefix, np.broadcast_to((last + 1)[:, None, :], (*prefix.shape[:2], last.shape[1])), axis=2
        )
    if not whole.all():
        # amounts (budgets): every window at once, ``keep[row, window, k]``; each sum adds the same
        # ``days`` values in the same order as a window at a time did, the same to the last bit
        keep = np.arange(days)[None, None, :] <= last[:, :, None]
        out[:, ~whole] = np.where(keep[:, None, :, :], filled[:, ~whole, None, :], 0.0).sum(axis=3)
    return out


def _whole_number_series(filled: np.ndarray) -> np.ndarray:
    """Per series of ``[row, series, k]``: every value a whole number, and any sum of them exact."""
    whole = (filled == np.trunc(filled)).all(axis=(0, 2))
    return whole & (np.abs(filled).sum(axis=(0, 2)) < 2.0**53)
