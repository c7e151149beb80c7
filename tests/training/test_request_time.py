"""The shared request-time function: local clock, holidays, offsets, missing stored rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.request_time import LEAD_MODEL_COLUMNS, lead_model_frame


def lead(**fields: object) -> dict[str, object]:
    base = {
        "created_at": pd.Timestamp("2026-03-10 01:30", tz="UTC"),
        "channel": "referral",
        "utm_source": "partner",
        "contact_role": "decision_maker",
        "country": "CN",
        "timezone": "Asia/Shanghai",
        "language": "zh",
        "product_interest": "switchgear",
    }
    return base | fields


def test_local_clock_offset_and_industry_product_pair() -> None:
    rows = pd.DataFrame([lead(company_firmographics__industry="utilities")])
    frame = lead_model_frame(rows)
    assert list(frame.columns) == list(LEAD_MODEL_COLUMNS)
    assert frame.loc[0, "local_hour"] == 9.5  # 01:30 UTC is 09:30 in Shanghai
    assert frame.loc[0, "utc_hour"] == 1.5
    assert frame.loc[0, "utc_offset_hours"] == 8.0
    assert frame.loc[0, "local_weekday"] == 1  # Tuesday
    assert frame.loc[0, "industry_product"] == "utilities:switchgear"


def test_holiday_week_follows_the_leads_country() -> None:
    # 2026-02-17 is China's Spring Festival; that week holds no public holiday in Germany
    when = pd.Timestamp("2026-02-17 04:00", tz="UTC")
    rows = pd.DataFrame(
        [lead(created_at=when), lead(created_at=when, country="DE", timezone="Europe/Berlin", language="de")]
    )
    assert lead_model_frame(rows)["holiday_week"].tolist() == [1.0, 0.0]


def test_missing_stored_rows_read_as_zero_counts_and_unknown_recency() -> None:
    frame = lead_model_frame(pd.DataFrame([lead()]))  # no company features at all: unknown company
    assert frame.loc[0, "company_behavior__pricing_view_30d"] == 0.0
    assert frame.loc[0, "company_tenders__open_tenders"] == 0.0
    assert frame.loc[0, "open_tenders_in_interest"] == 0.0
    assert np.isnan(frame.loc[0, "company_behavior__days_since_last_event"])
    assert frame.loc[0, "industry"] is None and frame.loc[0, "industry_product"] is None


def test_open_tenders_in_interest_picks_the_product_line_column() -> None:
    rows = pd.DataFrame(
        [
            lead(company_tenders__open_tenders_switchgear=2, company_tenders__open_tenders_pv_modules=5),
            lead(product_interest="pv_modules", company_tenders__open_tenders_pv_modules=5),
        ]
    )
    assert lead_model_frame(rows)["open_tenders_in_interest"].tolist() == [2.0, 5.0]


def test_unknown_timezone_leaves_the_offset_unknown_and_uses_utc_clock() -> None:
    frame = lead_model_frame(pd.DataFrame([lead(timezone=None)]))
    assert np.isnan(frame.loc[0, "utc_offset_hours"])
    assert frame.loc[0, "local_hour"] == 1.5


def test_one_lead_at_a_time_equals_the_vectorised_training_path() -> None:
    """The service scores one lead (plain datetime path); training scores thousands (pandas path)."""
    times = pd.date_range("2026-03-28 20:00", periods=300, freq="37min", tz="UTC")  # spans a DST change
    rows = pd.DataFrame(
        [
            lead(created_at=t, timezone=z, country=c)
            for t, (z, c) in zip(
                times, [("Europe/Berlin", "DE"), ("Asia/Shanghai", "CN"), (None, "US")] * 100, strict=True
            )
        ]
    )
    together = lead_model_frame(rows)
    one_by_one = pd.concat([lead_model_frame(rows.iloc[[i]]) for i in range(len(rows))])
    pd.testing.assert_frame_equal(together, one_by_one)


def _read_at(table: pd.DataFrame, view: str, stored_at: str, now: pd.Timestamp) -> pd.DataFrame:
    """A lead at ``now`` for c1 with c1's row of ``table`` stored at ``stored_at``, as a point-in-time
    join names it, through the request-time function."""
    row = table[
        (table["company_id"] == "c1") & (table["event_timestamp"] == pd.Timestamp(stored_at, tz="UTC"))
    ]
    assert len(row) == 1
    stored = row.drop(columns=["event_timestamp"]).add_prefix(f"{view}__").reset_index(drop=True)
    return lead_model_frame(pd.concat([pd.DataFrame([lead(created_at=now)]), stored], axis=1))


def test_windows_and_ages_are_counted_at_the_request_from_an_older_stored_row() -> None:
    """c1's last event is Jan 20 12:00; its row stored then, read on Feb 1 00:00, gives Feb 1's windows.

    On Feb 1 the 30-day window is Feb 1 so far plus Jan 2 .. Jan 31: Jan 5 and Jan 20 page views and
    the Jan 6 pricing view (Jan 1 has left it); the 7-day window (Jan 25 ..) holds nothing; the last
    event was 11.5 days before. The row stored at Feb 1 itself gives exactly the same.
    """
    from features.jobs.behavior import build_company_behavior
    from tests.features.test_jobs import behavior_world

    table = build_company_behavior(behavior_world(), pd.Timestamp("2024-02-01", tz="UTC"))
    now = pd.Timestamp("2024-02-01", tz="UTC")
    older = _read_at(table, "company_behavior", "2024-01-20 12:00", now)
    latest = _read_at(table, "company_behavior", "2024-02-01", now)
    assert older.loc[0, "company_behavior__page_view_30d"] == 2
    assert older.loc[0, "company_behavior__pricing_view_30d"] == 1
    assert older.loc[0, "company_behavior__page_view_7d"] == 0
    assert older.loc[0, "company_behavior__events_30d"] == 3
    assert older.loc[0, "company_behavior__days_since_last_event"] == 11.5
    pd.testing.assert_frame_equal(older, latest)


def test_tender_windows_and_recency_age_from_the_stored_row_to_the_request() -> None:
    """c1 published tenders Jan 2 (budget 100) and Jan 10 (50). Read on Apr 5 from its Jan 10 row:
    the 90-day window (Jan 6 ..) holds only Jan 10's; the 30-day none; the last was 86 days ago."""
    from features.jobs.company_tenders import build_company_tenders
    from tests.features.test_jobs import tender_world

    table = build_company_tenders(tender_world(), pd.Timestamp("2024-02-01", tz="UTC"))
    now = pd.Timestamp("2024-04-05", tz="UTC")
    frame = _read_at(table, "company_tenders", "2024-01-10", now)
    assert frame.loc[0, "company_tenders__tenders_90d"] == 1
    assert frame.loc[0, "company_tenders__tender_budget_90d_cny"] == 50.0
    assert frame.loc[0, "company_tenders__tenders_30d"] == 0
    assert frame.loc[0, "company_tenders__days_since_last_tender"] == 86.0


