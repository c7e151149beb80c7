"""The baselines each model must beat, as the field runs them today (pure functions, no I/O).

- Lead: Odoo's predictive lead scoring (naive Bayes over CRM field values with won/lost value
  frequencies and +0.1 smoothing) and a Mautic-style rule-points score.
- Churn: a rule health score (usage, logins, payments, tickets, NPS).
- Close: the stage-weighted pipeline lives in ``funnelcast.core.forecast`` (it is also served).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ODOO_FIELDS = ("channel", "utm_source", "contact_role", "country", "language", "product_interest", "industry")


@dataclass(frozen=True)
class OdooNaiveBayes:
    """Odoo ``crm.lead`` predictive scoring: P(won) x prod P(value | won), normalised against lost.

    Odoo keeps frequencies per sales team; a lead here has no team before routing, so there is
    one team. Unseen values count as 0 + 0.1, as in Odoo.
    """

    won_total: float
    lost_total: float
    won: dict[str, dict[str, float]]
    lost: dict[str, dict[str, float]]
    fields: tuple[str, ...]

    @classmethod
    def fit(cls, frame: pd.DataFrame, y: np.ndarray, fields: tuple[str, ...] = ODOO_FIELDS) -> OdooNaiveBayes:
        y = np.asarray(y, bool)
        won, lost = {}, {}
        for name in fields:
            values = frame[name].astype(str)
            won[name] = values[y].value_counts().to_dict()
            lost[name] = values[~y].value_counts().to_dict()
        return cls(float(y.sum()), float((~y).sum()), won, lost, fields)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        total = self.won_total + self.lost_total
        log_won = np.full(len(frame), np.log(self.won_total / total))
        log_lost = np.full(len(frame), np.log(self.lost_total / total))
        for name in self.fields:
            values = frame[name].astype(str)
            log_won += np.log((values.map(self.won[name]).fillna(0.0) + 0.1) / (self.won_total + 0.1))
            log_lost += np.log((values.map(self.lost[name]).fillna(0.0) + 0.1) / (self.lost_total + 0.1))
        return 1.0 / (1.0 + np.exp((log_lost - log_won).to_numpy()))


# Mautic-style points: explicit behaviour and profile rules a marketing ops team writes by hand.
LEAD_POINTS: tuple[tuple[str, float, float], ...] = (
    # (column, threshold (>=), points)
    ("company_behavior__pricing_view_30d", 1, 5),
    ("company_behavior__competitor_comparison_view_30d", 3, 10),
    ("company_behavior__whitepaper_download_30d", 1, 10),
    ("company_behavior__webinar_30d", 1, 10),
    ("company_behavior__demo_request_30d", 1, 25),
    ("company_behavior__service_needs_form_30d", 1, 20),
    ("company_tenders__open_tenders", 1, 10),
    ("company_firmographics__log_headcount", 2.5, 10),
)
ROLE_POINTS = {"decision_maker": 20, "purchaser": 10, "influencer": 5, "user": 0, "veto": -10}
CHANNEL_POINTS = {"referral": 15, "trade_show": 10, "web_form": 5, "wechat": 5}


def lead_rule_points(frame: pd.DataFrame) -> np.ndarray:
    """Sum of points over ``LEAD_POINTS`` plus role and channel points (higher = hotter)."""
    points = np.zeros(len(frame))
    for column, threshold, value in LEAD_POINTS:
        if column in frame.columns:
            points += np.where(frame[column].fillna(0).to_numpy() >= threshold, value, 0.0)
    points += frame["contact_role"].map(ROLE_POINTS).fillna(0).to_numpy(float)
    points += frame["channel"].map(CHANNEL_POINTS).fillna(0).to_numpy(float)
    return points


def churn_rule_risk(frame: pd.DataFrame) -> np.ndarray:
    """A customer-success health score turned into risk points (higher = more likely to churn)."""

    def col(name: str) -> pd.Series:
        return frame[f"account_health__{name}"]

    risk = np.zeros(len(frame))
    risk += np.where(col("usage_rate_30d").fillna(0) < 0.30, 30, 0)
    risk += np.where(col("days_since_admin_login").fillna(365) >= 30, 20, 0)
    risk += np.where(col("payment_punctuality_12m").fillna(1) < 0.85, 20, 0)
    risk += np.where(col("ticket_trend").fillna(0) > 0, 15, 0)
    risk += np.where(col("last_nps").fillna(7) < 7, 15, 0)
    return risk
