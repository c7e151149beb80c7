"""Event ingestion over real HTTP (uvicorn, Feast's SQLite online store, the SQLite ledger, Parquet log).

Each test serves its own copy of the served tiny world, so the events it posts never reach the
session's shared online store.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd

from features.directory import read_directory
from features.event_log import logged_parts, read_logged
from features.schema import read_table
from features.store import latest_feature_time, open_store
from funnelcast.core.settings import Settings
from service.online_features import online_frame
from tests.service.conftest import CRM, lead, running


def _company_with_leads(settings: Settings) -> str:
    leads = read_table("leads", settings.raw_dir)
    return str(leads["company_id"].value_counts().index[0])


def _behavior(settings: Settings, company: str) -> dict[str, object]:
    frame = online_frame(open_store(settings), "company_behavior", "company_id", [company])
    return {k.removeprefix("company_behavior__"): v for k, v in frame.iloc[0].items()}


def _score(client: httpx.Client, company: str, created_at: str) -> dict[str, object]:
    body = lead("ev-lead", company_id=company, created_at=created_at)
    answer = client.post("/v1/leads/score?route=false&explain=false", json=body, headers=CRM)
    assert answer.status_code == 200, answer.text
    return answer.json()


INTENT = {  # the intent combination and then some: 3+ comparisons, a whitepaper, a service form
    "competitor_comparison_view": 6,
    "whitepaper_download": 2,
    "service_needs_form": 2,
    "pricing_view": 8,
    "demo_request": 2,
}


def test_posted_behaviour_events_change_the_next_score_and_a_replay_changes_nothing(
    own_world: Settings,
) -> None:
    company = _company_with_leads(own_world)
    end = latest_feature_time(own_world)
    at = end + timedelta(hours=1)
    created = (end + timedelta(hours=2)).isoformat()
    events = [
        {"event_id": f"b-{t}-{i}", "company_id": company, "event_type": t, "at": at.isoformat()}
        for t, n in INTENT.items()
        for i in range(n)
    ]
    before_row = _behavior(own_world, company)
    rows_before = len(read_table("behavior_events", own_world.raw_dir))
    with running(own_world) as client:
        before = _score(client, company, created)
        first = client.post("/v1/events", json={"events": events}, headers=CRM)
        assert first.status_code == 200, first.text
        assert first.json() == {"accepted": 20, "duplicates": 0, "not_online": 0}
        after = _score(client, company, created)  # the very next request, no wait
        replay = client.post("/v1/events", json={"events": events}, headers=CRM)
        assert replay.json() == {"accepted": 0, "duplicates": 20, "not_online": 0}
        again = _score(client, company, created)

    assert after["probability"] != before["probability"]
    assert after["feature_snapshot_time"] != before["feature_snapshot_time"]
    assert again["probability"] == after["probability"]  # the replay changed nothing
    row = _behavior(own_world, company)
    day = int(at.timestamp() // 86_400)
    assert row["behavior_stored_day"] == day
    shift = day - int(before_row["behavior_stored_day"])  # days the stored buckets moved on
    old = list(before_row["pricing_view_daily"])
    expected = ([0] * shift + old)[:31]  # the stored days moved on, then today's 8 pricing views
    expected[0] += 8
    assert list(row["pricing_view_daily"]) == expected
    assert row["last_event_at"] == at.timestamp()
    # durable offline, once: each id logged once; the raw table the feature jobs read has 20 more rows
    logged = read_logged(own_world.raw_dir, "behavior_events")
    assert logged is not None and sorted(logged["event_id"]) == sorted(e["event_id"] for e in events)
    assert len(read_table("behavior_events", own_world.raw_dir)) == rows_before + 20


def test_repeats_inside_one_batch_count_once(own_world: Settings) -> None:
    company = _company_with_leads(own_world)
    at = latest_feature_time(own_world).isoformat()
    event = {"event_id": "same", "company_id": company, "event_type": "webinar", "at": at}
    with running(own_world) as client:
        answer = client.post("/v1/events", json={"events": [event, event, event]}, headers=CRM)
    assert answer.json() == {"accepted": 1, "duplicates": 2, "not_online": 0}
    assert len(read_logged(own_world.raw_dir, "behavior_events")) == 1  # type: ignore[arg-type]


def _fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    return [f["field"] for f in answer.json()["fields"]]


def test_bad_events_are_refused_naming_the_field_and_nothing_is_taken_in(own_world: Settings) -> None:
    good = {"event_id": "g1", "company_id": "c1", "event_type": "page_view", "at": "2026-10-01T08:00:00Z"}
    deal = {"event_id": "o1", "opportunity_id": "o1", "at": "2026-10-01T08:00:00Z"}
    with running(own_world) as client:
        post = lambda path, events: client.post(path, json={"events": events}, headers=CRM)  # noqa: E731
        assert _fields(post("/v1/events", [good, {**good, "at": "2026-10-01T08:00:00"}])) == ["events.1.at"]
        assert _fields(post("/v1/events", [good, good, good, {**good, "at": 0}])) == ["events.3.at"]
        assert _fields(post("/v1/events", [{**good, "event_type": "tweet"}])) == ["events.0.event_type"]
        assert _fields(post("/v1/events", [{**good, "at": "2999-01-01T00:00:00Z"}])) == ["events.0.at"]
        assert _fields(post("/v1/events", [good] * 1001)) == ["events"]
        assert _fields(post("/v1/events", [])) == ["events"]
        assert _fields(
            post("/v1/opportunities/events", [{**deal, "kind": "milestone", "milestone": "x"}])
        ) == ["events.0.milestone.milestone"]
        assert _fields(
            post("/v1/opportunities/events", [{**deal, "kind": "activity", "activity_type": "call"}])
        ) == ["events.0.activity.sentiment"]
        assert _fields(
            post("/v1/opportunities/events", [{**deal, "kind": "amount_change", "amount_cny": -1}])
        ) == ["events.0.amount_change.amount_cny"]
        assert _fields(post("/v1/opportunities/events", [{**deal, "kind": "promotion"}])) == ["events.0"]
        assert (
            client.post(
                "/v1/events", json={"events": [good]}, headers={"X-API-Key": "demo-manager-key"}
            ).status_code
            == 403
        )
        # none of the refused batches took an id: the good event is new
        assert post("/v1/events", [good]).json()["accepted"] == 1
    assert len(logged_parts(own_world.raw_dir, "behavior_events")) == 1


def test_opportunity_events_fold_into_the_deal_row_the_pipeline_reads(own_world: Settings) -> None:
    deals = read_directory(own_world).open_deals
    store = open_store(own_world)
    frame = online_frame(store, "opportunity_snapshots", "opportunity_id", [str(i) for i in deals.index])
    unreached = frame[frame["opportunity_snapshots__ms_procurement_committee_approved"] == 0]
    deal = str(unreached.index[0])
    before = unreached.loc[deal]
    at = (latest_feature_time(own_world) + timedelta(hours=1)).isoformat()
    base = {"opportunity_id": deal, "at": at}
    events = [
        {**base, "event_id": "m1", "kind": "milestone", "milestone": "procurement_committee_approved"},
        {**base, "event_id": "s1", "kind": "stage_change", "stage": "negotiation"},
        {**base, "event_id": "a1", "kind": "activity", "activity_type": "visit", "sentiment": "resistant"},
        {**base, "event_id": "x1", "kind": "amount_change", "amount_cny": 123_456.0},
        {**base, "event_id": "c1", "kind": "close_date_change", "close_date": "2027-03-31T00:00:00Z"},
        {
            **base,
            "opportunity_id": "no-such-deal",
            "event_id": "n1",
            "kind": "stage_change",
            "stage": "negotiation",
        },
    ]
    with running(own_world) as client:
        first = client.post("/v1/opportunities/events", json={"events": events}, headers=CRM)
        assert first.json() == {"accepted": 6, "duplicates": 0, "not_online": 1}, first.text
        replay = client.post("/v1/opportunities/events", json={"events": events}, headers=CRM)
        assert replay.json() == {"accepted": 0, "duplicates": 6, "not_online": 0}
    row = online_frame(store, "opportunity_snapshots", "opportunity_id", [deal]).iloc[0]
    p = "opportunity_snapshots__"
    assert row[p + "ms_procurement_committee_approved"] == 1
    assert row[p + "milestones_reached"] == before[p + "milestones_reached"] + 1  # once, despite the replay
    assert row[p + "stage_index"] == 4 and row[p + "days_in_stage"] == 0
    assert row[p + "resistant_7d"] == before[p + "resistant_7d"] + 1
    assert row[p + "days_since_last_activity"] == 0
    assert row[p + "amount_cny"] == 123_456.0
    # 2027-03-31 is 148 days and 23 hours after the events (2026-11-02 01:00 UTC, the world's end + 1 h)
    assert row[p + "days_to_expected_close"] > 100
    for table in ("stage_events", "milestone_events", "activities", "opportunity_changes"):
        assert len(logged_parts(own_world.raw_dir, table)) == 1
    # the next build reads the log: the deal's next weekly row carries the same changes offline
    from features.jobs.run import build_all

    build_all(own_world, as_of=pd.Timestamp(at) + pd.Timedelta(days=7))
    rows = pd.read_parquet(own_world.feature_dir / "opportunity_snapshots.parquet")
    offline = rows[rows["opportunity_id"] == deal].sort_values("event_timestamp").iloc[-1]
    assert offline["event_timestamp"] > pd.Timestamp(at)
    assert offline["amount_cny"] == 123_456.0 and offline["stage_index"] == 4
    assert offline["ms_procurement_committee_approved"] == 1
    expected = (pd.Timestamp("2027-03-31", tz="UTC") - offline["event_timestamp"]) / pd.Timedelta(days=1)
    assert offline["days_to_expected_close"] == expected


def test_online_store_down_is_a_503_and_nothing_is_written(own_world: Settings) -> None:
    company = _company_with_leads(own_world)
    at = latest_feature_time(own_world).isoformat()
    events = [
        {"event_id": f"d{i}", "company_id": company, "event_type": "page_view", "at": at} for i in range(5)
    ]
    online = own_world.feast_dir / "online.db"
    with running(own_world) as client:
        online.rename(online.with_suffix(".away"))
        down = client.post("/v1/events", json={"events": events}, headers=CRM)
        online.with_suffix(".away").rename(online)
        assert down.status_code == 503 and "online store" in down.json()["detail"], down.text
        assert logged_parts(own_world.raw_dir, "behavior_events") == []
        assert not list((own_world.raw_dir / "behavior_events.events").glob(".*.tmp"))
        back = client.post("/v1/events", json={"events": events}, headers=CRM)  # the retry is new
        assert back.json() == {"accepted": 5, "duplicates": 0, "not_online": 0}
