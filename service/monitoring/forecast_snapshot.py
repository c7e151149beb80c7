"""The weekly job's forecast snapshot: what we said this week, kept to judge it when the weeks come.

The same forecast ``GET /v1/forecast/weekly`` answers (``funnelcast.core.forecast.weekly_forecast``
over the reconciled weekly win probabilities, with the champion's shocks and conformal margins),
for the whole book and per region and product line, plus each open deal's groups and amount, so
realised bookings can be matched to the deals the forecast was about.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from funnelcast.core.deals import AMOUNT
from funnelcast.core.forecast import weekly_forecast
from funnelcast.core.forecast_accuracy import ForecastSnapshot
from service.pipeline import PipelineSnapshot

SNAPSHOT_GROUPS = ("all", "region", "product_line")


def _no_baseline(group: str, mask: np.ndarray, weeks: int) -> np.ndarray:
    return np.full(weeks, np.nan)  # the snapshot keeps what the model said, not the baseline


def forecast_snapshot(snap: PipelineSnapshot, now: datetime) -> ForecastSnapshot:
    """The projection and band per horizon and group of ``snap`` (as of its newest snapshot time)."""
    metadata = snap.model.model.metadata
    p_week = snap.forecast_p_week()
    rows = []
    for group_by in SNAPSHOT_GROUPS:
        table, _ = weekly_forecast(
            snap.deals,
            p_week,
            group_by,
            _no_baseline,
            AMOUNT,
            shocks=(float(metadata.get("shock_sd", 0.0)), float(metadata.get("group_shock_sd", 0.0))),
            margins=metadata.get("conformal_margins"),
        )
        rows += [
            {
                "group_by": group_by,
                "group": r["group"],
                "horizon": int(r["week"]),
                "expected": round(float(r["expected_bookings"]), 2),
                "p10": round(float(r["p10"]), 2),
                "p50": round(float(r["p50"]), 2),
                "p90": round(float(r["p90"]), 2),
            }
            for r in table.to_dict("records")
        ]
    keep = [c for c in SNAPSHOT_GROUPS if c in snap.deals.columns]
    deals = {
        str(deal): {
            **{c: (None if v != v else str(v)) for c, v in zip(keep, row[:-1], strict=True)},
            "amount": float(row[-1]),
        }
        for deal, *row in snap.deals[[*keep, AMOUNT]].itertuples(name=None)
    }
    return ForecastSnapshot(snap.as_of or now, snap.model.version, rows, deals)
