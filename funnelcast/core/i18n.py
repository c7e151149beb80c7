"""The one catalogue of what a manager reads, in English and Chinese (pure).

Every word the manager page, the deal and account reasons and the rule actions show comes from
here: page labels, names of milestones (and what to do to reach each), commodities, product
lines, regions, teams and baselines, and the default rules' actions. A name without an entry
reads as its slug with spaces (an importer's own team name, say); the dashboard test fails on a
zh page that shows one, so a gap here is caught, not shipped.

Rule actions are keyed by their English text, as gettext keys by the source string: the rules
file stays readable English and the catalogue says it in Chinese. A composed action (a clause
joined with "; ", as the first-touch rule's escalation) is translated clause by clause.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")

# Page labels: ui id -> (en, zh)
UI: dict[str, tuple[str, str]] = {
    "title": ("funnelcast — manager view", "funnelcast — 销售管理视图"),
    "forecast": ("Weekly bookings forecast (next 13 weeks)", "未来13周每周签约预测"),
    "risks": ("Top at-risk opportunities", "风险最高的商机"),
    "churn": ("Churn risks", "流失风险客户"),
    "team": ("Team", "团队"),
    "region": ("Region", "区域"),
    "all": ("All", "全部"),
    "deal": ("Deal", "商机"),
    "owner": ("Owner", "负责人"),
    "value_at_risk": ("Value at risk (CNY)", "风险金额（元）"),
    "p_win": ("P(win this quarter)", "本季度赢单概率"),
    "change": ("vs last week", "较上周"),
    "reasons": ("Why", "原因"),
    "next": ("Next action", "下一步"),
    "account": ("Account", "客户"),
    "p_churn": ("P(churn)", "流失概率"),
    "expected": ("expected", "预期"),
    "baseline": ("strongest baseline", "最强基线"),
    "quarter_total": ("Next 13 weeks in total", "未来13周合计"),
    "range": ("P10–P90", "P10–P90 区间"),
    "week_of": ("week of", "周起始"),
    "loading": ("loading…", "加载中…"),
    "login_title": ("Sign in to the manager view", "登录销售管理视图"),
    "login_key": ("Manager API key", "经理 API 密钥"),
    "login_submit": ("Sign in", "登录"),
    "login_failed": ("That key is not a manager key.", "该密钥不是经理密钥。"),
    "logout": ("Sign out", "退出登录"),
    "session_expired": ("Your session has ended; sign in again.", "会话已结束，请重新登录。"),
    # the monitoring section (GET /v1/monitoring)
    "monitoring": ("Live monitoring", "线上监控"),
    "lead_quality": ("Lead score on live outcomes, by week scored", "线索评分的线上表现（按评分周）"),
    "leads": ("Leads", "线索数"),
    "resolved": ("Outcome known", "已有结果"),
    "auc": ("ROC-AUC", "区分度（曲线下面积）"),
    "calibration": ("Predicted vs actual conversion by grade", "各等级预测与实际转化率"),
    "grade": ("Grade", "等级"),
    "predicted": ("Predicted", "预测"),
    "actual": ("Actual", "实际"),
    "forecast_accuracy": ("Forecast accuracy by weeks ahead", "按提前周数的预测准确度"),
    "weeks_ahead": ("Weeks ahead", "提前周数"),
    "wape": ("Weighted error (WAPE)", "加权绝对误差率"),
    "coverage": ("Inside P10–P90", "落在 P10–P90 内"),
    "said_4w": ("What we said 4 weeks before", "4周前的预测"),
    "booked": ("Booked", "实际签约"),
    "segments": (
        "Recent leads: conversion seen vs predicted, by segment",
        "近期线索：各细分实际与预测转化对比",
    ),
    "segment": ("Segment", "细分"),
    "shift": ("Seen ÷ predicted, vs the typical segment", "实际÷预测（相对同类细分）"),
    "drift": ("Inputs that moved most vs training", "相对训练变化最大的输入"),
    "input": ("Input", "输入"),
    "psi": ("Stability index (PSI)", "稳定性指数"),
    "routing_health": ("First touch and routing", "首次跟进与分配"),
    "sla": ("First touch within SLA", "首次跟进按时率"),
    "language_match": ("Language match", "语言匹配率"),
    "timezone_match": ("Time-zone match", "时区匹配率"),
    "crossed": ("Thresholds crossed now", "当前越过阈值的指标"),
    "no_data": ("not enough outcomes yet", "暂无足够结果"),
}

# Milestones: slug -> (en name, zh name, en next step, zh next step). The next step is an
# imperative: a manager reads "what to do", not the milestone's past-tense name.
MILESTONE_TEXTS: dict[str, tuple[str, str, str, str]] = {
    "budget_confirmed": ("budget confirmed", "预算确认", "confirm the customer's budget", "确认客户预算"),
    "decision_chain_mapped": ("decision chain mapped", "决策链梳理", "map the decision chain", "梳理决策链"),
    "nda_signed": ("NDA signed", "保密协议签署", "get the NDA signed", "签署保密协议"),
    "site_survey_done": ("site survey done", "现场勘察", "schedule the site survey", "安排现场勘察"),
    "technical_parameters_matched": (
        "technical parameters matched",
        "技术参数匹配",
        "match the technical parameters",
        "完成技术参数匹配",
    ),
    "sample_poc_passed": (
        "sample / proof of concept passed",
        "样品/概念验证通过",
        "run the sample or proof of concept",
        "推进样品/概念验证",
    ),
    "solution_presented": ("solution presented", "方案汇报", "present the solution", "安排方案汇报"),
    "quote_submitted": ("quote submitted", "报价提交", "submit the quote", "提交报价"),
    "procurement_committee_approved": (
        "procurement committee approved",
        "立项会通过",
        "take the deal to the procurement committee",
        "推动立项会审批",
    ),
    "legal_prereview_passed": (
        "legal pre-review passed",
        "法务预审通过",
        "schedule the legal pre-review",
        "安排法务预审",
    ),
    "third_party_test_report_issued": (
        "third-party test report issued",
        "第三方检测报告出具",
        "order the third-party test report",
        "委托第三方出具检测报告",
    ),
    "contract_stamped": ("contract stamped", "合同盖章", "get the contract stamped", "推动合同盖章"),
}

# Names of the slugs the page and the reasons show: kind -> slug -> (en, zh)
NAMES: dict[str, dict[str, tuple[str, str]]] = {
    # lead grades (a zh page reads 甲乙丙丁, not Latin letters)
    "grade": {"A": ("A", "甲级"), "B": ("B", "乙级"), "C": ("C", "丙级"), "D": ("D", "丁级")},
    # the business term a lead-model input belongs to (``service.reasons.GROUPS``)
    "input_term": {
        "FIT": ("industry–product fit", "行业与产品匹配"),
        "INTENT": ("buying signals", "购买意向信号"),
        "TENDERS": ("tenders", "招投标"),
        "SIZE": ("company size", "企业规模"),
        "ROLE": ("contact role", "联系人角色"),
        "CHANNEL": ("channel", "渠道"),
        "TIMING": ("timing", "时间"),
        "GEOGRAPHY": ("geography and language", "地域与语言"),
        "OTHER": ("other inputs", "其他输入"),
    },
    # the lead fields segment calibration splits by, and their levels
    "segment": {
        "channel": ("channel", "渠道"),
        "contact_role": ("contact role", "联系人角色"),
        "product_interest": ("product interest", "意向产品"),
    },
    "channel": {
        "web_form": ("web form", "网页表单"),
        "trade_show": ("trade show", "展会"),
        "paid_search": ("paid search", "付费搜索"),
        "social_ads": ("social ads", "社交广告"),
        "referral": ("referral", "转介绍"),
        "outbound": ("outbound", "主动外呼"),
        "wechat": ("WeChat", "微信"),
    },
    "contact_role": {
        "influencer": ("influencer", "影响者"),
        "purchaser": ("purchaser", "采购"),
        "user": ("user", "使用者"),
        "decision_maker": ("decision maker", "决策者"),
        "veto": ("veto holder", "否决者"),
    },
    "commodity": {
        "copper": ("copper", "铜"),
        "aluminium": ("aluminium", "铝"),
        "steel": ("steel", "钢材"),
        "lithium_carbonate": ("lithium carbonate", "碳酸锂"),
        "polysilicon": ("polysilicon", "多晶硅"),
    },
    "product_line": {
        "power_cables": ("power cables", "电力电缆"),
        "switchgear": ("switchgear", "开关柜"),
        "steel_structures": ("steel structures", "钢结构"),
        "energy_storage": ("energy storage", "储能系统"),
        "pv_modules": ("PV modules", "光伏组件"),
    },
    "region": {
        "china": ("China", "中国"),
        "emea": ("EMEA", "欧洲、中东和非洲"),
        "americas": ("Americas", "美洲"),
    },
    "team": {
        "china_east": ("China East", "华东"),
        "china_south": ("China South", "华南"),
        "emea_north": ("EMEA North", "欧洲北区"),
        "emea_south": ("EMEA South", "欧洲南区"),
        "americas_north": ("North America", "北美"),
        "americas_latam": ("Latin America", "拉美"),
    },
    "baseline": {
        "redated_pipeline": ("re-dated pipeline", "顺延成交日的管道"),
        "stage_week_table": ("stage × week table", "阶段×周历史表"),
        "trailing_mean_4": ("4-week trailing mean", "近4周均值"),
        "trailing_mean_13": ("13-week trailing mean", "近13周均值"),
        "ses": ("simple exponential smoothing", "简单指数平滑"),
        "damped_ets": ("damped-trend exponential smoothing", "阻尼趋势指数平滑"),
    },
    "milestone": {m: (t[0], t[1]) for m, t in MILESTONE_TEXTS.items()},
}

# Reason sentences: id -> (en, zh), with str.format fields from the deal's or account's numbers
REASONS: dict[str, tuple[str, str]] = {
    "INACTIVE": ("no activity for {days} days", "{days} 天没有跟进活动"),
    "RESISTANCE": ("{n} resistant signals in 7 days", "近7天 {n} 次抵触信号"),
    "STALL": ("{days} days in the current stage", "在当前阶段停留 {days} 天"),
    "MILESTONES_DONE": ("all milestones reached", "里程碑已全部完成"),
    "MILESTONES": ("{milestone} not yet reached", "尚未达成：{milestone}"),
    "COMMODITY_UP": ("{commodity} up {pct:.1f}% this week", "{commodity} 本周上涨 {pct:.1f}%"),
    "COMMODITY_DOWN": ("{commodity} down {pct:.1f}% this week", "{commodity} 本周下跌 {pct:.1f}%"),
    "TENDERS": ("customer has {n} open tenders", "客户有 {n} 个进行中的招标"),
    "SIZE": ("deal size CNY {amount:,.0f}", "金额 {wan:,.0f} 万元"),
    "TIMING_PASSED": ("expected close date passed {days} days ago", "预计成交日已过 {days} 天"),
    "TIMING": ("{days} days to expected close", "距预计成交 {days} 天"),
    "OTHER": ("other factors", "其他因素"),
    # account health columns (every field of the account_health feature view)
    "usage_rate_30d": ("module usage {v:.0%} in 30 days", "30天模块使用率 {v:.0%}"),
    "seat_utilization_30d": ("seat utilisation {v:.0%}", "席位使用率 {v:.0%}"),
    "active_users_30d": ("{v:.0f} active users", "活跃用户 {v:.0f}"),
    "days_since_admin_login": ("no admin login for {v:.0f} days", "管理员 {v:.0f} 天未登录"),
    "payment_punctuality_12m": ("payment punctuality {v:.0%} (12 months)", "12个月付款准时率 {v:.0%}"),
    "ticket_trend": ("support tickets up by {v:.0f}", "工单增加 {v:.0f}"),
    "tickets_30d": ("{v:.0f} tickets in 30 days", "30天工单 {v:.0f}"),
    "last_nps": ("last NPS {v:.0f}", "最近净推荐值 {v:.0f}"),
    "alerts_30d": ("{v:.0f} product alerts in 30 days", "30天产品告警 {v:.0f} 次"),
    "tickets_prev_30d": ("{v:.0f} tickets in the 30 days before", "前30天工单 {v:.0f}"),
    "arr_cny": ("annual recurring revenue CNY {v:,.0f}", "年度经常性收入 {v:,.0f} 元"),
    "days_to_renewal": ("{v:.0f} days to renewal", "距续约 {v:.0f} 天"),
    "tenure_days": ("customer for {v:.0f} days", "合作 {v:.0f} 天"),
}

# Rule actions (clauses), keyed by the English the rules file states
ACTIONS_ZH: dict[str, str] = {
    "touch the lead now": "立即联系该线索",
    "escalate to the team lead": "上报团队主管",
    "update the deal or book the next meeting": "更新商机或约定下次会面",
    "escalate to the sales manager for a rescue plan": "上报销售经理制定挽救方案",
    "freeze contract approval until finance clears the customer's payment record": (
        "冻结合同审批，待财务核清客户付款记录"
    ),
    "re-quote the deal at current commodity prices": "按当前大宗商品价格重新报价",
    "review the deal with the rep this week": "本周与负责销售一起复盘该商机",
    "check the CRM feed before trusting today's numbers": "先核查客户关系管理系统的数据，再采信今日数字",
    "check lead-source tracking before trusting today's scores": "先核查线索来源跟踪，再采信今日评分",
}
ACTION_CLAUSE_SEPARATOR = "; "


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "zh" else pair[0]


def ui(label: str, lang: str) -> str:
    return _pick(UI[label], lang)


def ui_labels(lang: str) -> dict[str, str]:
    """Every page label in ``lang``."""
    return {label: _pick(pair, lang) for label, pair in UI.items()}


def name(kind: str, slug: str, lang: str) -> str:
    """The display name of a slug (a commodity, team, ...); an unknown slug reads with spaces."""
    pair = NAMES.get(kind, {}).get(slug)
    return _pick(pair, lang) if pair else slug.replace("_", " ")


def names(lang: str) -> dict[str, dict[str, str]]:
    """Every known name by kind, in ``lang`` (what the page looks slugs up in)."""
    return {kind: {slug: _pick(pair, lang) for slug, pair in table.items()} for kind, table in NAMES.items()}


def milestone_step(milestone: str, lang: str) -> str:
    """What to do to reach ``milestone`` (an imperative); an import's own milestone by its name."""
    texts = MILESTONE_TEXTS.get(milestone)
    if texts is None:
        label = name("milestone", milestone, lang)
        return f"推动达成：{label}" if lang == "zh" else f"get to {label}"
    return texts[3] if lang == "zh" else texts[2]


def reason(reason_id: str, lang: str, **values: object) -> str:
    return _pick(REASONS[reason_id], lang).format(**values)


def action(text: str, lang: str) -> str:
    """A rule action in ``lang``, clause by clause; a clause without an entry stays as written."""
    if lang != "zh":
        return text
    clauses = text.split(ACTION_CLAUSE_SEPARATOR)
    return "；".join(ACTIONS_ZH.get(c, c) for c in clauses)
