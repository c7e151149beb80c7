"""Manager-facing answers over the scored pipeline and accounts: at-risk deals and accounts, alerts.

Edges (Feast, MLflow models, SQLite alerts) are passed in; the math lives in ``funnelcast.core.risk``,
``funnelcast.core.forecast`` and ``service.rules``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.catalog import MILESTONES
from features.schema import read_table
from funnelcast.core import clock
from funnelcast.core.deals import AMOUNT, STAGE
from funnelcast.core.i18n import REASONS, milestone_step, name, reason
from funnelcast.core.reason_terms import Catalogue, containing, term_of
from funnelcast.core.risk import deal_reasons, milestone_column, value_at_risk
from service.live_models import LiveModel
from service.online_features import online_frame
from service.pipeline import PipelineSnapshot, historical_pipeline
from service.rules import RuleContext
from service.snapshots import Derived


def previous_week_p_win(
    store: FeatureStore, snapshot: PipelineSnapshot, weeks_to_qe: int, raw_dir: Path
) -> pd.Series:
    """Each open deal's P(win by quarter end) one week before the snapshot (NaN if it had no snapshot then).

    A week earlier the quarter end was one week further away, hence ``weeks_to_qe + 1`` weeks.
    """
    if snapshot.as_of is None or not len(snapshot.deals):
        return pd.Series(dtype=float)
    before = historical_pipeline(store, raw_dir, None, snapshot.model, snapshot.as_of - timedelta(weeks=1))
    p = pd.Series(before.p_week[:, : weeks_to_qe + 1].sum(axis=1), index=before.deals.index)
    return p.reindex(snapshot.deals.index)


def deal_context(snapshot: PipelineSnapshot, p_last_week: pd.Series, punctuality: pd.Series) -> pd.DataFrame:
    d = snapshot.deals
    ts = pd.to_datetime(d["opportunity_snapshots__ts"], utc=True)
    idle = d["opportunity_snapshots__days_since_last_activity"].astype(float).to_numpy()
    in_stage = d["opportunity_snapshots__days_in_stage"].astype(float).to_numpy()
    return pd.DataFrame(
        {
            "amount": d[AMOUNT].astype(float),
            "stage_index": d[STAGE].fillna(0).astype(int),
            # the last update: the latest activity or stage change, whichever came later
            "last_update_at": ts - pd.to_timedelta(np.fmin(idle, in_stage), unit="D"),
            "resistant_7d": d["opportunity_snapshots__resistant_7d"].fillna(0).astype(float),
            "commodity": d["opportunity_snapshots__commodity"],
            "change_1w": d["commodity_prices__change_1w"].astype(float),
            "exposure": d["opportunity_snapshots__exposure"].astype(float),
            "punctuality": d["company_id"].map(punctuality).astype(float),
            "p_win": snapshot.p_by_quarter_end,
            "p_win_last_week": p_last_week.reindex(d.index).astype(float),
        },
        index=d.index,
    )


def account_punctuality(store: FeatureStore, account_ids: list[str]) -> pd.Series:
    frame = online_frame(store, "account_health", "account_id", account_ids)
    return frame["account_health__payment_punctuality_12m"].astype(float)


def milestones_of(model: LiveModel) -> list[str]:
    """The milestones the deal model knows: its metadata's (an import's own list), else the canonical."""
    return list(model.model.metadata.get("milestones", MILESTONES))


def missing_milestones(
    model: LiveModel, rows: pd.DataFrame, weeks_to_qe: int, lang: str
) -> list[dict[str, Any] | None]:
    """Per deal, the not-yet-reached milestone whose arrival most raises P(win by quarter end), by
    the model, with its name and the step that reaches it (``action``, an imperative) in ``lang``.

    Every deal's row and all its what-if rows (one per missing milestone) go through one
    ``predict_classes``: a row at a time, the at-risk list's 20 deals cost ~200 predictions of
    pandas overhead while holding the GIL, and every score waiting on the same process paid for it.
    """
    total = "opportunity_snapshots__milestones_reached"
    found = {m: milestone_column(rows.columns, m) for m in milestones_of(model)}
    columns = {m: col for m, col in found.items() if col is not None}
    variants: list[tuple[int, str | None]] = []  # (deal position, milestone; None: the deal as it is)
    for i in range(len(rows)):
        variants.append((i, None))
        variants += [(i, m) for m, col in columns.items() if not float(rows[col].iloc[i] or 0) >= 1]
    if not variants:
        return []
    frame = rows.iloc[[i for i, _ in variants]].reset_index(drop=True)
    if columns:
        bumped = np.array([float(rows[total].iloc[i] or 0) + 1 for i, _ in variants])
        for m, col in columns.items():
            hit = np.array([v == m for _, v in variants])
            if hit.any():
                frame.loc[hit, col] = 1
                frame.loc[hit, total] = bumped[hit]
    p_by_qe = model.model.predict_classes(frame)[:, 1 : weeks_to_qe + 1].sum(axis=1)
    base: dict[int, float] = {}
    best: list[tuple[float, str] | None] = [None] * len(rows)
    for (i, m), p in zip(variants, p_by_qe, strict=True):
        if m is None:
            base[i] = p
            continue
        gain = float(p - base[i])
        current = best[i]
        if current is None or gain > current[0]:
            best[i] = (gain, m)
    return [
        None
        if b is None
        else {
            "milestone": b[1],
            "name": name("milestone", b[1], lang),
            "action": milestone_step(b[1], lang),
            "p_win_gain": round(b[0], 4),
        }
        for b in best
    ]


def risk_contributions(model: LiveModel, frame: pd.DataFrame) -> np.ndarray:
    """SHAP contributions toward class 0 ("not won within 13 weeks"): positive = more risk."""
    contrib = model.model.contributions(frame)
    width = len(model.model.columns) + 1
    return contrib[:, :width]


def rank_at_risk(
    snapshot: PipelineSnapshot, p_last_week: pd.Series, team: str | None, region: str | None
) -> pd.DataFrame:
    d = snapshot.deals
    p = snapshot.p_by_quarter_end
    var, normal = value_at_risk(d[AMOUNT].to_numpy(float), p, d[STAGE].fillna(0).to_numpy(int))
    table = pd.DataFrame(
        {
            "team": d["team"],
            "region": d["region"],
            "owner_rep_id": d["owner_rep_id"],
            "product_line": d["product_line"],
            "amount_cny": d[AMOUNT].astype(float),
            "stage_index": d[STAGE].fillna(0).astype(int),
            "p_win_quarter": p,
            "p_win_normal": normal,
            "p_win_last_week": p_last_week.reindex(d.index).to_numpy(float),
            "value_at_risk": var,
        },
        index=d.index,
    )
    if team:
        table = table[table["team"] == team]
    if region:
        table = table[table["region"] == region]
    return table.sort_values("value_at_risk", ascending=False)


def explain_deals(
    snapshot: PipelineSnapshot, deal_ids: list[str], lang: str
) -> list[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Per deal, its risk reasons and its most helpful missing milestone (one model pass for those
    not yet explained on this snapshot; the rest are the snapshot's own, computed once)."""
    todo = [d for d in dict.fromkeys(deal_ids) if not snapshot.has(("explained", d, lang))]
    for deal_id, answer in zip(todo, _explain(snapshot, todo, lang), strict=True):
        snapshot.derived(("explained", deal_id, lang), lambda answer=answer: answer)
    return [snapshot.derived(("explained", d, lang), lambda: ([], None)) for d in deal_ids]


