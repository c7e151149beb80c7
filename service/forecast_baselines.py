"""The baselines beside the served forecast: which one, and its per-group forecast (the I/O edge).

Deal-level baselines need only the scored deals and the champion's metadata (stage win rates, the
stage x week table); series baselines need each group's past bookings, read here from the canonical
opportunities table. The math is ``funnelcast.forecast_baselines``'s, the same the backtest ran.
The default is the baseline the champion's backtest found strongest on validation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.schema import read_table
from funnelcast.core.forecast import BaselineOf
from funnelcast.core.forecast_baselines import (
    DEAL_BASELINES,
    deal_baseline,
    pipeline_bookings_history,
    series_forecast,
)
from service.pipeline import OfflineDataMissing

FALLBACK = "redated_pipeline"  # a champion trained before the backtest chose one has only stage rates
HISTORY_WEEKS = 104


def default_baseline(metadata: dict[str, Any]) -> str:
    return str(metadata.get("strongest_baseline", FALLBACK))


def baseline_forecaster(
    requested: str | None,
    metadata: dict[str, Any],
    deals: pd.DataFrame,
    group_by: str,
    raw_dir: Path,
    rep_groups: pd.DataFrame,
    as_of: datetime,
    amount: str,
    stage: str,
    days_to_close: str,
) -> tuple[str, BaselineOf]:
    """The baseline's name and its ``(group, deal mask, weeks) -> [week-1]`` forecast for
    ``weekly_forecast``: ``requested``, or the champion's strongest by default.

    Series baselines need the past bookings of the offline store. A replica without it answers the
    default with the strongest deal-level baseline (and names it); asked for a series baseline by
    name, it raises ``OfflineDataMissing`` naming the missing table.
    """
    name = requested or default_baseline(metadata)
    opportunities = raw_dir / "opportunities.parquet"
    if name not in DEAL_BASELINES and not opportunities.exists():
        if requested is not None:
            raise OfflineDataMissing(
                f"baseline {name!r} is fitted on past bookings from the offline store, which this host "
                f"does not have: {opportunities} missing"
            )
        name = str(metadata.get("strongest_deal_baseline", "stage_week_table"))
    rates = np.asarray(metadata["stage_win_rate"], float)
    weeks_total = int(metadata.get("horizon_weeks", 13))
    table = np.asarray(metadata.get("stage_week_table", np.zeros((len(rates), weeks_total))), float)
    if name in DEAL_BASELINES:

        def deal_level(group: str, mask: np.ndarray, weeks: int) -> np.ndarray:
            d = deals[mask]
            return deal_baseline(
                name,
                d[amount].to_numpy(float),
                d[stage].fillna(0).astype(int).to_numpy(),
                d[days_to_close].to_numpy(float),
                rates,
                table,
                weeks,
            )

        return name, deal_level
    histories = group_histories(raw_dir, rep_groups, group_by, pd.Timestamp(as_of), weeks_total)

    def series(group: str, mask: np.ndarray, weeks: int) -> np.ndarray:
        history = histories.get(group, np.zeros((weeks_total, HISTORY_WEEKS)))
        return series_forecast(history, history.shape[1], name)[:weeks]

    return name, series


def group_histories(
    raw_dir: Path, rep_groups: pd.DataFrame, group_by: str, origin: pd.Timestamp, weeks: int
) -> dict[str, np.ndarray]:
    """Per group, ``pipeline_bookings_history`` over the ``HISTORY_WEEKS`` weeks before ``origin``."""
    opps = read_table("opportunities", raw_dir).join(rep_groups[["team", "region"]], on="owner_rep_id")
    monday = origin.tz_convert("UTC").normalize() - pd.Timedelta(days=origin.weekday())
    first, last = monday - pd.Timedelta(weeks=HISTORY_WEEKS), monday - pd.Timedelta(weeks=1)
    keys = opps[group_by].fillna("unknown") if group_by != "all" else pd.Series("all", index=opps.index)
    out = {}
    for group, part in opps.groupby(keys):
        out[str(group)] = pipeline_bookings_history(
            part["created_at"],
            part["closed_at"],
            part["outcome"].eq("won").to_numpy(),
            part["amount_cny"].to_numpy(float),
            first,
            last,
            weeks,
        )
    return out
