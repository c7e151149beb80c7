"""The week-over-week behaviour trend (``company_behavior_trend``, the signal of ``lead_score_v2``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.jobs.behavior_trend import build_company_behavior_trend


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def test_trend_counts_this_week_against_the_week_before_at_lead_creation_and_as_of() -> None:
    # company a: 1 event 10 days before its lead, 3 events within the last 7 days -> rising (3 vs 1)
    # company b: no lead, 2 events 8-9 days before as_of -> at as_of: 0 this week, 2 the week before
    events = pd.DataFrame(
        {
            "company_id": ["a", "a", "a", "a", "b", "b", "a"],
            "lead_id": [None] * 7,
            "ts": [
                ts("2026-03-01"),
                ts("2026-03-06"),
                ts("2026-03-08"),
                ts("2026-03-11 00:00"),  # exactly at creation: counts (window is (t - 7 d, t])
                ts("2026-03-12"),
                ts("2026-03-13"),
                ts("2026-03-12"),  # after a's lead: not in its creation row
            ],
            "event_type": ["page_view"] * 7,
        }
    )
    leads = pd.DataFrame({"lead_id": ["l1"], "company_id": ["a"], "created_at": [ts("2026-03-11")]})
    table = build_company_behavior_trend({"behavior_events": events, "leads": leads}, ts("2026-03-21"))
    rows = {(r.company_id, r.event_timestamp): r for r in table.itertuples()}
    at_lead = rows[("a", ts("2026-03-11"))]
    assert (at_lead.events_7d, at_lead.events_prev_7d) == (3, 1)
    assert at_lead.events_wow_log_ratio == pytest.approx(np.log(4 / 2))
    quiet = rows[("b", ts("2026-03-21"))]  # every company has an as_of row, quiet ones too
    assert (quiet.events_7d, quiet.events_prev_7d) == (0, 2)
    assert quiet.events_wow_log_ratio == pytest.approx(np.log(1 / 3))
    assert set(table["company_id"]) == {"a", "b"} and len(table) == 3
