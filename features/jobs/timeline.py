"""Time conversions and table finishing shared by every feature job.

Canonical tables carry ``timestamp[us, tz=UTC]`` columns; the window primitives in
``features.windows`` want naive UTC ``datetime64[ns]`` arrays; feature tables must again carry
``timestamp[us, tz=UTC]``. These functions are the only place that crosses between the three, so a
time zone or unit slip is fixed once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 10**9
NS_PER_WEEK = 7 * NS_PER_DAY
EVENT_TIMESTAMP = "event_timestamp"
# 1970-01-05 was a Monday: Mondays 00:00 UTC are exactly the instants congruent to it modulo a week.
_EPOCH_MONDAY_NS = 4 * NS_PER_DAY


def to_ns(values: pd.Series | pd.Index | Sequence[object]) -> np.ndarray:
    """Naive UTC ``datetime64[ns]`` array of ``values``, floored to whole seconds; nulls become NaT.

    Values may be tz-aware or naive (taken as UTC). Canonical tables hold whole seconds and
    ``features.windows`` compares whole seconds, so flooring here keeps every later equality lookup
    (the stage in force at the last stage event, the latest NPS) exact.
    """
    stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).tz_convert(None).floor("s")
    return stamps.to_numpy(dtype="datetime64[ns]")


def to_int_ns(values: pd.Series | pd.Index | Sequence[object]) -> np.ndarray:
    """Nanoseconds since the epoch as int64 (NaT becomes ``iinfo(int64).min``, so test ``isnat`` first)."""
    return to_ns(values).astype(np.int64)


def as_utc(ns: np.ndarray) -> pd.DatetimeIndex:
    """The feature-table form of a naive-UTC array: tz-aware UTC at microsecond unit."""
    return pd.DatetimeIndex(np.asarray(ns).astype("datetime64[ns]")).tz_localize("UTC").as_unit("us")


def utc_timestamp(value: pd.Timestamp | str) -> pd.Timestamp:
    """``value`` as a tz-aware UTC timestamp (a naive value is taken to be UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def days_between(later_ns: np.ndarray, earlier_ns: np.ndarray) -> np.ndarray:
    """``later - earlier`` in (fractional) days as float64; NaN where either side is NaT."""
    later = np.asarray(later_ns).astype("datetime64[ns]")
    earlier = np.asarray(earlier_ns).astype("datetime64[ns]")
    out = (later.astype(np.int64) - earlier.astype(np.int64)) / NS_PER_DAY
    return np.where(np.isnat(later) | np.isnat(earlier), np.nan, out)


def epoch_seconds(ns: np.ndarray) -> np.ndarray:
    """Seconds since the epoch as float64 (NaN for NaT): how last-event times are stored."""
    ns = np.asarray(ns).astype("datetime64[ns]")
    return np.where(np.isnat(ns), np.nan, ns.astype("datetime64[s]").astype(np.int64).astype(np.float64))


def first_monday_after(ns: np.ndarray) -> np.ndarray:
    """For each int64-ns instant, the first Monday 00:00 UTC strictly after it (int64 ns)."""
    weeks_done = np.floor_divide(ns - _EPOCH_MONDAY_NS, NS_PER_WEEK)
    return _EPOCH_MONDAY_NS + (weeks_done + 1) * NS_PER_WEEK


def first_monday_at_or_after(ns: np.ndarray) -> np.ndarray:
    """For each int64-ns instant, the first Monday 00:00 UTC at or after it (int64 ns)."""
    return first_monday_after(ns - 1)


def weekly_points(
    first_ns: np.ndarray, last_ns: np.ndarray, owners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expand per-owner spans into weekly instants ``first, first + 1w, ... <= last``.

    ``first_ns`` must already sit on the weekly grid. Returns ``(owner_index, t_ns)`` with one entry
    per instant; owners whose span is empty (``last < first``) contribute nothing. Vectorised with
    ``np.repeat`` so a hundred thousand owners cost milliseconds.
    """
    counts = np.where(last_ns >= first_ns, (last_ns - first_ns) // NS_PER_WEEK + 1, 0).astype(np.int64)
    owner_index = np.repeat(owners, counts)
    starts = np.repeat(first_ns, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner_index, starts + offsets * NS_PER_WEEK


def month_starts(start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """First-of-month 00:00 UTC instants in ``[start, end]`` as naive-UTC ``datetime64[ns]``."""
    first = utc_timestamp(start).tz_convert(None).normalize()
    if first.day != 1:
        first = first + pd.offsets.MonthBegin(1)
    months = pd.date_range(first, utc_timestamp(end).tz_convert(None), freq="MS")
    return months.to_numpy(dtype="datetime64[ns]")


def entity_index(*ids: np.ndarray) -> pd.Index:
    """Sorted unique non-null entity ids from ``ids``; codes into it order rows as the ids sort."""
    values = pd.unique(np.concatenate([np.asarray(v, dtype=object) for v in ids]))
    return pd.Index(np.sort(values[pd.notna(values)]).astype(object))


def query_points(keys: np.ndarray, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(key, t)`` query points sorted by key then time, as ``(int64 keys, datetime64[ns])``.

    Sorted needles matter for speed: numpy's ``searchsorted`` starts each search from the previous
    hit when needles ascend, which makes the window primitive several times faster on a million
    rows; and sorted rows are already in feature-table order.
    """
    keys = np.asarray(keys, dtype=np.int64)
    ts = np.asarray(ts_ns).astype("datetime64[ns]").astype(np.int64)
    order = np.lexsort((ts, keys))
    keys, ts = keys[order], ts[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = (keys[1:] != keys[:-1]) | (ts[1:] != ts[:-1])
    return keys[first], ts[first].astype("datetime64[ns]")


def _int_or_float(values: np.ndarray) -> np.ndarray:
    if values.dtype == bool or (values.dtype.kind in "iu" and values.dtype != np.int64):
        return values.astype(np.int64)
    if values.dtype.kind == "f" and values.dtype != np.float64:
        return values.astype(np.float64)
    return values


def feature_table(
    key: str, ids: np.ndarray, ts_ns: np.ndarray, columns: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Assemble a feature table: ``key``, ``event_timestamp``, then ``columns``, sorted by (key, time).

    This is the column contract Feast and training rely on: ``event_timestamp`` is tz-aware UTC at
    microsecond unit, floats are float64, integers and booleans int64 (0/1), string columns stay
    object (categoricals), and rows are ordered by entity then time with a fresh RangeIndex.
    Rows built in that order already (the usual case) are not re-sorted.
    """
    ids = np.asarray(ids, dtype=object)
    ts = np.asarray(ts_ns).astype("datetime64[ns]")
    order: np.ndarray | None = None
    if len(ids) > 1:
        same = ids[1:] == ids[:-1]
        ascending = (ids[1:] > ids[:-1]) | (same & (ts[1:] >= ts[:-1]))
        if not ascending.all():
            order = np.lexsort((ts, pd.factorize(ids, sort=True)[0]))
    data = {key: ids, EVENT_TIMESTAMP: ts, **{c: _int_or_float(np.asarray(v)) for c, v in columns.items()}}
    if order is not None:
        data = {c: v[order] for c, v in data.items()}
    data[EVENT_TIMESTAMP] = as_utc(data[EVENT_TIMESTAMP])
    return pd.DataFrame(data, copy=False)  # no consolidation copy: a million rows x 30 columns
