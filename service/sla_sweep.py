"""The SLA sweep (a scheduled job): leads past their first-touch deadline with no touch are re-routed
to another rep, and the first-touch rule says which are also escalated.

``sweep_plan`` is the decision, pure: which assignments to take back, oldest deadline first (the
longest-waiting lead gets the first free rep). ``sweep`` is the edge: it reads the overdue leads from
the shared routing state, releases each (status ``rerouted``) and routes it again with its current rep
excluded, through the same ``Router`` the service uses; the ``first_touch_sla`` rules' firings are
stored as alerts and new ones sent to the webhook, as the weekly job does.

The assignment keeps what the first route knew of the lead (probability, grade, language, UTC offset,
industry and product line), so a swept lead is re-routed under the same filters and segment lift.
An assignment stored before the profile was kept has none: it is re-routed without those filters
(they pass for an unknown value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from features.directory import read_directory
from features.store import open_store
from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.routing.policy import LeadToRoute, RepFit, RoutingPolicy
from service.routing.router import RepDirectory, Router, reps_from_feast
from service.routing.state import Assignment, AssignmentStore, opened_assignment_store
from service.rules import Firing, RuleContext, evaluate, load_rules
from service.scoring import rep_fit_of
from service.webhook import send_alerts
from service.weekly_store import weekly_store


@dataclass(frozen=True)
class SweepStep:
    lead_id: str
    from_rep: str
    hours_late: float


def sweep_plan(overdue: Sequence[Assignment], now: datetime) -> list[SweepStep]:
    """Every open, untouched lead whose deadline is before ``now``, oldest deadline first."""
    late = [a for a in overdue if a.status == "open" and a.deadline is not None and a.deadline < now]
    late.sort(key=lambda a: (a.deadline, a.lead_id))
    return [SweepStep(a.lead_id, a.rep_id, (now - a.deadline).total_seconds() / 3600) for a in late]  # type: ignore[operator]


@dataclass
class SweepReport:
    overdue: int
    rerouted: dict[str, str]  # lead -> new rep
    queued: list[str]  # released, but no other rep had room
    firings: list[Firing]
    new_alerts: int
    webhook_sent: bool | None

    def summary(self) -> str:
        escalated = sum(1 for f in self.firings if f.evidence.get("escalated"))
        return (
            f"{self.overdue} overdue: {len(self.rerouted)} re-routed, {len(self.queued)} queued, "
            f"{escalated} escalated, {self.new_alerts} new alert(s)"
        )


def sweep(settings: Settings, now: datetime) -> SweepReport:
    """Re-route every overdue lead once and store (and send) the first-touch rule's firings."""
    with opened_assignment_store(settings) as state:
        return _sweep(settings, now, state)


def _sweep(settings: Settings, now: datetime, state: AssignmentStore) -> SweepReport:
    overdue = state.overdue(now)
    rules = [r for r in load_rules(settings.rules_path) if r.kind == "first_touch_sla"]
    frame = pd.DataFrame(
        [{"lead_id": a.lead_id, "rep_id": a.rep_id, "deadline": a.deadline} for a in overdue],
        columns=["lead_id", "rep_id", "deadline"],
    )
    firings = evaluate(rules, RuleContext(now=now, overdue_leads=frame))  # before the deadlines move
    plan = sweep_plan(overdue, now)
    rerouted: dict[str, str] = {}
    queued: list[str] = []
    if plan:
        store = open_store(settings)
        directory = RepDirectory(lambda: reps_from_feast(store, read_directory(settings).rep_ids))
        router = Router(directory, state, RoutingPolicy())
        models = LiveModels(
            settings.mlflow_tracking_uri, settings.service_dir / "model_cache", ["lead_score"]
        )
        models.start()
        champion = models.get("lead_score")
        fit = rep_fit_of(champion) if champion is not None else RepFit()
        by_id = {a.lead_id: a for a in overdue}
        for step in plan:
            excluded = router.release_if_untouched(step.lead_id, now)
            if excluded is None:  # touched (or closed) since the read: leave it
                continue
            held = by_id[step.lead_id]
            lead = LeadToRoute(
                step.lead_id,
                held.probability,
                held.grade,
                held.language,
                held.utc_offset_hours,
                excluded,
                held.industry,
                held.product_line,
            )
            decision = router.route(lead, now, fit)
            if decision.rep_id:
                rerouted[step.lead_id] = decision.rep_id
            else:
                queued.append(step.lead_id)
    stored = weekly_store(settings)
    new = stored.add_alerts(firings, now)
    sent = send_alerts(settings.alert_webhook_url, new) if settings.alert_webhook_url and new else None
    return SweepReport(len(plan), rerouted, queued, firings, len(new), sent)
