"""Reason codes for a lead score: SHAP contributions grouped into business terms, in zh or en (pure).

LightGBM's own SHAP values (``pred_contrib``) are per model column; a manager thinks in terms
("strong buying signals", "open tenders in this product line"). Columns are summed into groups,
the groups ranked by absolute impact, and each gets a code, a direction and a sentence built from
the lead's own values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from funnelcast.core.reason_terms import Catalogue, term_of

GROUPS: Catalogue = (
    ("FIT", lambda c: c in ("industry_product", "industry", "product_interest")),
    ("INTENT", lambda c: c.startswith(("company_behavior__", "company_behavior_trend__"))),
    ("TENDERS", lambda c: c.startswith("company_tenders__") or c == "open_tenders_in_interest"),
    ("SIZE", lambda c: c.startswith("company_firmographics__")),
    ("ROLE", lambda c: c == "contact_role"),
    ("CHANNEL", lambda c: c == "channel"),
    (
        "TIMING",
        lambda c: (
            c
            in (
                "local_hour",
                "local_weekday",
                "utc_hour",
                "holiday_week",
                "utc_offset_hours",
                "hours_until_any_rep",  # the routing facts (features.rep_roster): when a rep can answer
                "hours_until_language_rep",
            )
        ),
    ),
    # and how well the reps working then match the lead's language and time zone
    (
        "GEOGRAPHY",
        lambda c: c in ("language", "country", "language_rep_share", "near_rep_share", "near_fluent_share"),
    ),
)


@dataclass(frozen=True)
class ReasonCode:
    code: str
    direction: str
    impact: float
    text: str


def _n(value: Any) -> int:
    try:
        return int(float(value or 0))
    except (TypeError, ValueError):
        return 0


def _sentence(group: str, up: bool, row: Mapping[str, Any], lang: str) -> str:
    zh = lang == "zh"
    if group == "FIT":
        industry = row.get("industry") or ("未知行业" if zh else "unknown industry")
        product = row.get("product_interest")
        if zh:
            return f"行业与产品{'匹配度高' if up else '匹配度低'}：{industry} 采购 {product}"
        return f"{'Strong' if up else 'Weak'} industry-product fit: {industry} buying {product}"
    if group == "INTENT":
        pricing = _n(row.get("company_behavior__pricing_view_30d"))
        comparisons = _n(row.get("company_behavior__competitor_comparison_view_30d"))
        demos = _n(row.get("company_behavior__demo_request_30d"))
        if zh:
            strength = "强" if up else "弱"
            counts = f"价格页 {pricing} 次、竞品对比 {comparisons} 次、演示申请 {demos} 次"
            return f"近30天购买信号{strength}：{counts}"
        return (
            f"{'Strong' if up else 'Few'} buying signals in 30 days: {pricing} pricing views, "
            f"{comparisons} competitor comparisons, {demos} demo requests"
        )
    if group == "TENDERS":
        open_here = _n(row.get("open_tenders_in_interest"))
        if zh:
            return f"该产品线有 {open_here} 个进行中的公开招标" if up else "该产品线没有进行中的公开招标"
        return (
            f"{open_here} open public tender(s) in this product line"
            if up
            else "No open tenders in this line"
        )
    if group == "SIZE":
        if zh:
            return "企业规模较大（社保人数多）" if up else "企业规模较小"
        return "Large company (insured headcount)" if up else "Small company"
    if group == "ROLE":
        role = row.get("contact_role")
        return f"联系人角色：{role}" if zh else f"Contact role: {role}"
    if group == "CHANNEL":
        channel = row.get("channel")
        return f"来源渠道：{channel}" if zh else f"Came in via {channel}"
    if group == "TIMING":
        holiday = float(row.get("holiday_week") or 0) > 0
        if zh:
            return (
                "节假日周，客户可能不在"
                if holiday
                else ("到达时间有利" if up else "到达时间不利（非工作时段）")
            )
        if holiday:
            return "Holiday week in the lead's country: buyers are away"
        return "Arrived at a good time" if up else "Arrived outside business hours"
    if group == "GEOGRAPHY":
        return (
            f"国家/语言：{row.get('country')}/{row.get('language')}"
            if zh
            else f"Country/language: {row.get('country')}/{row.get('language')}"
        )
    return "其他因素" if zh else "Other factors"


def reason_codes(
    contributions: Mapping[str, float], row: Mapping[str, Any], lang: str = "en", top: int = 3
) -> list[ReasonCode]:
    """The ``top`` groups by absolute summed contribution, each with a sentence in ``lang`` (zh/en)."""
    sums: dict[str, float] = {}
    for column, value in contributions.items():
        if column == "bias":
            continue
        group = term_of(column, GROUPS)
        sums[group] = sums.get(group, 0.0) + float(value)
    ranked = sorted(sums.items(), key=lambda kv: -abs(kv[1]))[:top]
    return [
        ReasonCode(
            code=f"{group}_{'UP' if value >= 0 else 'DOWN'}",
            direction="up" if value >= 0 else "down",
            impact=round(value, 4),
            text=_sentence(group, value >= 0, row, lang),
        )
        for group, value in ranked
        if abs(value) > 1e-9
    ]


def language_of(accept_language: str | None) -> str:
    """``zh`` when Accept-Language prefers Chinese over English, else ``en``."""
    if not accept_language:
        return "en"
    best, best_q = "en", -1.0
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in ("zh", "en") and q > best_q:
            best, best_q = base, q
    return best
