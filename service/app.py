"""The FastAPI app: ``create_app(settings)`` wires the edges (Feast, MLflow, routing state) to the routes.

Run with ``funnelcast serve`` (uvicorn, factory mode). Every route validates its input (422 names
the field), authenticates by API key and role, and never lets a dependency failure become a 500
where a degraded answer is possible.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from pydantic import BaseModel

from funnelcast.forecast import expected_close_week
from funnelcast.forecast_baselines import BASELINES
from funnelcast.risk import weekly_forecast
from funnelcast.settings import Settings, get_settings
from service import schemas
from service.auth import require
from service.dashboard import render_dashboard
from service.forecast_baselines import baseline_forecaster, default_baseline
from service.live_models import LiveModels
from service.manager import (
    AlertStore,
    account_punctuality,
    account_reasons,
    deal_context,
    explain_deal,
    previous_week_p_win,
    rank_at_risk,
    rule_context,
    score_accounts,
    since_days_ago,
)
from service.observability import Metrics, TimingMiddleware, configure_logging
from service.online_features import online_frame
from service.pipeline import AMOUNT, STAGE, Pipeline, PipelineSnapshot, historical_pipeline, rep_groups_of
from service.reasons import language_of
from service.routing.policy import RoutingPolicy
from service.routing.router import RepDirectory, Router, rep_ids_from_table, reps_from_feast
from service.routing.state import assignment_store
from service.rules import evaluate, load_rules
from service.scoring import ModelNotLoaded, ScoredLead, score_leads

log = logging.getLogger("funnelcast.service")
MODEL_NAMES = ("lead_score", "milestone_close", "churn")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from features.store import open_store
    from service.inference import language_detector
    from service.online_features import OnlineFeatures

    settings: Settings = app.state.settings
    store = open_store(settings)
    app.state.feature_store = store
    app.state.features = OnlineFeatures(store, timedelta(hours=settings.feature_stale_hours))
    models = LiveModels(settings.mlflow_tracking_uri, settings.service_dir / "model_cache", MODEL_NAMES)
    errors = models.start()
    for name, err in errors.items():
        log.warning("model not loaded from registry", extra={"model": name, "error": err[:300]})
    models.start_polling(settings.model_poll_seconds)
    app.state.models = models
    state = assignment_store(settings)
    rep_ids = rep_ids_from_table(settings.feature_dir)
    directory = RepDirectory(lambda: reps_from_feast(store, rep_ids))
    try:
        directory.reps()
    except Exception as err:  # routing degrades; scoring still works
        log.warning("rep directory unavailable at start", extra={"error": str(err)[:300]})
    app.state.router = Router(directory, state, RoutingPolicy())

    app.state.pipeline = Pipeline(store, settings.raw_dir, lambda: rep_groups_of(directory.reps()))
    app.state.manager_view = ManagerView()
    app.state.alerts = AlertStore(settings.service_dir / "alerts.db")
    language_detector()  # load lingua's models now, not in the first request
    _publish_versions(app)
    # Everything loaded so far (Feast, MLflow, pandas, the models) lives for the process; freezing it
    # keeps the garbage collector from walking millions of objects in a full collection mid-request
    # (a 50-100 ms pause at the p99).
    gc.collect()
    gc.freeze()
    yield
    models.stop()


def _publish_versions(app: FastAPI) -> None:
    metrics: Metrics = app.state.metrics
    for live in app.state.models.all():
        for source in ("registry", "cache"):
            value = float(live.version) if source == live.source else 0.0
            metrics.model_version.labels(live.name, source).set(value)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    app = FastAPI(
        title="funnelcast",
        version="1",
        summary="Lead scoring, routing and forecasting for B2B sales teams.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rules = load_rules(
        settings.rules_path
    )  # a bad rules file stops the start, with line and reason
    app.state.metrics = Metrics()
    app.add_middleware(TimingMiddleware, metrics=app.state.metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if p not in ("body", "query", "path")]
            fields.append({"field": ".".join(loc) or "body", "message": err["msg"]})
        names = ", ".join(f["field"] for f in fields)
        return JSONResponse(
            status_code=422,
            content={"detail": f"invalid field(s): {names}", "fields": jsonable_encoder(fields)},
        )

    @app.exception_handler(ModelNotLoaded)
    async def no_model(request: Request, exc: ModelNotLoaded) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    crm = Depends(require("crm"))
    admin = Depends(require("admin"))
    anyone = Depends(require("crm", "forecaster", "manager"))

    def scored(
        request: Request,
        leads: list[schemas.LeadIn],
        explain: bool,
        accept: str | None,
        route: bool,
        exclude: dict[str, frozenset[str]] | None = None,
    ) -> list[ScoredLead]:
        router = _router_or_none(request) if route else None
        results = score_leads(
            leads,
            request.app.state.models.get("lead_score"),
            request.app.state.features,
            router,
            explain=explain,
            lang=language_of(accept),
            exclude=exclude,
        )
        if route and router is None:  # no rep directory (e.g. online store down since start)
            for r in results:
                r.degraded.append("routing")
        metrics: Metrics = request.app.state.metrics
        for r in results:
            for source in r.degraded:
                metrics.degraded.labels(source.split(":")[0]).inc()
            if route:
                metrics.routed.labels("assigned" if r.routing and r.routing.rep_id else "queued").inc()
        return results

    @app.post("/v1/leads/score", response_model=schemas.LeadScore, dependencies=[crm], tags=["leads"])
    async def score_lead(
        request: Request,
        lead: schemas.LeadIn,
        explain: Annotated[bool, Query(description="Add reason codes from SHAP contributions")] = True,
        route: Annotated[bool, Query(description="Also route the lead to a rep")] = True,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Score one new lead (probability, 0-100 score, grade, reasons) and route it."""
        return _json(_out(scored(request, [lead], explain, accept_language, route)[0]))

    @app.post(
        "/v1/leads/score:batch", response_model=schemas.LeadBatchOut, dependencies=[crm], tags=["leads"]
    )
    async def score_batch(
        request: Request,
        body: schemas.LeadBatchIn,
        explain: bool = False,
        route: bool = False,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Score up to 1,000 leads in one call (routing off by default: batches are usually backfills)."""
        ids = [lead.lead_id for lead in body.leads]
        if len(set(ids)) != len(ids):
            raise HTTPException(422, "invalid field(s): leads.lead_id (duplicate ids in one batch)")
        return schemas.LeadBatchOut(
            results=[_out(r) for r in scored(request, body.leads, explain, accept_language, route)]
        )

    @app.post("/v1/leads/route", response_model=schemas.LeadScore, dependencies=[crm], tags=["leads"])
    async def reroute(
        request: Request, body: schemas.RouteIn, accept_language: Annotated[str | None, Header()] = None
    ) -> schemas.LeadScore:
        """Re-route a lead: its current assignment is released and its current rep excluded."""
        router = _router_or_none(request)
        if router is None:
            raise HTTPException(503, "routing unavailable: no rep directory")
        now = datetime.now(UTC)
        previous = router.state.get(body.lead.lead_id)
        if previous is not None:
            router.state.update_status(body.lead.lead_id, "rerouted", now)
        excluded = {body.lead.lead_id: frozenset({previous.rep_id})} if previous else {}
        result = scored(request, [body.lead], False, accept_language, route=True, exclude=excluded)[0]
        return _out(result)

    @app.post("/v1/outcomes", response_model=schemas.OutcomeOut, dependencies=[crm], tags=["leads"])
    async def outcome(request: Request, body: schemas.OutcomeIn) -> schemas.OutcomeOut:
        """Record a touch, conversion, disqualification, win or loss; lead outcomes release capacity."""
        if body.kind in ("touched", "converted", "disqualified") and not body.lead_id:
            raise HTTPException(422, "invalid field(s): lead_id (required for lead outcomes)")
        if body.kind.startswith("opportunity_") and not body.opportunity_id:
            raise HTTPException(422, "invalid field(s): opportunity_id (required for opportunity outcomes)")
        at = body.at or datetime.now(UTC)
        state = request.app.state.router.state
        record = body.model_dump(mode="json") | {"at": at.isoformat()}
        state.record_outcome(record)
        status, released = None, False
        if body.lead_id and body.kind in ("touched", "converted", "disqualified"):
            before = state.get(body.lead_id)
            after = state.update_status(body.lead_id, body.kind, at)
            status = after.status if after else None
            released = bool(before and after and before.status != after.status and body.kind != "touched")
        return schemas.OutcomeOut(recorded=True, released_capacity=released, lead_status=status)

    @app.get("/v1/models", response_model=list[schemas.LiveModelOut], dependencies=[anyone], tags=["models"])
    def live_models(request: Request) -> list[schemas.LiveModelOut]:
        """What is live, which version, from where, since when, with its logged metrics."""
        return [_model_out(m) for m in request.app.state.models.all()]

    @app.post("/v1/models/reload", response_model=schemas.ReloadOut, dependencies=[admin], tags=["models"])
    def reload_models(request: Request) -> schemas.ReloadOut:
        """Pick up newly promoted champions now (also done by polling every model_poll_seconds)."""
        changed, errors = request.app.state.models.reload()
        _publish_versions(request.app)
        return schemas.ReloadOut(
            models=[_model_out(m) for m in request.app.state.models.all()], changed=changed, errors=errors
        )

    manager = Depends(require("manager"))
    planners = Depends(require("forecaster", "manager"))

    @app.get("/v1/forecast/weekly", dependencies=[planners], tags=["forecast"])
    def forecast_weekly(
        request: Request,
        weeks: Annotated[int, Query(ge=1, le=13)] = 13,
        group_by: Annotated[Literal["region", "team", "product_line", "rep", "all"], Query()] = "all",
        as_of: Annotated[
            datetime | None, Query(description="A past time: the pipeline as of its weekly snapshot then")
        ] = None,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
        baseline: Annotated[
            Literal[BASELINES] | None,  # type: ignore[valid-type]
            Query(description="The baseline beside the forecast; default: the strongest in the backtest"),
        ] = None,
    ) -> Response:
        """Expected bookings, P10/P50/P90, expected wins and a baseline by group/week; the period total."""
        snap = _snapshot(request)
        if as_of is not None:
            as_of_utc = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
            if snap.as_of is not None and as_of_utc > snap.as_of + timedelta(days=7):
                raise HTTPException(
                    422, f"invalid field(s): as_of (after the newest snapshot {snap.as_of:%Y-%m-%d})"
                )
            if snap.as_of is None or as_of_utc < snap.as_of:
                # a past week: the pipeline as it stood then, from point-in-time offline features
                snap = historical_pipeline(
                    request.app.state.feature_store,
                    request.app.state.settings.raw_dir,
                    request.app.state.pipeline.rep_groups(),
                    snap.model,
                    as_of_utc,
                )
        column = "owner_rep_id" if group_by == "rep" else group_by
        metadata = snap.model.model.metadata
        chosen = baseline or default_baseline(metadata)
        baseline_of = baseline_forecaster(
            chosen,
            metadata,
            snap.deals,
            column,
            request.app.state.settings.raw_dir,
            request.app.state.pipeline.rep_groups(),
            snap.as_of or snap.built_at,
            AMOUNT,
            STAGE,
            "opportunity_snapshots__days_to_expected_close",
        )
        table, totals = weekly_forecast(
            snap.deals,
            snap.p_week[:, :weeks],
            column,
            baseline_of,
            AMOUNT,
            shocks=(float(metadata.get("shock_sd", 0.0)), float(metadata.get("group_shock_sd", 0.0))),
            margins=metadata.get("conformal_margins"),
        )
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

    @app.get("/v1/opportunities/at-risk", dependencies=[manager], tags=["opportunities"])
    def opportunities_at_risk(
        request: Request,
        team: str | None = None,
        region: str | None = None,
        k: Annotated[int, Query(ge=1, le=200)] = 20,
        accept_language: Annotated[str | None, Header()] = None,
        lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
    ) -> JSONResponse:
        """Top-k open deals by value at risk, with reasons, the most helpful missing milestone and rules."""
        view = _view(request)
        table = rank_at_risk(view.snapshot, view.p_last_week, team, region).head(k)
        language = lang or language_of(accept_language)
        items = []
        for deal_id, row in table.iterrows():
            reasons, milestone = explain_deal(view.snapshot, deal_id, language)
            items.append(_deal_json(deal_id, row, reasons, milestone, view.firings.get(deal_id, [])))
        return JSONResponse(
            {
                "as_of": _iso(view.snapshot.as_of),
                "model_version": view.snapshot.model.version,
                "weeks_to_quarter_end": view.snapshot.weeks_to_quarter_end,
                "items": items,
            }
        )

    @app.get("/v1/opportunities/{opportunity_id}", dependencies=[planners], tags=["opportunities"])
    def opportunity(request: Request, opportunity_id: str, lang: Literal["zh", "en"] = "en") -> JSONResponse:
        """One open deal: week-by-week close distribution, P(win this quarter), reasons, rules."""
        view = _view(request)
        snap = view.snapshot
        if opportunity_id not in snap.deals.index:
            raise HTTPException(
                404, f"opportunity {opportunity_id!r} is not an open deal in the live snapshot"
            )
        table = rank_at_risk(snap, view.p_last_week, None, None)
        reasons, milestone = explain_deal(snap, opportunity_id, lang)
        body = _deal_json(
            opportunity_id,
            table.loc[opportunity_id],
            reasons,
            milestone,
            view.firings.get(opportunity_id, []),
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
        return JSONResponse(body)

    @app.get("/v1/accounts/at-risk", dependencies=[manager], tags=["accounts"])
    def accounts_at_risk(
        request: Request, k: Annotated[int, Query(ge=1, le=200)] = 20, lang: Literal["zh", "en"] = "en"
    ) -> JSONResponse:
        """Accounts with an undecided renewal, by P(churn), with reasons."""
        model = _model(request, "churn")
        scored = score_accounts(
            request.app.state.feature_store, request.app.state.settings.raw_dir, model
        ).head(k)
        items = [_account_json(acc, scored.loc[[acc]], model, lang) for acc in scored.index]
        return JSONResponse({"model_version": model.version, "items": items})

    @app.get("/v1/accounts/{account_id}/churn", dependencies=[manager], tags=["accounts"])
    def account_churn(request: Request, account_id: str, lang: Literal["zh", "en"] = "en") -> JSONResponse:
        model = _model(request, "churn")
        frame = online_frame(request.app.state.feature_store, "account_health", "account_id", [account_id])
        if frame["account_health__ts"].isna().all():
            raise HTTPException(404, f"account {account_id!r} has no health features online")
        frame = frame.assign(p_churn=model.model.predict(frame))
        return JSONResponse(_account_json(account_id, frame, model, lang) | {"model_version": model.version})

    @app.get("/v1/alerts", dependencies=[manager], tags=["rules"])
    def alerts(
        request: Request,
        since_days: Annotated[int, Query(ge=0, le=366)] = 7,
        rule: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> JSONResponse:
        """Fired rules (from the weekly scoring job and the manager views), newest first."""
        if rule is not None and rule not in {r.name for r in request.app.state.rules}:
            raise HTTPException(422, f"invalid field(s): rule (unknown rule {rule!r})")
        return JSONResponse(
            {"alerts": request.app.state.alerts.list(since_days_ago(since_days), rule, limit)}
        )

    @app.get("/dashboard", response_class=HTMLResponse, tags=["dashboard"])
    def dashboard(key: str | None = None, lang: Literal["zh", "en"] = "en") -> HTMLResponse:
        """The manager page: forecast chart with range and baseline, top risks, churn risks, filters."""
        return HTMLResponse(render_dashboard(lang))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = {"models": {n: bool(request.app.state.models.get(n)) for n in MODEL_NAMES}}
        try:
            checks["feature_store"] = not request.app.state.features.lead_features(["__readyz__"])[0].degraded
        except Exception:
            checks["feature_store"] = False
        try:
            checks["routing_state"] = request.app.state.router.state.ping()
        except Exception:
            checks["routing_state"] = False
        ready = checks["models"]["lead_score"] and checks["feature_store"] and checks["routing_state"]
        return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, "checks": checks})

    @app.get("/metrics", tags=["ops"])
    def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(generate_latest(request.app.state.metrics.registry).decode())

    return app


class ManagerView:
    """Derived views of one pipeline snapshot (last week's P(win), rule firings), rebuilt with it."""

    def __init__(self) -> None:
        self.snapshot: PipelineSnapshot | None = None
        self.p_last_week = pd.Series(dtype=float)
        self.firings: dict[str, list[dict[str, Any]]] = {}


def _model(request: Request, name: str):  # type: ignore[no-untyped-def]
    model = request.app.state.models.get(name)
    if model is None:
        raise ModelNotLoaded(f"no {name} champion is loaded")
    return model


def _snapshot(request: Request) -> PipelineSnapshot:
    return request.app.state.pipeline.snapshot(_model(request, "milestone_close"))


def _view(request: Request) -> ManagerView:
    snap = _snapshot(request)
    view: ManagerView = request.app.state.manager_view
    if view.snapshot is not snap:
        store = request.app.state.feature_store
        p_last = previous_week_p_win(
            store, snap, snap.weeks_to_quarter_end, request.app.state.settings.raw_dir
        )
        punctuality = account_punctuality(store, sorted(set(snap.deals["company_id"])))
        ctx = rule_context(
            datetime.now(UTC), deal_context(snap, p_last, punctuality), [], request.app.state.settings.raw_dir
        )
        deal_rules = [
            r
            for r in request.app.state.rules
            if r.kind not in ("first_touch_sla", "bookings_anomaly", "channel_share_shift")
        ]
        firings = evaluate(deal_rules, ctx)
        request.app.state.alerts.add(firings, datetime.now(UTC))
        by_deal: dict[str, list[dict[str, Any]]] = {}
        for f in firings:
            by_deal.setdefault(f.entity, []).append(
                {"rule": f.rule, "severity": f.severity, "action": f.action, "evidence": f.evidence}
            )
        view.p_last_week, view.firings, view.snapshot = p_last, by_deal, snap
    return view


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _deal_json(
    deal_id: str, row: pd.Series, reasons: list, milestone: dict | None, rules: list
) -> dict[str, Any]:
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
        "rules": rules,
    }


def _account_json(account_id: str, row: pd.DataFrame, model, lang: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    first = row.iloc[0]
    return {
        "account_id": account_id,
        "p_churn": round(float(first["p_churn"]), 4),
        "arr_cny": _finite(float(first["arr_cny"])) if "arr_cny" in row else None,
        "renewal_at": _iso(first["renewal_at"]) if "renewal_at" in row else None,
        "reasons": account_reasons(model, row, lang),
    }


def _router_or_none(request: Request) -> Router | None:
    router: Router = request.app.state.router
    try:
        router.directory.reps()
    except Exception:
        return None
    return router


def _model_out(live) -> schemas.LiveModelOut:  # type: ignore[no-untyped-def]
    return schemas.LiveModelOut(
        name=live.name,
        version=live.version,
        source=live.source,
        live_since=live.live_since,
        run_id=live.run_id,
        metrics=live.metrics,
    )


def _json(body: BaseModel) -> Response:
    """The already-validated response model serialised by pydantic's own (Rust) JSON encoder.

    Returning a ``Response`` skips FastAPI's second validation and its ``jsonable_encoder`` pass
    (~0.3 ms per lead); the route's ``response_model`` still documents the shape in OpenAPI.
    """
    return Response(content=body.model_dump_json(), media_type="application/json")


def _out(r: ScoredLead) -> schemas.LeadScore:
    routing = None
    if r.routing is not None:
        d = r.routing
        routing = schemas.Routing(
            rep_id=d.rep_id,
            first_touch_deadline=d.first_touch_deadline,
            reasons=list(d.reasons),
            relaxed_filters=list(d.relaxed),
            runners_up=[
                schemas.Candidate(
                    rep_id=c.rep_id,
                    expected_value=round(c.expected_value, 5),
                    fit=round(c.fit, 4),
                    availability=round(c.availability, 4),
                    timezone_gap_hours=c.timezone_gap_hours,
                    language_proficiency=c.language_proficiency,
                    load=f"{c.open_leads}/{c.capacity}",
                )
                for c in d.runners_up
            ],
        )
    degraded = list(r.degraded)
    return schemas.LeadScore(
        lead_id=r.lead.lead_id,
        probability=round(r.probability, 6),
        score=r.score,
        grade=r.grade,  # type: ignore[arg-type]
        model=schemas.ModelRef(name=r.model.name, version=r.model.version),
        feature_snapshot_time=r.snapshot_time,
        reasons=None
        if r.reasons is None
        else [
            schemas.Reason(code=x.code, direction=x.direction, impact=x.impact, text=x.text)
            for x in r.reasons
        ],  # type: ignore[arg-type]
        routing=routing,
        inferred=r.inferred,
        degraded=degraded,
        unknown_entity=r.unknown_entity,
    )
