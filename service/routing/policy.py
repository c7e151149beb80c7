"""Routing policy: which rep gets a new lead now (pure functions, no I/O).

1. **Hard filters** (``RoutingPolicy``): time-zone gap <= 3 h, language proficiency >= 0.8,
   capacity left, and the rep working now or starting before the lead's first-touch deadline.
2. **Objective** among those left: expected value = lead probability x learned rep fit
   (language / time-zone match and the rep's own lift, from history) x availability (the delay
   cost of waiting for the rep's working hours, at the learned decay per hour).
3. **Fairness**: candidates within ``tie_tolerance`` of the best expected value are "as good";
   among them the least recently assigned wins, weighted by the share of capacity still free.
4. **Relaxation** when nobody qualifies, in this stated order: working hours -> time zone ->
   language. Capacity is never relaxed: a full team leaves the lead unassigned (queued) and says so.

Every decision carries its reasons and the runners-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY

WEEKDAYS = 5  # Monday..Friday


@dataclass(frozen=True)
class Rep:
    rep_id: str
    team: str
    region: str
    timezone: str
    work_start_hour: int
    work_end_hour: int
    capacity: int
    languages: Mapping[str, float]


@dataclass(frozen=True)
class RepLoad:
    open_leads: int = 0
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class RepFit:
    """What history says about lead-rep matches (learned with the lead model, see ``training.rep_fit``)."""

    language_mismatch_factor: float = 0.6
    timezone_gap_factor: float = 0.8
    delay_decay_per_hour: float = 0.019
    rep_lift: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, fit: Mapping[str, object] | None) -> RepFit:
        """The fit a lead model learned (its ``rep_fit`` metadata); the defaults where it has none."""
        fit = fit or {}
        return cls(
            language_mismatch_factor=float(fit.get("language_mismatch_factor", cls.language_mismatch_factor)),
            timezone_gap_factor=float(fit.get("timezone_gap_factor", cls.timezone_gap_factor)),
            delay_decay_per_hour=float(fit.get("delay_decay_per_hour", cls.delay_decay_per_hour)),
            rep_lift=dict(fit.get("rep_lift", {})),  # type: ignore[call-overload]
        )


@dataclass(frozen=True)
class LeadToRoute:
    lead_id: str
    probability: float
    grade: str
    language: str | None
    utc_offset_hours: float | None
    exclude_reps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoutingPolicy:
    max_timezone_gap_hours: float = MAX_TIMEZONE_GAP_HOURS
    min_language_proficiency: float = MIN_LANGUAGE_PROFICIENCY
    # first-touch deadline per grade, in the assigned rep's working hours
    sla_working_hours: Mapping[str, float] = field(
        default_factory=lambda: {"A": 1.0, "B": 4.0, "C": 8.0, "D": 16.0}
    )
    tie_tolerance: float = 0.03  # relative EV gap still counted as a tie for fairness
    runners_up: int = 3
    relax_order: tuple[str, ...] = ("working_hours", "timezone", "language")


@dataclass(frozen=True)
class Candidate:
    rep_id: str
    expected_value: float
    fit: float
    availability: float
    hours_until_available: float
    timezone_gap_hours: float | None
    language_proficiency: float | None
    open_leads: int
    capacity: int


@dataclass(frozen=True)
class RoutingDecision:
    lead_id: str
    rep_id: str | None
    first_touch_deadline: datetime | None
    reasons: tuple[str, ...]
    relaxed: tuple[str, ...]
    chosen: Candidate | None
    runners_up: tuple[Candidate, ...]


def circular_gap(a: float, b: float) -> float:
    diff = abs(a - b) % 24
    return min(diff, 24 - diff)


def utc_offset(zone: str, at: datetime) -> float:
    offset = at.astimezone(ZoneInfo(zone)).utcoffset()
    return offset.total_seconds() / 3600.0 if offset is not None else 0.0


def is_working(rep: Rep, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(rep.timezone))
    return local.weekday() < WEEKDAYS and rep.work_start_hour <= local.hour < rep.work_end_hour


def next_working_start(rep: Rep, at: datetime) -> datetime:
    """``at`` if the rep is working then, else the start of the rep's next working day."""
    if is_working(rep, at):
        return at
    zone = ZoneInfo(rep.timezone)
    local = at.astimezone(zone)
    day = local.replace(hour=rep.work_start_hour, minute=0, second=0, microsecond=0)
    if local >= day:
        day += timedelta(days=1)
    while day.weekday() >= WEEKDAYS:
        day += timedelta(days=1)
    # rebuild in the zone so a DST change between the days is respected
    return datetime(day.year, day.month, day.day, rep.work_start_hour, tzinfo=zone).astimezone(at.tzinfo)


