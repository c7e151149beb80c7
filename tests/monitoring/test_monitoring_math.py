"""The monitoring math on small hand-checkable inputs: PSI, labels, weekly AUC, calibration by
grade, segment calibration, SLA compliance and match rates, forecast accuracy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from funnelcast.core.drift import InputBins, bin_counts, bin_index, psi, top_movers, training_distribution
from funnelcast.core.forecast_accuracy import ForecastSnapshot, accuracy_by_horizon, accuracy_table
from funnelcast.core.lead_quality import calibration_by_grade, lead_labels, weekly_auc
from funnelcast.core.routing_health import match_rates, rep_shares, sla_compliance
from funnelcast.core.segment_calibration import segment_calibration, shifted_segments
from funnelcast.core.timestamps import utc_times
from service.monitoring.report import routing_health

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def test_psi_is_zero_for_the_training_shares_and_matches_the_formula_for_a_shift() -> None:
    assert psi((0.5, 0.5), np.array([50, 50])) == pytest.approx(0.0)
    # (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5) = 0.141 + 0.275 = 0.416
    assert psi((0.5, 0.5), np.array([80, 20])) == pytest.approx(0.3 * np.log(1.6) + 0.3 * np.log(2.5))
    assert np.isnan(psi((0.5, 0.5), np.array([0, 0])))


def test_training_distribution_cuts_numbers_at_deciles_and_keeps_a_missing_bin() -> None:
    x = np.column_stack([np.arange(100, dtype=float), np.r_[np.zeros(50), np.ones(40), np.full(10, np.nan)]])
    numeric, category = training_distribution(x, ["n", "c"], {"c": ("a", "b")})
    assert numeric.kind == "numeric" and len(numeric.edges) == 9 and numeric.n_bins == 11
    assert numeric.proportions[-1] == 0.0 and sum(numeric.proportions) == pytest.approx(1.0)
    assert category.proportions == (0.5, 0.4, 0.1)
    # an unseen code and a missing value both land in the last bin
    assert list(bin_index(category, np.array([0.0, 1.0, 7.0, np.nan]))) == [0, 1, 2, 2]
    assert InputBins.from_dict(category.to_dict()) == category
    counts = bin_counts([numeric, category], x)
    assert counts[1].tolist() == [50, 40, 10]


def test_top_movers_are_the_largest_psi_first_without_nan() -> None:
    assert top_movers({"a": 0.1, "b": float("nan"), "c": 0.5, "d": 0.2}, k=2) == [("c", 0.5), ("d", 0.2)]


def test_a_lead_is_positive_when_it_converts_in_its_window_and_unknown_while_the_window_is_open() -> None:
    served = pd.Series([T0, T0, T0, T0 - timedelta(days=40)])
    converted = pd.Series([T0 + timedelta(days=3), None, None, None])
    disqualified = pd.Series([None, T0 + timedelta(days=1), None, None])
    labels = lead_labels(served, converted, disqualified, now=T0 + timedelta(days=5), window_days=30)
    assert (
        labels.iloc[0] == 1.0 and labels.iloc[1] == 0.0 and np.isnan(labels.iloc[2]) and labels.iloc[3] == 0.0
    )


def test_an_outcome_dated_after_now_has_not_happened_yet() -> None:
    """A check run (or replayed) at ``now`` must not see a conversion or a disqualification dated later."""
    served = pd.Series([T0, T0, T0 - timedelta(days=40)])
    converted = pd.Series([T0 + timedelta(days=3), None, T0 - timedelta(days=20)])
    disqualified = pd.Series([None, T0 + timedelta(days=4), None])
    early = lead_labels(served, converted, disqualified, now=T0 + timedelta(days=2), window_days=30)
    assert np.isnan(early.iloc[0]) and np.isnan(early.iloc[1]) and early.iloc[2] == 1.0
    later = lead_labels(served, converted, disqualified, now=T0 + timedelta(days=5), window_days=30)
    assert later.iloc[0] == 1.0 and later.iloc[1] == 0.0 and later.iloc[2] == 1.0


def test_weekly_auc_groups_by_the_week_scored_and_skips_unresolved_leads() -> None:
    served = pd.Series([T0, T0, T0, T0 + timedelta(days=7), T0 + timedelta(days=8)])
    p = pd.Series([0.9, 0.2, 0.5, 0.3, 0.6])
    y = pd.Series([1.0, 0.0, np.nan, 1.0, 1.0])
    table = weekly_auc(served, p, y)
    assert table["leads"].tolist() == [3, 2] and table["resolved"].tolist() == [2, 2]
    assert table["roc_auc"].iloc[0] == 1.0
    assert pd.isna(table["roc_auc"].iloc[1])  # one class only: undefined, not 0.5


def test_calibration_by_grade_compares_mean_predicted_with_actual() -> None:
    table = calibration_by_grade(
        pd.Series(["A", "A", "D", "D"]), pd.Series([0.6, 0.4, 0.1, 0.1]), pd.Series([1.0, 1.0, 0.0, np.nan])
    )
    assert table.to_dict("records") == [
        {"grade": "A", "leads": 2, "predicted": 0.5, "actual": 1.0},
        {"grade": "D", "leads": 1, "predicted": 0.1, "actual": 0.0},
    ]


def test_sla_counts_only_due_leads_and_match_rates_use_the_routing_filters() -> None:
    deadline = pd.Series([T0, T0, T0 + timedelta(hours=10), None])
    touched = pd.Series([T0 - timedelta(hours=1), None, None, None])
    # lead 1 met, lead 2 missed (past deadline untouched), lead 3 not yet due, lead 4 unassigned
    assert sla_compliance(deadline, touched, now=T0 + timedelta(hours=1)) == (1, 2)
    rates = match_rates(pd.Series([1.0, 0.5, None]), pd.Series([0.0, 5.0, 2.0]), 0.8, 3.0)
    assert rates == {"language": 0.5, "timezone": pytest.approx(2 / 3)}
    assert rep_shares(pd.Series(["r1", "r1", "r2", None])) == {
        "r1": pytest.approx(2 / 3),
        "r2": pytest.approx(1 / 3),
    }


def test_stored_times_with_and_without_a_fraction_of_a_second_are_all_read() -> None:
    # isoformat() drops the fraction of an exact second: a deadline at 07:00 beside a wall-clock one.
    # pandas infers one format from the first string; the other raised (a 500 on GET /v1/monitoring,
    # found by the soak) or, coerced, silently became NaT and the outcome was lost.
    exact, fraction = T0.isoformat(), (T0 + timedelta(microseconds=123)).isoformat()
    deadline = pd.Series([fraction, exact, exact])
    touched = pd.Series([fraction, exact, None])
    assert sla_compliance(deadline, touched, now=T0 + timedelta(hours=1)) == (2, 3)
    labels = lead_labels(
        pd.Series([fraction, exact]),
        pd.Series([exact, fraction]),
        pd.Series([None, None]),
        T0 + timedelta(hours=1),  # both conversions have happened
        30,
    )
    assert labels.tolist() == [1.0, 1.0]
    assert utc_times(
        pd.Series([fraction, exact, "9999-12-31T23:59:59+14:00"]), coerce=True
    ).notna().tolist() == [
        True,
        True,
        False,
    ]


def test_what_we_said_four_weeks_ago_is_judged_against_the_wins_in_that_week() -> None:
    rows = [
        {
            "group_by": "all",
            "group": "all",
            "horizon": h,
            "expected": 100.0,
            "p10": 50.0,
            "p50": 90,
            "p90": 150.0,
        }
        for h in (1, 2, 4)
    ] + [
        {
            "group_by": "region",
            "group": "east",
            "horizon": 1,
            "expected": 60.0,
            "p10": 0.0,
            "p50": 50,
            "p90": 80.0,
        }
    ]
    snap = ForecastSnapshot(
        T0, "3", rows, {"o1": {"region": "east", "amount": 70.0}, "o2": {"region": "west", "amount": 40.0}}
    )
    wins = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o2", "o9"],
            "at": [
                T0 + timedelta(days=1),
                T0 + timedelta(days=2),
                T0 + timedelta(days=22),
                T0 + timedelta(days=1),
            ],
            "amount": [np.nan, 30.0, 200.0, 999.0],  # o9 was not open at the snapshot: not counted
        }
    )
    table = accuracy_table([snap], wins, now=T0 + timedelta(days=28))
    by = {(r["group"], r["horizon"]): r for r in table.to_dict("records")}
    assert by[("all", 1)]["realised"] == 100.0  # o1's 70 at the snapshot's amount + o2's 30
    assert by[("all", 2)]["realised"] == 0.0 and not by[("all", 2)]["inside"]
    assert by[("all", 4)]["realised"] == 200.0 and not by[("all", 4)]["inside"]
    assert by[("east", 1)]["realised"] == 70.0 and by[("east", 1)]["inside"]
    # a week not over yet is not judged
    assert accuracy_table([snap], wins, now=T0 + timedelta(days=6)).empty
    summary = accuracy_by_horizon(table).set_index("horizon")
    assert summary.loc[1, "wape"] == 0.0 and summary.loc[4, "wape"] == pytest.approx(0.5)
    assert pd.isna(summary.loc[2, "wape"]) and summary.loc[1, "coverage"] == 1.0


def test_the_load_spread_counts_a_rep_of_the_team_with_no_lead() -> None:
    served = pd.DataFrame(
        {
            "lead_id": ["l1", "l2", "l3", "l4"],
            "rep_id": ["r1", "r1", "r2", None],
            "probability": [0.6, 0.2, 0.2, 0.9],
            "deadline": [None] * 4,
            "language_proficiency": [1.0, 1.0, 0.9, None],
            "timezone_gap_hours": [0.0, 1.0, 2.0, None],
        }
    )
    outcomes = pd.DataFrame(columns=["kind", "lead_id", "opportunity_id", "at", "amount_cny"])
    now = datetime(2026, 11, 2, tzinfo=UTC)
    seen = routing_health(served, outcomes, now).rep_load
    team = routing_health(served, outcomes, now, team=["r1", "r2", "r3"]).rep_load
    assert seen.min_share == pytest.approx(1 / 3) and seen.load_gini == pytest.approx(1 / 6)
    assert team.min_share == 0.0 and team.load_gini == pytest.approx(4 / 9)
    assert team.value_shares == pytest.approx({"r1": 0.8, "r2": 0.2, "r3": 0.0})


def _leads_by_channel(rng: np.random.Generator, rates: dict[str, float], n: int, seen: float) -> pd.DataFrame:
    """``n`` leads per channel predicted at 0.2 each, converting at ``rate`` x 0.2, of which only
    ``seen`` have had time to show (leads younger than their label window)."""
    rows = []
    for channel, rate in rates.items():
        converted = rng.random(n) < 0.2 * rate * seen
        rows.append(pd.DataFrame({"channel": channel, "p": 0.2, "y": converted.astype(float)}))
    frame = pd.concat(rows, ignore_index=True)
    frame["served_at"] = T0 - timedelta(days=3)
    return frame


def test_a_channel_converting_at_half_its_prediction_is_flagged_before_its_window_closes() -> None:
    rng = np.random.default_rng(7)
    frame = _leads_by_channel(rng, {"web": 0.5, "event": 1.0, "referral": 1.0, "partner": 1.0}, 2000, 0.4)
    table = segment_calibration(frame[["channel"]], frame["served_at"], frame["p"], frame["y"], T0, 14)
    by = table.set_index("level")
    assert by.loc["web", "shift"] == pytest.approx(0.5, abs=0.1)  # censoring (seen 0.4) cancels
    assert by.loc["event", "shift"] == pytest.approx(1.0, abs=0.12)  # the median: not risen
    assert by.loc["web", "z"] < -5
    flagged = shifted_segments(table, min_expected=20, max_shift=0.3, min_z=3)
    assert flagged["level"].tolist() == ["web"]


def test_a_thin_level_or_one_served_before_the_window_is_not_judged() -> None:
    rng = np.random.default_rng(8)
    frame = _leads_by_channel(rng, {"web": 0.5, "event": 1.0}, 60, 0.4)  # ~2.4 web conversions expected
    table = segment_calibration(frame[["channel"]], frame["served_at"], frame["p"], frame["y"], T0, 14)
    assert shifted_segments(table, min_expected=20, max_shift=0.3, min_z=3).empty
    old = _leads_by_channel(rng, {"web": 0.5, "event": 1.0}, 2000, 1.0)
    old["served_at"] = T0 - timedelta(days=20)
    assert segment_calibration(old[["channel"]], old["served_at"], old["p"], old["y"], T0, 14).empty
    # a lead with no level for the segment is in the rest of every level, never a level of its own
    frame.loc[:9, "channel"] = None
    levels = segment_calibration(frame[["channel"]], frame["served_at"], frame["p"], frame["y"], T0, 14)
    assert sorted(levels["level"]) == ["event", "web"] and levels["leads"].sum() == len(frame) - 10
