"""Forecast accuracy: each stored weekly forecast snapshot against the bookings that came (pure).

A snapshot taken at ``as_of`` says, per group and horizon ``h`` (1..13), what the deals open then
will book in ``[as_of + (h-1) weeks, as_of + h weeks)``: the expected value and its P10-P90 band.
Realised bookings are the wins reported for those same deals in that window (the amount reported
with the win, else the deal's amount at the snapshot), so a deal created later does not count
against a forecast that could not know it. Only windows that have ended are judged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from funnelcast.core.timestamps import utc_times

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class ForecastSnapshot:
    """What the weekly job said at ``as_of``: ``rows`` of {group_by, group, horizon, expected, p10,
    p50, p90}, and each open deal's group per ``group_by`` and amount (``deals``: id -> fields)."""

    as_of: datetime
    model_version: str
    rows: list[dict[str, Any]]
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"as_of": self.as_of.isoformat()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForecastSnapshot:
        return cls(datetime.fromisoformat(d["as_of"]), d["model_version"], d["rows"], d.get("deals", {}))


ACCURACY_COLUMNS = [
    "as_of", "horizon", "group_by", "group", "week_start", "said", "p10", "p90", "realised", "error",
    "inside",
]  # fmt: skip


def realised_rows(snapshot: ForecastSnapshot, wins: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The snapshot's rows whose week has ended, beside the bookings its deals realised in that week.

    ``wins``: one row per reported win, columns ``opportunity_id``, ``at`` (UTC) and ``amount``
    (NaN: the deal's amount at the snapshot).
    """
    deals = snapshot.deals
    mine = wins[wins["opportunity_id"].isin(deals.keys())].copy()
    at = utc_times(mine["at"], coerce=True)  # a time pandas cannot hold: left out
    mine, at = mine[at.notna()], at[at.notna()]
    fallback = mine["opportunity_id"].map(lambda d: float(deals[d].get("amount", np.nan)))
    mine["amount"] = pd.to_numeric(mine["amount"], errors="coerce").fillna(fallback).fillna(0.0)
    start = pd.Timestamp(snapshot.as_of)
    mine["horizon"] = ((at - start) // pd.Timedelta(WEEK)).astype(int) + 1
    out = []
    for row in snapshot.rows:
        h = int(row["horizon"])
        week_start = snapshot.as_of + (h - 1) * WEEK
        if week_start + WEEK > now:
            continue
        in_group = mine if row["group_by"] == "all" else mine[
            mine["opportunity_id"].map(lambda d, by=row["group_by"]: deals[d].get(by)) == row["group"]
        ]  # fmt: skip
        realised = float(in_group.loc[in_group["horizon"] == h, "amount"].sum())
        said = float(row["expected"])
        out.append(
            {
                "as_of": snapshot.as_of,
                "horizon": h,
                "group_by": row["group_by"],
                "group": row["group"],
                "week_start": week_start,
                "said": said,
                "p10": float(row["p10"]),
                "p90": float(row["p90"]),
                "realised": realised,
                "error": realised - said,
                "inside": bool(row["p10"] <= realised <= row["p90"]),
            }
        )
    return pd.DataFrame(out, columns=ACCURACY_COLUMNS)


def accuracy_table(snapshots: list[ForecastSnapshot], wins: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Every stored snapshot's judged rows, oldest snapshot first."""
    parts = [realised_rows(s, wins, now) for s in sorted(snapshots, key=lambda s: s.as_of)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ACCURACY_COLUMNS)


def accuracy_by_horizon(table: pd.DataFrame) -> pd.DataFrame:
    """Per horizon over the ``all`` group: weeks judged, WAPE (sum |error| / sum realised; None
    when nothing was booked) and P10-P90 coverage."""
    rows = []
    for h, g in table[table["group_by"] == "all"].groupby("horizon", sort=True):
        booked = float(g["realised"].sum())
        rows.append(
            {
                "horizon": int(h),
                "weeks": len(g),
                "wape": float(g["error"].abs().sum() / booked) if booked > 0 else None,
                "coverage": float(g["inside"].mean()),
            }
        )
    return pd.DataFrame(rows, columns=["horizon", "weeks", "wape", "coverage"])
