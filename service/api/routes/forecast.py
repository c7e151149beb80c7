"""Forecast and opportunities: weekly bookings by group, at-risk deals, one deal in detail.

Reads only: the live snapshot, and what the weekly job stored (last week's P(win), fired rules).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AfterValidator

from features.store import OnlineStoreUnavailable, online_store_fault
from funnelcast.core.deals import AMOUNT, DAYS_TO_EXPECTED_CLOSE, HORIZON_WEEKS, STAGE
from funnelcast.core.forecast import expected_close_week, weekly_forecast
from funnelcast.core.forecast_baselines import BASELINES
from funnelcast.core.i18n import action
from funnelcast.core.settings import Settings
from service.api.deps import MANAGER, PLANNERS, ModelsDep, PipelineDep, SettingsDep, WeeklyDep, champion
from service.errors import errors, invalid_field
from service.forecast_baselines import baseline_forecaster
from service.live_models import LiveModels
from service.manager import explain_deals, rank_at_risk
from service.pipeline import AsOfOutOfRange, OfflineDataMissing, Pipeline, PipelineSnapshot
from service.reasons import language_of
from service.schemas import as_utc
from service.weekly_store import WeeklyStore

router = APIRouter()


@router.get(
    "/v1/forecast/weekly",
    dependencies=[PLANNERS],
    tags=["forecast"],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}} | errors(503),
)
def forecast_weekly(
    models: ModelsDep,
    pipeline: PipelineDep,
    settings: SettingsDep,
    weeks: Annotated[int, Query(ge=1, le=HORIZON_WEEKS)] = HORIZON_WEEKS,
    group_by: Annotated[Literal["region", "team", "product_line", "rep", "all"], Query()] = "all",
    as_of: Annotated[
        datetime | None,
        Query(description="A past time: the pipeline as of its weekly snapshot then"),
        AfterValidator(as_utc),
    ] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    baseline: Annotated[
        Literal[BASELINES] | None,  # type: ignore[valid-type]
        Query(description="The baseline beside the forecast; default: the strongest in the backtest"),
    ] = None,
) -> Response:
    """Expected bookings, P10/P50/P90, expected wins and a baseline by group/week; the period total."""
    model = champion(models, "milestone_close")
    try:
        snap = pipeline.snapshot(model) if as_of is None else pipeline.as_of(model, as_of)
    except AsOfOutOfRange as err:
        raise invalid_field("as_of", str(err)) from err
    except OfflineDataMissing as err:
        raise HTTPException(503, str(err)) from err
    column = "owner_rep_id" if group_by == "rep" else group_by
    # the same question of the same snapshot is answered once (forecasters poll it through the day)
    table, totals, chosen = snap.derived(
        ("forecast", weeks, column, baseline),
        lambda: _forecast(snap, pipeline, settings, weeks, column, baseline),
    )
    table = table.copy()
    table.insert(0, "features_as_of", snap.as_of.isoformat() if snap.as_of else None)
    table.insert(1, "model_version", snap.model.version)
    if format == "csv":
        return PlainTextResponse(table.to_csv(index=False), media_type="text/csv")
    return JSONResponse(
        {
            "as_of": table["features_as_of"].iloc[0] if len(table) else None,
            "group_by": group_by,
            "baseline": chosen,
            "rows": table.drop(columns=["features_as_of"]).to_dict("records"),
            "totals": totals.to_dict("records"),
        }
    )


@router.get(
    "/v1/opportunities/at-risk", dependencies=[MANAGER], tags=["opportunities"], responses=errors(503)
)
def opportunities_at_risk(
    models: ModelsDep,
    pipeline: PipelineDep,
    weekly: WeeklyDep,
    team: str | None = None,
    region: str | None = None,
    k: Annotated[int, Query(ge=1, le=200)] = 20,
    accept_language: Annotated[str | None, Header()] = None,
    lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
) -> JSONResponse:
    """Top-k open deals by value at risk, with reasons, the most helpful missing milestone and rules."""
    snap, p_last, firings = _live_view(models, pipeline, weekly)
    table = rank_at_risk(snap, p_last, team, region).head(k)
    language = lang or language_of(accept_language)
    explained = explain_deals(snap, list(table.index), language)
    items = [
        _deal_json(deal_id, row, reasons, milestone, firings.get(deal_id, []), language)
        for (deal_id, row), (reasons, milestone) in zip(table.iterrows(), explained, strict=True)
    ]
    return JSONResponse(
        {
            "as_of": snap.as_of.isoformat() if snap.as_of else None,
            "model_version": snap.model.version,
            "weeks_to_quarter_end": snap.weeks_to_quarter_end,
            "items": items,
        }
    )


@router.get(
    "/v1/opportunities/{opportunity_id}",
    dependencies=[PLANNERS],
    tags=["opportunities"],
    responses=errors(404, 503),
)
def opportunity(
    opportunity_id: str,
    models: ModelsDep,
    pipeline: PipelineDep,
    weekly: WeeklyDep,
    lang: Literal["zh", "en"] = "en",
) -> JSONResponse:
    """One open deal: week-by-week close distribution, P(win this quarter), reasons, rules."""
    snap, p_last, firings = _live_view(models, pipeline, weekly)
    if opportunity_id not in snap.deals.index:
        raise HTTPException(404, f"opportunity {opportunity_id!r} is not an open deal in the live snapshot")
    table = rank_at_risk(snap, p_last, None, None)
    [(reasons, milestone)] = explain_deals(snap, [opportunity_id], lang)
    body = _deal_json(
        opportunity_id, table.loc[opportunity_id], reasons, milestone, firings.get(opportunity_id, []), lang
    )
    p = snap.p_week[snap.deals.index.get_loc(opportunity_id)]
    body["weekly_close_probability"] = [
        {
            "week": k + 1,
            "p_win_in_week": round(float(v), 5),
            "p_win_by_week": round(float(p[: k + 1].sum()), 5),
        }
        for k, v in enumerate(p)
    ]
    body["expected_close_week"] = _finite(expected_close_week(p[None, :])[0])
    # what the bookings forecast sums for this deal (reconciled with the stage x week table)
    f = snap.forecast_p_week()[snap.deals.index.get_loc(opportunity_id)]
    body["forecast_weekly_probability"] = [
        {"week": k + 1, "p_win_in_week": round(float(v), 5)} for k, v in enumerate(f)
    ]
    return JSONResponse(body)


def _forecast(
    snap: PipelineSnapshot,
    pipeline: Pipeline,
    settings: Settings,
    weeks: int,
    column: str,
    baseline: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The weekly forecast table, its period totals and the baseline beside it, for one snapshot."""
    metadata = snap.model.model.metadata
    try:
        chosen, baseline_of = baseline_forecaster(
            baseline, metadata, snap.deals, column, settings.raw_dir, pipeline.offline.rep_groups(),
            snap.as_of or snap.built_at, AMOUNT, STAGE, DAYS_TO_EXPECTED_CLOSE,
        )  # fmt: skip
    except OfflineDataMissing as err:
        raise HTTPException(503, str(err)) from err
    table, totals = weekly_forecast(
        snap.deals,
        snap.forecast_p_week()[:, :weeks],
        column,
        baseline_of,
        AMOUNT,
        shocks=(float(metadata.get("shock_sd", 0.0)), float(metadata.get("group_shock_sd", 0.0))),
        margins=metadata.get("conformal_margins"),
    )
    return table, totals, chosen


