"""Outside signals: daily commodity prices (random walk with jumps) and public tenders (招投标)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import COMMODITIES, PRODUCT_LINE_NAMES
from features.world import make_ids

# start price (CNY per tonne; polysilicon per kg) and daily log-volatility
_COMMODITY_START = {
    "copper": (70_000.0, 0.012),
    "aluminium": (19_000.0, 0.011),
    "steel": (3_800.0, 0.013),
    "lithium_carbonate": (100_000.0, 0.022),
    "polysilicon": (60.0, 0.02),
}
JUMP_PROB_PER_DAY = 0.01  # supply shocks: a few >5% weeks a year per commodity
JUMP_SIZE = 0.05


def generate_commodity_prices(
    rng: np.random.Generator, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """One row per commodity per day: ``date`` is the day (00:00 UTC), ``price`` the last close known then."""
    days = pd.date_range(start - pd.Timedelta(days=60), end, freq="D")
    frames = []
    for name in COMMODITIES:
        price0, vol = _COMMODITY_START[name]
        steps = rng.normal(0, vol, len(days))
        jumps = (rng.random(len(days)) < JUMP_PROB_PER_DAY) * rng.choice([-1, 1], len(days)) * JUMP_SIZE
        log_price = np.log(price0) + np.cumsum(steps + jumps)
        frames.append(
            pd.DataFrame({"commodity": name, "date": days, "price": np.round(np.exp(log_price), 2)})
        )
    return pd.concat(frames, ignore_index=True)


def weekly_swing(prices: pd.DataFrame, mondays: pd.DatetimeIndex, threshold: float) -> dict[str, np.ndarray]:
    """Per commodity: True for each Monday whose 1-week price change exceeded ``threshold`` in size."""
    out: dict[str, np.ndarray] = {}
    for name, grp in prices.groupby("commodity"):
        series = grp.set_index("date")["price"]
        now = series.reindex(mondays).to_numpy()
        before = series.reindex(mondays - pd.Timedelta(days=7)).to_numpy()
        change = now / before - 1.0
        out[str(name)] = np.abs(np.nan_to_num(change)) > threshold
    return out


def generate_tenders(
    rng: np.random.Generator,
    company_industry_code: np.ndarray,
    headcount: np.ndarray,
    fit: np.ndarray,
    per_company_year: float,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Tenders published by buyer companies; big companies publish more, in lines that fit their industry."""
    years = (end - start).days / 365.25
    rate = per_company_year * years * np.clip((headcount / 300.0) ** 0.4, 0.2, 4.0)
    counts = rng.poisson(rate)
    company = np.repeat(np.arange(len(counts)), counts)
    n = len(company)
    span = (end - start).total_seconds()
    published = start + pd.to_timedelta(np.floor(rng.random(n) * span), unit="s")
    weights = np.exp(fit[company_industry_code[company]] * 1.5)
    weights /= weights.sum(axis=1, keepdims=True)
    category = (weights.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return pd.DataFrame(
        {
            "tender_id": make_ids("t", np.arange(n)),
            "company_code": company,
            "company_id": make_ids("c", company),
            "published_at": published,
            "category_code": category,
            "category": np.array(PRODUCT_LINE_NAMES)[category],
            "budget_cny": np.round(np.exp(rng.normal(np.log(2e6), 1.0, n)), -3),
            "deadline_at": published + pd.to_timedelta(rng.integers(20, 46, n), unit="D"),
        }
    )
