"""The manager page: one server-rendered HTML file with a small script that calls the API (no build).

The page takes the manager's API key from ``?key=`` (kept in sessionStorage) and draws the weekly
forecast (expected line, P10-P90 band, the strongest baseline) as inline SVG with the 13-week total
and its band, the top-risk deals with reasons and next actions, and churn risks; the team and
region filters re-query the API.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).with_name("templates") / "dashboard.html"

LABELS = {
    "en": {
        "title": "funnelcast — manager view",
        "forecast": "Weekly bookings forecast (next 13 weeks)",
        "risks": "Top at-risk opportunities",
        "churn": "Churn risks",
        "team": "Team",
        "region": "Region",
        "all": "All",
        "deal": "Deal",
        "owner": "Owner",
        "value_at_risk": "Value at risk (CNY)",
        "p_win": "P(win this quarter)",
        "change": "vs last week",
        "reasons": "Why",
        "next": "Next action",
        "account": "Account",
        "p_churn": "P(churn)",
        "expected": "expected",
        "baseline": "strongest baseline",
        "quarter_total": "Next 13 weeks in total",
        "range": "P10–P90",
        "loading": "loading…",
        "missing_key": "Add ?key=<manager API key> to the address.",
    },
    "zh": {
        "title": "funnelcast — 销售管理视图",
        "forecast": "未来13周每周签约预测",
        "risks": "风险最高的商机",
        "churn": "流失风险客户",
        "team": "团队",
        "region": "区域",
        "all": "全部",
        "deal": "商机",
        "owner": "负责人",
        "value_at_risk": "风险金额（元）",
        "p_win": "本季度赢单概率",
        "change": "较上周",
        "reasons": "原因",
        "next": "下一步",
        "account": "客户",
        "p_churn": "流失概率",
        "expected": "预期",
        "baseline": "最强基线",
        "quarter_total": "未来13周合计",
        "range": "P10–P90 区间",
        "loading": "加载中…",
        "missing_key": "请在地址后加上 ?key=<经理 API 密钥>。",
    },
}


def render_dashboard(lang: str) -> str:
    import json

    labels = LABELS.get(lang, LABELS["en"])
    html = TEMPLATE.read_text(encoding="utf-8")
    return (
        html.replace("__LANG__", lang if lang in LABELS else "en")
        .replace("__TITLE__", labels["title"])
        .replace("__LABELS__", json.dumps(labels, ensure_ascii=False))
    )