def add_working_hours(rep: Rep, start: datetime, hours: float) -> datetime:
    """The instant ``hours`` of the rep's working time after ``start`` (skipping nights and weekends)."""
    zone = ZoneInfo(rep.timezone)
    at = next_working_start(rep, start)
    remaining = timedelta(hours=hours)
    for _ in range(400):  # bounded: at most ~a year of working days
        local = at.astimezone(zone)
        end_of_day = datetime(local.year, local.month, local.day, rep.work_end_hour, tzinfo=zone)
        available = end_of_day - local
        if remaining <= available:
            return (local + remaining).astimezone(start.tzinfo)
        remaining -= available
        at = next_working_start(rep, end_of_day.astimezone(start.tzinfo))
    raise ValueError(f"rep {rep.rep_id} has no working hours")


def first_touch_deadline(rep: Rep, now: datetime, grade: str, policy: RoutingPolicy) -> datetime:
    hours = policy.sla_working_hours.get(grade, max(policy.sla_working_hours.values()))
    return add_working_hours(rep, now, hours)


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


@lru_cache(maxsize=4096)
def _rep_clock(zone: str, start_hour: int, end_hour: int, minute: datetime) -> tuple[float, datetime]:
    """A rep's UTC offset and next working start at ``minute`` (shared by every lead routed that minute)."""
    probe = Rep("", "", "", zone, start_hour, end_hour, 0, {})
    start = next_working_start(probe, minute)
    if start == minute:  # working now: available immediately, whatever the seconds
        start = datetime.min.replace(tzinfo=minute.tzinfo)
    return utc_offset(zone, minute), start


def _candidate(
    rep: Rep, load: RepLoad, lead: LeadToRoute, now: datetime, fit: RepFit, policy: RoutingPolicy
) -> Candidate:
    """The candidate's numbers and the wall-clock hours until it can act."""
    offset, start = _rep_clock(rep.timezone, rep.work_start_hour, rep.work_end_hour, _minute(now))
    wait = max(0.0, (start - now).total_seconds() / 3600.0)
    gap = None if lead.utc_offset_hours is None else circular_gap(offset, lead.utc_offset_hours)
    prof = None if lead.language is None else float(rep.languages.get(lead.language, 0.0))
    match = 1.0
    if prof is not None and prof < policy.min_language_proficiency:
        match *= fit.language_mismatch_factor
    if gap is not None and gap > policy.max_timezone_gap_hours:
        match *= fit.timezone_gap_factor
    lift = fit.rep_lift.get(rep.rep_id, 1.0)
    availability = (1.0 - fit.delay_decay_per_hour) ** wait
    value = lead.probability * match * lift * availability
    return Candidate(
        rep_id=rep.rep_id,
        expected_value=value,
        fit=match * lift,
        availability=availability,
        hours_until_available=wait,
        timezone_gap_hours=gap,
        language_proficiency=prof,
        open_leads=load.open_leads,
        capacity=rep.capacity,
    )


def _passes(cand: Candidate, lead: LeadToRoute, policy: RoutingPolicy, relaxed: set[str]) -> bool:
    if cand.open_leads >= cand.capacity:
        return False
    gap, prof = cand.timezone_gap_hours, cand.language_proficiency
    if "timezone" not in relaxed and gap is not None and gap > policy.max_timezone_gap_hours:
        return False
    if "language" not in relaxed and prof is not None and prof < policy.min_language_proficiency:
        return False
    if "working_hours" not in relaxed and cand.hours_until_available > 0:
        # not working now: acceptable only if the rep starts before the lead's SLA would lapse
        sla = policy.sla_working_hours.get(lead.grade, max(policy.sla_working_hours.values()))
        if cand.hours_until_available > sla:
            return False
    return True


