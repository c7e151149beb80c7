"""Forecast, at-risk deals and accounts, alerts, the weekly job and the manager page, over real HTTP."""

from __future__ import annotations

import json
import re
import shutil
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pytest

from features.directory import read_directory
from features.store import open_store
from funnelcast.core.deals import STAGE
from funnelcast.core.forecast_baselines import BASELINES
from funnelcast.core.i18n import milestone_step
from funnelcast.core.settings import PROJECT_ROOT, Settings
from service.app import create_app
from service.auth import SESSION_COOKIE
from service.live_models import LiveModels
from service.pipeline import open_deals, rep_groups_of, score_pipeline
from service.routing.router import reps_from_feast
from service.rules import Firing, RulesError
from service.webhook import send_alerts
from tests.service.conftest import running, service_settings
from tests.service.untranslated import latin_words

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration
MANAGER = {"X-API-Key": "demo-manager-key"}
FORECASTER = {"X-API-Key": "demo-forecaster-key"}
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
DOCS = PROJECT_ROOT / "docs"


def test_forecast_totals_are_sums_of_deal_expectations_and_quantiles_are_ordered(
    served_world: Settings, tmp_path: Path
) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        total = http.get("/v1/forecast/weekly", headers=FORECASTER).json()
        by_team = http.get("/v1/forecast/weekly?group_by=team", headers=FORECASTER).json()["rows"]
        csv = http.get("/v1/forecast/weekly?group_by=region&weeks=4&format=csv", headers=MANAGER)
        assert http.get("/v1/forecast/weekly?group_by=planet", headers=MANAGER).status_code == 422
        assert http.get("/v1/forecast/weekly?baseline=gut_feel", headers=MANAGER).status_code == 422
        smoothed = http.get("/v1/forecast/weekly?group_by=team&baseline=ses", headers=MANAGER).json()
        redated = http.get("/v1/forecast/weekly?baseline=redated_pipeline", headers=MANAGER).json()
        past = http.get("/v1/forecast/weekly?as_of=2026-10-08T12:00:00Z", headers=MANAGER)
        future = http.get("/v1/forecast/weekly?as_of=2027-06-01", headers=MANAGER)
        assert http.get("/v1/forecast/weekly", headers={"X-API-Key": "demo-crm-key"}).status_code == 403
        deals = http.get("/v1/opportunities/at-risk?k=200", headers=MANAGER).json()["items"]
        detail = {
            d["opportunity_id"]: http.get(f"/v1/opportunities/{d['opportunity_id']}", headers=MANAGER).json()
            for d in deals
        }
    rows = total["rows"]
    assert total["as_of"] and len(rows) == 13
    # the default baseline is the one the champion's backtest found strongest; any other on request
    assert total["baseline"] in BASELINES and smoothed["baseline"] == "ses"
    assert redated["baseline"] == "redated_pipeline"
    assert {r["group"] for r in smoothed["rows"]} == {t["group"] for t in smoothed["totals"]}
    assert any(r["baseline"] > 0 for r in smoothed["rows"]) and any(
        r["baseline"] > 0 for r in redated["rows"]
    )
    # the quarter total: the sum of the weeks, with its band around it
    (quarter,) = total["totals"]
    assert quarter["expected_bookings"] == pytest.approx(sum(r["expected_bookings"] for r in rows))
    assert quarter["baseline"] == pytest.approx(sum(r["baseline"] for r in rows))
    assert 0 <= quarter["p10"] <= quarter["p50"] <= quarter["p90"] and quarter["p10"] < quarter["p90"]
    for row in rows + by_team:
        assert 0 <= row["p10"] <= row["p50"] <= row["p90"]
    for week in range(1, 14):
        team_sum = sum(r["expected_bookings"] for r in by_team if r["week"] == week)
        assert team_sum == pytest.approx(rows[week - 1]["expected_bookings"], rel=1e-9)
    # the at-risk list holds every open deal when k is large: recompute the total from each deal
    # (the forecast sums each deal's reconciled distribution; risk reads the deal model's own)
    if len(deals) == rows[0]["deals"]:
        for week in range(1, 14):
            per_deal = sum(
                d["amount_cny"] * detail[i]["forecast_weekly_probability"][week - 1]["p_win_in_week"]
                for i, d in ((d["opportunity_id"], d) for d in deals)
            )
            assert per_deal == pytest.approx(rows[week - 1]["expected_bookings"], rel=1e-3)
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith(
        "features_as_of,model_version,group,week"
    )
    assert past.status_code == 200, past.text
    assert past.json()["as_of"].startswith("2026-10-05")  # the Monday of that week
    assert all(0 <= r["p10"] <= r["p50"] <= r["p90"] for r in past.json()["rows"])
    assert future.status_code == 422 and "as_of" in future.json()["detail"]
    one = next(iter(detail.values()))
    cum = [w["p_win_by_week"] for w in one["weekly_close_probability"]]
    assert cum == sorted(cum) and cum[-1] <= 1.0


