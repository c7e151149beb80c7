"""How far the close model looks ahead, and the feature columns every user of a scored deal reads.

Training (labels, backtest), the service (pipeline, forecast, at-risk) and the forecast math all
need the same horizon and the same names for a deal's amount, stage and days to its expected close;
they are here once.
"""

from __future__ import annotations

HORIZON_WEEKS = 13  # the close model's classes: won in week 1..13, or not within 13 weeks (class 0)

AMOUNT = "opportunity_snapshots__amount_cny"
STAGE = "opportunity_snapshots__stage_index"
DAYS_TO_EXPECTED_CLOSE = "opportunity_snapshots__days_to_expected_close"
