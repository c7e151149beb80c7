"""Every size and mechanism of the synthetic world, named and documented in one place.

The mechanisms follow the field facts in DESIGN.md; each constant says which fact it encodes.
Changing a number here changes the world; nothing else in ``features/world`` hard-codes one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pandas as pd

from features.catalog import INTENT_COMBO_MIN_COMPARISONS


@dataclass(frozen=True)
class LeadMechanism:
    """How a lead's chance to convert (to a qualified opportunity within 30 days) is made."""

    base_logit: float = -2.2
    # log-odds per unit of industry x product fit (fit values live in ``fit_matrix``)
    fit_weight: float = 2.2
    # log-odds per decade of insured headcount above 50 people
    size_per_decade: float = 0.9
    role_logit: dict[str, float] = field(
        default_factory=lambda: {
            "decision_maker": 1.1,
            "purchaser": 0.45,
            "influencer": 0.0,
            "user": -0.5,
            "veto": -0.9,
        }
    )
    channel_logit: dict[str, float] = field(
        default_factory=lambda: {
            "referral": 1.0,
            "trade_show": 0.45,
            "web_form": 0.1,
            "wechat": 0.1,
            "paid_search": 0.0,
            "social_ads": -0.6,
            "outbound": -1.0,
        }
    )
    # The intent combination: >=3 competitor-comparison views + a whitepaper + a service-needs form
    # in the 30 days before the lead, a strong buying signal on its own.
    intent_combo_logit: float = 1.4
    intent_min_comparisons: int = INTENT_COMBO_MIN_COMPARISONS
    pricing_view_logit_per_log1p: float = 0.25
    demo_request_logit: float = 0.5
    # each open tender in the lead's product line at creation, up to the cap
    open_tender_logit: float = 0.45
    open_tender_cap: int = 3
    # holiday weeks in the lead's country: buyers are away
    holiday_week_logit: float = -0.45
    # Response delay: conversion falls 1.9% per hour of first-touch delay, compounding.
    delay_decay_per_hour: float = 0.019
    # A rep whose proficiency in the lead's language is below the threshold loses this share.
    language_threshold: float = 0.8
    language_mismatch_factor: float = 0.55
    # A rep more than this many hours away from the lead loses this share.
    timezone_gap_hours: float = 3.0
    timezone_gap_factor: float = 0.75
    # Rep response time once a rep holds the lead: lognormal, median hours and log-sd.
    response_median_hours: float = 16.0
    response_sigma: float = 1.1


@dataclass(frozen=True)
class RepMechanism:
    """How much the rep who holds a lead or deal matters, beyond language, time zone and delay.

    Field facts (issue 16 and the sales-performance literature it cites): win rates of a team's best
    and worst reps commonly differ by 2x or more, and reps sell better to industries and product
    lines they have experience in. The sizes below are this world's choice within those facts:
    a lognormal skill whose spread puts the best of 60 reps at ~2.5x the worst, a lift on the
    industries a rep lists in the CRM (the reps table's ``industries``), and a lift on two product
    lines a rep has sold before (not in the CRM: only history reveals it). Each is centred so the
    average rep keeps the team's base rate.
    """

    # log of the conversion multiplier, Normal(0, sd) per rep
    skill_sd: float = 0.2
    # log multiplier on conversion for a lead in one of the rep's listed industries
    industry_experience: float = 0.3
    # log multiplier for a lead in one of the rep's product lines, and how many lines a rep has
    product_experience: float = 0.25
    product_lines_per_rep: int = 2
    # the owner's skill on an opportunity's weekly log-odds: milestones come faster, losses slower
    opportunity_advance_per_skill: float = 1.0
    opportunity_loss_per_skill: float = -1.0


@dataclass(frozen=True)
class OpportunityMechanism:
    """Week-by-week life of an open opportunity (a Markov chain on observable state)."""

    # activities per week by stage index, decaying with idle weeks (stalls feed themselves)
    activity_rate_by_stage: tuple[float, ...] = (1.6, 2.0, 2.4, 2.2, 2.6, 0.0)
    idle_decay_per_week: float = 0.35
    stall_start_prob: float = 0.12  # a week with the buyer gone quiet, activity x0.15
    resistant_base: float = 0.15
    positive_base: float = 0.40
    resistant_after_swing: float = 0.20  # extra resistant share after a commodity swing
    # milestone advance log-odds
    advance_base: float = -1.6
    advance_per_log1p_activity: float = 1.0
    advance_per_positive: float = 0.35
    advance_resistant_wave: float = -1.2  # >=3 resistant signals in the week
    advance_open_tender: float = 0.35
    advance_size_per_decade: float = 0.15
    advance_swing_exposed: float = -0.9  # >5% commodity swing last week on an exposed line
    # the last stretch: procurement approval, legal pre-review and the stamped contract
    late_stage_boost: float = 0.9
    legal_skip_prob: float = 0.25  # deals that go past legal pre-review without it
    legal_skip_contract_penalty: float = -2.2  # ...then stall at the contract stage
    # loss hazard log-odds per week
    loss_base: float = -4.0
    loss_per_idle_week: float = 0.35
    loss_resistant_wave: float = 1.3
    loss_swing_exposed: float = 1.1
    loss_progress: float = -1.5  # per share of milestones reached
    swing_threshold: float = 0.05  # a weekly commodity move that buyers react to
    max_open_weeks: int = 52  # closed lost (no decision) after a year
    # rep gut feel: expected close date, optimistic
    rep_expected_weeks_mean: float = 9.0
    oracle_paths: int = 64  # Monte Carlo paths per opportunity-week for the oracle


