"""Every default rule fires on a constructed case and stays silent on its near miss; bad files are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.rules import RuleContext, RulesError, evaluate, load_rules

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday
RULES = {r.name: r for r in load_rules()}


def deal(**over: object) -> dict[str, object]:
    base = {
        "amount": 500_000.0,
        "stage_index": 2,
        "last_update_at": pd.Timestamp("2026-11-18", tz="UTC"),
        "resistant_7d": 0,
        "commodity": "copper",
        "change_1w": 0.01,
        "exposure": 0.6,
        "punctuality": 0.97,
        "p_win": 0.40,
        "p_win_last_week": 0.45,
    }
    return base | over


def fired(rule: str, ctx: RuleContext) -> list:
    return [f for f in evaluate([RULES[rule]], ctx)]


def deals_ctx(**over: object) -> RuleContext:
    return RuleContext(now=NOW, deals=pd.DataFrame([deal(**over)], index=["o1"]))


CASES = {
    # rule: (firing case, near miss)
    "stage_stall": (
        {"last_update_at": pd.Timestamp("2026-11-12", tz="UTC")},  # Thu 12th -> Fri 20th: 6 working days
        {"last_update_at": pd.Timestamp("2026-11-13", tz="UTC")},  # Fri 13th -> Fri 20th: 5
    ),
    "resistant_signals": ({"resistant_7d": 3}, {"resistant_7d": 2}),
    "big_deal_contract_freeze": (
        {"amount": 2_500_000.0, "stage_index": 4, "punctuality": 0.80},
        {"amount": 2_500_000.0, "stage_index": 4, "punctuality": 0.86},
    ),
    "commodity_requote": ({"change_1w": -0.06}, {"change_1w": 0.049}),
    "win_probability_drop": (
        {"p_win": 0.20, "p_win_last_week": 0.45},
        {"p_win": 0.26, "p_win_last_week": 0.45},
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_deal_rules_fire_with_evidence_and_stay_silent_on_the_near_miss(rule: str) -> None:
    hit, miss = CASES[rule]
    firing = fired(rule, deals_ctx(**hit))
    assert len(firing) == 1 and firing[0].entity == "o1"
    assert firing[0].evidence and firing[0].action == RULES[rule].action
    assert fired(rule, deals_ctx(**miss)) == []


def test_first_touch_sla_breach_then_escalation() -> None:
    def ctx(hours_late: float) -> RuleContext:
        overdue = pd.DataFrame(
            [{"lead_id": "l1", "rep_id": "r1", "deadline": NOW - timedelta(hours=hours_late)}]
        )
        return RuleContext(now=NOW, overdue_leads=overdue)

    breach = fired("first_touch_sla_breach", ctx(1))
    assert len(breach) == 1 and breach[0].evidence["escalated"] is False
    escalated = fired("first_touch_sla_breach", ctx(5))
    assert escalated[0].evidence["escalated"] is True and "escalate" in escalated[0].action
    assert escalated[0].severity == "critical"
    assert fired("first_touch_sla_breach", ctx(-0.5)) == []  # not yet due


def test_bookings_circuit_breaker() -> None:
    days = pd.date_range("2026-10-01", periods=29, freq="D")

    def ctx(today: float) -> RuleContext:
        return RuleContext(now=NOW, daily_bookings=pd.Series([100.0] * 28 + [today], index=days))

    assert fired("bookings_circuit_breaker", ctx(136.0))[0].evidence["change"] == 0.36
    assert fired("bookings_circuit_breaker", ctx(60.0))  # a fall counts too
    assert fired("bookings_circuit_breaker", ctx(134.0)) == []


def test_channel_mix_circuit_breaker() -> None:
    days = pd.date_range("2026-10-01", periods=29, freq="D")

    def ctx(web_today: int) -> RuleContext:
        counts = np.tile([50, 50], (29, 1))
        counts[-1] = [web_today, 100 - web_today]
        return RuleContext(
            now=NOW, daily_channel_counts=pd.DataFrame(counts, index=days, columns=["web_form", "referral"])
        )

    shift = fired("channel_mix_circuit_breaker", ctx(71))
    assert shift and abs(shift[0].evidence["shift_points"]) == 21.0
    assert fired("channel_mix_circuit_breaker", ctx(69)) == []


def test_breakers_are_listed_first() -> None:
    days = pd.date_range("2026-10-01", periods=29, freq="D")
    ctx = deals_ctx(resistant_7d=5)
    ctx.daily_bookings = pd.Series([100.0] * 28 + [500.0], index=days)
    kinds = [f.kind for f in evaluate(list(RULES.values()), ctx)]
    assert kinds[0] == "bookings_anomaly" and "resistant_signals" in kinds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - name: a\n    kind: teleport\n    action: x\n",
            "line 2: rule 'a': unknown kind 'teleport'",
        ),
        (
            "rules:\n  - name: ok\n    kind: stage_stall\n    action: x\n  - name: b\n    kind: stage_stall\n"
            "    params: {working_days: soon}\n    action: x\n",
            "line 5: rule 'b': working_days: Input should be a valid integer",
        ),
        (
            "rules:\n  - name: c\n    kind: stage_stall\n    params: {days: 3}\n    action: x\n",
            "line 2: rule 'c': days: Extra inputs",
        ),
        ("rules:\n  - name: d\n    kind: stage_stall\n", "line 2: rule 'd': action: Field required"),
        (
            "rules:\n  - name: e\n    kind: stage_stall\n    action: x\n"
            "  - name: e\n    kind: stage_stall\n    action: y\n",
            "line 5: rule name 'e' is used twice",
        ),
        ("rules: [\n", "not valid YAML"),
        ("just: text\n", "line 1: expected a mapping with a 'rules:' list"),
    ],
)
def test_a_bad_rules_file_is_refused_with_line_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert message in str(err.value) and str(path) in str(err.value)