def _fairness_key(cand: Candidate, load: RepLoad, now: datetime) -> tuple[float, float]:
    """Sort key among tied candidates: longest since last assignment, weighted by free capacity."""
    idle_hours = (
        1e6 if load.last_assigned_at is None else (now - load.last_assigned_at).total_seconds() / 3600
    )
    free_share = 1.0 - cand.open_leads / max(cand.capacity, 1)
    return (-idle_hours * (0.5 + free_share), -cand.expected_value)


def rank_candidates(
    lead: LeadToRoute,
    reps: Sequence[Rep],
    loads: Mapping[str, RepLoad],
    now: datetime,
    policy: RoutingPolicy,
    fit: RepFit,
) -> tuple[list[Candidate], tuple[str, ...]]:
    """Qualifying candidates best first (EV, then fairness among ties) and the filters relaxed to get any."""
    pool = [r for r in reps if r.rep_id not in lead.exclude_reps]
    scored = [
        (rep, _candidate(rep, loads.get(rep.rep_id, RepLoad()), lead, now, fit, policy)) for rep in pool
    ]
    relaxed: list[str] = []
    steps = [None, *policy.relax_order]
    for step in steps:
        if step is not None:
            relaxed.append(step)
        qualifying = [c for c in (c for _, c in scored) if _passes(c, lead, policy, set(relaxed))]
        if qualifying:
            best = max(c.expected_value for c in qualifying)
            tied = [c for c in qualifying if c.expected_value >= best * (1 - policy.tie_tolerance)]
            rest = sorted((c for c in qualifying if c not in tied), key=lambda c: -c.expected_value)
            tied.sort(key=lambda c: _fairness_key(c, loads.get(c.rep_id, RepLoad()), now))
            return [*tied, *rest], tuple(relaxed)
    return [], tuple(relaxed)


def routing_decision(
    lead: LeadToRoute,
    ranked: Sequence[Candidate],
    relaxed: tuple[str, ...],
    chosen_index: int | None,
    reps_by_id: Mapping[str, Rep],
    now: datetime,
    policy: RoutingPolicy,
) -> RoutingDecision:
    """The decision once the state store accepted ``ranked[chosen_index]`` (None: nobody had capacity)."""
    if chosen_index is None:
        reasons = ["no rep with capacity left passes the filters, even relaxed; lead queued unassigned"]
        return RoutingDecision(lead.lead_id, None, None, tuple(reasons), relaxed, None, tuple(ranked[:3]))
    chosen = ranked[chosen_index]
    rep = reps_by_id[chosen.rep_id]
    reasons = [
        f"expected value {chosen.expected_value:.3f} = P {lead.probability:.3f} x fit {chosen.fit:.2f} "
        f"x availability {chosen.availability:.2f}"
    ]
    if chosen.language_proficiency is not None:
        reasons.append(f"speaks {lead.language} at {chosen.language_proficiency:.2f}")
    if chosen.timezone_gap_hours is not None:
        reasons.append(f"time-zone gap {chosen.timezone_gap_hours:.1f} h")
    reasons.append(
        "working now"
        if chosen.hours_until_available == 0
        else f"starts work in {chosen.hours_until_available:.1f} h"
    )
    reasons.append(f"load {chosen.open_leads}/{chosen.capacity}")
    if chosen_index > 0:
        reasons.append(f"{chosen_index} better-ranked rep(s) reached capacity meanwhile")
    for step in relaxed:
        reasons.append(f"relaxed filter: {step} (nobody qualified without it)")
    runners = tuple(c for i, c in enumerate(ranked) if i != chosen_index)[: policy.runners_up]
    deadline = first_touch_deadline(rep, now, lead.grade, policy)
    return RoutingDecision(lead.lead_id, rep.rep_id, deadline, tuple(reasons), relaxed, chosen, runners)


def route_lead(
    lead: LeadToRoute,
    reps: Sequence[Rep],
    loads: Mapping[str, RepLoad],
    now: datetime,
    policy: RoutingPolicy,
    fit: RepFit,
) -> RoutingDecision:
    """Rank and take the best candidate (no shared state: replays and tests; the service goes through
    the assignment store, which may refuse a rep that filled up meanwhile)."""
    ranked, relaxed = rank_candidates(lead, reps, loads, now, policy, fit)
    reps_by_id = {r.rep_id: r for r in reps}
    return routing_decision(lead, ranked, relaxed, 0 if ranked else None, reps_by_id, now, policy)
