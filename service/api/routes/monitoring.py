"""Monitoring: how the models and routing do on live outcomes (a read; the weekly job alerts)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import MANAGER, RuntimeDep
from service.errors import errors
from service.monitoring.schemas import MonitoringOut

router = APIRouter(tags=["monitoring"], dependencies=[MANAGER])


@router.get("/v1/monitoring", response_model=MonitoringOut, responses=errors(503))
def monitoring(runtime: RuntimeDep) -> MonitoringOut:
    """Live lead-score ROC-AUC by week and calibration by grade, each stored weekly forecast against
    realised bookings by horizon and group, feature drift (PSI) against training with the top movers,
    first-touch SLA compliance, routing match rates and per-rep load, and the thresholds crossed now."""
    return runtime.monitoring_report()
