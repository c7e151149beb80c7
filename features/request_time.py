"""Request-time features of a lead: the one implementation used by training and by the service.

A lead's score mixes what the CRM sends at creation (channel, role, country, time zone, product
interest, the creation time) with the company's stored features (firmographics, behaviour,
tenders). Some inputs only make sense together, computed at request time: the lead's local hour and
weekday, whether its country is in a holiday week, its UTC offset, the industry x product pair and
the open tenders in the product line it asks about. Training calls :func:`lead_model_frame` on
point-in-time joined rows; the service calls it on one request merged with online features. Both
get exactly the same columns, so the model never sees a feature computed two ways.

Offline equals online: trailing windows and ages are computed here, at the request's time (the
lead's ``created_at``), never read as stored numbers. The behaviour and tender views store what the
windows are made of: daily event buckets (``features.windows.daily_buckets``) with the UTC day they
were stored on, and the last event's time. Training joins the latest stored row at or before each
lead's creation and calls this function with that creation time as "now"; the service reads the
latest online row and calls it with the request's ``created_at``. Both rows hold the same buckets
(no event falls between them), so both get the same counts and ages, however old the row is.

A window of ``w`` days is today (UTC) up to the request plus the ``w`` whole days before it.
Missing stored rows mean "nothing happened": a company with no behaviour or tender row gets zero
counts and unknown recency, in training and in serving alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd

from features.catalog import (
    BEHAVIOR_EVENT_TYPES,
    BEHAVIOR_WINDOWS_DAYS,
    CHANNELS,
    CONTACT_ROLES,
    COUNTRIES,
    INDUSTRIES,
    INTENT_COMBO_MIN_COMPARISONS,
    LANGUAGES,
    PRODUCT_LINE_NAMES,
)
from features.rep_roster import ROSTER_COLUMNS, RepRoster, roster_facts
from features.windows import bucket_windows

# Stored in the behaviour and tender views: the UTC day their buckets end on, the last event's
# time (seconds since the epoch), and per series an array of daily buckets (``<name>_daily``): one
# Feast array feature rather than a column per day keeps materialisation to a few values per row.
# (two names: Feast rejects one feature name in two views of a service unless names are prefixed)
BEHAVIOR_STORED_DAY = "behavior_stored_day"
TENDER_STORED_DAY = "tender_stored_day"
LAST_EVENT_AT = "last_event_at"
LAST_TENDER_AT = "last_tender_at"
BEHAVIOR_BUCKET_DAYS = max(BEHAVIOR_WINDOWS_DAYS) + 1
TENDER_WINDOWS_DAYS = (30, 90)
TENDER_BUCKET_DAYS = max(TENDER_WINDOWS_DAYS) + 1
TENDER_BUCKETS = ("tenders", "tender_budget")  # notices published, their budgets (CNY)


def daily_column(name: str) -> str:
    """The stored daily buckets of one series: one array per row, ``[k]`` = day ``stored_day - k``."""
    return f"{name}_daily"


def rows_of_buckets(buckets: np.ndarray) -> np.ndarray:
    """``[row, k]`` buckets as a column of per-row arrays (how a table stores them)."""
    column = np.empty(len(buckets), dtype=object)
    column[:] = list(buckets)
    return column


# Columns the CRM sends for a lead at creation (the service's request, the training rows).
LEAD_REQUEST_COLUMNS = (
    "created_at",
    "channel",
    "utm_source",
    "contact_role",
    "country",
    "timezone",
    "language",
    "product_interest",
)

# Count features whose missing row means zero (stored as ``<view>__<feature>``).
_BEHAVIOR_COUNTS = [
    *(f"company_behavior__{t}_{w}d" for t in BEHAVIOR_EVENT_TYPES for w in BEHAVIOR_WINDOWS_DAYS),
    "company_behavior__events_30d",
    "company_behavior__intent_combo",
]
_TENDER_COUNTS = [
    "company_tenders__tenders_30d",
    "company_tenders__tenders_90d",
    "company_tenders__tender_budget_90d_cny",
    "company_tenders__open_tenders",
    *(f"company_tenders__open_tenders_{line}" for line in PRODUCT_LINE_NAMES),
]
_FIRMOGRAPHIC_NUMBERS = [
    "company_firmographics__registered_capital_cny",
    "company_firmographics__log_headcount",
    "company_firmographics__company_age_years",
]
_RECENCY = ["company_behavior__days_since_last_event", "company_tenders__days_since_last_tender"]

# What the lead-score model sees: categorical columns (with their levels) and numeric columns.
LEAD_CATEGORICAL_LEVELS: dict[str, tuple[str, ...]] = {
    "channel": CHANNELS,
    "contact_role": CONTACT_ROLES,
    "product_interest": PRODUCT_LINE_NAMES,
    "industry": INDUSTRIES,
    "industry_product": tuple(f"{i}:{p}" for i in INDUSTRIES for p in PRODUCT_LINE_NAMES),
    "language": LANGUAGES,
    "country": tuple(c.code for c in COUNTRIES),
}
LEAD_NUMERIC_COLUMNS = (
    *_BEHAVIOR_COUNTS,
    *_TENDER_COUNTS,
    *_FIRMOGRAPHIC_NUMBERS,
    *_RECENCY,
    "open_tenders_in_interest",
    "local_hour",
    "local_weekday",
    "utc_hour",
    "utc_offset_hours",
    "holiday_week",
    *ROSTER_COLUMNS,
)
LEAD_MODEL_COLUMNS = (*LEAD_CATEGORICAL_LEVELS, *LEAD_NUMERIC_COLUMNS)


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> frozenset[tuple[int, int]]:
    """ISO (year, week) pairs holding a public holiday of ``country`` in ``year``."""
    try:
        days = holidays.country_holidays(country, years=[year])
    except NotImplementedError:
        return frozenset()
    return frozenset((d.isocalendar()[0], d.isocalendar()[1]) for d in days)


def holiday_week(years: np.ndarray, weeks: np.ndarray, country: np.ndarray) -> np.ndarray:
    """1 where local ISO week ``(years, weeks)`` holds a public holiday in ``country``."""
    out = np.zeros(len(country), dtype=np.float64)
    for i, (c, y, w) in enumerate(zip(country, years, weeks, strict=True)):
        if isinstance(c, str) and c:
            # the ISO week can straddle New Year, so look in both calendar years
            y, w = int(y), int(w)
            out[i] = float((y, w) in _holidays(c, y) or (y, w) in _holidays(c, y + 1))
    return out


_SMALL = 64  # below this many rows per zone, plain datetime beats pandas' vectorised setup cost


@dataclass(frozen=True)
class LocalClock:
    hour: np.ndarray  # local hour + minute/60
    weekday: np.ndarray
    iso_year: np.ndarray
    iso_week: np.ndarray
    utc_hour: np.ndarray
    utc_offset_hours: np.ndarray  # NaN where the zone is unknown


def local_clock(created_utc: np.ndarray, timezone: np.ndarray) -> LocalClock:
    """Local wall-clock facts of each instant in its zone (UTC clock, NaN offset, where unknown)."""
    n = len(created_utc)
    hour, weekday, year, week, offset = (np.empty(n) for _ in range(5))
    instants = created_utc.astype("datetime64[s]")
    zones = np.array([z if isinstance(z, str) and z else "" for z in timezone], dtype=object)
    for zone in dict.fromkeys(zones):  # distinct, in order: pd.unique sets up more than one row needs
        mask = np.flatnonzero(zones == zone)
        tz = ZoneInfo(zone) if zone else UTC
        if len(mask) < _SMALL:
            for i in mask:
                utc = datetime.fromtimestamp(int(instants[i].astype(np.int64)), UTC)
                local = utc.astimezone(tz)
                iso = local.isocalendar()
                hour[i] = local.hour + local.minute / 60.0
                weekday[i], year[i], week[i] = local.weekday(), iso[0], iso[1]
                off = local.utcoffset()
                offset[i] = off.total_seconds() / 3600.0 if off is not None else 0.0
        else:
            utc = pd.DatetimeIndex(instants[mask]).tz_localize("UTC")
            local = utc.tz_convert(zone or "UTC").tz_localize(None)
            iso = local.isocalendar()
            hour[mask] = local.hour + local.minute / 60.0
            weekday[mask] = local.weekday
            year[mask], week[mask] = iso["year"].to_numpy(), iso["week"].to_numpy()
            offset[mask] = (local - utc.tz_localize(None)).total_seconds().to_numpy() / 3600.0
        if not zone:
            offset[mask] = np.nan
    seconds = instants.astype(np.int64) % 86_400
    utc_hour = (seconds // 3600) + (seconds % 3600 // 60) / 60.0
    return LocalClock(hour, weekday, year, week, utc_hour.astype(float), offset)


def _numbers(values: object, n: int, fill: float | None) -> np.ndarray:
    if values is None:
        out = np.full(n, np.nan)
    else:
        arr = np.asarray(values)
        out = (
            arr.astype(float)
            if arr.dtype.kind in "fiub"
            else pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(float)
        )
    return np.where(np.isnan(out), fill, out) if fill is not None else out


def _stored(rows: Mapping[str, object], names: Sequence[str], days: int, n: int) -> np.ndarray:
    """``[row, series, k]`` float matrix of the stored bucket arrays of ``names`` (NaN where missing)."""
    out = np.full((n, len(names), days), np.nan)
    for s, name in enumerate(names):
        values = rows.get(name)
        if values is None:
            continue
        if isinstance(values, np.ndarray) and values.ndim == 2:  # a batch's ``[row, day]`` matrix
            width = min(days, values.shape[1])
            out[:, s, :width] = values[:, :width]
            continue
        # arrays offline, lists online, None / NaN when absent
        present = [
            i for i, v in enumerate(values) if v is not None and not (isinstance(v, float) and np.isnan(v))
        ]
        if n < _SMALL:  # a request's row or few: a slice each costs less than stacking them first
            for i in present:
                width = min(days, len(values[i]))
                out[i, s, :width] = values[i][:width]
            continue
        lengths = {len(values[i]) for i in present}
        if len(lengths) == 1:  # the usual case: one conversion for the whole column
            width = min(days, lengths.pop())
            out[present, s, :width] = np.array([values[i] for i in present], dtype=np.float64)[:, :width]
            continue
        for i in present:
            stored = np.asarray(values[i], dtype=np.float64)
            out[i, s, : min(days, len(stored))] = stored[:days]
    return out


def _age_days(now_s: np.ndarray, last_s: np.ndarray) -> np.ndarray:
    """Days from the last event to now (NaN when there was none; 0 for a request dated before it)."""
    return np.maximum(now_s - last_s, 0.0) / 86_400.0


def trailing_features(rows: Mapping[str, object], created: np.ndarray) -> dict[str, np.ndarray]:
    """Behaviour and tender windows and ages at each row's ``created`` instant, from stored buckets."""
    n = len(created)
    now_s = created.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    now_day = np.floor_divide(now_s, 86_400.0)
    out: dict[str, np.ndarray] = {}
    day = _numbers(rows.get(f"company_behavior__{BEHAVIOR_STORED_DAY}"), n, None)
    names = [f"company_behavior__{daily_column(t)}" for t in BEHAVIOR_EVENT_TYPES]
    windows = bucket_windows(
        _stored(rows, names, BEHAVIOR_BUCKET_DAYS, n), day, now_day, BEHAVIOR_WINDOWS_DAYS
    )
    total = np.zeros(n)
    for s, event_type in enumerate(BEHAVIOR_EVENT_TYPES):
        for w, window in enumerate(BEHAVIOR_WINDOWS_DAYS):
            out[f"company_behavior__{event_type}_{window}d"] = windows[:, s, w]
        total += out[f"company_behavior__{event_type}_30d"]
    out["company_behavior__events_30d"] = total
    out["company_behavior__intent_combo"] = (
        (out["company_behavior__competitor_comparison_view_30d"] >= INTENT_COMBO_MIN_COMPARISONS)
        & (out["company_behavior__whitepaper_download_30d"] >= 1)
        & (out["company_behavior__service_needs_form_30d"] >= 1)
    ).astype(np.float64)
    out["company_behavior__days_since_last_event"] = _age_days(
        now_s, _numbers(rows.get(f"company_behavior__{LAST_EVENT_AT}"), n, None)
    )
    day = _numbers(rows.get(f"company_tenders__{TENDER_STORED_DAY}"), n, None)
    series = (("tenders", "tenders_{w}d"), ("tender_budget", "tender_budget_{w}d_cny"))
    names = [f"company_tenders__{daily_column(name)}" for name, _ in series]
    windows = bucket_windows(_stored(rows, names, TENDER_BUCKET_DAYS, n), day, now_day, TENDER_WINDOWS_DAYS)
    for s, (_, feature) in enumerate(series):
        for w, window in enumerate(TENDER_WINDOWS_DAYS):
            out[f"company_tenders__{feature.format(w=window)}"] = windows[:, s, w]
    out["company_tenders__days_since_last_tender"] = _age_days(
        now_s, _numbers(rows.get(f"company_tenders__{LAST_TENDER_AT}"), n, None)
    )
    return out


