"""Feature views: the four signal families (behaviour, firmographics, tenders, commodities) plus
opportunity, account and rep views. Each view reads one feature table of the same name.

``SERVING_WINDOW`` says how far back materialisation looks for each view: only the latest state
serving needs (open opportunities' last snapshot, recently active companies' behaviour, ...).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureView, Field
from feast.types import Array, Float64, Int64, String

from features.catalog import (
    BEHAVIOR_EVENT_TYPES,
    BEHAVIOR_WINDOWS_DAYS,
    LANGUAGES,
    MILESTONES,
    PRODUCT_LINE_NAMES,
)
from features.importers.manifest import ATTRIBUTE_VIEW
from features.repo.entities import account, commodity, company, lead, opportunity, rep
from features.repo.sources import behavior_push_source, table_source
from features.request_time import (
    BEHAVIOR_STORED_DAY,
    LAST_EVENT_AT,
    LAST_TENDER_AT,
    TENDER_STORED_DAY,
    daily_column,
)

WINDOWS_DAYS = BEHAVIOR_WINDOWS_DAYS

BEHAVIOR_FIELDS = [
    *(Field(name=f"{t}_{w}d", dtype=Int64) for t in BEHAVIOR_EVENT_TYPES for w in WINDOWS_DAYS),
    Field(name="events_30d", dtype=Int64),
    Field(name="days_since_last_event", dtype=Float64),
    Field(name="intent_combo", dtype=Int64),
]
# what the lead model's request-time windows and ages are computed from (features.request_time)
BEHAVIOR_REQUEST_TIME_FIELDS = [
    Field(name=BEHAVIOR_STORED_DAY, dtype=Int64),
    Field(name=LAST_EVENT_AT, dtype=Float64),
    *(Field(name=daily_column(t), dtype=Array(Int64)) for t in BEHAVIOR_EVENT_TYPES),
]
FIRMOGRAPHIC_FIELDS = [
    Field(name="industry", dtype=String),
    Field(name="country", dtype=String),
    Field(name="registered_capital_cny", dtype=Float64),
    Field(name="insured_headcount", dtype=Int64),
    Field(name="log_headcount", dtype=Float64),
    Field(name="revenue_band", dtype=String),
    Field(name="company_age_years", dtype=Float64),
]
TENDER_FIELDS = [
    Field(name="tenders_30d", dtype=Int64),
    Field(name="tenders_90d", dtype=Int64),
    Field(name="tender_budget_90d_cny", dtype=Float64),
    Field(name="open_tenders", dtype=Int64),
    *(Field(name=f"open_tenders_{line}", dtype=Int64) for line in PRODUCT_LINE_NAMES),
    Field(name="days_since_last_tender", dtype=Float64),
]
# what the lead model's request-time tender windows and recency are computed from; the close model
# reads the row-dated fields above (its rows sit at the weekly snapshots, so they are dated right)
TENDER_REQUEST_TIME_FIELDS = [
    Field(name=TENDER_STORED_DAY, dtype=Int64),
    Field(name=LAST_TENDER_AT, dtype=Float64),
    Field(name=daily_column("tenders"), dtype=Array(Int64)),
    Field(name=daily_column("tender_budget"), dtype=Array(Float64)),
]
COMMODITY_FIELDS = [
    Field(name="price", dtype=Float64),
    Field(name="change_1w", dtype=Float64),
    Field(name="change_4w", dtype=Float64),
    Field(name="volatility_4w", dtype=Float64),
]
OPPORTUNITY_FIELDS = [
    Field(name="milestones_reached", dtype=Int64),
    *(Field(name=f"ms_{m}", dtype=Int64) for m in MILESTONES),
    Field(name="stage_index", dtype=Int64),
    Field(name="days_in_stage", dtype=Float64),
    Field(name="legal_prereview_skipped", dtype=Int64),
    Field(name="days_since_last_activity", dtype=Float64),
    Field(name="activities_7d", dtype=Int64),
    Field(name="activities_30d", dtype=Int64),
    Field(name="resistant_7d", dtype=Int64),
    Field(name="positive_7d", dtype=Int64),
    Field(name="amount_cny", dtype=Float64),
    Field(name="log_amount", dtype=Float64),
    Field(name="weeks_open", dtype=Float64),
    Field(name="product_line", dtype=String),
    Field(name="commodity", dtype=String),
    Field(name="exposure", dtype=Float64),
    Field(name="days_to_expected_close", dtype=Float64),
    Field(name="owner_rep_id", dtype=String),
    Field(name="company_id", dtype=String),
]
ACCOUNT_FIELDS = [
    Field(name="usage_rate_30d", dtype=Float64),
    Field(name="active_users_30d", dtype=Float64),
    Field(name="seat_utilization_30d", dtype=Float64),
    Field(name="days_since_admin_login", dtype=Float64),
    Field(name="alerts_30d", dtype=Int64),
    Field(name="tickets_30d", dtype=Int64),
    Field(name="tickets_prev_30d", dtype=Int64),
    Field(name="ticket_trend", dtype=Int64),
    Field(name="last_nps", dtype=Float64),
    Field(name="payment_punctuality_12m", dtype=Float64),
    Field(name="arr_cny", dtype=Float64),
    Field(name="days_to_renewal", dtype=Float64),
    Field(name="tenure_days", dtype=Float64),
]
REP_FIELDS = [
    Field(name="team", dtype=String),
    Field(name="region", dtype=String),
    Field(name="timezone", dtype=String),
    Field(name="work_start_hour", dtype=Int64),
    Field(name="work_end_hour", dtype=Int64),
    Field(name="capacity", dtype=Int64),
    *(Field(name=f"lang_{lang}", dtype=Float64) for lang in LANGUAGES),
    Field(name="leads_90d", dtype=Int64),
    Field(name="conversion_rate_90d", dtype=Float64),
    Field(name="open_opportunities", dtype=Int64),
]

# The week-over-week behaviour trend behind lead_score_v2 (features.jobs.behavior_trend).
BEHAVIOR_TREND_FIELDS = [
    Field(name="events_7d", dtype=Int64),
    Field(name="events_prev_7d", dtype=Int64),
    Field(name="events_wow_log_ratio", dtype=Float64),
]

# An import's own milestones beyond the canonical twelve, flagged at the weekly deal snapshots
# (``features.jobs.opportunity_snapshots.build_custom_milestones``); only where an import has some.
CUSTOM_MILESTONE_VIEW = "opportunity_custom_milestones"

# How far back materialisation reads each view (None: all history, e.g. every company's profile).
SERVING_WINDOW: dict[str, timedelta | None] = {
    "company_firmographics": None,
    # every company with an event / a tender also has a row at the build's as_of (its last event
    # time and buckets), so a quiet one is served too
    "company_behavior": timedelta(days=30),
    "lead_behavior": timedelta(days=30),
    "company_tenders": timedelta(days=90),
    "commodity_prices": timedelta(days=7),
    "opportunity_snapshots": timedelta(days=7),
    "account_health": timedelta(days=7),
    "rep_profile": timedelta(days=31),
    "company_behavior_trend": timedelta(days=1),  # every company has a row at the build's as_of
}


# The same for the views an import adds (``schema_views``; absent: all history, as for attributes).
IMPORT_VIEW_WINDOW: dict[str, timedelta] = {CUSTOM_MILESTONE_VIEW: SERVING_WINDOW["opportunity_snapshots"]}


def serving_window(view: str) -> timedelta | None:
    """How far back materialisation reads ``view`` (None: all its history)."""
    return SERVING_WINDOW[view] if view in SERVING_WINDOW else IMPORT_VIEW_WINDOW.get(view)


def feature_views(feature_dir: Path) -> dict[str, FeatureView]:
    """Every view by name. ``ttl=0``: point-in-time joins look back without limit."""

    def view(name: str, entity, fields, source=None, description: str = "") -> FeatureView:
        return FeatureView(
            name=name,
            entities=[entity],
            ttl=timedelta(0),
            schema=list(fields),
            online=True,
            source=source or table_source(feature_dir, name),
            description=description,
        )

    views = [
        view(
            "company_behavior",
            company,
            [*BEHAVIOR_FIELDS, *BEHAVIOR_REQUEST_TIME_FIELDS],
            behavior_push_source(feature_dir),
            "Web and email behaviour of the company in 1/7/30-day windows; pushable.",
        ),
        view("lead_behavior", lead, BEHAVIOR_FIELDS, description="The lead's own engagement after creation."),
        view(
            "company_firmographics",
            company,
            FIRMOGRAPHIC_FIELDS,
            description="Registered capital, insured headcount, industry (工商 snapshots).",
        ),
        view(
            "company_tenders",
            company,
            [*TENDER_FIELDS, *TENDER_REQUEST_TIME_FIELDS],
            description="Public tenders (招投标) by the company.",
        ),
        view(
            "commodity_prices",
            commodity,
            COMMODITY_FIELDS,
            description="Daily price, 1w/4w change, volatility.",
        ),
        view(
            "opportunity_snapshots",
            opportunity,
            OPPORTUNITY_FIELDS,
            description="Weekly state of an open opportunity: milestones, stage, activity, sentiment.",
        ),
        view("account_health", account, ACCOUNT_FIELDS, description="Usage, tickets, NPS and payments."),
        view(
            "rep_profile", rep, REP_FIELDS, description="Rep time zone, languages, capacity, recent results."
        ),
        view(
            "company_behavior_trend",
            company,
            BEHAVIOR_TREND_FIELDS,
            description="Week-over-week change in the company's behaviour intensity (lead_score_v2).",
        ),
    ]
    views += schema_views(feature_dir)
    return {v.name: v for v in views}


# The entity of each imported kind's custom attribute view (see ``features.importers``).
ATTRIBUTE_ENTITY: dict[str, Entity] = {
    ATTRIBUTE_VIEW["leads"]: lead,
    ATTRIBUTE_VIEW["opportunities"]: opportunity,
    ATTRIBUTE_VIEW["accounts"]: account,
}


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def schema_views(feature_dir: Path) -> list[FeatureView]:
    """Views whose fields an import declares, only where its feature table was written: the custom
    attributes of imported CRM exports and an import's custom milestones.

    Their fields are whatever the export's mapping declared, so they are read from the feature
    table's own schema (text -> String, numbers -> Float64) rather than listed here.
    """
    described = {
        **dict.fromkeys(ATTRIBUTE_ENTITY, "Custom attributes of an imported CRM export."),
        CUSTOM_MILESTONE_VIEW: "Custom milestones of an imported CRM, reached by each weekly deal snapshot.",
    }
    entities = {**ATTRIBUTE_ENTITY, CUSTOM_MILESTONE_VIEW: opportunity}
    views = []
    for name, entity in entities.items():
        path = feature_dir / f"{name}.parquet"
        if not path.exists():
            continue
        keys = {entity.join_key, "event_timestamp"}
        fields = [
            Field(name=f.name, dtype=String if _is_text(f.type) else Float64)
            for f in pq.read_schema(path)
            if f.name not in keys
        ]
        views.append(
            FeatureView(
                name=name,
                entities=[entity],
                ttl=timedelta(0),
                schema=fields,
                online=True,
                source=table_source(feature_dir, name),
                description=described[name],
            )
        )
    return views
