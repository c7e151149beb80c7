"""Routing policy as pure functions: filters, relaxation order, objective, fairness, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
