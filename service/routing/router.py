"""The router at the edge: rep directory (from Feast), the pure policy, and the shared assignment store.

``Router.route`` ranks reps with ``policy.rank_candidates`` and then asks the store to take the
best one; if a concurrent request filled that rep in between, the store refuses and the next
candidate is tried, so capacity holds under any concurrency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from feast import FeatureStore

from features.catalog import LANGUAGES
from features.rep_roster import RepRoster
from service.routing.policy import (
    LeadToRoute,
    Rep,
    RepFit,
    RoutingDecision,
    RoutingPolicy,
    rank_candidates,
    routing_decision,
)
from service.routing.state import Assignment, AssignmentStore

log = logging.getLogger("funnelcast.routing")

ROUTING_PROFILE = ["team", "region", "timezone", "work_start_hour", "work_end_hour", "capacity"] + [
    f"lang_{lang}" for lang in LANGUAGES
]


def reps_from_feast(store: FeatureStore, rep_ids: list[str]) -> list[Rep]:
    """Current rep profiles from the online store (``rep_profile`` view)."""
    values = store.get_online_features(
        features=[f"rep_profile:{f}" for f in ROUTING_PROFILE], entity_rows=[{"rep_id": r} for r in rep_ids]
    ).to_dict()
    reps = []
    for i, rep_id in enumerate(rep_ids):
        if values["timezone"][i] is None:
            continue  # no profile online: not routable
        reps.append(
            Rep(
                rep_id=rep_id,
                team=values["team"][i],
                region=values["region"][i],
                timezone=values["timezone"][i],
                work_start_hour=int(values["work_start_hour"][i]),
                work_end_hour=int(values["work_end_hour"][i]),
                capacity=int(values["capacity"][i]),
                languages={
                    lang: float(values[f"lang_{lang}"][i] or 0.0)
                    for lang in LANGUAGES
                    if values[f"lang_{lang}"][i]
                },
            )
        )
    return reps


def roster_of(reps: list[Rep]) -> RepRoster | None:
    """The directory as the lead model's rep roster (``features.rep_roster``): training's reps
    tables hold the same time zones, working hours and proficiencies."""
    return RepRoster.build(
        [r.timezone for r in reps],
        [r.work_start_hour for r in reps],
        [r.work_end_hour for r in reps],
        [r.languages for r in reps],
    )


class RepDirectoryUnavailable(RuntimeError):
    """No rep profiles could be read and none were read before: routing is unavailable."""


@dataclass
class RepDirectory:
    """Rep profiles cached in memory, refreshed at most every ``refresh_seconds``."""

    load: Callable[[], list[Rep]]
    refresh_seconds: float = 300.0

    def __post_init__(self) -> None:
        self._reps: list[Rep] = []
        self._by_id: dict[str, Rep] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._roster: tuple[list[Rep], RepRoster | None] | None = None

    def reps(self) -> list[Rep]:
        if time.monotonic() - self._loaded_at > self.refresh_seconds or not self._reps:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.refresh_seconds or not self._reps:
                    try:
                        reps = self.load()
                    except Exception as err:
                        log.warning("rep directory not refreshed", extra={"error": str(err)[:300]})
                        if not self._reps:
                            raise RepDirectoryUnavailable(f"no rep directory: {err}") from err
                        reps = self._reps  # keep the last good directory
                    self._reps, self._by_id = reps, {r.rep_id: r for r in reps}
                    self._loaded_at = time.monotonic()
        return self._reps

    def by_id(self) -> dict[str, Rep]:
        self.reps()
        return self._by_id

    def roster(self) -> RepRoster | None:
        """The current reps as the lead model's roster, built once per directory snapshot."""
        reps = self.reps()
        cached = self._roster
        if cached is None or cached[0] is not reps:
            cached = self._roster = (reps, roster_of(reps))
        return cached[1]


class Router:
    def __init__(self, directory: RepDirectory, state: AssignmentStore, policy: RoutingPolicy) -> None:
        self.directory = directory
        self.state = state
        self.policy = policy

    def ready(self) -> bool:
        """Whether there is a rep directory to route with (its failure is logged where it is caught)."""
        try:
            self.directory.reps()
        except RepDirectoryUnavailable:
            return False
        return True

    def roster(self) -> RepRoster | None:
        """The rep roster the lead model's routing facts are read from; None (unknown facts, and a
        ``rep_roster`` degradation) when there is no rep directory."""
        try:
            return self.directory.roster()
        except RepDirectoryUnavailable:
            return None

    def release_for_reroute(self, lead_id: str, now: datetime) -> frozenset[str]:
        """Release the lead's current assignment (status ``rerouted``); the reps to exclude next."""
        previous = self.state.get(lead_id)
        if previous is None:
            return frozenset()
        self.state.update_status(lead_id, "rerouted", now)
        return frozenset({previous.rep_id})

    def release_if_untouched(self, lead_id: str, now: datetime) -> frozenset[str] | None:
        """Release the lead only if it is still open and untouched, checked and released in one
        step (the SLA sweep); the reps to exclude next, or None when a touch got there first."""
        held, released = self.state.transition(lead_id, "rerouted", now, only_from="open")
        if held is None or not released:
            return None
        return frozenset({held.rep_id})

    def route(self, lead: LeadToRoute, now: datetime, fit: RepFit) -> RoutingDecision:
        reps = self.directory.reps()
        ranked, relaxed = rank_candidates(lead, reps, self.state.loads(), now, self.policy, fit)
        by_id = self.directory.by_id()
        for index, cand in enumerate(ranked):
            rep = by_id[cand.rep_id]
            decision = routing_decision(lead, ranked, relaxed, index, by_id, now, self.policy)
            assignment = Assignment(
                lead.lead_id,
                rep.rep_id,
                now,
                decision.first_touch_deadline,
                "open",
                lead.probability,
                lead.grade,
                lead.language,
                lead.utc_offset_hours,
                lead.industry,
                lead.product_line,
            )
            if self.state.try_assign(assignment, rep.capacity):
                return decision
        return routing_decision(lead, ranked, relaxed, None, by_id, now, self.policy)