def lead_model_columns(
    rows: Mapping[str, Sequence[object] | np.ndarray],
    stored: Sequence[str] = (),
    roster: RepRoster | None = None,
) -> dict[str, np.ndarray]:
    """The lead-score model's input columns (``LEAD_MODEL_COLUMNS``) as arrays, from column arrays.

    ``rows`` maps ``LEAD_REQUEST_COLUMNS`` plus the lead-score feature service's features (named
    ``<view>__<feature>``; missing ones read as unknown or zero, see the module doc) to equal-length
    sequences. ``created_at`` is UTC (tz-aware pandas values or naive UTC ``datetime64``).
    ``stored`` names further stored features a newer feature service adds (``lead_score_v2``'s
    trend view): they are passed through as they are, a missing one as unknown (None).
    ``roster`` is the rep roster the routing facts (``features.rep_roster.ROSTER_COLUMNS``) are read
    from: training's reps tables, the service's routing directory; None leaves them unknown (NaN).
    """
    n = len(rows["created_at"])

    def text(name: str) -> np.ndarray:
        values = rows.get(name)
        if values is None:
            return np.full(n, None, dtype=object)
        return np.array([v if isinstance(v, str) and v else None for v in values], dtype=object)

    created = np.asarray(rows["created_at"])
    if created.dtype.kind == "M":  # naive UTC already (the service): pandas' parsing costs more than the rest
        created = created.astype("datetime64[ns]")
    else:
        created = pd.DatetimeIndex(pd.to_datetime(created, utc=True)).tz_localize(None).to_numpy()
    clock = local_clock(created, text("timezone"))
    industry, product = text("company_firmographics__industry"), text("product_interest")
    out: dict[str, np.ndarray] = {
        "channel": text("channel"),
        "contact_role": text("contact_role"),
        "product_interest": product,
        "industry": industry,
        "industry_product": np.array(
            [
                f"{i}:{p}" if i is not None and p is not None else None
                for i, p in zip(industry, product, strict=True)
            ],
            dtype=object,
        ),
        "language": text("language"),
        "country": text("country"),
    }
    trailing = trailing_features(rows, created)
    for name in (*_BEHAVIOR_COUNTS, *_TENDER_COUNTS):
        out[name] = trailing[name] if name in trailing else _numbers(rows.get(name), n, 0.0)
    for name in (*_FIRMOGRAPHIC_NUMBERS, *_RECENCY):
        out[name] = trailing[name] if name in trailing else _numbers(rows.get(name), n, None)
    in_interest = np.zeros(n)
    for line in PRODUCT_LINE_NAMES:
        mask = product == line
        if mask.any():
            in_interest[mask] = out[f"company_tenders__open_tenders_{line}"][mask]
    out["open_tenders_in_interest"] = in_interest
    out["local_hour"] = clock.hour
    out["local_weekday"] = clock.weekday
    out["utc_hour"] = clock.utc_hour
    out["utc_offset_hours"] = clock.utc_offset_hours
    out["holiday_week"] = holiday_week(clock.iso_year, clock.iso_week, out["country"])
    out |= _roster_columns(roster, created, clock.utc_offset_hours, out["language"])
    passed = {name: np.asarray(rows[name]) if name in rows else np.full(n, None) for name in stored}
    return {**{name: out[name] for name in LEAD_MODEL_COLUMNS}, **passed}


