"""Feature table ``company_firmographics`` (key ``company_id``): one row per company snapshot.

A company's firmographics change only through registry changes (工商变更), which the canonical
``companies`` table already records as dated snapshots, so each snapshot is a feature row stamped at
its ``snapshot_at``: a point-in-time join then picks the registry state known at the row's time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.jobs.raw import RawTables, require
from features.jobs.timeline import feature_table, to_ns, utc_timestamp

TABLE = "company_firmographics"
KEY = "company_id"
_DAYS_PER_YEAR = 365.25


def _counts(values: np.ndarray) -> np.ndarray:
    """int64 counts; an imported company with unknown headcount keeps None (a null int64 in Parquet)."""
    missing = np.isnan(values)
    if not missing.any():
        return values.astype(np.int64)
    out = np.empty(len(values), dtype=object)
    out[missing] = None
    out[~missing] = [int(v) for v in values[~missing]]
    return out


def build_company_firmographics(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Snapshots taken at or before ``as_of``, with size on a log scale and age at the snapshot.

    ``log_headcount`` is log10(1 + insured headcount): sizes span four orders of magnitude and the
    log makes them comparable. ``company_age_years`` counts from 1 January of the founding year
    (only the year is known) to the snapshot; unknown when the year is. A repeated (company,
    snapshot_at) keeps the last row.
    """
    (companies,) = require(raw, "companies")
    snap_ns = to_ns(companies["snapshot_at"])
    keep = snap_ns <= to_ns([utc_timestamp(as_of)])[0]
    frame = companies.loc[keep].assign(_t=snap_ns[keep])
    frame = frame.drop_duplicates([KEY, "_t"], keep="last")
    snap_ns = frame["_t"].to_numpy(dtype="datetime64[ns]")
    headcount = frame["insured_headcount"].to_numpy(dtype=np.float64, na_value=np.nan)
    year = frame["founded_year"].to_numpy(dtype=np.float64, na_value=np.nan)
    known_year = ~np.isnan(year)
    founded = np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")
    if known_year.any():
        founded[known_year] = pd.to_datetime(
            {"year": year[known_year].astype(np.int64), "month": 1, "day": 1}
        ).to_numpy(dtype="datetime64[ns]")
    age = (snap_ns - founded).astype(np.int64) / (86_400e9 * _DAYS_PER_YEAR)
    columns = {
        "industry": frame["industry"].to_numpy(dtype=object),
        "country": frame["country"].to_numpy(dtype=object),
        "registered_capital_cny": frame["registered_capital_cny"].to_numpy(dtype=np.float64),
        "insured_headcount": _counts(headcount),
        "log_headcount": np.log10(1.0 + headcount),
        "revenue_band": frame["revenue_band"].to_numpy(dtype=object),
        "company_age_years": np.where(known_year, age, np.nan),
    }
    return feature_table(KEY, frame[KEY].to_numpy(dtype=object), snap_ns, columns)
