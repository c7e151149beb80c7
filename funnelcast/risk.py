"""Weekly forecast tables and deal risk in plain words (pure functions over scored deals).

- ``weekly_forecast``: per group and week, expected bookings (exact), P10/P50/P90 (Monte Carlo over
  deals with shared shocks, ``funnelcast.forecast``, widened by the backtest's conformal margins),
  expected wins and the chosen baseline beside it; and the period total with its band.
- Value at risk of a deal = amount x max(0, normal P(win by quarter end) for its stage - its own).
  "Normal" is the mean P(win by quarter end) of the open deals at the same stage, so a deal is at
  risk when it trails its peers, not merely for being early.
- ``deal_reasons`` groups the close model's SHAP contributions (toward "not won within 13 weeks")
  into business terms with the deal's own numbers, in zh or en.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import COMMODITIES, MILESTONES
from funnelcast.forecast import QUANTILES, expected_bookings, sample_bookings
from funnelcast.intervals import widen

MILESTONE_NAMES_ZH = {
    "budget_confirmed": "预算确认",
    "decision_chain_mapped": "决策链梳理",
    "nda_signed": "保密协议签署",
    "site_survey_done": "现场勘察",
    "technical_parameters_matched": "技术参数匹配",
    "sample_poc_passed": "样品/POC 通过",
    "solution_presented": "方案汇报",
    "quote_submitted": "报价提交",
    "procurement_committee_approved": "立项会通过",
    "legal_prereview_passed": "法务预审通过",
    "third_party_test_report_issued": "第三方检测报告出具",
    "contract_stamped": "合同盖章",
}


BaselineOf = Callable[[str, np.ndarray, int], np.ndarray]  # (group, deal mask, weeks) -> [week-1]


def weekly_forecast(
    deals: pd.DataFrame,
    p_week: np.ndarray,
    group_by: str,
    baseline_of: BaselineOf,
    amount: str,
    n_samples: int = 500,
    seed: int = 0,
    shocks: tuple[float, float] = (0.0, 0.0),
    margins: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (group, week): expected bookings, P10/P50/P90, expected wins and the chosen baseline; and
    per group the total over all weeks with its P10-P90 band and the baseline's total.

    The Monte Carlo draws ``shocks`` (shared, per commodity group) and the band is widened by the
    conformal ``margins`` fitted in the backtest (``funnelcast.intervals``): ``weekly`` for weeks,
    ``quarter`` for a 13-week total, ``month`` for a shorter one of at least 4 weeks.
    """
    weeks = p_week.shape[1]
    margins = margins or {}
    total_level = "quarter" if weeks >= 13 else "month" if weeks >= 4 else "weekly"
    rows, totals = [], []
    keys = deals[group_by].fillna("unknown").to_numpy() if group_by != "all" else np.full(len(deals), "all")
    commodity = deals.get("opportunity_snapshots__commodity")
    groups = None if commodity is None else pd.Categorical(commodity, categories=COMMODITIES).codes
    for g_index, group in enumerate(sorted(set(keys))):
        mask = keys == group
        a = deals.loc[mask, amount].to_numpy(float)
        p = p_week[mask]
        mean = expected_bookings(a, p)
        samples = sample_bookings(
            a,
            p,
            n_samples=n_samples,
            seed=seed + g_index,
            shock_sd=shocks[0],
            groups=None if groups is None else groups[mask],
            group_shock_sd=shocks[1],
        )
        q = np.maximum(np.quantile(samples, QUANTILES, axis=0), 0.0)
        low, high = widen(q[0], q[2], q[2] - q[0], margins.get("weekly", 0.0))
        low, high = np.minimum(low, q[1]), np.maximum(high, q[1])  # a narrowed band still holds P50
        base = baseline_of(str(group), mask, weeks)
        for k in range(weeks):
            rows.append(
                {
                    "group": str(group),
                    "week": k + 1,
                    "expected_bookings": float(mean[k]),
                    "p10": float(low[k]),
                    "p50": float(q[1, k]),
                    "p90": float(high[k]),
                    "expected_wins": float(p[:, k].sum()),
                    "baseline": float(base[k]),
                    "deals": int(mask.sum()),
                }
            )
        total = samples.sum(axis=1)
        t_q = np.quantile(total, [QUANTILES[0], QUANTILES[2]])
        t_low, t_high = widen(t_q[:1], t_q[1:], t_q[1:] - t_q[:1], margins.get(total_level, 0.0))
        t_mid = float(np.quantile(total, QUANTILES[1]))
        totals.append(
            {
                "group": str(group),
                "weeks": weeks,
                "expected_bookings": float(mean.sum()),
                "p10": min(float(t_low[0]), t_mid),
                "p50": t_mid,
                "p90": max(float(t_high[0]), t_mid),
                "baseline": float(base.sum()),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(totals)


def value_at_risk(
    amount: np.ndarray, p_by_qe: np.ndarray, stage: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(value at risk, normal P for the stage) per deal, see the module doc."""
    stage = np.asarray(stage, int)
    normal = np.zeros(len(stage))
    for s in np.unique(stage):
        normal[stage == s] = p_by_qe[stage == s].mean()
    return np.asarray(amount, float) * np.maximum(0.0, normal - p_by_qe), normal


_TERMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("INACTIVE", ("days_since_last_activity", "activities_7d", "activities_30d")),
    ("RESISTANCE", ("resistant_7d", "positive_7d")),
    ("STALL", ("days_in_stage", "weeks_open", "legal_prereview_skipped")),
    ("MILESTONES", ("milestones_reached", "ms_", "stage_index")),
    ("COMMODITY", ("commodity_prices__",)),
    ("TENDERS", ("company_tenders__",)),
    ("SIZE", ("amount_cny", "log_amount", "company_firmographics__")),
    ("TIMING", ("days_to_expected_close",)),
)


def term_of(column: str) -> str:
    for term, needles in _TERMS:
        if any(n in column for n in needles):
            return term
    return "OTHER"


def _f(row: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    value = row.get(f"opportunity_snapshots__{name}", row.get(name))
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(out) else out


def _sentence(term: str, row: Mapping[str, Any], zh: bool) -> str:
    if term == "INACTIVE":
        days = int(_f(row, "days_since_last_activity", 0))
        return f"{days} 天没有跟进活动" if zh else f"no activity for {days} days"
    if term == "RESISTANCE":
        n = int(_f(row, "resistant_7d"))
        return f"近7天 {n} 次抵触信号" if zh else f"{n} resistant signals in 7 days"
    if term == "STALL":
        days = int(_f(row, "days_in_stage"))
        return f"在当前阶段停留 {days} 天" if zh else f"{days} days in the current stage"
    if term == "MILESTONES":
        missing = [m for m in MILESTONES if _f(row, f"ms_{m}") < 1]
        nxt = missing[0] if missing else None
        if nxt is None:
            return "里程碑已全部完成" if zh else "all milestones reached"
        return f"尚未达成：{MILESTONE_NAMES_ZH[nxt]}" if zh else f"{nxt.replace('_', ' ')} not yet reached"
    if term == "COMMODITY":
        change = float(row.get("commodity_prices__change_1w") or 0.0) * 100
        name = row.get("opportunity_snapshots__commodity") or "commodity"
        if zh:
            return f"{name} 本周{'上涨' if change >= 0 else '下跌'} {abs(change):.1f}%"
        return f"{name} {'up' if change >= 0 else 'down'} {abs(change):.1f}% this week"
    if term == "TENDERS":
        n = int(float(row.get("company_tenders__open_tenders") or 0))
        return f"客户有 {n} 个进行中的招标" if zh else f"customer has {n} open tenders"
    if term == "SIZE":
        amount = _f(row, "amount_cny")
        return f"金额 {amount / 1e4:,.0f} 万元" if zh else f"deal size CNY {amount:,.0f}"
    if term == "TIMING":
        days = int(_f(row, "days_to_expected_close"))
        if zh:
            return f"预计成交日已过 {-days} 天" if days < 0 else f"距预计成交 {days} 天"
        return (
            f"expected close date passed {-days} days ago" if days < 0 else f"{days} days to expected close"
        )
    return "其他因素" if zh else "other factors"


@dataclass(frozen=True)
class DealReason:
    code: str
    impact: float  # log-odds pushed toward "not won within 13 weeks" (positive = more risk)
    text: str


def deal_reasons(
    risk_contrib: Mapping[str, float], row: Mapping[str, Any], lang: str, top: int = 3
) -> list[DealReason]:
    """The ``top`` business terms raising risk the most, each in plain words."""
    sums: dict[str, float] = {}
    for column, value in risk_contrib.items():
        if column != "bias":
            sums[term_of(column)] = sums.get(term_of(column), 0.0) + float(value)
    ranked = [kv for kv in sorted(sums.items(), key=lambda kv: -kv[1]) if kv[1] > 0][:top]
    return [DealReason(term, round(v, 4), _sentence(term, row, lang == "zh")) for term, v in ranked]
