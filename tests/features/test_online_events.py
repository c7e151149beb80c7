"""Folding events into online rows (pure): the same buckets the feature job writes, ages moved on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from features.catalog import BEHAVIOR_EVENT_TYPES
from features.jobs.behavior import behavior_features
from features.online_events import (
    BehaviorEvent,
    OpportunityEvent,
    fold_behavior,
    fold_behaviors,
    fold_opportunity,
    new_row_time,
)
from features.request_time import daily_column

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def _job_row(events: list[BehaviorEvent], as_of: datetime) -> dict[str, object]:
    """The feature job's ``company_behavior`` row at ``as_of`` over ``events`` (one company)."""
    table = behavior_features(
        pd.Series([e.company_id for e in events]),
        pd.Series(pd.to_datetime([e.at for e in events], utc=True)),
        pd.Series([e.event_type for e in events]),
        pd.Series([], dtype=object),
        pd.Series(pd.to_datetime([], utc=True)),
        "company_id",
        pd.Timestamp(as_of),
    )
    return table.sort_values("event_timestamp").iloc[-1].to_dict()


def test_folding_events_into_the_jobs_row_gives_the_row_the_job_writes_with_them() -> None:
    # 40 events over 50 days, then 12 more over the next 9 days folded in one by one
    rng = np.random.default_rng(3)

    def events(start: datetime, n: int, days: int) -> list[BehaviorEvent]:
        offsets = np.sort(rng.integers(0, days * 86_400, n))  # whole seconds, as canonical tables
        types = rng.choice(BEHAVIOR_EVENT_TYPES, n)
        return [
            BehaviorEvent("c", str(t), start + timedelta(seconds=float(s)))
            for t, s in zip(types, offsets, strict=True)
        ]

    earlier, later = events(T0, 40, 50), events(T0 + timedelta(days=50), 12, 9)
    stored = _job_row(earlier, earlier[-1].at)
    row, at = dict(stored), pd.Timestamp(stored["event_timestamp"]).to_pydatetime()
    for event in later:
        row, at = fold_behavior(row, at, [event])
    expected = _job_row(earlier + later, later[-1].at)
    assert at == later[-1].at
    assert row["behavior_stored_day"] == expected["behavior_stored_day"]
    assert row["last_event_at"] == expected["last_event_at"]
    for t in BEHAVIOR_EVENT_TYPES:
        assert list(row[daily_column(t)]) == list(expected[daily_column(t)]), t


def test_a_first_event_starts_a_row_and_a_later_day_moves_the_buckets_on() -> None:
    [(row, at)] = fold_behaviors([(None, None, [BehaviorEvent("c", "pricing_view", T0)])])
    assert row["pricing_view_daily"][:2] == [1, 0] and at == T0
    assert row["pricing_view_7d"] == 1 and row["days_since_last_event"] == 0
    row, at = fold_behavior(row, at, [BehaviorEvent("c", "pricing_view", T0 + timedelta(days=3))])
    assert row["pricing_view_daily"][:5] == [1, 0, 0, 1, 0]  # day 0 is the new day; the old one is 3 back
    assert row["behavior_stored_day"] == int((T0 + timedelta(days=3)).timestamp() // 86_400)


def test_an_event_older_than_the_buckets_changes_no_bucket_and_the_row_time_still_moves_forward() -> None:
    row, at = fold_behavior(None, None, [BehaviorEvent("c", "webinar", T0)])
    old, later = fold_behavior(row, at, [BehaviorEvent("c", "webinar", T0 - timedelta(days=40))])
    assert old["webinar_daily"] == row["webinar_daily"] and old["last_event_at"] == row["last_event_at"]
    assert later == T0 + timedelta(microseconds=1)  # Feast's Redis store ignores a write not newer
    assert new_row_time(T0, [T0 + timedelta(hours=1)]) == T0 + timedelta(hours=1)


DEAL = {
    "milestones_reached": 3,
    "ms_procurement_committee_approved": 0,
    "ms_legal_prereview_passed": 0,
    "ms_contract_stamped": 0,
    "stage_index": 2,
    "days_in_stage": 10.0,
    "days_since_last_activity": 4.0,
    "activities_7d": 1,
    "activities_30d": 5,
    "resistant_7d": 2,
    "positive_7d": 0,
    "amount_cny": 500_000.0,
    "log_amount": 5.7,
    "weeks_open": 6.0,
    "days_to_expected_close": 30.0,
    "legal_prereview_skipped": 0,
}


def test_deal_events_move_ages_on_and_apply_in_time_order() -> None:
    two_days = T0 + timedelta(days=2)
    events = [
        OpportunityEvent("o", "milestone", two_days, milestone="procurement_committee_approved"),
        OpportunityEvent("o", "milestone", two_days, milestone="procurement_committee_approved"),
        OpportunityEvent("o", "stage_change", T0 + timedelta(days=1), stage="negotiation"),
        OpportunityEvent("o", "activity", two_days, activity_type="call", sentiment="resistant"),
        OpportunityEvent("o", "amount_change", T0 + timedelta(days=1), amount_cny=999.0),
        OpportunityEvent("o", "amount_change", two_days, amount_cny=800_000.0),
    ]
    row, at = fold_opportunity(DEAL, T0, events)
    assert at == two_days
    assert row["milestones_reached"] == 4  # the repeated milestone counts once
    assert row["stage_index"] == 4 and row["days_in_stage"] == 1.0  # stage changed a day before the row
    assert row["days_since_last_activity"] == 0.0 and row["resistant_7d"] == 3 and row["activities_7d"] == 2
    assert row["amount_cny"] == 800_000.0  # the later change wins
    assert row["weeks_open"] == 6.0 + 2 / 7 and row["days_to_expected_close"] == 28.0
    stamped, _ = fold_opportunity(
        row, at, [OpportunityEvent("o", "milestone", at, milestone="contract_stamped")]
    )
    assert stamped["legal_prereview_skipped"] == 1  # stamped without the legal pre-review
