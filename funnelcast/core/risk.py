"""Deal risk in plain words (pure functions over scored deals).

- Value at risk of a deal = amount x max(0, normal P(win by quarter end) for its stage - its own).
  "Normal" is the mean P(win by quarter end) of the open deals at the same stage, so a deal is at
  risk when it trails its peers, not merely for being early.
- ``deal_reasons`` groups the close model's SHAP contributions (toward "not won within 13 weeks")
  into business terms with the deal's own numbers, in zh or en.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalog import MILESTONES
from funnelcast.core.i18n import name, reason
from funnelcast.core.reason_terms import Catalogue, containing, term_of


def value_at_risk(
    amount: np.ndarray, p_by_qe: np.ndarray, stage: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(value at risk, normal P for the stage) per deal, see the module doc."""
    stage = np.asarray(stage, int)
    normal = np.zeros(len(stage))
    for s in np.unique(stage):
        normal[stage == s] = p_by_qe[stage == s].mean()
    return np.asarray(amount, float) * np.maximum(0.0, normal - p_by_qe), normal


_TERMS: Catalogue = (
    ("INACTIVE", containing("days_since_last_activity", "activities_7d", "activities_30d")),
    ("RESISTANCE", containing("resistant_7d", "positive_7d")),
    ("STALL", containing("days_in_stage", "weeks_open", "legal_prereview_skipped")),
    ("MILESTONES", containing("milestones_reached", "ms_", "stage_index")),
    ("COMMODITY", containing("commodity_prices__")),
    ("TENDERS", containing("company_tenders__")),
    ("SIZE", containing("amount_cny", "log_amount", "company_firmographics__")),
    ("TIMING", containing("days_to_expected_close")),
)


def _f(row: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    value = row.get(f"opportunity_snapshots__{name}", row.get(name))
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(out) else out


def milestone_column(columns: Iterable[str], milestone: str) -> str | None:
    """The column flagging ``milestone``: ``opportunity_snapshots__ms_<m>`` for a canonical one, the
    import's own view's for a custom one (``features.jobs.opportunity_snapshots``)."""
    suffix = f"__ms_{milestone}"
    return next((c for c in columns if c.endswith(suffix)), None)


def _sentence(term: str, row: Mapping[str, Any], lang: str, milestones: Sequence[str] = MILESTONES) -> str:
    """The reason ``term`` in words of the catalogue (``funnelcast.core.i18n``), with the deal's numbers."""
    if term == "INACTIVE":
        return reason("INACTIVE", lang, days=int(_f(row, "days_since_last_activity", 0)))
    if term == "RESISTANCE":
        return reason("RESISTANCE", lang, n=int(_f(row, "resistant_7d")))
    if term == "STALL":
        return reason("STALL", lang, days=int(_f(row, "days_in_stage")))
    if term == "MILESTONES":
        missing = [m for m in milestones if _reached(row, m) < 1]
        if not missing:
            return reason("MILESTONES_DONE", lang)
        return reason("MILESTONES", lang, milestone=name("milestone", missing[0], lang))
    if term == "COMMODITY":
        change = float(row.get("commodity_prices__change_1w") or 0.0) * 100
        commodity = name("commodity", str(row.get("opportunity_snapshots__commodity") or "commodity"), lang)
        return reason(
            "COMMODITY_UP" if change >= 0 else "COMMODITY_DOWN", lang, commodity=commodity, pct=abs(change)
        )
    if term == "TENDERS":
        return reason("TENDERS", lang, n=int(float(row.get("company_tenders__open_tenders") or 0)))
    if term == "SIZE":
        amount = _f(row, "amount_cny")
        return reason("SIZE", lang, amount=amount, wan=amount / 1e4)
    if term == "TIMING":
        days = int(_f(row, "days_to_expected_close"))
        return reason("TIMING_PASSED", lang, days=-days) if days < 0 else reason("TIMING", lang, days=days)
    return reason("OTHER", lang)


@dataclass(frozen=True)
class DealReason:
    code: str
    impact: float  # log-odds pushed toward "not won within 13 weeks" (positive = more risk)
    text: str


def _reached(row: Mapping[str, Any], milestone: str) -> float:
    column = milestone_column(row, milestone)
    return _f(row, column) if column is not None else 0.0


def deal_reasons(
    risk_contrib: Mapping[str, float],
    row: Mapping[str, Any],
    lang: str,
    top: int = 3,
    milestones: Sequence[str] = MILESTONES,
) -> list[DealReason]:
    """The ``top`` business terms raising risk the most, each in plain words; ``milestones`` are the
    ones the deal model knows (its metadata's: an import's own list, in its order)."""
    sums: dict[str, float] = {}
    for column, value in risk_contrib.items():
        if column != "bias":
            term = term_of(column, _TERMS)
            sums[term] = sums.get(term, 0.0) + float(value)
    ranked = [kv for kv in sorted(sums.items(), key=lambda kv: -kv[1]) if kv[1] > 0][:top]
    return [DealReason(term, round(v, 4), _sentence(term, row, lang, milestones)) for term, v in ranked]
