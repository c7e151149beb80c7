"""The manager page and its sign-in: a form posts the key once and gets a session cookie back.

The key never travels in an address (it would stay in the browser history and leak in Referer
headers): ``?key=`` is not read, and a request carrying it is sent on to the same page without it.
Every answer here says ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from funnelcast.core import clock
from service.api.deps import SettingsDep
from service.auth import DASHBOARD_ROLES, SESSION_COOKIE, SESSION_LIFETIME, new_session, session_role
from service.dashboard import page_language, render_dashboard, render_login

router = APIRouter(tags=["dashboard"])
_PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
LangQuery = Annotated[str | None, Query(description="zh or en (anything else reads as en)")]


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=_PRIVATE)


def _redirect(path: str, lang: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?lang={lang}", status_code=303, headers=_PRIVATE)


_TO_FORM = {303: {"description": "No valid session (or a key in the address): on to the sign-in form"}}
_SIGNED_IN = {
    303: {"description": "Signed in: on to the page, with the session cookie"},
    401: {"description": "Not a manager or admin key: the form again", "content": {"text/html": {}}},
}
_SIGNED_OUT = {303: {"description": "Signed out: the cookie cleared, on to the sign-in form"}}


@router.get("/dashboard", response_class=HTMLResponse, responses=_TO_FORM)
def dashboard(request: Request, settings: SettingsDep, lang: LangQuery = None) -> Response:
    """The manager page with a valid session; otherwise on to the sign-in form."""
    language = page_language(lang)
    if "key" in request.query_params:
        # an old bookmark or a pasted link: drop the key from the address, never echo it
        return _redirect("/dashboard", language)
    token = request.cookies.get(SESSION_COOKIE)
    if token is None or session_role(token, settings.api_keys, clock.now()) is None:
        return _redirect("/dashboard/login", language)
    return _html(render_dashboard(language))


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_form(lang: LangQuery = None, ended: bool = False) -> HTMLResponse:
    return _html(render_login(page_language(lang), "session_expired" if ended else None))


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (what an HTML form posts), first value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@router.post("/dashboard/login", response_class=HTMLResponse, responses=_SIGNED_IN)
async def login(request: Request, settings: SettingsDep) -> Response:
    """A manager (or admin) key gets a session cookie and the page; any other key the form again, 401."""
    form = await _form(request)
    language = page_language(form.get("lang"))
    key = form.get("key", "")
    if settings.api_keys.get(key) not in DASHBOARD_ROLES:
        return _html(render_login(language, "login_failed"), status_code=401)
    response = _redirect("/dashboard", language)
    response.set_cookie(
        SESSION_COOKIE,
        new_session(key, clock.now()),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_secure_cookie or request.url.scheme == "https",
    )
    return response


@router.post("/dashboard/logout", responses=_SIGNED_OUT)
async def logout(request: Request, settings: SettingsDep) -> Response:
    """Ends the session in this browser: the cookie is cleared."""
    form = await _form(request)
    response = _redirect("/dashboard/login", page_language(form.get("lang")))
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_secure_cookie or request.url.scheme == "https",
    )
    return response