def test_at_risk_deals_come_with_reasons_a_missing_milestone_and_rules(
    served_world: Settings, tmp_path: Path
) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        r = http.get("/v1/opportunities/at-risk?k=5&lang=zh", headers=MANAGER)
        assert r.status_code == 200
        items = r.json()["items"]
        assert 0 < len(items) <= 5
        var = [i["value_at_risk"] for i in items]
        assert var == sorted(var, reverse=True)
        top = items[0]
        assert top["reasons"] and all(x["text"] for x in top["reasons"])
        assert top["missing_milestone"] is None or top["missing_milestone"]["p_win_gain"] >= 0
        assert isinstance(top["rules"], list)
        # in Chinese throughout: the next step says what to do, rules' actions are translated
        for item in items:
            step = item["missing_milestone"]
            assert step is None or step["action"] == milestone_step(step["milestone"], "zh")
            texts = [r["text"] for r in item["reasons"]] + [r["action"] for r in item["rules"]]
            assert all(latin_words(t) == [] for t in texts), texts
        team = top["team"]
        filtered = http.get(f"/v1/opportunities/at-risk?k=5&team={team}", headers=MANAGER).json()["items"]
        assert {i["team"] for i in filtered} == {team}
        assert http.get("/v1/opportunities/nope", headers=MANAGER).status_code == 404
        accounts = http.get("/v1/accounts/at-risk?k=3", headers=MANAGER).json()["items"]
        assert accounts and accounts[0]["p_churn"] >= accounts[-1]["p_churn"] and accounts[0]["reasons"]
        one = http.get(f"/v1/accounts/{accounts[0]['account_id']}/churn", headers=MANAGER).json()
        assert one["p_churn"] == accounts[0]["p_churn"]
        assert http.get("/v1/accounts/nope/churn", headers=MANAGER).status_code == 404
        alerts = http.get("/v1/alerts?since_days=1", headers=MANAGER).json()["alerts"]
        assert all({"rule", "entity", "evidence", "action"} <= set(a) for a in alerts)
        assert http.get("/v1/alerts?rule=nope", headers=MANAGER).status_code == 422


def test_a_bad_rules_file_is_refused_at_start(served_world: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - name: stall\n    kind: stage_stall\n    params: {working_days: -1}\n    action: x\n"
    )
    with pytest.raises(RulesError, match=r"line 2: rule 'stall': working_days"):
        create_app(service_settings(served_world, tmp_path, rules_path=bad))


class _FlakyReceiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []
    failures_left: ClassVar[int] = 2

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        type(self).bodies.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode": 0}')

    def log_message(self, *args: object) -> None:
        pass


def test_alerts_reach_a_webhook_through_retries() -> None:
    server = HTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        firing = Firing("stage_stall", "stage_stall", "o1", "warning", "book the next meeting", {"days": 7})
        url = f"http://127.0.0.1:{server.server_port}/bot"
        assert send_alerts(url, [firing], retries=3, backoff_seconds=0.01)
        assert len(_FlakyReceiver.bodies) == 1
        text = _FlakyReceiver.bodies[0]["text"]["content"]
        assert (
            _FlakyReceiver.bodies[0]["msgtype"] == "text" and "o1" in text and "book the next meeting" in text
        )
        _FlakyReceiver.failures_left = 5
        assert not send_alerts(url, [firing], retries=2, backoff_seconds=0.01)
    finally:
        server.shutdown()


