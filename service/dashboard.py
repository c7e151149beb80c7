"""The manager page: server-rendered HTML with a small script that calls the API (no build).

The manager signs in with a form (``templates/login.html``) that posts the key once; the page then
reads the API with the session cookie (``service.auth``), so the key is never in an address, the
browser history or a Referer. The page draws the weekly forecast (expected line, P10-P90 band, the
strongest baseline) as inline SVG with dated weeks and labelled gridlines, the 13-week total and its
band, the top-risk deals with reasons and next steps, and churn risks; the team and region filters
re-query the API. Every word comes from the one catalogue, ``funnelcast.core.i18n``.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from funnelcast.core.i18n import LANGS, names, ui_labels

TEMPLATES = Path(__file__).with_name("templates")


def page_language(lang: str | None) -> str:
    return lang if lang in LANGS else "en"


def _fill(template: str, lang: str, **fields: str) -> str:
    html = (TEMPLATES / template).read_text(encoding="utf-8").replace("__LANG__", lang)
    for field, value in fields.items():
        html = html.replace(f"__{field.upper()}__", value)
    return html


def render_dashboard(lang: str) -> str:
    labels = ui_labels(lang)
    catalogue = json.dumps({"labels": labels, "names": names(lang)}, ensure_ascii=False)
    # "</" would end the script element early; JSON allows it escaped
    return _fill(
        "dashboard.html", lang, title=escape(labels["title"]), catalogue=catalogue.replace("</", "<\\/")
    )


def render_login(lang: str, notice: str | None = None) -> str:
    """The sign-in form; ``notice`` is a label id (a failed key, an ended session), never user input."""
    labels = ui_labels(lang)
    return _fill(
        "login.html",
        lang,
        title=escape(labels["login_title"]),
        key_label=escape(labels["login_key"]),
        submit=escape(labels["login_submit"]),
        notice=escape(labels[notice]) if notice else "",
    )
