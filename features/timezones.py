"""UTC offsets of IANA time zones at given instants (DST-aware), vectorised per zone."""

from __future__ import annotations

import numpy as np
import pandas as pd


def utc_offset_hours(instants: pd.Series | pd.DatetimeIndex, zones: pd.Series | np.ndarray) -> np.ndarray:
    """Offset from UTC, in hours, of each zone at each instant (tz-aware UTC instants)."""
    idx = pd.DatetimeIndex(instants)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    zones = np.asarray(zones, dtype=object)
    out = np.zeros(len(idx), dtype=np.float64)
    naive_utc = idx.tz_convert("UTC").tz_localize(None)
    for zone in pd.unique(zones):
        mask = zones == zone
        local = idx[mask].tz_convert(zone).tz_localize(None)
        out[mask] = (local - naive_utc[mask]).total_seconds().to_numpy() / 3600.0
    return out


def circular_gap_hours(offset_a: np.ndarray, offset_b: np.ndarray) -> np.ndarray:
    """Hours between two clocks on a 24-hour dial (New York and Shanghai are 11-13 h apart, not 13)."""
    diff = np.abs(np.asarray(offset_a) - np.asarray(offset_b)) % 24
    return np.minimum(diff, 24 - diff)
