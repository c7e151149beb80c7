"""Feature jobs: hand-built canonical frames whose right answers can be checked by eye.

Dates in these tests: 2024-01-01 is a Monday, so Mondays are Jan 1, 8, 15, 22, 29, Feb 5, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.catalog import BEHAVIOR_EVENT_TYPES, LANGUAGES, MILESTONES, PRODUCT_LINE_NAMES, STAGES
from features.jobs.account_health import build_account_health
from features.jobs.behavior import build_company_behavior, build_lead_behavior
from features.jobs.commodity_prices import build_commodity_prices
from features.jobs.company_firmographics import build_company_firmographics
from features.jobs.company_tenders import build_company_tenders
from features.jobs.opportunity_snapshots import build_opportunity_snapshots
from features.jobs.raw import latest_observed_time
from features.jobs.rep_profile import build_rep_profile
from features.jobs.run import FEATURE_JOBS, build_all
from features.schema import CANONICAL_TABLES, validate_table, write_table
from funnelcast.core.settings import Settings


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def table(name: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    """A canonical table from a few rows: unspecified columns are null, types exactly as read from Parquet."""
    schema = CANONICAL_TABLES[name]
    frame = pd.DataFrame(rows, columns=schema.names)
    for field in schema:
        if pa.types.is_timestamp(field.type):
            frame[field.name] = pd.to_datetime(frame[field.name], utc=True).dt.floor(
                "s"
            )  # tables hold seconds
    return validate_table(name, frame).to_pandas()


def empty(name: str) -> pd.DataFrame:
    return table(name, [])


def row_at(frame: pd.DataFrame, key: str, entity: str, at: str) -> pd.Series:
    hits = frame[(frame[key] == entity) & (frame["event_timestamp"] == ts(at))]
    assert len(hits) == 1, f"expected one row for {entity} at {at}, found {len(hits)}"
    return hits.iloc[0]


# --- behaviour ---------------------------------------------------------------------------------------


def behavior_world() -> dict[str, pd.DataFrame]:
    events = [
        ("c1", "l1", "2024-01-01 10:00", "page_view"),
        ("c1", None, "2024-01-05 09:00", "page_view"),
        ("c1", "l1", "2024-01-06 08:00", "pricing_view"),
        ("c1", "l1", "2024-01-20 12:00", "page_view"),  # after the lead's creation row: must not count there
        ("c2", None, "2024-01-03 00:00", "webinar"),
    ]
    return {
        "behavior_events": table(
            "behavior_events",
            [{"company_id": c, "lead_id": lead, "ts": t, "event_type": e} for c, lead, t, e in events],
        ),
        "leads": table(
            "leads",
            [
                {"lead_id": "l1", "company_id": "c1", "created_at": "2024-01-06 12:00"},
                {"lead_id": "l2", "company_id": "c3", "created_at": "2024-01-07 00:00"},
            ],
        ),
    }


def test_company_window_counts_exclude_events_after_the_row_time() -> None:
    out = build_company_behavior(behavior_world(), ts("2024-02-01"))
    at_lead = row_at(out, "company_id", "c1", "2024-01-06 12:00")
    assert at_lead["page_view_1d"] == 0
    assert at_lead["page_view_7d"] == 2  # Jan 1 10:00 and Jan 5; the Jan 20 view is in the future
    assert at_lead["page_view_30d"] == 2
    assert at_lead["pricing_view_1d"] == 1
    assert at_lead["events_30d"] == 3
    assert at_lead["days_since_last_event"] == pytest.approx(4 / 24)  # since Jan 6 08:00
    at_as_of = row_at(out, "company_id", "c1", "2024-02-01")
    assert at_as_of["page_view_30d"] == 2  # Jan 5 and Jan 20; Jan 1 left the window
    assert at_as_of["page_view_7d"] == 0


def test_window_boundary_counts_an_event_exactly_at_t_and_drops_one_exactly_w_before() -> None:
    out = build_company_behavior(behavior_world(), ts("2024-02-01"))
    at_event = row_at(out, "company_id", "c1", "2024-01-01 10:00")
    assert at_event["page_view_1d"] == 1
    later = row_at(out, "company_id", "c1", "2024-01-05 09:00")
    assert later["page_view_1d"] == 1  # Jan 1 10:00 is four days back
    world = behavior_world()
    world["leads"] = table("leads", [{"lead_id": "l9", "company_id": "c1", "created_at": "2024-01-02 10:00"}])
    one_day_later = row_at(
        build_company_behavior(world, ts("2024-02-01")), "company_id", "c1", "2024-01-02 10:00"
    )
    assert one_day_later["page_view_1d"] == 0  # the window is (t - 1 day, t]


def test_behavior_rows_sit_at_events_lead_creations_and_as_of_once_each() -> None:
    out = build_company_behavior(behavior_world(), ts("2024-02-01"))
    c1_times = out.loc[out["company_id"] == "c1", "event_timestamp"].tolist()
    assert c1_times == [
        ts("2024-01-01 10:00"),
        ts("2024-01-05 09:00"),
        ts("2024-01-06 08:00"),
        ts("2024-01-06 12:00"),
        ts("2024-01-20 12:00"),
        ts("2024-02-01"),
    ]
    c3 = out[out["company_id"] == "c3"]  # a lead but no events: zero counts, unknown recency, no as-of row
    assert c3["event_timestamp"].tolist() == [ts("2024-01-07")]
    assert c3["events_30d"].item() == 0 and np.isnan(c3["days_since_last_event"].item())
    assert not out.duplicated(["company_id", "event_timestamp"]).any()


def test_behavior_ignores_events_after_as_of() -> None:
    out = build_company_behavior(behavior_world(), ts("2024-01-10"))
    assert out["event_timestamp"].max() == ts("2024-01-10")
    assert row_at(out, "company_id", "c1", "2024-01-10")["page_view_30d"] == 2


def test_lead_behavior_counts_only_events_tied_to_the_lead() -> None:
    out = build_lead_behavior(behavior_world(), ts("2024-02-01"))
    at_creation = row_at(out, "lead_id", "l1", "2024-01-06 12:00")
    assert at_creation["page_view_7d"] == 1  # the Jan 5 view has no lead_id
    assert at_creation["pricing_view_1d"] == 1
    assert set(out["lead_id"]) == {"l1", "l2"}
    assert list(out.columns[:2]) == ["lead_id", "event_timestamp"]
    assert (
        len([c for c in out.columns if c.endswith(("_1d", "_7d", "_30d"))])
        == 3 * len(BEHAVIOR_EVENT_TYPES) + 1
    )


def test_intent_combo_needs_three_comparisons_a_whitepaper_and_a_service_form() -> None:
    kinds = ["competitor_comparison_view"] * 3 + ["whitepaper_download", "service_needs_form"]
    events = [
        {"company_id": "c1", "ts": f"2024-01-{day:02d} 09:00", "event_type": kind}
        for day, kind in zip(range(1, 6), kinds, strict=True)
    ]
    world = {"behavior_events": table("behavior_events", events), "leads": empty("leads")}
    out = build_company_behavior(world, ts("2024-01-31"))
    assert row_at(out, "company_id", "c1", "2024-01-04 09:00")["intent_combo"] == 0  # no form yet
    assert row_at(out, "company_id", "c1", "2024-01-05 09:00")["intent_combo"] == 1
    assert row_at(out, "company_id", "c1", "2024-01-31")["intent_combo"] == 1
    late = build_company_behavior(world, ts("2024-02-03 10:00"))  # first comparison left the 30 days
    assert row_at(late, "company_id", "c1", "2024-02-03 10:00")["intent_combo"] == 0


# --- tenders -----------------------------------------------------------------------------------------


def tender_world() -> dict[str, pd.DataFrame]:
    tenders = [
        ("t1", "c1", "2024-01-02 00:00", "power_cables", 100.0, "2024-01-20 00:00"),
        ("t2", "c1", "2024-01-10 00:00", "switchgear", 50.0, "2024-03-01 00:00"),
        ("t3", "c1", "2024-03-05 00:00", "power_cables", 10.0, "2024-04-01 00:00"),  # after the lead
    ]
    return {
        "tenders": table(
            "tenders",
            [
                {
                    "tender_id": i,
                    "company_id": c,
                    "published_at": p,
                    "category": k,
                    "budget_cny": b,
                    "deadline_at": d,
                }
                for i, c, p, k, b, d in tenders
            ],
        ),
        "leads": table("leads", [{"lead_id": "l1", "company_id": "c1", "created_at": "2024-01-15 00:00"}]),
        "opportunities": table(
            "opportunities",
            [
                {
                    "opportunity_id": "o1",
                    "company_id": "c1",
                    "created_at": "2024-01-17 12:00",
                    "closed_at": "2024-01-30 00:00",
                    "product_line": "power_cables",
                    "amount_cny": 1.0,
                }
            ],
        ),
    }


def test_open_tenders_count_a_tender_until_its_deadline_and_not_at_it() -> None:
    out = build_company_tenders(tender_world(), ts("2024-03-31"))
    at_lead = row_at(out, "company_id", "c1", "2024-01-15")
    assert at_lead["open_tenders"] == 2
    assert at_lead["open_tenders_power_cables"] == 1 and at_lead["open_tenders_switchgear"] == 1
    at_deadline = row_at(out, "company_id", "c1", "2024-01-20")
    assert at_deadline["open_tenders"] == 1  # t1 closes at its deadline
    assert at_deadline["open_tenders_power_cables"] == 0
    assert row_at(out, "company_id", "c1", "2024-03-31")["open_tenders_power_cables"] == 1  # t3


def test_tender_counts_and_budget_use_publication_windows_up_to_t() -> None:
    out = build_company_tenders(tender_world(), ts("2024-03-31"))
    at_lead = row_at(out, "company_id", "c1", "2024-01-15")
    assert (at_lead["tenders_30d"], at_lead["tenders_90d"]) == (2, 2)
    assert at_lead["tender_budget_90d_cny"] == 150.0  # t3's budget is published later
    assert at_lead["days_since_last_tender"] == 5.0
    assert {f"open_tenders_{line}" for line in PRODUCT_LINE_NAMES} <= set(out.columns)


def test_tender_rows_include_weekly_opportunity_snapshots_of_the_company() -> None:
    out = build_company_tenders(tender_world(), ts("2024-03-31"))
    times = set(out.loc[out["company_id"] == "c1", "event_timestamp"])
    assert {ts("2024-01-22"), ts("2024-01-29")} <= times  # o1's Mondays while open
    assert ts("2024-04-01") not in times  # t3's deadline lies after as_of


# --- commodity prices --------------------------------------------------------------------------------


def test_commodity_changes_compare_with_prices_seven_and_28_days_earlier() -> None:
    days = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC")
    prices = 100.0 * 1.01 ** np.arange(40)
    raw = {
        "commodity_prices": table(
            "commodity_prices",
            [{"commodity": "copper", "date": d, "price": p} for d, p in zip(days, prices, strict=True)],
        )
    }
    out = build_commodity_prices(raw, ts("2024-02-09"))
    assert len(out) == 40
    last = out.iloc[-1]
    assert last["change_1w"] == pytest.approx(1.01**7 - 1)
    assert last["change_4w"] == pytest.approx(1.01**28 - 1)
    assert last["volatility_4w"] == pytest.approx(0.0, abs=1e-12)  # constant growth: no volatility
    assert np.isnan(out.iloc[3]["change_1w"])


def test_commodity_volatility_is_the_sample_std_of_log_returns_in_the_last_28_days() -> None:
    days = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    rng = np.random.default_rng(3)
    prices = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 30)))
    raw = {
        "commodity_prices": table(
            "commodity_prices",
            [{"commodity": "steel", "date": d, "price": p} for d, p in zip(days, prices, strict=True)],
        )
    }
    out = build_commodity_prices(raw, ts("2024-01-30"))
    returns = np.diff(np.log(prices))
    assert out.iloc[-1]["volatility_4w"] == pytest.approx(np.std(returns[-28:], ddof=1))


# --- opportunity snapshots ---------------------------------------------------------------------------


def opportunity_world() -> dict[str, pd.DataFrame]:
    opps = [
        {
            "opportunity_id": "o1",
            "company_id": "c1",
            "owner_rep_id": "r1",
            "product_line": "power_cables",
            "amount_cny": 999.0,
            "created_at": "2024-01-03 10:00",
            "expected_close_at": "2024-02-05 00:00",
            "outcome": "won",
            "closed_at": "2024-01-29 00:00",
        },
        {
            "opportunity_id": "o2",
            "company_id": "c2",
            "owner_rep_id": "r2",
            "product_line": "switchgear",
            "amount_cny": 9.0,
            "created_at": "2024-01-08 00:00",
            "outcome": "lost",
            "closed_at": "2024-01-24 00:00",
        },
    ]
    milestones = [
        ("o1", "2024-01-05 00:00", "budget_confirmed"),
        ("o1", "2024-01-16 00:00", "decision_chain_mapped"),
    ]
    stages = [("o1", "2024-01-03 10:00", "lead_captured"), ("o1", "2024-01-16 00:00", "needs_confirmed")]
    activities = [
        ("o1", "2024-01-07 00:00", "resistant"),
        ("o1", "2024-01-12 00:00", "positive"),
        ("o1", "2024-01-14 00:00", "resistant"),
        ("o1", "2024-01-15 00:00", "resistant"),
    ]
    return {
        "opportunities": table("opportunities", opps),
        "milestone_events": table(
            "milestone_events", [{"opportunity_id": o, "ts": t, "milestone": m} for o, t, m in milestones]
        ),
        "stage_events": table(
            "stage_events", [{"opportunity_id": o, "ts": t, "stage": s} for o, t, s in stages]
        ),
        "activities": table(
            "activities",
            [
                {"opportunity_id": o, "ts": t, "activity_type": "call", "sentiment": s}
                for o, t, s in activities
            ],
        ),
    }


def test_opportunity_snapshots_are_mondays_after_creation_that_stop_at_closing() -> None:
    out = build_opportunity_snapshots(opportunity_world(), ts("2024-03-01"))
    o1 = out.loc[out["opportunity_id"] == "o1", "event_timestamp"].tolist()
    assert o1 == [
        ts("2024-01-08"),
        ts("2024-01-15"),
        ts("2024-01-22"),
        ts("2024-01-29"),
    ]  # closed Jan 29 00:00
    o2 = out.loc[out["opportunity_id"] == "o2", "event_timestamp"].tolist()
    assert o2 == [ts("2024-01-15"), ts("2024-01-22")]  # created on a Monday: strictly after


def test_open_opportunity_snapshots_stop_at_as_of() -> None:
    world = opportunity_world()
    world["opportunities"] = world["opportunities"].assign(closed_at=pd.NaT, outcome="open")
    out = build_opportunity_snapshots(world, ts("2024-01-20"))
    assert out["event_timestamp"].max() == ts("2024-01-15")


def test_snapshot_features_use_only_events_up_to_the_monday() -> None:
    out = build_opportunity_snapshots(opportunity_world(), ts("2024-03-01"))
    jan15 = row_at(out, "opportunity_id", "o1", "2024-01-15")
    assert jan15["milestones_reached"] == 1 and jan15["ms_budget_confirmed"] == 1
    assert jan15["ms_decision_chain_mapped"] == 0  # reached Jan 16
    assert jan15["stage_index"] == STAGES.index("lead_captured")
    assert jan15["days_in_stage"] == pytest.approx(11 + 14 / 24)  # since Jan 3 10:00
    assert (jan15["activities_7d"], jan15["resistant_7d"], jan15["positive_7d"]) == (3, 2, 1)
    assert jan15["days_since_last_activity"] == 0.0
    jan22 = row_at(out, "opportunity_id", "o1", "2024-01-22")
    assert (jan22["milestones_reached"], jan22["stage_index"], jan22["days_in_stage"]) == (2, 1, 6.0)
    assert jan22["activities_30d"] == 4 and jan22["activities_7d"] == 0
    o2 = row_at(out, "opportunity_id", "o2", "2024-01-15")
    assert (o2["stage_index"], o2["days_in_stage"], o2["days_since_last_activity"]) == (0, 7.0, 7.0)


def test_snapshot_carries_deal_attributes_and_commodity_exposure() -> None:
    out = build_opportunity_snapshots(opportunity_world(), ts("2024-03-01"))
    row = row_at(out, "opportunity_id", "o1", "2024-01-29")
    assert (row["product_line"], row["commodity"], row["exposure"]) == ("power_cables", "copper", 0.6)
    assert (row["owner_rep_id"], row["company_id"]) == ("r1", "c1")
    assert row["log_amount"] == pytest.approx(3.0)  # log10(1 + 999)
    assert row["days_to_expected_close"] == 7.0
    assert row["weeks_open"] == pytest.approx((25 + 14 / 24) / 7)
    assert len([c for c in out.columns if c.startswith("ms_")]) == len(MILESTONES)


def test_legal_prereview_skipped_flags_a_later_milestone_reached_without_legal_prereview() -> None:
    world = opportunity_world()
    world["milestone_events"] = table(
        "milestone_events",
        [
            {"opportunity_id": "o1", "ts": "2024-01-09 00:00", "milestone": "procurement_committee_approved"},
            {"opportunity_id": "o1", "ts": "2024-01-10 00:00", "milestone": "third_party_test_report_issued"},
            {"opportunity_id": "o1", "ts": "2024-01-17 00:00", "milestone": "legal_prereview_passed"},
            {"opportunity_id": "o2", "ts": "2024-01-09 00:00", "milestone": "procurement_committee_approved"},
        ],
    )
    out = build_opportunity_snapshots(world, ts("2024-03-01"))
    flags = out.set_index(["opportunity_id", "event_timestamp"])["legal_prereview_skipped"]
    assert flags[("o1", ts("2024-01-08"))] == 0  # nothing reached yet
    assert flags[("o1", ts("2024-01-15"))] == 1  # test report without legal pre-review
    assert flags[("o1", ts("2024-01-22"))] == 0  # pre-review passed since
    assert flags[("o2", ts("2024-01-15"))] == 0  # procurement comes before pre-review: nothing skipped


# --- account health ----------------------------------------------------------------------------------


def account_world() -> dict[str, pd.DataFrame]:
    usage = []
    for i, day in enumerate(pd.date_range("2024-01-01", "2024-03-31", freq="D", tz="UTC")):
        usage.append(
            {
                "account_id": "a1",
                "date": day,
                "active_users": 5,
                "seats": 10,
                "module_usage_rate": 0.2 if day < ts("2024-03-01") else 0.6,
                "admin_logins": 1 if day == ts("2024-02-10") else 0,
                "alerts": 1,
                "support_tickets": 1 if day >= ts("2024-02-20") else 0,
                "nps": 7.0 if i == 10 else None,
            }
        )
    return {
        "contracts": table(
            "contracts",
            [
                {"account_id": "a1", "start_at": "2024-01-01", "renewal_at": "2024-07-01", "arr_cny": 120.0},
                {"account_id": "a1", "start_at": "2024-07-01", "renewal_at": "2025-07-01", "arr_cny": 150.0},
            ],
        ),
        "account_usage": table("account_usage", usage),
        "invoices": table(
            "invoices",
            [
                {"account_id": "a1", "due_at": "2024-01-15", "paid_at": "2024-01-10", "amount_cny": 1.0},
                {"account_id": "a1", "due_at": "2024-02-15", "paid_at": "2024-02-20", "amount_cny": 1.0},
                {"account_id": "a1", "due_at": "2024-03-15", "paid_at": "2024-05-01", "amount_cny": 1.0},
                {"account_id": "a1", "due_at": "2024-04-15", "paid_at": "2024-04-01", "amount_cny": 1.0},
            ],
        ),
    }


def test_payment_punctuality_counts_an_unpaid_past_due_invoice_as_late() -> None:
    out = build_account_health(account_world(), ts("2024-04-30"))

    def punctuality(at: str) -> float:
        return float(row_at(out, "account_id", "a1", at)["payment_punctuality_12m"])

    assert punctuality("2024-02-12") == 1.0
    assert punctuality("2024-02-19") == 0.5  # the Feb 15 invoice is paid Feb 20: late
    # On Mar 18 the Mar 15 invoice is unpaid (it is paid May 1): late already, whenever it gets paid.
    assert punctuality("2024-03-18") == pytest.approx(1 / 3)
    assert punctuality("2024-04-01") == pytest.approx(1 / 3)
    assert np.isnan(punctuality("2024-01-08"))  # nothing due yet


def test_account_health_rows_are_contract_mondays_the_churn_scoring_time_and_as_of() -> None:
    out = build_account_health(account_world(), ts("2024-04-30 12:00"))
    times = out["event_timestamp"].tolist()
    assert times[0] == ts("2024-01-01") and times[-1] == ts("2024-04-30 12:00")
    assert ts("2024-04-02") in times  # renewal Jul 1 minus 90 days (2024 is a leap year)
    assert ts("2024-05-06") not in times  # after as_of
    scoring = row_at(out, "account_id", "a1", "2024-04-02")
    assert (scoring["days_to_renewal"], scoring["arr_cny"], scoring["tenure_days"]) == (90.0, 120.0, 92.0)


def test_usage_tickets_and_admin_recency_come_from_trailing_windows() -> None:
    out = build_account_health(account_world(), ts("2024-04-30"))
    mar4 = row_at(out, "account_id", "a1", "2024-03-04")
    assert mar4["usage_rate_30d"] == pytest.approx((26 * 0.2 + 4 * 0.6) / 30)  # Feb 4 .. Mar 4
    assert mar4["seat_utilization_30d"] == 0.5 and mar4["active_users_30d"] == 5.0
    assert mar4["alerts_30d"] == 30
    assert (mar4["tickets_30d"], mar4["tickets_prev_30d"], mar4["ticket_trend"]) == (14, 0, 14)
    assert mar4["days_since_admin_login"] == 23.0
    assert mar4["last_nps"] == 7.0
    jan8 = row_at(out, "account_id", "a1", "2024-01-08")
    assert jan8["days_since_admin_login"] == 365.0 and np.isnan(jan8["last_nps"])  # NPS arrives Jan 11


# --- rep profile -------------------------------------------------------------------------------------


def rep_world() -> dict[str, pd.DataFrame]:
    leads = [  # (lead, created, converted_at)
        ("l1", "2024-01-05", "2024-01-20"),  # decided by Mar 1, converted in time
        ("l2", "2024-01-10", None),  # decided by Mar 1, not converted
        ("l3", "2024-02-15", "2024-02-20"),  # younger than 30 days on Mar 1: undecided
        ("l4", "2024-01-20", "2024-03-05"),  # converts after Mar 1 (and after its 30 days)
    ]
    return {
        "reps": table(
            "reps",
            [
                {
                    "rep_id": "r1",
                    "team": "t",
                    "region": "apac",
                    "timezone": "Asia/Shanghai",
                    "work_start_hour": 9,
                    "work_end_hour": 18,
                    "capacity": 30,
                },
            ],
        ),
        "rep_languages": table(
            "rep_languages",
            [
                {"rep_id": "r1", "language": "zh", "proficiency": 1.0},
                {"rep_id": "r1", "language": "en", "proficiency": 0.8},
            ],
        ),
        "leads": table(
            "leads",
            [
                {
                    "lead_id": i,
                    "company_id": "c1",
                    "created_at": c,
                    "assigned_rep_id": "r1",
                    "converted": conv is not None,
                    "converted_at": conv,
                }
                for i, c, conv in leads
            ],
        ),
        "opportunities": table(
            "opportunities",
            [
                {
                    "opportunity_id": "o1",
                    "owner_rep_id": "r1",
                    "created_at": "2024-01-10",
                    "closed_at": "2024-02-10",
                },
                {"opportunity_id": "o2", "owner_rep_id": "r1", "created_at": "2024-02-01", "closed_at": None},
            ],
        ),
    }


def test_rep_conversion_rate_ignores_conversions_after_t_and_undecided_leads() -> None:
    out = build_rep_profile(rep_world(), ts("2024-03-10"))
    mar1 = row_at(out, "rep_id", "r1", "2024-03-01")
    assert mar1["leads_90d"] == 4
    assert mar1["conversion_rate_90d"] == pytest.approx((1 + 1) / (3 + 6))  # l1, l2, l4 decided; only l1 won
    feb1 = row_at(out, "rep_id", "r1", "2024-02-01")
    assert feb1["conversion_rate_90d"] == pytest.approx((0 + 1) / (0 + 6))  # l1 converted, but undecided yet


def test_rep_profile_rows_are_month_starts_with_languages_and_open_pipeline() -> None:
    out = build_rep_profile(rep_world(), ts("2024-03-10"))
    assert out["event_timestamp"].tolist() == [ts("2024-02-01"), ts("2024-03-01"), ts("2024-03-10")]
    feb1 = row_at(out, "rep_id", "r1", "2024-02-01")
    assert (feb1["lang_zh"], feb1["lang_en"], feb1["lang_de"]) == (1.0, 0.8, 0.0)
    assert (
        feb1["open_opportunities"] == 2
        and row_at(out, "rep_id", "r1", "2024-03-01")["open_opportunities"] == 1
    )
    assert {f"lang_{lang}" for lang in LANGUAGES} <= set(out.columns)
    assert (feb1["capacity"], feb1["timezone"]) == (30, "Asia/Shanghai")


# --- firmographics -----------------------------------------------------------------------------------


def test_firmographics_are_snapshots_with_log_headcount_and_age() -> None:
    raw = {
        "companies": table(
            "companies",
            [
                {
                    "company_id": "c1",
                    "snapshot_at": "2024-01-01",
                    "industry": "energy",
                    "country": "CN",
                    "registered_capital_cny": 1e6,
                    "insured_headcount": 99,
                    "revenue_band": "S",
                    "founded_year": 2014,
                },
                {
                    "company_id": "c1",
                    "snapshot_at": "2024-07-01",
                    "industry": "energy",
                    "country": "CN",
                    "registered_capital_cny": 2e6,
                    "insured_headcount": 999,
                    "revenue_band": "M",
                    "founded_year": 2014,
                },
                {
                    "company_id": "c1",
                    "snapshot_at": "2025-01-01",
                    "industry": "energy",
                    "country": "CN",
                    "registered_capital_cny": 3e6,
                    "insured_headcount": 9999,
                    "revenue_band": "L",
                    "founded_year": 2014,
                },
            ],
        )
    }
    out = build_company_firmographics(raw, ts("2024-12-31"))
    assert out["log_headcount"].tolist() == pytest.approx([2.0, 3.0])  # the 2025 snapshot is after as_of
    assert out["company_age_years"].iloc[0] == pytest.approx(3652 / 365.25)
    assert out["insured_headcount"].dtype == np.int64


# --- every table: no leakage, the column contract, the build -----------------------------------------


def tiny_world(seed: int = 11) -> dict[str, pd.DataFrame]:
    """A random world of a handful of entities spread over four months, at whole seconds."""
    rng = np.random.default_rng(seed)
    start = ts("2024-01-01").value

    def times(n: int, lo_day: float = 0, hi_day: float = 120) -> list[pd.Timestamp]:
        secs = rng.uniform(lo_day * 86_400, hi_day * 86_400, n).astype(np.int64)
        return [pd.Timestamp(start + s * 10**9, tz="UTC") for s in secs]

    def pick(values: tuple[str, ...] | list[str], n: int) -> list[str]:
        return [str(v) for v in rng.choice(list(values), n)]

    companies = [f"c{i}" for i in range(4)]
    leads = table(
        "leads",
        [
            {
                "lead_id": f"l{i}",
                "company_id": c,
                "created_at": t,
                "assigned_rep_id": r,
                "converted": bool(conv),
                "converted_at": t + pd.Timedelta(days=float(rng.uniform(1, 29))) if conv else None,
            }
            for i, (c, t, r, conv) in enumerate(
                zip(pick(companies, 12), times(12), pick(["r0", "r1"], 12), rng.random(12) < 0.5, strict=True)
            )
        ],
    )
    opp_created = times(6, 0, 80)
    opps = table(
        "opportunities",
        [
            {
                "opportunity_id": f"o{i}",
                "company_id": companies[i % 4],
                "owner_rep_id": f"r{i % 2}",
                "product_line": PRODUCT_LINE_NAMES[i % 5],
                "amount_cny": 1000.0 * (i + 1),
                "created_at": t,
                "expected_close_at": t + pd.Timedelta(days=40),
                "outcome": "won" if i % 3 == 0 else "open",
                "closed_at": t + pd.Timedelta(days=30) if i % 3 == 0 else None,
            }
            for i, t in enumerate(opp_created)
        ],
    )
    opp_ids = [f"o{i}" for i in range(6)]
    day_stamps = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    return {
        "companies": table(
            "companies",
            [
                {
                    "company_id": c,
                    "snapshot_at": "2023-06-01",
                    "industry": "energy",
                    "country": "CN",
                    "registered_capital_cny": 1e6,
                    "insured_headcount": 10 * (i + 1),
                    "revenue_band": "S",
                    "founded_year": 2010,
                }
                for i, c in enumerate(companies)
            ],
        ),
        "reps": table(
            "reps",
            [
                {
                    "rep_id": r,
                    "team": "t",
                    "region": "apac",
                    "timezone": "UTC",
                    "work_start_hour": 9,
                    "work_end_hour": 17,
                    "capacity": 10,
                }
                for r in ("r0", "r1")
            ],
        ),
        "rep_languages": table("rep_languages", [{"rep_id": "r0", "language": "zh", "proficiency": 1.0}]),
        "leads": leads,
        "behavior_events": table(
            "behavior_events",
            [
                {"company_id": c, "lead_id": lead, "ts": t, "event_type": e}
                for c, lead, t, e in zip(
                    pick(companies, 150),
                    pick(["l0", "l1", "l2", "l3"], 150),
                    times(150),
                    pick(BEHAVIOR_EVENT_TYPES, 150),
                    strict=True,
                )
            ],
        ),
        "tenders": table(
            "tenders",
            [
                {
                    "tender_id": f"t{i}",
                    "company_id": c,
                    "published_at": t,
                    "category": k,
                    "budget_cny": 10.0,
                    "deadline_at": t + pd.Timedelta(days=float(rng.uniform(5, 40))),
                }
                for i, (c, t, k) in enumerate(
                    zip(pick(companies, 15), times(15), pick(PRODUCT_LINE_NAMES, 15), strict=True)
                )
            ],
        ),
        "commodity_prices": table(
            "commodity_prices",
            [
                {"commodity": "copper", "date": d, "price": 100.0 + i + rng.normal()}
                for i, d in enumerate(day_stamps)
            ],
        ),
        "opportunities": opps,
        "stage_events": table(
            "stage_events",
            [
                {"opportunity_id": o, "ts": t, "stage": s}
                for o, t, s in zip(pick(opp_ids, 15), times(15, 0, 110), pick(STAGES, 15), strict=True)
            ],
        ),
        "milestone_events": table(
            "milestone_events",
            [
                {"opportunity_id": o, "ts": t, "milestone": m}
                for o, t, m in zip(pick(opp_ids, 25), times(25, 0, 110), pick(MILESTONES, 25), strict=True)
            ],
        ),
        "activities": table(
            "activities",
            [
                {"opportunity_id": o, "ts": t, "activity_type": "call", "sentiment": s}
                for o, t, s in zip(
                    pick(opp_ids, 40), times(40), pick(["positive", "neutral", "resistant"], 40), strict=True
                )
            ],
        ),
        "contracts": table(
            "contracts",
            [
                {"account_id": "a0", "start_at": "2024-01-01", "renewal_at": "2024-04-01", "arr_cny": 10.0},
                {"account_id": "a0", "start_at": "2024-04-01", "renewal_at": "2025-04-01", "arr_cny": 12.0},
                {"account_id": "a1", "start_at": "2024-02-10", "renewal_at": "2024-06-01", "arr_cny": 20.0},
            ],
        ),
        "account_usage": table(
            "account_usage",
            [
                {
                    "account_id": a,
                    "date": d,
                    "active_users": int(rng.integers(1, 9)),
                    "seats": 10,
                    "module_usage_rate": float(rng.random()),
                    "admin_logins": int(rng.random() < 0.2),
                    "alerts": int(rng.integers(0, 3)),
                    "support_tickets": int(rng.random() < 0.3),
                    "nps": float(rng.integers(0, 11)) if rng.random() < 0.05 else None,
                }
                for a in ("a0", "a1")
                for d in day_stamps
            ],
        ),
        "invoices": table(
            "invoices",
            [
                {
                    "account_id": a,
                    "due_at": d,
                    "paid_at": d + pd.Timedelta(days=float(rng.uniform(-5, 20))),
                    "amount_cny": 1.0,
                }
                for a in ("a0", "a1")
                for d in pd.date_range("2024-01-15", periods=4, freq="MS", tz="UTC")
            ],
        ),
    }


def known_at(raw: Mapping[str, pd.DataFrame], t: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The world as a system stored it at ``t``: later rows gone, later outcomes not yet filled in."""

    def before(name: str, column: str) -> pd.DataFrame:
        frame = raw[name]
        return frame[frame[column] <= t].copy()

    leads = before("leads", "created_at")
    late = leads["converted_at"] > t
    leads.loc[late, "converted_at"] = pd.NaT
    leads.loc[late, "converted"] = False
    opps = before("opportunities", "created_at")
    opps.loc[opps["closed_at"] > t, ["closed_at", "outcome"]] = [pd.NaT, "open"]
    invoices = raw["invoices"].copy()
    invoices.loc[invoices["paid_at"] > t, "paid_at"] = pd.NaT
    return {
        **raw,
        "companies": before("companies", "snapshot_at"),
        "leads": leads,
        "behavior_events": before("behavior_events", "ts"),
        "tenders": before("tenders", "published_at"),
        "commodity_prices": before("commodity_prices", "date"),
        "opportunities": opps,
        "stage_events": before("stage_events", "ts"),
        "milestone_events": before("milestone_events", "ts"),
        "activities": before("activities", "ts"),
        "contracts": before("contracts", "start_at"),
        "account_usage": before("account_usage", "date"),
        "invoices": invoices,
    }


