"""Which monitoring thresholds (``Settings.monitoring_*``) a report crosses (pure).

Each crossing has a stable key (``lead_auc``, ``psi:<input>``, ``sla``, ``match:language``,
``forecast_wape:h<k>``, ``segment:<field>=<level>``) so the weekly job can alert a crossing once and
again only after it clears.
"""

from __future__ import annotations

import pandas as pd

from funnelcast.core.segment_calibration import SEGMENT_COLUMNS, shifted_segments
from funnelcast.core.settings import Settings
from service.monitoring.schemas import Crossing, MonitoringOut


def crossings(report: MonitoringOut, settings: Settings) -> list[Crossing]:
    out: list[Crossing] = []
    judged = [w for w in report.lead_quality.weeks if w.resolved >= settings.monitoring_min_resolved_leads]
    latest = judged[-1] if judged else None
    if (
        latest is not None
        and latest.roc_auc is not None
        and latest.roc_auc < settings.monitoring_min_lead_auc
    ):
        out.append(Crossing(key="lead_auc", value=latest.roc_auc, threshold=settings.monitoring_min_lead_auc))
    q = report.lead_quality
    table = pd.DataFrame([row.model_dump() for row in q.segments], columns=SEGMENT_COLUMNS)
    table = table.astype({"shift": float, "z": float})
    for row in shifted_segments(
        table,
        settings.monitoring_segment_min_expected,
        settings.monitoring_max_segment_shift,
        settings.monitoring_segment_min_z,
    ).itertuples():
        threshold = 1 - settings.monitoring_max_segment_shift
        if row.shift > 1:
            threshold = 1 / threshold
        out.append(Crossing(key=f"segment:{row.segment}={row.level}", value=row.shift, threshold=threshold))
    for d in report.drift.inputs:
        if (
            d.psi is not None
            and d.rows >= settings.monitoring_min_drift_rows
            and d.psi > settings.monitoring_max_psi
        ):
            out.append(Crossing(key=f"psi:{d.input}", value=d.psi, threshold=settings.monitoring_max_psi))
    r = report.routing
    if r.sla_compliance is not None and r.sla_compliance < settings.monitoring_min_sla_compliance:
        out.append(
            Crossing(key="sla", value=r.sla_compliance, threshold=settings.monitoring_min_sla_compliance)
        )
    for name, rate in (("language", r.language_match), ("timezone", r.timezone_match)):
        if rate is not None and rate < settings.monitoring_min_match_rate:
            out.append(
                Crossing(key=f"match:{name}", value=rate, threshold=settings.monitoring_min_match_rate)
            )
    for h in report.forecast_accuracy.by_horizon:
        if h.wape is not None and h.wape > settings.monitoring_max_forecast_wape:
            out.append(
                Crossing(
                    key=f"forecast_wape:h{h.horizon}",
                    value=h.wape,
                    threshold=settings.monitoring_max_forecast_wape,
                )
            )
    return out
