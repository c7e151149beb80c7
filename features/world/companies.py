"""Companies and their firmographic snapshots (a registered-capital or headcount change is a new row)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import COUNTRIES, INDUSTRIES
from features.world import make_ids

_PROVINCES = ("Jiangsu", "Zhejiang", "Guangdong", "Shandong", "Shanghai", "Beijing", "Sichuan", "Hubei")
_REVENUE_BANDS = ("<10M", "10-50M", "50-200M", "200M-1B", ">1B")
CHANGE_SHARE = 0.25  # companies with one 工商变更 (capital / headcount change) inside the window


def generate_companies(
    rng: np.random.Generator, n: int, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Snapshots: every company has one at ``start - 1 year``; a quarter get a later change."""
    shares = np.array([c.lead_share for c in COUNTRIES])
    country_idx = rng.choice(len(COUNTRIES), size=n, p=shares / shares.sum())
    country = np.array([c.code for c in COUNTRIES])[country_idx]
    headcount = np.clip(np.exp(rng.normal(np.log(200), 1.3, n)), 10, 60_000).astype(np.int64)
    capital = np.round(headcount * np.exp(rng.normal(np.log(2e5), 0.8, n)), -4)
    base = pd.DataFrame(
        {
            "company_id": make_ids("c", np.arange(n)),
            "snapshot_at": start - pd.Timedelta(days=365),
            "industry": rng.choice(INDUSTRIES, size=n),
            "country": country,
            "province": np.where(country == "CN", rng.choice(_PROVINCES, size=n), ""),
            "registered_capital_cny": capital,
            "insured_headcount": headcount,
            "founded_year": rng.integers(1985, 2023, n).astype(np.int32),
        }
    )
    base["revenue_band"] = _revenue_band(headcount, rng)
    changed = rng.random(n) < CHANGE_SHARE
    later = base[changed].copy()
    span = (end - start).total_seconds()
    later["snapshot_at"] = start + pd.to_timedelta(rng.random(len(later)) * span, unit="s")
    growth = np.exp(rng.normal(0.35, 0.45, len(later)))
    later["insured_headcount"] = np.maximum(5, (later["insured_headcount"] * growth).astype(np.int64))
    later["registered_capital_cny"] = np.round(later["registered_capital_cny"] * np.maximum(growth, 1.0), -4)
    later["revenue_band"] = _revenue_band(later["insured_headcount"].to_numpy(), rng)
    out = pd.concat([base, later], ignore_index=True)
    out["snapshot_at"] = out["snapshot_at"].dt.floor("s")
    # row order follows the integer company code (c0, c1, ..., c10), which callers index by
    out["_code"] = np.concatenate([np.arange(n), np.flatnonzero(changed)])
    return out.sort_values(["_code", "snapshot_at"], ignore_index=True).drop(columns="_code")


def _revenue_band(headcount: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    revenue = headcount * np.exp(rng.normal(np.log(6e5), 0.5, len(headcount)))
    edges = np.array([1e7, 5e7, 2e8, 1e9])
    return np.array(_REVENUE_BANDS)[np.searchsorted(edges, revenue)]


def headcount_at(companies: pd.DataFrame, company_codes: np.ndarray, at: pd.Series) -> np.ndarray:
    """Insured headcount of each company as its latest snapshot at or before ``at`` showed it."""
    first = companies.drop_duplicates("company_id", keep="first").set_index("company_id")
    last = companies.drop_duplicates("company_id", keep="last").set_index("company_id")
    ids = make_ids("c", company_codes)
    before = first.loc[ids, "insured_headcount"].to_numpy()
    after = last.loc[ids, "insured_headcount"].to_numpy()
    changed_at = pd.DatetimeIndex(last.loc[ids, "snapshot_at"]).tz_convert("UTC").asi8
    at_idx = pd.DatetimeIndex(at)
    at_ns = (at_idx.tz_convert("UTC") if at_idx.tz is not None else at_idx.tz_localize("UTC")).asi8
    use_after = changed_at <= at_ns
    return np.where(use_after, after, before)