def _explain(
    snapshot: PipelineSnapshot, deal_ids: list[str], lang: str
) -> list[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    if not deal_ids:
        return []
    rows = snapshot.deals.iloc[[snapshot.deals.index.get_loc(d) for d in deal_ids]]
    contrib = risk_contributions(snapshot.model, rows)
    names = [*snapshot.model.model.columns, "bias"]
    known = milestones_of(snapshot.model)
    milestones = missing_milestones(snapshot.model, rows, snapshot.weeks_to_quarter_end, lang)
    out = []
    for i, values in enumerate(rows.to_dict("records")):
        named = dict(zip(names, contrib[i], strict=True))
        found = deal_reasons(named, values, lang, milestones=known)
        reasons = [{"code": r.code, "impact": r.impact, "text": r.text} for r in found]
        out.append((reasons, milestones[i]))
    return out


# -- accounts


class AccountsAtRisk(Derived):
    """Accounts with an undecided renewal scored by one churn champion, by P(churn): what the
    accounts-at-risk read shows until the champion changes or the TTL passes (``Refreshed``)."""

    def __init__(self, scored: pd.DataFrame, model: LiveModel, built_at: datetime) -> None:
        super().__init__()
        self.scored, self.model, self.built_at = scored, model, built_at

    @property
    def version(self) -> str:
        return self.model.version


def score_accounts(store: FeatureStore, live: pd.DataFrame, model: LiveModel) -> pd.DataFrame:
    """Accounts with an undecided renewal (``live``: the serving directory's renewals), by P(churn)
    from the churn champion over online health features."""
    frame = online_frame(store, "account_health", "account_id", list(live.index))
    frame = frame[frame["account_health__ts"].notna()]
    p = model.model.predict(frame) if len(frame) else np.zeros(0)
    out = frame.assign(
        p_churn=p, arr_cny=live.loc[frame.index, "arr_cny"], renewal_at=live.loc[frame.index, "renewal_at"]
    )
    return out.sort_values("p_churn", ascending=False)


# Account reasons in the one catalogue shape (``funnelcast.core.reason_terms``): the business term of
# each health column; the text that states its value is in the catalogue (funnelcast.core.i18n).
ACCOUNT_TERMS: Catalogue = (
    ("LOW_USAGE", containing("usage_rate_30d", "seat_utilization_30d", "active_users_30d")),
    ("NO_ADMIN", containing("days_since_admin_login")),
    ("LATE_PAYER", containing("payment_punctuality_12m")),
    ("TICKETS", containing("ticket_trend", "tickets_30d")),
    ("LOW_NPS", containing("last_nps")),
)


def account_reasons(
    model: LiveModel, frame: pd.DataFrame, lang: str, top: int = 3
) -> list[list[dict[str, Any]]]:
    """Per account (row of ``frame``), its top reasons; one SHAP pass for all rows, as a row at a time
    the at-risk list held the GIL for 20 model calls while scores waited."""
    contrib = model.model.contributions(frame) if len(frame) else np.zeros((0, 0))
    out = []
    for i in range(len(frame)):
        reasons = []
        ranked = sorted(zip(model.model.columns, contrib[i], strict=False), key=lambda kv: -kv[1])
        for column, value in ranked[:top]:
            if value <= 0:
                continue
            health = column.split("__", 1)[1]
            code = term_of(health, ACCOUNT_TERMS)
            v = frame[column].iloc[i]
            v = float(v) if v is not None and not pd.isna(v) else float("nan")
            text = reason(health, lang, v=v) if health in REASONS else f"{health} {v}"
            reasons.append({"code": code, "impact": round(float(value), 4), "text": text})
        out.append(reasons)
    return out


def rule_context(
    now: datetime,
    deals: pd.DataFrame,
    overdue: list,
    raw_dir: Path,
    as_of: datetime | None = None,
) -> RuleContext:
    """Everything rules look at: deals, overdue first touches, daily bookings and channel mix."""
    opps = read_table("opportunities", raw_dir)
    won = opps[opps["outcome"] == "won"]
    daily = won.groupby(won["closed_at"].dt.floor("D"))["amount_cny"].sum()
    if len(daily):
        daily = daily.asfreq("D", fill_value=0.0)
    leads = read_table("leads", raw_dir)
    counts = leads.groupby([leads["created_at"].dt.floor("D"), "channel"]).size().unstack(fill_value=0)
    overdue_frame = pd.DataFrame(
        [{"lead_id": a.lead_id, "rep_id": a.rep_id, "deadline": a.deadline} for a in overdue],
        columns=["lead_id", "rep_id", "deadline"],
    )
    return RuleContext(
        now=now,
        as_of=as_of,
        deals=deals,
        overdue_leads=overdue_frame,
        daily_bookings=daily,
        daily_channel_counts=counts,
    )


def since_days_ago(days: int) -> datetime:
    return clock.now() - timedelta(days=days)