@dataclass(frozen=True)
class ChurnMechanism:
    """Whether an account renews, from what its data shows 90 days before renewal."""

    base_logit: float = -1.7
    low_usage_threshold: float = 0.30
    low_usage_logit: float = 1.2
    usage_logit_per_unit: float = -1.6
    no_admin_login_days: int = 30
    no_admin_login_logit: float = 1.0
    punctuality_threshold: float = 0.85
    late_payer_logit: float = 0.9
    ticket_trend_logit_per_ticket: float = 0.12
    nps_logit_per_point: float = -0.18  # per NPS point (0-10) above/below 7
    score_days_before_renewal: int = 90


WORLD_END = pd.Timestamp("2026-11-02", tz="UTC")  # a Monday: weekly snapshots line up with it
WORLD_MANIFEST = "world.json"  # beside the oracle: the seed and end a world was generated with


def monday_of(at: datetime) -> pd.Timestamp:
    """Monday 00:00 UTC of ``at``'s week: where a world generated at ``at`` ends (the demo world
    ends in the week it is made, so its features are as fresh as a CRM export of that week)."""
    t = pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC")
    return (t - pd.Timedelta(days=t.weekday())).normalize()


def write_world_manifest(oracle_dir: Path, params: WorldParams) -> None:
    (oracle_dir / WORLD_MANIFEST).write_text(
        json.dumps({"seed": params.seed, "end": params.end.isoformat()}, indent=2) + "\n"
    )


def world_end_of(oracle_dir: Path) -> pd.Timestamp:
    """The end a generated world was made with (``WORLD_END`` for a world older than its manifest)."""
    path = oracle_dir / WORLD_MANIFEST
    if not path.exists():
        return WORLD_END
    return pd.Timestamp(json.loads(path.read_text())["end"]).tz_convert("UTC")


@dataclass(frozen=True)
class WorldParams:
    """Sizes and dates of the world; ``scaled`` grows every count together."""

    seed: int = 7
    end: pd.Timestamp = WORLD_END
    months: int = 30
    n_leads: int = 50_000
    leads_per_company: float = 2.5
    n_accounts: int = 3_000
    reps_per_region: tuple[int, int, int] = (30, 15, 15)
    tenders_per_company_year: float = 4.0
    lead: LeadMechanism = field(default_factory=LeadMechanism)
    rep: RepMechanism = field(default_factory=RepMechanism)
    opportunity: OpportunityMechanism = field(default_factory=OpportunityMechanism)
    churn: ChurnMechanism = field(default_factory=ChurnMechanism)

    @property
    def start(self) -> pd.Timestamp:
        return self.end - pd.DateOffset(months=self.months)

    @property
    def n_companies(self) -> int:
        return max(10, int(self.n_leads / self.leads_per_company))

    def scaled(self, scale: float, *, scale_reps: bool = False) -> WorldParams:
        """The same world with ``scale`` times the leads and accounts (reps only if asked)."""
        reps = self.reps_per_region
        if scale_reps:
            reps = tuple(max(2, round(r * scale)) for r in reps)  # type: ignore[assignment]
        return replace(
            self,
            n_leads=max(200, int(self.n_leads * scale)),
            n_accounts=max(40, int(self.n_accounts * scale)),
            reps_per_region=reps,
        )


# Industry x product-line fit, in log-odds units (rows follow catalog.INDUSTRIES, columns
# catalog.PRODUCT_LINES): how naturally a buyer in the industry needs the product.
FIT_MATRIX: tuple[tuple[float, ...], ...] = (
    (0.4, 0.3, 0.2, 0.1, 0.0),  # manufacturing
    (0.3, 0.5, 0.0, 0.8, 0.8),  # energy
    (0.5, 0.1, 0.8, -0.3, 0.1),  # construction
    (0.2, 0.0, 0.1, 0.6, -0.2),  # automotive
    (0.3, 0.2, -0.4, 0.3, 0.2),  # electronics
    (0.0, 0.2, 0.3, -0.2, -0.3),  # chemicals
    (-0.3, -0.2, 0.4, 0.2, 0.1),  # logistics
    (0.6, 0.8, 0.0, 0.5, 0.4),  # utilities
)

# Expected events of each type in the 30 days before a lead, for a lead of average intent.
PRE_LEAD_EVENT_RATES: dict[str, float] = {
    "page_view": 6.0,
    "pricing_view": 1.2,
    "competitor_comparison_view": 1.5,
    "whitepaper_download": 0.6,
    "webinar": 0.3,
    "email_open": 2.0,
    "email_click": 0.7,
    "demo_request": 0.25,
    "service_needs_form": 0.4,
}
POST_LEAD_EVENT_SHARE = 0.5  # engagement after the lead exists, relative to before
INTENT_GAMMA_SHAPE = 0.8  # buying intent across leads: most low, a few very high
