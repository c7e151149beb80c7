"""Process-rule layer: declarative rules (YAML) over scores and features, each firing with evidence.

A rules file lists rules; each names a ``kind`` (one of ``RULE_KINDS``), its ``params``, an
``action`` and a ``severity``. The file is validated when loaded: an unknown kind, a missing or
mistyped parameter, a duplicate name is refused with the file's line number and the reason.
Evaluation is pure: ``evaluate(rules, context)`` returns ``Firing`` rows (rule, entity, evidence,
action); the service and ``funnelcast score weekly`` build the context and store the firings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from funnelcast.core.i18n import ACTION_CLAUSE_SEPARATOR

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, line and reason."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FirstTouchSla(_Params):
    escalate_after_hours: float = Field(4.0, gt=0)


class StageStall(_Params):
    working_days: int = Field(5, ge=1)


class ResistantSignals(_Params):
    min_signals: int = Field(3, ge=1)


class ContractFreeze(_Params):
    min_amount_cny: float = Field(gt=0)
    stage_index_at_least: int = Field(4, ge=0, le=5)
    punctuality_below: float = Field(0.85, gt=0, le=1)


class CommoditySwing(_Params):
    weekly_change_above: float = Field(0.05, gt=0)


class WinProbabilityDrop(_Params):
    points: float = Field(20.0, gt=0, le=100)


class BookingsAnomaly(_Params):
    daily_change_above: float = Field(0.35, gt=0)
    trailing_days: int = Field(28, ge=7)


class ChannelShareShift(_Params):
    points: float = Field(20.0, gt=0, le=100)
    trailing_days: int = Field(28, ge=7)


RULE_KINDS: dict[str, type[_Params]] = {
    "first_touch_sla": FirstTouchSla,
    "stage_stall": StageStall,
    "resistant_signals": ResistantSignals,
    "contract_freeze": ContractFreeze,
    "commodity_swing": CommoditySwing,
    "win_probability_drop": WinProbabilityDrop,
    "bookings_anomaly": BookingsAnomaly,
    "channel_share_shift": ChannelShareShift,
}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    action: str = Field(min_length=1)
    severity: Literal["info", "warning", "critical"] = "warning"
    enabled: bool = True

    def typed_params(self) -> _Params:
        return RULE_KINDS[self.kind](**self.params)


@dataclass(frozen=True)
class Firing:
    rule: str
    kind: str
    entity: str
    severity: str
    action: str
    evidence: dict[str, Any]


def load_rules(path: Path = DEFAULT_RULES) -> list[Rule]:
    """Parse and validate a rules file, or raise ``RulesError`` with the line and the reason."""
    try:
        text = path.read_text()
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except FileNotFoundError as err:
        raise RulesError(f"{path}: no such rules file") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise RulesError(f"{path}{line}: not valid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError(f"{path} line 1: expected a mapping with a 'rules:' list")
    rule_nodes = next(v for k, v in node.value if k.value == "rules").value
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw, rule_node in zip(data["rules"], rule_nodes, strict=True):
        line = rule_node.start_mark.line + 1
        label = raw.get("name", "?") if isinstance(raw, dict) else "?"
        try:
            rule = Rule(**raw) if isinstance(raw, dict) else Rule.model_validate(raw)
            if rule.kind not in RULE_KINDS:
                raise RulesError(
                    f"{path} line {line}: rule {label!r}: unknown kind {rule.kind!r}; "
                    f"choose one of {', '.join(RULE_KINDS)}"
                )
            rule.typed_params()
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RulesError(f"{path} line {line}: rule {label!r}: {where}: {first['msg']}") from err
        if rule.name in seen:
            raise RulesError(f"{path} line {line}: rule name {rule.name!r} is used twice")
        seen.add(rule.name)
        rules.append(rule)
    return rules


@dataclass
class RuleContext:
    """What rules look at. Any part may be empty; a rule with nothing to look at stays silent."""

    now: datetime
    as_of: datetime | None = None  # time the deal features describe (default: now)
    deals: pd.DataFrame = field(default_factory=pd.DataFrame)  # index opportunity_id, see DEAL_COLUMNS
    overdue_leads: pd.DataFrame = field(default_factory=pd.DataFrame)  # lead_id, rep_id, deadline
    daily_bookings: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # date -> CNY
    daily_channel_counts: pd.DataFrame = field(default_factory=pd.DataFrame)  # date x channel -> leads


# deal columns: amount, stage_index, last_update_at (latest activity or stage change), resistant_7d,
# commodity, change_1w, exposure, punctuality (of the customer account), p_win (this week),
# p_win_last_week (NaN when unknown)


def _deal_rows(ctx: RuleContext, mask: pd.Series) -> pd.DataFrame:
    return ctx.deals[mask.fillna(False)] if len(ctx.deals) else ctx.deals


def _first_touch(rule: Rule, p: FirstTouchSla, ctx: RuleContext) -> list[Firing]:
    out = []
    for row in ctx.overdue_leads.itertuples():
        late_h = (ctx.now - row.deadline).total_seconds() / 3600
        if late_h <= 0:
            continue
        escalate = late_h >= p.escalate_after_hours
        action = (
            ACTION_CLAUSE_SEPARATOR.join((rule.action, "escalate to the team lead"))
            if escalate
            else rule.action
        )
        evidence = {
            "rep_id": row.rep_id,
            "deadline": row.deadline.isoformat(),
            "hours_late": round(late_h, 1),
            "escalated": escalate,
        }
        out.append(
            Firing(
                rule.name, rule.kind, row.lead_id, "critical" if escalate else rule.severity, action, evidence
            )
        )
    return out


def _stage_stall(rule: Rule, p: StageStall, ctx: RuleContext) -> list[Firing]:
    if not len(ctx.deals):
        return []
    # a stall: no update (activity or stage change) for more than N working days
    updated = (
        pd.to_datetime(ctx.deals["last_update_at"], utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
    )
    today = np.datetime64(pd.Timestamp(ctx.as_of or ctx.now).tz_localize(None).date(), "D")
    working = np.busday_count(updated, today)
    out = []
    for (deal, row), days in zip(ctx.deals.iterrows(), working, strict=True):
        if row["stage_index"] < 5 and days > p.working_days:
            evidence = {
                "working_days_without_update": int(days),
                "limit": p.working_days,
                "stage_index": int(row["stage_index"]),
            }
            out.append(Firing(rule.name, rule.kind, str(deal), rule.severity, rule.action, evidence))
    return out


def _resistant(rule: Rule, p: ResistantSignals, ctx: RuleContext) -> list[Firing]:
    rows = _deal_rows(ctx, ctx.deals.get("resistant_7d", pd.Series(dtype=float)) >= p.min_signals)
    return [
        Firing(
            rule.name,
            rule.kind,
            str(d),
            rule.severity,
            rule.action,
            {"resistant_signals_7d": int(r["resistant_7d"])},
        )
        for d, r in rows.iterrows()
    ]


def _freeze(rule: Rule, p: ContractFreeze, ctx: RuleContext) -> list[Firing]:
    if not len(ctx.deals):
        return []
    d = ctx.deals
    mask = (
        (d["amount"] >= p.min_amount_cny)
        & (d["stage_index"] >= p.stage_index_at_least)
        & (d["punctuality"] < p.punctuality_below)
    )
    return [
        Firing(
            rule.name,
            rule.kind,
            str(i),
            rule.severity,
            rule.action,
            {
                "amount_cny": float(r["amount"]),
                "stage_index": int(r["stage_index"]),
                "payment_punctuality_12m": round(float(r["punctuality"]), 3),
            },
        )
        for i, r in d[mask.fillna(False)].iterrows()
    ]


def _swing(rule: Rule, p: CommoditySwing, ctx: RuleContext) -> list[Firing]:
    if not len(ctx.deals):
        return []
    d = ctx.deals
    mask = (d["change_1w"].abs() > p.weekly_change_above) & (d["exposure"] > 0)
    return [
        Firing(
            rule.name,
            rule.kind,
            str(i),
            rule.severity,
            rule.action,
            {
                "commodity": r["commodity"],
                "change_1w": round(float(r["change_1w"]), 4),
                "exposure": float(r["exposure"]),
            },
        )
        for i, r in d[mask.fillna(False)].iterrows()
    ]


def _drop(rule: Rule, p: WinProbabilityDrop, ctx: RuleContext) -> list[Firing]:
    if not len(ctx.deals):
        return []
    d = ctx.deals
    drop = (d["p_win_last_week"] - d["p_win"]) * 100
    return [
        Firing(
            rule.name,
            rule.kind,
            str(i),
            rule.severity,
            rule.action,
            {
                "p_win_last_week": round(float(r["p_win_last_week"]), 3),
                "p_win": round(float(r["p_win"]), 3),
                "drop_points": round(float(x), 1),
            },
        )
        for (i, r), x in zip(d.iterrows(), drop, strict=True)
        if x > p.points
    ]


def _bookings(rule: Rule, p: BookingsAnomaly, ctx: RuleContext) -> list[Firing]:
    s = ctx.daily_bookings.sort_index()
    if len(s) < p.trailing_days + 1:
        return []
    today, trailing = float(s.iloc[-1]), float(s.iloc[-1 - p.trailing_days : -1].mean())
    if trailing <= 0:
        return []
    change = today / trailing - 1
    if abs(change) <= p.daily_change_above:
        return []
    evidence = {
        "day": str(s.index[-1]),
        "bookings": today,
        "trailing_mean": round(trailing, 2),
        "change": round(change, 3),
    }
    return [Firing(rule.name, rule.kind, "bookings", rule.severity, rule.action, evidence)]


def _channels(rule: Rule, p: ChannelShareShift, ctx: RuleContext) -> list[Firing]:
    c = ctx.daily_channel_counts.sort_index()
    if len(c) < p.trailing_days + 1:
        return []
    today = c.iloc[-1] / max(c.iloc[-1].sum(), 1)
    before = c.iloc[-1 - p.trailing_days : -1].sum()
    before = before / max(before.sum(), 1)
    shift = (today - before) * 100
    worst = shift.abs().idxmax()
    if abs(shift[worst]) <= p.points:
        return []
    evidence = {
        "channel": worst,
        "share_today": round(float(today[worst]), 3),
        "share_trailing": round(float(before[worst]), 3),
        "shift_points": round(float(shift[worst]), 1),
    }
    return [Firing(rule.name, rule.kind, f"channel:{worst}", rule.severity, rule.action, evidence)]


_EVALUATORS: dict[str, Callable[[Rule, Any, RuleContext], list[Firing]]] = {
    "first_touch_sla": _first_touch,
    "stage_stall": _stage_stall,
    "resistant_signals": _resistant,
    "contract_freeze": _freeze,
    "commodity_swing": _swing,
    "win_probability_drop": _drop,
    "bookings_anomaly": _bookings,
    "channel_share_shift": _channels,
}


def evaluate(rules: list[Rule], ctx: RuleContext) -> list[Firing]:
    """Every enabled rule over ``ctx``; a data anomaly (circuit breaker) is listed first."""
    out: list[Firing] = []
    for rule in rules:
        if rule.enabled:
            out.extend(_EVALUATORS[rule.kind](rule, rule.typed_params(), ctx))
    breakers = [f for f in out if f.kind in ("bookings_anomaly", "channel_share_shift")]
    return breakers + [f for f in out if f not in breakers]