def test_stored_buckets_read_one_row_at_a_time_equal_the_batched_read_to_the_bit() -> None:
    """A request's few rows take the slice-per-row path of the stored buckets, training's thousands
    the stacked one; lists (online) or arrays (offline), short, long, missing: the same columns."""
    from features.catalog import BEHAVIOR_EVENT_TYPES
    from features.request_time import BEHAVIOR_STORED_DAY, TENDER_STORED_DAY, daily_column

    rng = np.random.default_rng(5)
    n = 120
    times = pd.date_range("2026-03-01", periods=n, freq="7h", tz="UTC")
    rows = pd.DataFrame([lead(created_at=t) for t in times])
    day = float(times[0].value // 86_400_000_000_000)

    def buckets(i: int, length: int, scale: float) -> object:
        if i % 11 == 0:
            return None
        if i % 13 == 0:
            return float("nan")
        values = rng.lognormal(8, 2, length - i % 5) * scale
        return list(values) if i % 2 else values  # online lists, offline arrays

    for t in BEHAVIOR_EVENT_TYPES:
        rows[f"company_behavior__{daily_column(t)}"] = [buckets(i, 91, 1) for i in range(n)]
    rows[f"company_behavior__{BEHAVIOR_STORED_DAY}"] = day + rng.integers(0, 30, n)
    rows[f"company_tenders__{daily_column('tenders')}"] = [buckets(i, 91, 1e-3) for i in range(n)]
    rows[f"company_tenders__{daily_column('tender_budget')}"] = [buckets(i, 95, 1.0) for i in range(n)]
    rows[f"company_tenders__{TENDER_STORED_DAY}"] = day + rng.integers(0, 30, n)
    together = lead_model_frame(rows)
    one_by_one = pd.concat([lead_model_frame(rows.iloc[[i]]) for i in range(n)])
    pd.testing.assert_frame_equal(together, one_by_one, check_exact=True)
    assert together["company_tenders__tender_budget_90d_cny"].gt(0).sum() > n // 2  # the buckets were read
