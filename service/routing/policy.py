"""Routing policy: which rep gets a new lead now (pure functions, no I/O).

1. **Hard filters** (``RoutingPolicy``, configurable): time-zone gap <= 3 h, language proficiency
   >= 0.8, capacity left, the rep working now or starting before the lead's first-touch deadline,
   and the concentration bound (no rep holds more than ``max_load_multiple`` x the team's mean
   open load), so the best reps cannot take everything.
2. **Objective** among those left: expected value = lead probability x learned rep fit (language /
   time-zone match, and the rep's lift for the lead's industry and product line, learned from
   history with shrinkage toward the team) x availability (the delay cost of waiting for the
   rep's working hours, at the learned decay per hour), minus a **capacity price**: a rep past
   ``reserve_from_load`` of capacity costs ``reserve_value`` x how far into the reserve it is, so
   its last slots go to leads whose expected value clears the price (high-value leads); when the
   whole team is that full, a lead whose value clears no rep's price is queued, not assigned.
3. **Wait versus match**, per lead from its value: a near match (failing the time-zone or the
   language filter) who is working now is taken when its expected value beats the best full
   match's, who may be hours from starting; the filter given up is named in the reasons.
4. **Fairness**: candidates within ``tie_tolerance`` of the best are "as good"; among them the
   least recently assigned wins, weighted by the share of capacity still free.
5. **Relaxation** when nobody qualifies, in this stated order: concentration -> working hours ->
   time zone -> language. Capacity is never relaxed: a full team leaves the lead unassigned
   (queued) and says so.

The per-lead work is numpy over arrays cached per (rep directory, fit) object pair, so routing a
lead costs tens of microseconds whatever the team size. Every decision carries its reasons and
the runners-up.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY
from funnelcast.core.working_hours import WEEKDAYS, hours_until_working

# what ``rank_candidates`` reports instead of relaxed filters when it holds a lead back
CAPACITY_RESERVED = "capacity_reserved"


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


@dataclass(frozen=True, eq=False)
class RepFit:
    """What history says about lead-rep matches (learned with the lead model, see ``training.rep_fit``).

    Compared by identity: the policy caches its per-rep arrays per fit object, and
    ``from_metadata`` returns one object per model's metadata.
    """

    language_mismatch_factor: float = 0.6
    timezone_gap_factor: float = 0.8
    delay_decay_per_hour: float = 0.019
    rep_lift: Mapping[str, float] = field(default_factory=dict)
    team_lift: Mapping[str, float] = field(default_factory=dict)
    rep_industry_lift: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rep_product_lift: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, fit: Mapping[str, object] | None) -> RepFit:
        """The fit a lead model learned (its ``rep_fit`` metadata); the defaults where it has none."""
        if fit is None:
            return _DEFAULT_FIT
        cached = _FIT_OF_METADATA.get(id(fit))
        if cached is not None and cached[0] is fit:
            return cached[1]
        made = cls(
            language_mismatch_factor=float(fit.get("language_mismatch_factor", cls.language_mismatch_factor)),  # type: ignore[arg-type]
            timezone_gap_factor=float(fit.get("timezone_gap_factor", cls.timezone_gap_factor)),  # type: ignore[arg-type]
            delay_decay_per_hour=float(fit.get("delay_decay_per_hour", cls.delay_decay_per_hour)),  # type: ignore[arg-type]
            rep_lift=dict(fit.get("rep_lift", {})),  # type: ignore[call-overload]
            team_lift=dict(fit.get("team_lift", {})),  # type: ignore[call-overload]
            rep_industry_lift=dict(fit.get("rep_industry_lift", {})),  # type: ignore[call-overload]
            rep_product_lift=dict(fit.get("rep_product_lift", {})),  # type: ignore[call-overload]
        )
        if len(_FIT_OF_METADATA) > 16:
            _FIT_OF_METADATA.clear()
        _FIT_OF_METADATA[id(fit)] = (fit, made)
        return made


_DEFAULT_FIT = RepFit()
_FIT_OF_METADATA: dict[int, tuple[Mapping[str, object], RepFit]] = {}


@dataclass(frozen=True)
class LeadToRoute:
    lead_id: str
    probability: float
    grade: str
    language: str | None
    utc_offset_hours: float | None
    exclude_reps: frozenset[str] = frozenset()
    # the lead's segment, for the learned rep x industry / product-line lift (None: rep lift only)
    industry: str | None = None
    product_line: str | None = None


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
    relax_order: tuple[str, ...] = ("concentration", "working_hours", "timezone", "language")
    # no rep holds more than this multiple of the team's mean open load (+ ``concentration_slack``)
    max_load_multiple: float = 3.0
    concentration_slack: int = 2
    # take a near match working now over a full match later when its expected value is higher
    near_match_now: bool = True
    # past this share of its capacity a rep's remaining slots carry a price (in expected value)
    reserve_from_load: float = 0.7
    reserve_value: float = 0.15
    ranked_kept: int = 5  # candidates handed back (the chosen, the runners-up, fall-backs for the store)


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
    lift: float = 1.0  # the learned rep x segment lift inside ``fit``
    capacity_price: float = 0.0  # what the rep's reserved slots cost this lead (expected value)
    # filters this near match fails, taken because it is working now and beats the best full
    # match (expected value ``full_match_value`` after ``full_match_wait_hours``)
    waived: tuple[str, ...] = ()
    full_match_value: float | None = None
    full_match_wait_hours: float | None = None


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
    wait = hours_until_working(
        np.array(local.weekday()), np.array(local.hour), rep.work_start_hour, rep.work_end_hour
    )
    return bool(wait == 0.0)


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


@dataclass(frozen=True, eq=False)
class _RepTable:
    """A rep directory and a fit as arrays (built once per directory and fit object)."""

    reps: Sequence[Rep]
    ids: tuple[str, ...]
    zones: tuple[str, ...]
    zone_of: np.ndarray
    start: np.ndarray
    end: np.ndarray
    capacity: np.ndarray
    proficiency: Mapping[str, np.ndarray]
    lift: np.ndarray
    industry_lift: Mapping[str, np.ndarray]
    product_lift: Mapping[str, np.ndarray]


# keyed by object ids; holding the objects keeps an id from being reused while its entry lives
_TABLES: dict[tuple[int, int], tuple[Sequence[Rep], RepFit, _RepTable]] = {}
_TABLES_LOCK = threading.Lock()


def _segment_lifts(ids: tuple[str, ...], table: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
    segments = {seg for by in table.values() for seg in by}
    return {seg: np.array([float(table.get(r, {}).get(seg, 1.0)) for r in ids]) for seg in segments}


def _rep_table(reps: Sequence[Rep], fit: RepFit) -> _RepTable:
    key = (id(reps), id(fit))
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is reps and hit[1] is fit:
        return hit[2]
    ids = tuple(r.rep_id for r in reps)
    zones = tuple(sorted({r.timezone for r in reps}))
    languages = {lang for r in reps for lang in r.languages}
    table = _RepTable(
        reps=reps,
        ids=ids,
        zones=zones,
        zone_of=np.array([zones.index(r.timezone) for r in reps], dtype=np.int64),
        start=np.array([r.work_start_hour for r in reps], dtype=float),
        end=np.array([r.work_end_hour for r in reps], dtype=float),
        capacity=np.array([r.capacity for r in reps], dtype=float),
        proficiency={lang: np.array([float(r.languages.get(lang, 0.0)) for r in reps]) for lang in languages},
        lift=np.array([float(fit.rep_lift.get(r.rep_id, fit.team_lift.get(r.team, 1.0))) for r in reps]),
        industry_lift=_segment_lifts(ids, fit.rep_industry_lift),
        product_lift=_segment_lifts(ids, fit.rep_product_lift),
    )
    with _TABLES_LOCK:  # handlers route from several threads
        if len(_TABLES) >= 8:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = (reps, fit, table)
    return table


@lru_cache(maxsize=256)
def _zone_clock(zones: tuple[str, ...], minute: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per zone at ``minute``: UTC offset (h), local weekday, local hour of day (fractional)."""
    local = [minute.astimezone(ZoneInfo(z)) for z in zones]
    offset = np.array([(t.utcoffset() or timedelta()).total_seconds() / 3600.0 for t in local])
    weekday = np.array([t.weekday() for t in local], dtype=np.int64)
    hour = np.array([t.hour + t.minute / 60.0 for t in local])
    return offset, weekday, hour


