"""Domain catalogues shared by the world, the feature jobs, training and serving.

One source of truth for the milestone list, stages, product lines and their commodity exposure,
channels, contact roles, languages and the countries leads come from.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES: tuple[str, ...] = ("zh", "en", "ja", "ko", "de", "fr", "es", "pt")

CHANNELS: tuple[str, ...] = (
    "web_form",
    "trade_show",
    "paid_search",
    "social_ads",
    "referral",
    "outbound",
    "wechat",
)
UTM_SOURCES: dict[str, tuple[str, ...]] = {
    "web_form": ("organic", "baidu_seo", "google_seo"),
    "trade_show": ("expo",),
    "paid_search": ("baidu", "google"),
    "social_ads": ("linkedin", "douyin", "facebook"),
    "referral": ("partner", "customer"),
    "outbound": ("sdr",),
    "wechat": ("wechat_oa", "wechat_mini"),
}
CONTACT_ROLES: tuple[str, ...] = ("influencer", "purchaser", "user", "decision_maker", "veto")

INDUSTRIES: tuple[str, ...] = (
    "manufacturing",
    "energy",
    "construction",
    "automotive",
    "electronics",
    "chemicals",
    "logistics",
    "utilities",
)

COMMODITIES: tuple[str, ...] = ("copper", "aluminium", "steel", "lithium_carbonate", "polysilicon")


@dataclass(frozen=True)
class ProductLine:
    name: str
    commodity: str
    exposure: float  # share of the deal's cost that moves with the commodity price
    base_amount_cny: float


PRODUCT_LINES: tuple[ProductLine, ...] = (
    ProductLine("power_cables", "copper", 0.6, 400_000),
    ProductLine("switchgear", "aluminium", 0.3, 900_000),
    ProductLine("steel_structures", "steel", 0.5, 1_500_000),
    ProductLine("energy_storage", "lithium_carbonate", 0.5, 2_500_000),
    ProductLine("pv_modules", "polysilicon", 0.5, 1_200_000),
)
PRODUCT_LINE_NAMES: tuple[str, ...] = tuple(p.name for p in PRODUCT_LINES)
COMMODITY_OF_PRODUCT_LINE: dict[str, str] = {p.name: p.commodity for p in PRODUCT_LINES}
EXPOSURE_OF_PRODUCT_LINE: dict[str, float] = {p.name: p.exposure for p in PRODUCT_LINES}
BASE_AMOUNT_OF_PRODUCT_LINE: dict[str, float] = {p.name: p.base_amount_cny for p in PRODUCT_LINES}

STAGES: tuple[str, ...] = (
    "lead_captured",
    "needs_confirmed",
    "technical_exchange",
    "proposal_quote",
    "negotiation",
    "contract_signed",
)

# Ordered as deals usually reach them; a deal's stage follows from how many it has reached.
MILESTONES: tuple[str, ...] = (
    "budget_confirmed",
    "decision_chain_mapped",
    "nda_signed",
    "site_survey_done",
    "technical_parameters_matched",
    "sample_poc_passed",
    "solution_presented",
    "quote_submitted",
    "procurement_committee_approved",  # 立项会
    "legal_prereview_passed",  # 法务预审
    "third_party_test_report_issued",
    "contract_stamped",
)
LEGAL_PREREVIEW_INDEX = MILESTONES.index("legal_prereview_passed")

# Milestones reached (count) at which each stage begins.
STAGE_START_MILESTONE_COUNT: tuple[int, ...] = (0, 2, 4, 7, 9, 12)

ACTIVITY_TYPES: tuple[str, ...] = ("call", "visit", "wechat", "email", "meeting")
SENTIMENTS: tuple[str, ...] = ("positive", "neutral", "resistant")

# Behaviour is counted in these trailing windows (days), for features and mechanisms alike.
BEHAVIOR_WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
# The intent combination: >=3 competitor-comparison views + a whitepaper + a service-needs form in 30 days.
INTENT_COMBO_MIN_COMPARISONS = 3

BEHAVIOR_EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "pricing_view",
    "competitor_comparison_view",
    "whitepaper_download",
    "webinar",
    "email_open",
    "email_click",
    "demo_request",
    "service_needs_form",
)


@dataclass(frozen=True)
class Country:
    code: str
    timezone: str
    language: str
    lead_share: float


COUNTRIES: tuple[Country, ...] = (
    Country("CN", "Asia/Shanghai", "zh", 0.55),
    Country("JP", "Asia/Tokyo", "ja", 0.06),
    Country("KR", "Asia/Seoul", "ko", 0.05),
    Country("SG", "Asia/Singapore", "en", 0.04),
    Country("DE", "Europe/Berlin", "de", 0.06),
    Country("FR", "Europe/Paris", "fr", 0.04),
    Country("GB", "Europe/London", "en", 0.04),
    Country("ES", "Europe/Madrid", "es", 0.03),
    Country("US", "America/New_York", "en", 0.06),
    Country("MX", "America/Mexico_City", "es", 0.03),
    Country("BR", "America/Sao_Paulo", "pt", 0.04),
)


def stage_of_milestone_count(count: int) -> str:
    """The stage a deal is in once it has reached ``count`` milestones."""
    stage = STAGES[0]
    for name, start in zip(STAGES, STAGE_START_MILESTONE_COUNT, strict=True):
        if count >= start:
            stage = name
    return stage
