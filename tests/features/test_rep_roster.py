"""The routing facts at a lead's creation, read from a hand-made roster (``features.rep_roster``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.rep_roster import MAX_WAIT_HOURS, ROSTER_COLUMNS, RepRoster
from features.request_time import lead_model_frame

# Two reps, both 09:00-18:00 local on weekdays: one in Shanghai (Chinese, some English), one in Berlin
# (German, fluent English). In March 2026 Shanghai is UTC+8 and Berlin UTC+1 (summer time starts 29 March).
REPS = pd.DataFrame(
    {
        "rep_id": ["sh", "be"],
        "timezone": ["Asia/Shanghai", "Europe/Berlin"],
        "work_start_hour": [9, 9],
        "work_end_hour": [18, 18],
    }
)
REP_LANGUAGES = pd.DataFrame(
    {
        "rep_id": ["sh", "sh", "be", "be"],
        "language": ["zh", "en", "de", "en"],
        "proficiency": [1.0, 0.5, 1.0, 0.9],
    }
)


def facts(created_at: str, language: str | None, timezone: str | None = "Asia/Shanghai") -> pd.Series:
    lead = pd.DataFrame(
        {"created_at": [pd.Timestamp(created_at)], "language": [language], "timezone": [timezone]}
    )
    roster = RepRoster.from_tables(REPS, REP_LANGUAGES)
    return lead_model_frame(lead, roster=roster)[list(ROSTER_COLUMNS)].iloc[0]


def test_a_lead_at_two_in_the_night_waits_for_the_first_rep_to_start() -> None:
    # Tuesday 02:00 Shanghai = Monday 19:00 Berlin: nobody works. Shanghai starts at 09:00 (7 h);
    # Berlin at 09:00 Berlin = 16:00 Shanghai (14 h). Only the Shanghai rep works at that first instant.
    chinese = facts("2026-03-10T02:00:00+08:00", "zh")
    assert chinese["hours_until_any_rep"] == pytest.approx(7.0)
    assert chinese["hours_until_language_rep"] == pytest.approx(7.0)
    assert (chinese["language_rep_share"], chinese["near_rep_share"], chinese["near_fluent_share"]) == (
        1,
        1,
        1,
    )
    # an English speaker waits for Berlin (the Shanghai rep's 0.5 is under routing's 0.8)
    english = facts("2026-03-10T02:00:00+08:00", "en")
    assert english["hours_until_any_rep"] == pytest.approx(7.0)
    assert english["hours_until_language_rep"] == pytest.approx(14.0)
    assert (english["language_rep_share"], english["near_fluent_share"]) == (0, 0)


def test_friday_evening_waits_over_the_weekend_and_nobody_speaking_reads_as_a_week() -> None:
    # Saturday 02:00 Shanghai (Friday 19:00 Berlin, just after its day) -> Monday 09:00 Shanghai: 55 h
    late = facts("2026-03-14T02:00:00+08:00", "ja")
    assert late["hours_until_any_rep"] == pytest.approx(55.0)
    assert late["hours_until_language_rep"] == MAX_WAIT_HOURS


def test_reps_working_now_are_shared_by_language_and_time_zone() -> None:
    # Tuesday 16:30 Shanghai = 09:30 Berlin: both work now. A Berlin-zone German lead: the Berlin rep
    # speaks it and is 0 h away; the Shanghai rep neither (7 h apart)
    both = facts("2026-03-10T16:30:00+08:00", "de", "Europe/Berlin")
    assert both["hours_until_any_rep"] == 0.0 and both["hours_until_language_rep"] == 0.0
    assert (both["language_rep_share"], both["near_rep_share"], both["near_fluent_share"]) == (0.5, 0.5, 0.5)


def test_without_a_roster_or_a_language_the_facts_are_unknown() -> None:
    lead = pd.DataFrame(
        {"created_at": [pd.Timestamp("2026-03-10T02:00:00Z")], "language": ["zh"], "timezone": [None]}
    )
    assert lead_model_frame(lead)[list(ROSTER_COLUMNS)].isna().all(axis=None)
    assert RepRoster.from_tables(REPS.drop(columns="work_start_hour"), REP_LANGUAGES) is None
    unknown = facts("2026-03-10T02:00:00+08:00", None, None)
    assert unknown["hours_until_any_rep"] == pytest.approx(7.0)  # the roster's own clock is still known
    assert np.isnan(unknown[["hours_until_language_rep", "near_rep_share", "near_fluent_share"]]).all()
