"""Typed dependencies: what a route needs, taken from the runtime opened at start-up.

A route declares ``models: ModelsDep`` instead of reading ``request.app.state``; roles are
``Depends(require(...))`` values, named here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from feast import FeatureStore

from funnelcast.core.settings import Settings
from funnelcast.core.shared_clock import SharedClock
from service.auth import require
from service.ingest import EventIngest
from service.live_models import LiveModel, LiveModels
from service.manager import AccountsAtRisk
from service.monitoring.served_log import ServedRecorder
from service.observability import Metrics
from service.online_features import OnlineFeatures
from service.pipeline import Pipeline
from service.routing.router import Router
from service.rules import Rule
from service.runtime import Runtime
from service.scoring import ModelNotLoaded
from service.snapshots import Refreshed
from service.weekly_store import WeeklyStore


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_rules(request: Request) -> list[Rule]:
    return request.app.state.rules


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RulesDep = Annotated[list[Rule], Depends(get_rules)]


def _from_runtime(part: str) -> Callable[[Runtime], Awaitable[Any]]:
    """A dependency giving one part of the runtime; the ``Annotated`` alias below states its type."""

    async def get(runtime: RuntimeDep) -> Any:
        return getattr(runtime, part)

    return get


ModelsDep = Annotated[LiveModels, Depends(_from_runtime("models"))]
StoreDep = Annotated[FeatureStore, Depends(_from_runtime("store"))]
FeaturesDep = Annotated[OnlineFeatures, Depends(_from_runtime("features"))]
RouterDep = Annotated[Router, Depends(_from_runtime("router"))]
PipelineDep = Annotated[Pipeline, Depends(_from_runtime("pipeline"))]
WeeklyDep = Annotated[WeeklyStore, Depends(_from_runtime("weekly"))]
ServedDep = Annotated[ServedRecorder, Depends(_from_runtime("served"))]
ClockDep = Annotated[SharedClock | None, Depends(_from_runtime("clock"))]
AccountsDep = Annotated[Refreshed[AccountsAtRisk], Depends(_from_runtime("accounts"))]
IngestDep = Annotated[EventIngest, Depends(_from_runtime("ingest"))]


def champion(models: LiveModels, name: str) -> LiveModel:
    """The live champion of ``name``, or a 503 (``ModelNotLoaded``) naming it (and why, if broken)."""
    model = models.get(name)
    if model is None:
        raise ModelNotLoaded(models.why_missing(name))
    return model


CRM = Depends(require("crm"))
ADMIN = Depends(require("admin"))
ANYONE = Depends(require("crm", "forecaster", "manager"))
MANAGER = Depends(require("manager"))
PLANNERS = Depends(require("forecaster", "manager"))