def test_weekly_job_scores_the_pipeline_and_stores_alerts(served_world: Settings, tmp_path: Path) -> None:
    from service.weekly import score_weekly

    report = score_weekly(service_settings(served_world, tmp_path))
    assert report.deals > 0 and report.webhook_sent is None
    assert report.new_alerts == len({(f.rule, f.entity) for f in report.firings})


def test_the_dashboard_signs_in_with_a_form_and_never_takes_the_key_from_the_address(
    served_world: Settings, tmp_path: Path
) -> None:
    key = MANAGER["X-API-Key"]
    with running(service_settings(served_world, tmp_path)) as http:
        # an old ?key= link is sent on without the key and without a session
        old = http.get(f"/dashboard?key={key}&lang=zh")
        assert old.status_code == 303 and old.headers["location"] == "/dashboard?lang=zh"
        assert key not in old.text and "set-cookie" not in old.headers
        assert old.headers["referrer-policy"] == "no-referrer"
        anonymous = http.get("/dashboard?lang=zh")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/dashboard/login?lang=zh"
        form = http.get("/dashboard/login?lang=zh")
        assert form.status_code == 200 and 'method="post"' in form.text and "经理 API 密钥" in form.text
        assert form.headers["referrer-policy"] == "no-referrer"
        refused = http.post("/dashboard/login", data={"key": "demo-crm-key", "lang": "en"})
        assert refused.status_code == 401 and "not a manager key" in refused.text
        assert SESSION_COOKIE not in http.cookies
        signed_in = http.post("/dashboard/login", data={"key": key, "lang": "zh"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard?lang=zh"
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=") and key not in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        page = http.get("/dashboard?lang=zh")
        assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
        assert key not in page.text and "华东" in page.text
        # the session reads the API the page calls; it writes nothing
        assert http.get("/v1/opportunities/at-risk?k=1").status_code == 200
        assert http.post("/v1/leads/score", json={}).status_code == 401
        assert http.get("/v1/forecast/weekly", headers={"X-API-Key": "demo-crm-key"}).status_code == 403
        http.cookies.set(SESSION_COOKIE, "9999999999.forged")
        assert http.get("/v1/opportunities/at-risk?k=1").status_code == 401
        assert http.get("/dashboard").headers["location"] == "/dashboard/login?lang=en"
        http.cookies.clear()
        http.post("/dashboard/login", data={"key": key, "lang": "en"})
        out = http.post("/dashboard/logout", data={"lang": "en"})
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login?lang=en"
        assert SESSION_COOKIE not in http.cookies
        assert http.get("/dashboard").status_code == 303
    with running(service_settings(served_world, tmp_path, dashboard_secure_cookie=True)) as http:
        cookie = http.post("/dashboard/login", data={"key": key}).headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie


def sign_in(page: Page, base_url: str, lang: str) -> None:
    """Through the form, as a manager would; the address never holds the key."""
    page.goto(f"{base_url}/dashboard?lang={lang}")
    page.fill("#key", MANAGER["X-API-Key"])
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded]", timeout=60_000)
    assert MANAGER["X-API-Key"] not in page.url


# Every text the page shows: text nodes (HTML and SVG) that are rendered, every <option> of the
# filters (a manager can open them), and the document's title.
VISIBLE_TEXTS = """() => {
  const out = [document.title];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || ["SCRIPT", "STYLE", "OPTION"].includes(el.tagName)) continue;
    if (el.closest("svg") ? el.getBBox().width > 0 : el.checkVisibility()) out.push(text);
  }
  document.querySelectorAll("option").forEach(o => out.push(o.textContent.trim()));
  return out;
}"""


def chart_ticks(page: Page) -> tuple[list[str], list[str]]:
    x = page.locator("#chart text.xlabel").all_text_contents()
    y = page.locator("#chart text.ylabel").all_text_contents()
    return x, y


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)"
)
def test_dashboard_in_headless_chromium_shows_data_and_filters(
    served_world: Settings, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with running(service_settings(served_world, tmp_path)) as http, sync_playwright() as p:
        as_of = http.get("/v1/forecast/weekly", headers=MANAGER).json()["as_of"]
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        sign_in(page, http.base_url, "en")
        assert page.locator("#chart polyline").count() == 2  # expected line and baseline
        # the x axis dates each week: week k starts k - 1 weeks after the snapshot
        x, y = chart_ticks(page)
        weeks = [datetime.fromisoformat(as_of) + timedelta(weeks=k) for k in range(13)]
        assert x == [f"{w:%b} {w.day}" for w in weeks]
        # gridlines labelled from 0 up, evenly spaced
        assert len(y) >= 3 and y[0] == "0"
        assert page.locator("#chart line.grid").count() >= len(y) + 13
        # the baseline is the strongest one the backtest found, named; the 13-week total has its band
        assert page.locator("#baseline-name").inner_text().strip("()") != ""
        total = page.locator("#total").inner_text()
        assert "Next 13 weeks in total" in total and "P10–P90" in total
        rows = page.locator("#risks tbody tr")
        assert rows.count() > 0
        teams_before = set(rows.evaluate_all("rs => rs.map(r => r.dataset.team)"))
        assert page.locator("#churn tbody tr").count() > 0
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        team = page.locator("#team option").nth(1).get_attribute("value")
        page.select_option("#team", team)
        page.wait_for_selector(f'body[data-loaded$=":{team}"]', timeout=30_000)
        teams_after = set(page.locator("#risks tbody tr").evaluate_all("rs => rs.map(r => r.dataset.team)"))
        assert teams_after == {team} and teams_after != teams_before
        page.screenshot(path=str(ARTIFACTS / "dashboard_filtered.png"), full_page=True)
        # a new browser (no session) gets the sign-in form, not the page
        other = browser.new_context().new_page()
        other.goto(f"{http.base_url}/dashboard?lang=zh")
        assert other.url.endswith("/dashboard/login?lang=zh") and other.locator("#key").count() == 1
        browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)"
)
def test_the_chinese_dashboard_shows_no_untranslated_word(served_world: Settings, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from service.weekly import score_weekly

    settings = service_settings(served_world, tmp_path)
    assert score_weekly(settings).firings  # so the page shows rules' actions too
    with running(settings) as http, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1500}, locale="zh-CN")
        sign_in(page, http.base_url, "zh")
        assert page.locator("#risks tbody tr").count() > 0 and page.locator("#churn tbody tr").count() > 0
        assert page.locator("#risks .rule").count() > 0
        texts = page.evaluate(VISIBLE_TEXTS)
        untranslated = {t: latin_words(t) for t in texts if latin_words(t)}
        assert untranslated == {}, untranslated
        x, y = chart_ticks(page)
        assert len(x) == 13 and all(re.fullmatch(r"\d{1,2}月\d{1,2}日", t) for t in x), x
        assert len(y) >= 3
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "dashboard_zh.png"), full_page=True)
        browser.close()


