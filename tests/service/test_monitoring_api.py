"""GET /v1/monitoring over real HTTP on the served tiny world: scores, outcomes and the weekly job
move its numbers; a GET writes nothing; the weekly check alerts each threshold crossing once."""

from __future__ import annotations

import itertools
import json
import shutil
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd

from features.catalog import CHANNELS, CONTACT_ROLES, PRODUCT_LINE_NAMES
from features.store import latest_feature_time
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from service.monitoring.alerting import check_monitoring
from service.weekly import score_weekly
from service.weekly_store import weekly_store
from tests.service.conftest import CRM, lead, running, service_settings
from tests.service.test_manager_api import VISIBLE_TEXTS, sign_in
from tests.service.untranslated import latin_words

MANAGER = {"X-API-Key": "demo-manager-key"}
LEADS = 60


def dashboard_section_shows_it(base_url: object) -> None:
    """The manager page's monitoring section, in both languages, with no English on the zh page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for lang in ("en", "zh"):
            page = browser.new_page(viewport={"width": 1100, "height": 2400})
            sign_in(page, str(base_url), lang)
            page.wait_for_selector("body[data-monitoring]", timeout=60_000)
            assert "1.000" in page.inner_text("#mon-quality")  # the week's live AUC
            assert page.locator("#mon-drift tbody tr").count() == 5
            assert page.locator("#mon-segments tbody tr").count() >= 2  # channel, role, product levels
            if lang == "zh":
                texts = page.evaluate(VISIBLE_TEXTS)
                assert {t: latin_words(t) for t in texts if latin_words(t)} == {}
                assert "甲级" in page.inner_text("#mon-calibration") or "丁级" in page.inner_text(
                    "#mon-calibration"
                )
        browser.close()


def recorded(http: httpx.Client, leads: int) -> dict:
    """The report once the served-lead writer (off the request path, every 0.5 s) has the leads."""
    deadline = time.monotonic() + 10
    while True:
        report = http.get("/v1/monitoring", headers=MANAGER).json()
        weeks = report["lead_quality"]["weeks"]
        if (weeks and weeks[0]["leads"] == leads) or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_monitoring_numbers_move_with_served_leads_outcomes_and_the_weekly_snapshot(
    served_world: Settings, tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    companies = pd.read_parquet(served_world.raw_dir / "leads.parquet", columns=["company_id"])["company_id"]
    mix = itertools.product(CHANNELS, CONTACT_ROLES, PRODUCT_LINE_NAMES)
    bodies = [
        lead(f"m{i}", company_id=str(c), channel=ch, contact_role=role, product_interest=product)
        for i, (c, (ch, role, product)) in enumerate(zip(companies.unique()[:LEADS], mix, strict=False))
    ]
    start = latest_feature_time(served_world) + timedelta(days=1)
    now = [start]
    clock.set_clock(lambda: now[0])
    try:
        with nullcontext(webhook) as (url, received):
            settings = service_settings(
                served_world,
                tmp_path,
                alert_webhook_url=url,
                monitoring_max_psi=1e-6,  # every input that moved at all crosses: PSI alerts
                monitoring_min_drift_rows=1,
                monitoring_min_sla_compliance=0.0,  # the other checks stay quiet here
                monitoring_min_match_rate=0.0,
                monitoring_max_forecast_wape=1e9,
            )
            with running(settings) as http:
                empty = http.get("/v1/monitoring", headers=MANAGER)
                assert empty.status_code == 200, empty.text
                assert empty.json()["lead_quality"]["weeks"] == [] and empty.json()["drift"]["week"] is None
                assert http.get("/v1/monitoring", headers=CRM).status_code == 403

                scored = http.post("/v1/leads/score:batch?route=true", json={"leads": bodies}, headers=CRM)
                assert scored.status_code == 200, scored.text
                results = scored.json()["results"]
                after = recorded(http, LEADS)
                [week] = after["lead_quality"]["weeks"]
                assert (week["leads"], week["resolved"], week["roc_auc"]) == (LEADS, 0, None)
                assert after["drift"]["inputs"] and all(d["rows"] == LEADS for d in after["drift"]["inputs"])
                assert len(after["drift"]["top_movers"]) == 5
                assert after["routing"]["assigned"] == sum(1 for r in results if r["routing"]["rep_id"])

                # the hotter half converts, the rest are disqualified: live AUC is exactly 1
                ranked = sorted(results, key=lambda r: -r["probability"])
                for i, r in enumerate(ranked):
                    kind = "converted" if i < LEADS // 2 else "disqualified"
                    at = (start + timedelta(days=2)).isoformat()
                    body = {"kind": kind, "lead_id": r["lead_id"], "at": at}
                    assert http.post("/v1/outcomes", json=body, headers=CRM).status_code == 200
                touched = next(r for r in results if r["routing"]["rep_id"])
                touch = {"kind": "touched", "lead_id": touched["lead_id"], "at": start.isoformat()}
                http.post("/v1/outcomes", json=touch, headers=CRM)
                now[0] = start + timedelta(days=2)  # the outcomes above have happened by now
                judged = http.get("/v1/monitoring", headers=MANAGER).json()
                [week] = judged["lead_quality"]["weeks"]
                assert (week["resolved"], week["converted"], week["roc_auc"]) == (LEADS, LEADS // 2, 1.0)
                grades = {g["grade"]: g for g in judged["lead_quality"]["calibration"]}
                assert sum(g["leads"] for g in grades.values()) == LEADS
                assert judged["routing"]["sla_met"] >= 1
                # segment calibration splits the same leads by the request's channel (60 leads:
                # web_form, trade_show and paid_search in this mix), each conversion counted once
                channels = [g for g in judged["lead_quality"]["segments"] if g["segment"] == "channel"]
                assert sorted(g["level"] for g in channels) == ["paid_search", "trade_show", "web_form"]
                assert sum(g["leads"] for g in channels) == LEADS
                assert sum(g["observed"] for g in channels) == LEADS // 2

                # the weekly job stores what it said; a win a week later is judged against it
                assert score_weekly(settings, now=start).deals > 0
                [snapshot] = weekly_store(settings).forecast_snapshots()
                deal, info = next(iter(snapshot.deals.items()))
                win_at = snapshot.as_of + timedelta(days=1)
                won = {"kind": "opportunity_won", "opportunity_id": deal, "at": win_at.isoformat()}
                assert http.post("/v1/outcomes", json=won, headers=CRM).status_code == 200
                score_weekly(settings, now=start)  # the same week again replaces, never duplicates
                assert len(weekly_store(settings).forecast_snapshots()) == 1
                now[0] = snapshot.as_of + timedelta(days=8)
                accuracy = http.get("/v1/monitoring", headers=MANAGER).json()["forecast_accuracy"]
                h1 = next(r for r in accuracy["rows"] if r["group_by"] == "all" and r["horizon"] == 1)
                assert h1["realised"] == info["amount"]
                assert [h["horizon"] for h in accuracy["by_horizon"]] == [1]

                # GETs wrote nothing: the alerts are the weekly job's, each crossing once
                before = weekly_store(settings).alerts(None, "monitoring_threshold", 1000)
                http.get("/v1/monitoring", headers=MANAGER)
                assert weekly_store(settings).alerts(None, "monitoring_threshold", 1000) == before
                posted = [json.dumps(p, ensure_ascii=False) for p in received]
                ours = [p for p in posted if "monitoring_threshold" in p]
                assert len(ours) == 1 and "psi:" in ours[0]  # the first weekly run raised them, once
                listed = http.get(
                    "/v1/alerts", params={"rule": "monitoring_threshold", "since_days": 366}, headers=MANAGER
                )
                assert listed.status_code == 200, listed.text
                assert {a["entity"] for a in listed.json()["alerts"]} == {
                    a["entity"] for a in weekly_store(settings).alerts(None, "monitoring_threshold", 1000)
                }
                again = check_monitoring(settings, now[0]).raised
                assert again == [], again
                assert len([p for p in received if "monitoring_threshold" in json.dumps(p)]) == 1
                metrics = http.get("/metrics").text
                assert "funnelcast_live_lead_auc 1.0" in metrics and "funnelcast_feature_psi{" in metrics
                if shutil.which("chromium"):  # as the other page tests: make test installs it
                    dashboard_section_shows_it(http.base_url)
    finally:
        clock.set_clock(None)
