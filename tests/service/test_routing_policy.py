"""Routing policy as pure functions: filters, relaxation order, objective, fairness, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.routing.policy import (
    LeadToRoute,
    Rep,
    RepFit,
    RepLoad,
    RoutingPolicy,
    add_working_hours,
    first_touch_deadline,
    route_lead,
)
from service.routing.router import RepDirectory, Router
from service.routing.state import SqliteAssignmentStore

# Tuesday 2026-03-10 03:00 UTC = 11:00 in Shanghai, 12:00 in Tokyo, 04:00 in Berlin
NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
POLICY = RoutingPolicy()
FIT = RepFit()


def rep(rep_id: str, zone: str = "Asia/Shanghai", langs: dict | None = None, capacity: int = 10) -> Rep:
    return Rep(rep_id, "t", "r", zone, 9, 18, capacity, langs or {"zh": 1.0, "en": 0.9})


def lead(language: str = "zh", offset: float = 8.0, p: float = 0.3, grade: str = "B") -> LeadToRoute:
    return LeadToRoute("l1", p, grade, language, offset)


def test_language_and_timezone_filters_pick_the_matching_rep() -> None:
    reps = [
        rep("cn"),
        rep("jp", "Asia/Tokyo", {"ja": 1.0, "en": 0.8}),
        rep("de", "Europe/Berlin", {"de": 1, "en": 1}),
    ]
    assert route_lead(lead("ja", 9.0), reps, {}, NOW, POLICY, FIT).rep_id == "jp"
    decision = route_lead(lead("zh", 8.0), reps, {}, NOW, POLICY, FIT)
    assert decision.rep_id == "cn" and decision.relaxed == ()
    assert {c.rep_id for c in decision.runners_up} <= {"jp", "de"}


def test_full_reps_are_skipped_and_a_full_team_queues_the_lead() -> None:
    reps = [rep("a", capacity=2), rep("b", capacity=2)]
    loads = {"a": RepLoad(2), "b": RepLoad(1)}
    assert route_lead(lead(), reps, loads, NOW, POLICY, FIT).rep_id == "b"
    full = route_lead(lead(), reps, {"a": RepLoad(2), "b": RepLoad(2)}, NOW, POLICY, FIT)
    assert full.rep_id is None and "queued" in full.reasons[0]


def test_filters_relax_in_the_stated_order() -> None:
    # a Korean lead at 03:00 UTC; only a Berlin rep (asleep, far, no Korean) exists
    reps = [rep("de", "Europe/Berlin", {"de": 1.0, "en": 1.0})]
    decision = route_lead(lead("ko", 9.0, grade="A"), reps, {}, NOW, POLICY, FIT)
    assert decision.rep_id == "de"
    assert decision.relaxed == ("working_hours", "timezone", "language")
    assert any("relaxed filter: language" in r for r in decision.reasons)
    # a Seoul-near rep who speaks Korean but is off shift: only working hours are relaxed
    night = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    reps = [rep("kr", "Asia/Seoul", {"ko": 1.0})]
    assert route_lead(lead("ko", 9.0, grade="A"), reps, {}, night, POLICY, FIT).relaxed == ("working_hours",)


def test_expected_value_prefers_the_learned_better_rep() -> None:
    reps = [rep("a"), rep("b")]
    fit = RepFit(rep_lift={"a": 0.8, "b": 1.3})
    decision = route_lead(lead(), reps, {}, NOW, POLICY, fit)
    assert decision.rep_id == "b"
    assert (
        decision.chosen is not None and decision.chosen.expected_value > decision.runners_up[0].expected_value
    )


def test_ties_go_to_the_least_recently_assigned_rep() -> None:
    reps = [rep("a"), rep("b"), rep("c")]
    loads = {
        "a": RepLoad(1, NOW - timedelta(minutes=5)),
        "b": RepLoad(1, NOW - timedelta(hours=3)),
        "c": RepLoad(1, NOW - timedelta(minutes=30)),
    }
    assert route_lead(lead(), reps, loads, NOW, POLICY, FIT).rep_id == "b"


def test_deadlines_count_only_the_reps_working_hours() -> None:
    r = rep("cn")  # 09:00-18:00 Shanghai
    friday_5pm = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)  # 17:00 Friday in Shanghai
    # 4 working hours from Friday 17:00: 1 h Friday, 3 h Monday -> Monday 12:00 Shanghai (04:00 UTC)
    assert add_working_hours(r, friday_5pm, 4) == datetime(2026, 3, 16, 4, 0, tzinfo=UTC)
    assert first_touch_deadline(r, NOW, "A", POLICY) == NOW + timedelta(hours=1)
    hot, cold = (first_touch_deadline(r, NOW, g, POLICY) for g in ("A", "D"))
    assert hot < cold


def test_deadline_respects_a_dst_change() -> None:
    berlin = rep("de", "Europe/Berlin")  # 09:00-18:00; clocks go forward on 2026-03-29
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    # next working start is Monday 09:00 CEST = 07:00 UTC (not 08:00)
    assert add_working_hours(berlin, saturday, 1) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


# Tuesday 2026-03-10 10:00 UTC = 18:00 in Shanghai (its 09-18 shift just ended), 11:00 in Berlin
EVENING = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def test_a_near_match_working_now_beats_a_full_match_fifteen_hours_away() -> None:
    # the Shanghai rep starts Wednesday 09:00 local: 15 h away, keeping 0.981^15 = 0.75 of the chance;
    # the Berlin rep speaks Chinese, is 7 h away (time-zone factor 0.8) and working now: 0.8 > 0.75
    reps = [rep("cn"), rep("de", "Europe/Berlin", {"zh": 0.9, "de": 1.0})]
    decision = route_lead(lead("zh", 8.0, grade="D"), reps, {}, EVENING, POLICY, FIT)
    assert decision.rep_id == "de"
    assert decision.chosen is not None and decision.chosen.waived == ("timezone",)
    assert any("timezone filter given up" in r and "in 15.0 h" in r for r in decision.reasons)


def test_a_full_match_three_hours_away_is_worth_waiting_for() -> None:
    # a Shanghai evening shift from 21:00: 3 h away keeps 0.981^3 = 0.94 of the chance, more than 0.8
    evening_shift = Rep("cn", "t", "r", "Asia/Shanghai", 21, 23, 10, {"zh": 1.0})
    reps = [evening_shift, rep("de", "Europe/Berlin", {"zh": 0.9, "de": 1.0})]
    decision = route_lead(lead("zh", 8.0, grade="D"), reps, {}, EVENING, POLICY, FIT)
    assert decision.rep_id == "cn" and decision.chosen is not None
    assert decision.chosen.hours_until_available == 3.0 and decision.chosen.waived == ()


def test_a_hot_lead_takes_the_near_match_rather_than_relaxing_working_hours() -> None:
    # grade A allows 1 h: the Shanghai rep 15 h away qualifies only with working hours relaxed, and
    # a working near match is worth more than that
    reps = [rep("cn"), rep("de", "Europe/Berlin", {"zh": 0.9, "de": 1.0})]
    decision = route_lead(lead("zh", 8.0, grade="A"), reps, {}, EVENING, POLICY, FIT)
    assert decision.rep_id == "de"


def test_the_learned_segment_lift_sends_the_lead_to_the_rep_with_industry_experience() -> None:
    reps = [rep("a"), rep("b")]
    fit = RepFit(rep_lift={"a": 1.1, "b": 1.0}, rep_industry_lift={"b": {"energy": 1.3}})
    energy = LeadToRoute("l1", 0.3, "B", "zh", 8.0, industry="energy", product_line="storage")
    chemicals = LeadToRoute("l2", 0.3, "B", "zh", 8.0, industry="chemicals", product_line="storage")
    chosen = route_lead(energy, reps, {}, NOW, POLICY, fit)
    assert chosen.rep_id == "b" and chosen.chosen is not None and abs(chosen.chosen.lift - 1.3) < 1e-9
    assert any("learned rep lift x1.30 for energy / storage" in r for r in chosen.reasons)
    assert route_lead(chemicals, reps, {}, NOW, POLICY, fit).rep_id == "a"


def test_a_nearly_full_best_rep_keeps_its_last_slots_for_high_value_leads() -> None:
    # rep a is 20% better but at 9 of 10 leads: its price is 0.15 x (0.9 - 0.7) / 0.3 = 0.10 of value
    reps = [rep("a"), rep("b")]
    fit = RepFit(rep_lift={"a": 1.2, "b": 1.0})
    loads = {"a": RepLoad(9), "b": RepLoad(1)}
    # a cold lead (p 0.1): 0.12 - 0.10 on a < 0.10 on b; a hot one (p 0.8): 0.96 - 0.10 on a > 0.80 on b
    assert route_lead(lead(p=0.1), reps, loads, NOW, POLICY, fit).rep_id == "b"
    hot = route_lead(lead(p=0.8, grade="A"), reps, loads, NOW, POLICY, fit)
    assert hot.rep_id == "a" and any("reserved slots cost 0.100" in r for r in hot.reasons)


def test_the_concentration_bound_stops_the_best_rep_from_taking_everything() -> None:
    # mean open load (6 + 0 + 0) / 3 = 2; bound 3 x 2 + 2 = 8 would allow a; a bound of 1 x 2 + 2 = 4 does not
    reps = [rep("a", capacity=20), rep("b", capacity=20), rep("c", capacity=20)]
    fit = RepFit(rep_lift={"a": 1.5})
    loads = {"a": RepLoad(6)}
    assert route_lead(lead(), reps, loads, NOW, POLICY, fit).rep_id == "a"
    even = RoutingPolicy(max_load_multiple=1.0)
    assert route_lead(lead(), reps, loads, NOW, even, fit).rep_id in {"b", "c"}
    # with b full, the bound (1 x (6 + 1) / 2 + 2 = 5.5 < 6) is relaxed, and said so
    full_b = {"a": RepLoad(6), "b": RepLoad(1)}
    alone = route_lead(lead(), [rep("a", capacity=20), rep("b", capacity=1)], full_b, NOW, even, fit)
    assert alone.rep_id == "a" and alone.relaxed == ("concentration",)


def test_a_nearly_full_team_queues_a_cold_lead_and_still_takes_a_hot_one() -> None:
    # both reps at 9 of 10 (team at 90% >= 70%): each slot costs 0.10; p 0.05 clears neither, p 0.5 does
    reps = [rep("a"), rep("b")]
    loads = {"a": RepLoad(9), "b": RepLoad(9)}
    cold = route_lead(lead(p=0.05, grade="D"), reps, loads, NOW, POLICY, FIT)
    assert cold.rep_id is None and "reserved" in cold.reasons[0]
    assert route_lead(lead(p=0.5, grade="A"), reps, loads, NOW, POLICY, FIT).rep_id in {"a", "b"}


def test_the_router_with_a_real_store_fills_the_best_rep_to_capacity_then_moves_on(tmp_path: Path) -> None:
    reps = [rep("a", capacity=3), rep("b", capacity=3), rep("c", capacity=3)]
    router = Router(RepDirectory(lambda: reps), SqliteAssignmentStore(tmp_path / "routing.db"), POLICY)
    fit = RepFit(rep_lift={"a": 1.5, "b": 1.2, "c": 1.0})
    chosen = [
        router.route(LeadToRoute(f"l{i}", 0.5, "A", "zh", 8.0), NOW + timedelta(minutes=i), fit).rep_id
        for i in range(8)
    ]
    # a (best) takes 3 = its capacity, then b 3, then c; the store holds no rep above capacity
    assert chosen == ["a", "a", "a", "b", "b", "b", "c", "c"]
    assert {r: load.open_leads for r, load in router.state.loads().items()} == {"a": 3, "b": 3, "c": 2}


def test_a_reps_clock_kept_for_one_minute_is_not_used_in_the_next() -> None:
    """The per-rep clock (offset, wait, availability) is computed once per minute and shared by that
    minute's leads: the same reps a minute before and at the start of work must see the change."""
    reps = [rep("cn")]  # works 09:00-18:00 in Shanghai
    before = datetime(2026, 3, 10, 0, 59, 30, tzinfo=UTC)  # 08:59:30 in Shanghai
    waiting = route_lead(lead(), reps, {}, before, POLICY, FIT).chosen
    assert waiting is not None and waiting.hours_until_available > 0
    at_start = route_lead(lead(), reps, {}, before + timedelta(seconds=30), POLICY, FIT).chosen
    assert at_start is not None and at_start.hours_until_available == 0 and at_start.availability == 1.0
    again = route_lead(lead(), reps, {}, before + timedelta(seconds=10), POLICY, FIT).chosen
    assert again == waiting  # back to the earlier minute: computed again, the same answer