def _live_view(
    models: LiveModels, pipeline: Pipeline, weekly: WeeklyStore
) -> tuple[PipelineSnapshot, pd.Series, dict[str, list[dict[str, Any]]]]:
    """The live snapshot with the weekly job's stored last-week P(win) and fired rules per deal
    (a missing online store is a 503 even while a snapshot built before it went is cached)."""
    if fault := online_store_fault(pipeline.store):
        raise OnlineStoreUnavailable(fault)
    snap = pipeline.snapshot(champion(models, "milestone_close"))
    results = weekly.results()
    if results is None:
        return snap, pd.Series(np.nan, index=snap.deals.index, dtype=float), {}
    return snap, results.p_last_week_for(snap.deals.index, snap.as_of), results.firings


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _deal_json(
    deal_id: str, row: pd.Series, reasons: list, milestone: dict | None, rules: list, lang: str
) -> dict[str, Any]:
    """One deal as the API answers it; rule actions in ``lang`` through the catalogue."""
    change = row["p_win_quarter"] - row["p_win_last_week"]
    return {
        "opportunity_id": deal_id,
        "team": row["team"],
        "region": row["region"],
        "owner_rep_id": row["owner_rep_id"],
        "product_line": row["product_line"],
        "amount_cny": round(float(row["amount_cny"]), 2),
        "stage_index": int(row["stage_index"]),
        "p_win_quarter": round(float(row["p_win_quarter"]), 4),
        "p_win_normal_for_stage": round(float(row["p_win_normal"]), 4),
        "change_since_last_week": _finite(change),
        "value_at_risk": round(float(row["value_at_risk"]), 2),
        "reasons": reasons,
        "missing_milestone": milestone,
        "rules": [r | {"action": action(r["action"], lang)} for r in rules],
    }