def _hours_until_working(table: _RepTable, weekday: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Wall-clock hours until each rep works (0 when working now; ``funnelcast.core.working_hours``)."""
    return hours_until_working(weekday, hour, table.start, table.end)


_NO_LOAD = RepLoad()


@dataclass(frozen=True, eq=False)
class _RepClock:
    """Per rep at one minute: UTC offset, wall-clock hours until working and the availability
    factor those hours give under the fit. Every lead routed in that minute shares them."""

    offset: np.ndarray
    wait: np.ndarray
    availability: np.ndarray


def _rep_clock(t: _RepTable, fit: RepFit, minute: datetime) -> _RepClock:
    # one entry per table: a minute's clock is asked for by every lead routed in it, then never again
    cached = t.__dict__.get("_clock")
    if cached is not None and cached[0] == minute:
        return cached[1]
    offset, weekday, hour = (a[t.zone_of] for a in _zone_clock(t.zones, minute))
    wait = _hours_until_working(t, weekday, hour)
    availability = (1.0 - fit.delay_decay_per_hour) ** np.minimum(wait, 24 * 30)
    made = _RepClock(offset, wait, availability)
    object.__setattr__(t, "_clock", (minute, made))  # a frozen table's private cache
    return made


def rank_candidates(
    lead: LeadToRoute,
    reps: Sequence[Rep],
    loads: Mapping[str, RepLoad],
    now: datetime,
    policy: RoutingPolicy,
    fit: RepFit,
) -> tuple[list[Candidate], tuple[str, ...]]:
    """Qualifying candidates best first (net value, then fairness among ties; at most
    ``policy.ranked_kept``) and the filters relaxed to get any."""
    if not reps:
        return [], ()
    t = _rep_table(reps, fit)
    n = len(t.ids)
    rep_clock = _rep_clock(t, fit, _minute(now))
    offset, wait = rep_clock.offset, rep_clock.wait
    load_of = [loads.get(r, _NO_LOAD) for r in t.ids]
    open_leads = np.fromiter((ld.open_leads for ld in load_of), dtype=float, count=n)

    if lead.utc_offset_hours is None:
        gap, tz_ok = None, np.ones(n, dtype=bool)
    else:
        diff = np.abs(offset - lead.utc_offset_hours) % 24
        gap = np.minimum(diff, 24 - diff)
        tz_ok = gap <= policy.max_timezone_gap_hours
    if lead.language is None:
        prof, lang_ok = None, np.ones(n, dtype=bool)
    else:
        prof = t.proficiency.get(lead.language, np.zeros(n))
        lang_ok = prof >= policy.min_language_proficiency
    match = np.where(lang_ok, 1.0, fit.language_mismatch_factor) * np.where(
        tz_ok, 1.0, fit.timezone_gap_factor
    )
    lift = t.lift
    if lead.industry is not None and lead.industry in t.industry_lift:
        lift = lift * t.industry_lift[lead.industry]
    if lead.product_line is not None and lead.product_line in t.product_lift:
        lift = lift * t.product_lift[lead.product_line]
    availability = rep_clock.availability
    value = lead.probability * match * lift * availability
    pressure = np.clip((open_leads / np.maximum(t.capacity, 1) - policy.reserve_from_load), 0, None) / max(
        1e-9, 1 - policy.reserve_from_load
    )
    price = policy.reserve_value * np.minimum(pressure, 1.0)
    net = value - price

    sla = policy.sla_working_hours.get(lead.grade, max(policy.sla_working_hours.values()))
    usable = open_leads < t.capacity
    if lead.exclude_reps:
        usable &= np.array([r not in lead.exclude_reps for r in t.ids])
    bound = policy.max_load_multiple * open_leads.mean() + policy.concentration_slack
    filters = {
        "concentration": open_leads < bound,
        "working_hours": wait <= sla,
        "timezone": tz_ok,
        "language": lang_ok,
    }
    relaxed: list[str] = []
    mask = usable & np.logical_and.reduce(list(filters.values()))
    for step in policy.relax_order:
        if mask.any():
            break
        relaxed.append(step)
        kept = [ok for name, ok in filters.items() if name not in relaxed]
        mask = usable & (np.logical_and.reduce(kept) if kept else np.ones(n, dtype=bool))
    if not mask.any():
        return [], tuple(relaxed)
    # name only the relaxed filters some qualifying rep actually fails
    relaxed = [step for step in relaxed if not filters[step][mask].all()]
    # wait versus match: a near match working now against the best who qualified (maybe hours away)
    waived_by_value, near = False, np.zeros(n, dtype=bool)
    if policy.near_match_now:
        near = usable & filters["concentration"] & (wait == 0) & ~(tz_ok & lang_ok) & ~mask
        if near.any() and net[near].max() > net[mask].max():
            full_best = int(np.flatnonzero(mask)[np.argmax(net[mask])])
            mask = mask | near
            waived_by_value = True

    idx = np.flatnonzero(mask)
    best = net[idx].max()
    team_load = open_leads.sum() / max(t.capacity.sum(), 1.0)
    if best < 0 and team_load >= policy.reserve_from_load:
        return [], (CAPACITY_RESERVED,)
    tied = idx[net[idx] >= best - policy.tie_tolerance * abs(best)]
    rest = idx[net[idx] < best - policy.tie_tolerance * abs(best)]
    if len(tied) > 1:
        free = 1.0 - open_leads[tied] / np.maximum(t.capacity[tied], 1)
        idle = np.array(
            [
                1e6
                if load_of[i].last_assigned_at is None
                else (now - load_of[i].last_assigned_at).total_seconds() / 3600  # type: ignore[operator]
                for i in tied
            ]
        )
        tied = tied[np.lexsort((-value[tied], -idle * (0.5 + free)))]
    order = np.concatenate([tied, rest[np.argsort(-net[rest], kind="stable")]])[: policy.ranked_kept]

    def candidate(i: int) -> Candidate:
        fails = tuple(name for name, ok in (("timezone", tz_ok[i]), ("language", lang_ok[i])) if not ok)
        waived = fails if waived_by_value and near[i] else ()
        return Candidate(
            rep_id=t.ids[i],
            expected_value=float(value[i]),
            fit=float(match[i] * lift[i]),
            availability=float(availability[i]),
            hours_until_available=float(wait[i]),
            timezone_gap_hours=None if gap is None else float(gap[i]),
            language_proficiency=None if prof is None else float(prof[i]),
            open_leads=int(open_leads[i]),
            capacity=int(t.capacity[i]),
            lift=float(lift[i]),
            capacity_price=float(price[i]),
            waived=waived,
            full_match_value=float(value[full_best]) if waived else None,
            full_match_wait_hours=float(wait[full_best]) if waived else None,
        )

    return [candidate(int(i)) for i in order], tuple(relaxed)


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
    if chosen_index is None and relaxed == (CAPACITY_RESERVED,):
        reasons = [
            "team near full: the slots left are reserved for leads worth more than their price; "
            "lead queued unassigned"
        ]
        return RoutingDecision(lead.lead_id, None, None, tuple(reasons), (), None, ())
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
    if chosen.lift != 1.0:
        segment = " / ".join(x for x in (lead.industry, lead.product_line) if x)
        reasons.append(f"learned rep lift x{chosen.lift:.2f}" + (f" for {segment}" if segment else ""))
    if chosen.capacity_price > 0:
        reasons.append(f"rep near capacity: its reserved slots cost {chosen.capacity_price:.3f} of value")
    if chosen.waived:
        given_up = " and ".join(chosen.waived)
        reasons.append(
            f"near match working now, {given_up} filter given up: expected value "
            f"{chosen.expected_value:.3f} now beats {chosen.full_match_value:.3f} for the best full "
            f"match in {chosen.full_match_wait_hours:.1f} h"
        )
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