def test_only_the_forecast_reconciles_risk_keeps_the_deal_models_own_p_win(
    served_world: Settings, tmp_path: Path
) -> None:
    """A champion whose backtest chose the stage x week table alone (weight 0) forecasts with the
    table, but at-risk still ranks deals by the deal model: deals at one stage do not all read alike."""
    settings = service_settings(served_world, tmp_path)
    store = open_store(settings)
    models = LiveModels(settings.mlflow_tracking_uri, tmp_path / "model_cache", ["milestone_close"])
    models.start()
    model = models.get("milestone_close")
    assert model is not None
    model.model.metadata = {**model.model.metadata, "reconciled_model_weight": 0.0}
    directory = read_directory(settings)
    groups = rep_groups_of(reps_from_feast(store, directory.rep_ids))
    snap = score_pipeline(store, open_deals(directory.open_deals, groups), model)
    stage = snap.deals[STAGE].fillna(0).astype(int).to_numpy()
    busiest = stage == np.bincount(stage).argmax()
    assert len(np.unique(np.round(snap.p_by_quarter_end[busiest], 6))) > 1  # the deal model tells them apart
    forecast = snap.forecast_p_week()
    assert np.allclose(forecast[busiest], forecast[busiest][0])  # the table alone does not
    assert not np.allclose(forecast, snap.p_week)