@pytest.mark.parametrize("table_name", list(FEATURE_JOBS))
def test_a_row_equals_the_row_built_from_only_what_was_known_at_its_timestamp(table_name: str) -> None:
    raw = tiny_world()
    job, key = FEATURE_JOBS[table_name]
    full = job(raw, ts("2024-04-30"))
    row_times = np.sort(full["event_timestamp"].unique())
    picked = row_times[
        np.random.default_rng(5).choice(len(row_times), min(40, len(row_times)), replace=False)
    ]
    for cut in picked:
        cut = pd.Timestamp(cut)
        known = job(known_at(raw, cut), cut)
        rows = full[full["event_timestamp"] == cut]
        joined = rows.merge(
            known, on=[key, "event_timestamp"], how="left", suffixes=("", "_known"), indicator=True
        )
        assert (joined["_merge"] == "both").all(), (
            f"{table_name}: row at {cut} missing when later data is gone"
        )
        for column in full.columns.drop([key, "event_timestamp"]):
            pd.testing.assert_series_equal(
                joined[column],
                joined[f"{column}_known"],
                check_names=False,
                obj=f"{table_name}.{column} at {cut}",
            )


@pytest.mark.parametrize("table_name", list(FEATURE_JOBS))
def test_every_table_keeps_the_column_contract(table_name: str) -> None:
    job, key = FEATURE_JOBS[table_name]
    out = job(tiny_world(), ts("2024-04-30"))
    assert list(out.columns[:2]) == [key, "event_timestamp"]
    assert str(out["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert out["event_timestamp"].max() <= ts("2024-04-30")
    assert not out.duplicated([key, "event_timestamp"]).any()
    assert out.equals(out.sort_values([key, "event_timestamp"]).reset_index(drop=True))
    for column in out.columns.drop([key, "event_timestamp"]):
        assert str(out[column].dtype) in ("float64", "int64", "object"), f"{column}: {out[column].dtype}"
        if out[column].dtype == object and column.endswith("_daily"):  # request-time daily buckets
            numeric = out[column].map(lambda v: isinstance(v, np.ndarray) and v.dtype.kind in "if")
            assert numeric.all(), f"{column} holds non-numeric arrays"
        elif out[column].dtype == object:
            assert out[column].map(type).eq(str).all(), f"{column} holds non-strings"


def test_as_of_defaults_to_the_latest_observed_time_not_a_future_deadline() -> None:
    raw = tiny_world()
    latest = latest_observed_time(raw)
    assert latest == max(
        raw["behavior_events"]["ts"].max(),
        raw["account_usage"]["date"].max(),
        raw["activities"]["ts"].max(),
        raw["invoices"]["paid_at"].max(),
        raw["leads"]["converted_at"].max(),
        raw["opportunities"]["closed_at"].max(),
    )
    assert latest < raw["contracts"]["renewal_at"].max()


def test_build_all_writes_every_table_as_zstd_parquet_with_utc_microsecond_timestamps(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    for name, frame in tiny_world().items():
        write_table(name, frame, settings.raw_dir)
    seen: list[str] = []
    rows = build_all(settings, progress=seen.append)
    assert seen == list(FEATURE_JOBS) and set(rows) == set(FEATURE_JOBS)
    for name, count in rows.items():
        parquet = pq.ParquetFile(settings.feature_dir / f"{name}.parquet")
        assert parquet.metadata.num_rows == count > 0
        assert parquet.schema_arrow.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"


def test_amount_and_close_date_changes_logged_by_the_api_apply_from_their_time_as_the_online_fold_does() -> (
    None
):
    """``opportunity_changes`` (the API's close-date and amount changes) reach the offline rows point
    in time: a row sees the latest change at or before it, and the row the online fold makes at a
    change equals the offline row at that moment (offline equals online)."""
    from datetime import datetime

    from features.event_log import OPPORTUNITY_CHANGES
    from features.online_events import OpportunityEvent, fold_opportunity

    world = opportunity_world()
    changes = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o1", "o1"],
            "ts": [ts("2024-01-10"), ts("2024-01-16"), ts("2024-01-22")],
            "field": ["amount", "close_date", "close_date"],
            "close_date": [pd.NaT, ts("2024-03-01"), ts("2024-03-11")],
            "amount_cny": [5000.0, None, None],
            "event_id": ["e1", "e2", "e3"],
        }
    )
    out = build_opportunity_snapshots({**world, OPPORTUNITY_CHANGES: changes}, ts("2024-03-01"))
    plain = build_opportunity_snapshots(world, ts("2024-03-01"))
    o1 = out[out["opportunity_id"] == "o1"].set_index("event_timestamp")
    assert o1["amount_cny"].tolist() == [999.0, 5000.0, 5000.0, 5000.0]
    assert o1["days_to_expected_close"].tolist() == [28.0, 21.0, 49.0, 42.0]  # Feb 5, Feb 5, Mar 11, Mar 11
    assert out[out["opportunity_id"] == "o2"].equals(plain[plain["opportunity_id"] == "o2"])
    # the fold of the Jan 22 change onto the Jan 15 row is the Jan 22 row
    stored = o1.loc[ts("2024-01-15")].to_dict()
    change = OpportunityEvent(
        "o1", "close_date_change", datetime.fromisoformat("2024-01-22T00:00:00+00:00"),
        close_date=datetime.fromisoformat("2024-03-11T00:00:00+00:00"),
    )  # fmt: skip
    folded, at = fold_opportunity(stored, ts("2024-01-15").to_pydatetime(), [change])
    assert at == ts("2024-01-22")
    assert folded["days_to_expected_close"] == o1.loc[ts("2024-01-22"), "days_to_expected_close"]
    assert folded["amount_cny"] == o1.loc[ts("2024-01-22"), "amount_cny"]