@lru_cache(maxsize=1024)
def _zones_at(zones: tuple[str, ...], minute_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local weekday, hour (fractional) and UTC offset of each zone at one minute (epoch seconds):
    what ``local_clock`` gives, for a request's few leads without its per-call setup."""
    utc = datetime.fromtimestamp(minute_s, UTC)
    local = [utc.astimezone(ZoneInfo(zone)) for zone in zones]
    offset = [(t.utcoffset() or timedelta()).total_seconds() / 3600.0 for t in local]
    return (
        np.array([t.weekday() for t in local], dtype=float),
        np.array([t.hour + t.minute / 60.0 for t in local]),
        np.array(offset),
    )


def _roster_columns(
    roster: RepRoster | None, created: np.ndarray, lead_offset: np.ndarray, language: np.ndarray
) -> dict[str, np.ndarray]:
    """The roster facts at each lead's creation: the local clock of every rep zone, then ``roster_facts``."""
    n = len(created)
    if roster is None:
        return roster_facts(None, *(np.empty((n, 0)),) * 3, lead_offset, language)
    # every rep zone's clock once per distinct minute (a batch scored "now" shares one)
    minutes, at = np.unique(created.astype("datetime64[m]"), return_inverse=True)
    if len(minutes) == 0:
        weekday = hour = offset = np.empty((0, len(roster.zones)))
    elif len(minutes) < _SMALL:
        seconds = minutes.astype("datetime64[s]").astype(np.int64)
        weekday, hour, offset = (
            np.stack(a) for a in zip(*(_zones_at(roster.zones, int(m)) for m in seconds), strict=True)
        )
    else:
        utc = pd.DatetimeIndex(minutes.astype("datetime64[ns]")).tz_localize("UTC")
        weekday, hour, offset = (np.empty((len(minutes), len(roster.zones))) for _ in range(3))
        for z, zone in enumerate(roster.zones):
            local = utc.tz_convert(zone).tz_localize(None)
            weekday[:, z] = local.weekday
            hour[:, z] = local.hour + local.minute / 60.0
            offset[:, z] = (local - utc.tz_localize(None)).total_seconds().to_numpy() / 3600.0
    at = at.reshape(-1)
    weekday, hour, offset = weekday[at], hour[at], offset[at]
    return roster_facts(roster, weekday, hour, offset, lead_offset, language)


def lead_model_frame(
    rows: pd.DataFrame, stored: Sequence[str] = (), roster: RepRoster | None = None
) -> pd.DataFrame:
    """``lead_model_columns`` over a DataFrame (training), returned as a DataFrame on the same index."""
    columns = lead_model_columns({name: rows[name].to_numpy() for name in rows.columns}, stored, roster)
    return pd.DataFrame(columns, index=rows.index)
