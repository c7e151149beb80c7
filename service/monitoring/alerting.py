"""The monitoring check a job runs (the weekly job, or the scheduler on its own cadence): compute the
report, and alert each threshold crossing once, through the alert store and the webhook.

A crossing is alerted when it appears; while it stays crossed it is not alerted again, and once it
clears it may be alerted again. Which keys were crossed at the last check is kept in the weekly
store (``swap_crossings``), so this holds across processes and restarts. The GET never does this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.monitoring.report import collect_report
from service.monitoring.schemas import Crossing, MonitoringOut
from service.monitoring.served_log import served_log
from service.routing.state import opened_assignment_store
from service.rules import Firing
from service.webhook import send_alerts
from service.weekly_store import weekly_store

RULE = "monitoring_threshold"


@dataclass
class MonitoringCheck:
    report: MonitoringOut
    raised: list[Crossing]  # crossed now and not at the last check: alerted
    webhook_sent: bool | None  # None: no webhook configured (or nothing new)


def firing_of(crossing: Crossing) -> Firing:
    kind = crossing.key.split(":")[0]
    return Firing(
        rule=RULE,
        kind=kind,
        entity=crossing.key,
        severity="warning",
        action=f"review {crossing.key}: {crossing.value:.3f} crossed {crossing.threshold:.3f}",
        evidence={"value": round(crossing.value, 4), "threshold": crossing.threshold},
    )


def check_monitoring(settings: Settings, now: datetime) -> MonitoringCheck:
    models = LiveModels(settings.mlflow_tracking_uri, settings.service_dir / "model_cache", ["lead_score"])
    models.start()
    stored = weekly_store(settings)
    with opened_assignment_store(settings) as state:
        report = collect_report(served_log(settings), state, stored, models.get("lead_score"), settings, now)
    before = stored.swap_crossings({c.key for c in report.crossed})
    raised = [c for c in report.crossed if c.key not in before]
    firings = [firing_of(c) for c in raised]
    stored.add_alerts(firings, now)
    sent = (
        send_alerts(settings.alert_webhook_url, firings) if settings.alert_webhook_url and firings else None
    )
    return MonitoringCheck(report, raised, sent)
