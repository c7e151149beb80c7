"""The manager's words: one catalogue, complete in both languages, and the signed session (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from features.catalog import CHANNELS, COMMODITIES, CONTACT_ROLES, MILESTONES, PRODUCT_LINE_NAMES
from features.world.reps import _REGION_TEAMS
from funnelcast.core import i18n
from funnelcast.core.forecast_baselines import BASELINES
from funnelcast.core.risk import deal_reasons
from service.auth import SESSION_LIFETIME, new_session, session_role
from service.monitoring.served_log import SEGMENT_FIELDS
from service.rules import RuleContext, evaluate, load_rules
from tests.service.untranslated import latin_words

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
KEYS = {"m-key": "manager", "a-key": "admin", "c-key": "crm"}


def test_every_chinese_text_of_the_catalogue_is_chinese() -> None:
    zh = [*i18n.ui_labels("zh").values(), *(i18n.reason(r, "zh") for r in ("OTHER", "MILESTONES_DONE"))]
    zh += [n for table in i18n.names("zh").values() for n in table.values()]
    zh += [i18n.milestone_step(m, "zh") for m in MILESTONES] + list(i18n.ACTIONS_ZH.values())
    assert {t: latin_words(t) for t in zh if latin_words(t)} == {}


def test_every_slug_the_world_shows_has_a_name_in_both_languages() -> None:
    kinds = {
        "commodity": COMMODITIES,
        "product_line": PRODUCT_LINE_NAMES,
        "milestone": MILESTONES,
        "baseline": BASELINES,
        "region": tuple(region for region, _ in _REGION_TEAMS),
        "team": tuple(team for _, teams in _REGION_TEAMS for team, _ in teams),
        "channel": CHANNELS,
        "contact_role": CONTACT_ROLES,
        "segment": SEGMENT_FIELDS,
    }
    for kind, slugs in kinds.items():
        assert set(slugs) <= set(i18n.NAMES[kind]), kind
    assert i18n.name("commodity", "lithium_carbonate", "zh") == "碳酸锂"
    assert i18n.name("team", "someone_elses_team", "en") == "someone elses team"


def test_every_account_health_feature_has_a_reason_text_in_both_languages() -> None:
    from features.repo.views import ACCOUNT_FIELDS

    for field in ACCOUNT_FIELDS:
        assert field.name in i18n.REASONS, field.name
        assert latin_words(i18n.reason(field.name, "zh", v=0.5)) == [], field.name


def test_every_default_rule_action_reads_in_chinese_including_the_escalation() -> None:
    rules = load_rules()
    for rule in rules:
        assert latin_words(i18n.action(rule.action, "zh")) == [], rule.name
        assert i18n.action(rule.action, "en") == rule.action
    overdue = pd.DataFrame([{"lead_id": "l1", "rep_id": "r001", "deadline": NOW - timedelta(hours=6)}])
    (firing,) = evaluate(
        [r for r in rules if r.kind == "first_touch_sla"], RuleContext(NOW, overdue_leads=overdue)
    )
    assert i18n.action(firing.action, "zh") == "立即联系该线索；上报团队主管"


def test_the_next_step_is_what_to_do_not_the_milestones_name() -> None:
    assert i18n.milestone_step("legal_prereview_passed", "zh") == "安排法务预审"
    assert i18n.milestone_step("legal_prereview_passed", "en") == "schedule the legal pre-review"
    for m in MILESTONES:
        assert i18n.milestone_step(m, "zh") != i18n.name("milestone", m, "zh")


def test_chinese_deal_reasons_name_the_commodity_and_the_milestone_in_chinese() -> None:
    row = {
        "opportunity_snapshots__commodity": "lithium_carbonate",
        "commodity_prices__change_1w": 0.082,
        **{f"opportunity_snapshots__ms_{m}": 1.0 for m in MILESTONES[:9]},
    }
    contrib = {"commodity_prices__change_1w": 0.9, "opportunity_snapshots__milestones_reached": 0.5}
    zh = [r.text for r in deal_reasons(contrib, row, "zh")]
    assert zh == ["碳酸锂 本周上涨 8.2%", "尚未达成：法务预审通过"]
    en = [r.text for r in deal_reasons(contrib, row, "en")]
    assert en == ["lithium carbonate up 8.2% this week", "legal pre-review passed not yet reached"]


def test_a_session_holds_for_its_lifetime_and_only_under_a_dashboard_key() -> None:
    token = new_session("m-key", NOW)
    assert "m-key" not in token
    assert session_role(token, KEYS, NOW + SESSION_LIFETIME - timedelta(seconds=1)) == "manager"
    assert session_role(token, KEYS, NOW + SESSION_LIFETIME) is None  # ended
    assert session_role(token, {"other-key": "manager"}, NOW) is None  # the key was rotated
    assert session_role(new_session("c-key", NOW), KEYS, NOW) is None  # a crm key signs no session
    expires, _, signature = token.partition(".")
    later = str(int(expires) + 3600)
    assert session_role(f"{later}.{signature}", KEYS, NOW) is None  # a lengthened expiry breaks the seal
    for forged in ("", ".", "abc.def", f"{expires}."):
        assert session_role(forged, KEYS, NOW) is None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_carries_the_one_catalogue_and_no_key(lang: str) -> None:
    from service.dashboard import render_dashboard

    html = render_dashboard(lang)
    assert i18n.ui("title", lang) in html and i18n.name("team", "china_east", lang) in html
    assert "sessionStorage" not in html and "?key=" not in html
