"""Feature table ``commodity_prices`` (key ``commodity``): daily price level, momentum and volatility.

Deals in exposed product lines get re-quoted or pushed out when their commodity swings > 5% in a
week, so the opportunity models join these by the deal's commodity at each snapshot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.jobs.raw import RawTables, require
from features.jobs.timeline import NS_PER_DAY, feature_table, to_ns, utc_timestamp
from features.windows import trailing_counts

TABLE = "commodity_prices"
KEY = "commodity"
VOLATILITY_WINDOW_DAYS = 28


def _price_days_before(frame: pd.DataFrame, days: int) -> np.ndarray:
    """Price on the latest date at or before ``date - days`` (NaN when there is none).

    Looked up by calendar date rather than by row offset, so missing days (weekends, holidays) do not
    turn a one-week change into a nine-day one.
    """
    target = frame[[KEY, "t"]].assign(t=frame["t"] - np.timedelta64(days * NS_PER_DAY, "ns"))
    target["row"] = np.arange(len(target))
    looked_up = pd.merge_asof(
        target.sort_values("t"),
        frame[[KEY, "t", "price"]].sort_values("t"),
        on="t",
        by=KEY,
        direction="backward",
    )
    return looked_up.sort_values("row")["price"].to_numpy(dtype=np.float64)


def build_commodity_prices(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per commodity and date at or before ``as_of``.

    ``change_1w`` / ``change_4w`` are fractional changes against the price 7 / 28 days earlier.
    ``volatility_4w`` is the sample standard deviation of daily log returns dated in the last 28 days
    (from sums of r and r² over the window via the shared window primitive; NaN with fewer than two).
    """
    (prices,) = require(raw, "commodity_prices")
    ts = to_ns(prices["date"])
    keep = ~np.isnat(ts) & (ts <= to_ns([utc_timestamp(as_of)])[0]) & prices["price"].notna().to_numpy()
    frame = pd.DataFrame(
        {
            KEY: prices[KEY].to_numpy(dtype=object)[keep],
            "t": ts[keep],
            "price": prices["price"].to_numpy(dtype=np.float64)[keep],
        }
    )
    frame = frame.drop_duplicates([KEY, "t"], keep="last").sort_values([KEY, "t"]).reset_index(drop=True)
    price = frame["price"].to_numpy()
    change_1w = price / _price_days_before(frame, 7) - 1.0
    change_4w = price / _price_days_before(frame, 28) - 1.0

    keys, _ = pd.factorize(frame[KEY])
    q_ts = frame["t"].to_numpy(dtype="datetime64[ns]")
    same_commodity = np.zeros(len(frame), dtype=bool)  # (np.r_[False, ...] would be one long when empty)
    same_commodity[1:] = keys[1:] == keys[:-1]
    log_return = np.full(len(frame), np.nan)
    log_return[same_commodity] = np.diff(np.log(price))[same_commodity[1:]]
    has_return = ~np.isnan(log_return)
    r = log_return[has_return]
    r_keys, r_ts, window = keys[has_return], q_ts[has_return], VOLATILITY_WINDOW_DAYS
    n = trailing_counts(r_keys, r_ts, keys, q_ts, window)
    s1 = trailing_counts(r_keys, r_ts, keys, q_ts, window, r)
    s2 = trailing_counts(r_keys, r_ts, keys, q_ts, window, r * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
    volatility = np.where(n >= 2, np.sqrt(np.where(n >= 2, variance, 0.0)), np.nan)

    columns = {"price": price, "change_1w": change_1w, "change_4w": change_4w, "volatility_4w": volatility}
    return feature_table(KEY, frame[KEY].to_numpy(dtype=object), q_ts, columns)
