"""Request-time features of a lead: the one implementation used by training and by the service.

A lead's score mixes what the CRM sends at creation (channel, role, country, time zone, product
interest, the creation time) with the company's stored features (firmographics, behaviour,
tenders). Some inputs only make sense together, computed at request time: the lead's local hour and
weekday, whether its country is in a holiday week, its UTC offset, the industry x product pair and
the open tenders in the product line it asks about. Training calls :func:`lead_model_frame` on
point-in-time joined rows; the service calls it on one request merged with online features. Both
get exactly the same columns, so the model never sees a feature computed two ways.

Missing stored rows mean "nothing happened": a company with no behaviour or tender row (never
active, or not active within the serving window) gets zero counts, in training and in serving alike.
"""

from __future__ import annotations

from functools import lru_cache

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
    LANGUAGES,
    PRODUCT_LINE_NAMES,
)
from features.timezones import utc_offset_hours

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


def holiday_week(local_time: pd.DatetimeIndex, country: np.ndarray) -> np.ndarray:
    """1 where the local ISO week of ``local_time`` holds a public holiday in ``country``."""
    iso = local_time.isocalendar()
    years, weeks = iso["year"].to_numpy(), iso["week"].to_numpy()
    out = np.zeros(len(local_time), dtype=np.int64)
    for i, (c, y, w) in enumerate(zip(country, years, weeks, strict=True)):
        if isinstance(c, str) and c:
            # the ISO week can straddle New Year, so look in both calendar years
            out[i] = int((y, w) in _holidays(c, int(y)) or (y, w) in _holidays(c, int(y) + 1))
    return out


def _local_times(created: pd.DatetimeIndex, timezone: np.ndarray) -> pd.DatetimeIndex:
    """Naive local wall-clock times (UTC where the timezone is unknown)."""
    local = created.tz_convert("UTC").tz_localize(None).to_numpy().copy()
    zones = pd.Series(timezone).fillna("UTC").replace("", "UTC").to_numpy()
    for zone in pd.unique(zones):
        mask = zones == zone
        local[mask] = created[mask].tz_convert(zone).tz_localize(None).to_numpy()
    return pd.DatetimeIndex(local)


def lead_model_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The lead-score model's input columns (``LEAD_MODEL_COLUMNS``) for request + stored-feature rows.

    ``rows`` holds ``LEAD_REQUEST_COLUMNS`` plus the lead-score feature service's features named
    ``<view>__<feature>`` (missing ones are allowed and read as unknown or zero, see the module doc).
    """
    n = len(rows)
    idx = rows.index

    def col(name: str, fill: float | None = None) -> pd.Series:
        if name in rows.columns:
            series = pd.to_numeric(rows[name], errors="coerce").astype("float64")
        else:
            series = pd.Series(np.nan, index=idx, dtype="float64")
        return series.fillna(fill) if fill is not None else series

    created = pd.DatetimeIndex(pd.to_datetime(rows["created_at"], utc=True))
    timezone = rows["timezone"].to_numpy(dtype=object)
    country = rows["country"].to_numpy(dtype=object)
    local = _local_times(created, timezone)
    industry = (
        rows["company_firmographics__industry"]
        if "company_firmographics__industry" in rows.columns
        else pd.Series([None] * n, index=idx, dtype=object)
    )
    product = rows["product_interest"].astype(object)
    in_interest = np.full(n, np.nan)
    for line in PRODUCT_LINE_NAMES:
        mask = (product == line).to_numpy()
        in_interest[mask] = col(f"company_tenders__open_tenders_{line}", 0.0).to_numpy()[mask]
    known_zone = pd.Series(timezone).fillna("").ne("").to_numpy()
    offset = np.full(n, np.nan)
    if known_zone.any():
        offset[known_zone] = utc_offset_hours(created[known_zone], timezone[known_zone])

    out = pd.DataFrame(index=idx)
    out["channel"] = rows["channel"].astype(object)
    out["contact_role"] = rows["contact_role"].astype(object)
    out["product_interest"] = product
    out["industry"] = industry.astype(object)
    out["industry_product"] = np.where(
        industry.notna().to_numpy() & product.notna().to_numpy(),
        industry.astype(str).to_numpy() + ":" + product.astype(str).to_numpy(),
        None,
    )
    out["language"] = rows["language"].astype(object)
    out["country"] = rows["country"].astype(object)
    for name in (*_BEHAVIOR_COUNTS, *_TENDER_COUNTS):
        out[name] = col(name, 0.0).to_numpy()
    for name in (*_FIRMOGRAPHIC_NUMBERS, *_RECENCY):
        out[name] = col(name).to_numpy()
    out["open_tenders_in_interest"] = in_interest
    out["local_hour"] = (local.hour + local.minute / 60.0).to_numpy(dtype=float)
    out["local_weekday"] = local.weekday.to_numpy(dtype=float)
    out["utc_hour"] = (created.hour + created.minute / 60.0).to_numpy(dtype=float)
    out["utc_offset_hours"] = offset
    out["holiday_week"] = holiday_week(local, country).astype(float)
    return out[list(LEAD_MODEL_COLUMNS)]
