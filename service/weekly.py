"""The weekly scoring job (``funnelcast score weekly``): score the open pipeline, evaluate every rule,
store the alerts and the results manager reads show (last week's P(win), fired rules per deal), and
send new alerts to the webhook; store the week's forecast snapshot (what we said, per horizon and
group, for forecast accuracy). The job owns the rules; the service's read routes only read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from features.directory import read_directory
from features.store import open_store
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.manager import account_punctuality, deal_context, previous_week_p_win, rule_context
from service.monitoring.alerting import check_monitoring
from service.monitoring.forecast_snapshot import forecast_snapshot
from service.pipeline import open_deals, rep_groups_of, score_pipeline
from service.routing.router import reps_from_feast
from service.routing.state import opened_assignment_store
from service.rules import Firing, evaluate, load_rules
from service.webhook import send_alerts
from service.weekly_store import results_of, weekly_store


@dataclass
class WeeklyReport:
    deals: int
    model_version: str
    firings: list[Firing]
    new_alerts: int
    webhook_sent: bool | None  # None: no webhook configured
    monitoring_raised: list[str]  # monitoring thresholds newly crossed, alerted once


def score_weekly(settings: Settings, now: datetime | None = None) -> WeeklyReport:
    now = now or clock.now()
    rules = load_rules(settings.rules_path)
    store = open_store(settings)
    models = LiveModels(
        settings.mlflow_tracking_uri, settings.service_dir / "model_cache", ["milestone_close"]
    )
    errors = models.start()
    model = models.get("milestone_close")
    if model is None:
        raise RuntimeError(f"no milestone_close champion: {errors.get('milestone_close')}")
    directory = read_directory(settings)
    reps = reps_from_feast(store, directory.rep_ids)
    snap = score_pipeline(store, open_deals(directory.open_deals, rep_groups_of(reps)), model, now)
    p_last = previous_week_p_win(store, snap, snap.weeks_to_quarter_end, settings.raw_dir)
    punctuality = account_punctuality(store, sorted(set(snap.deals["company_id"])))
    with opened_assignment_store(settings) as state:
        overdue = state.overdue(now)
    deals = deal_context(snap, p_last, punctuality)
    ctx = rule_context(now, deals, overdue, settings.raw_dir, as_of=snap.as_of)
    firings = evaluate(rules, ctx)
    stored = weekly_store(settings)
    new = stored.add_alerts(firings, now)
    stored.save_results(results_of(snap.as_of, model.version, p_last, firings, snap.deals.index))
    stored.save_forecast_snapshot(forecast_snapshot(snap, now))
    sent = send_alerts(settings.alert_webhook_url, new) if settings.alert_webhook_url else None
    check = check_monitoring(settings, now)
    return WeeklyReport(
        len(snap.deals), model.version, firings, len(new), sent, [c.key for c in check.raised]
    )
