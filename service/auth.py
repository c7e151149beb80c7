"""API keys with roles (crm, forecaster, manager, admin) from settings; admin may call everything.

A client sends its key in ``X-API-Key`` (or ``Authorization: Bearer``). The manager page instead
signs in once with a form and holds a session cookie (``dashboard_session``): HttpOnly, so the
page's script never sees it, SameSite=Strict, so no other site's page sends it, and never the key
itself. The session is ``<expiry>.<HMAC of the expiry under the key>``: any replica checks it
against the configured keys without a shared store, it ends at its expiry, and rotating the key
ends it at once. The cookie authorises reads (GET) only, so a forged form can do nothing with it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from funnelcast.core import clock

Role = str
SESSION_COOKIE = "dashboard_session"
SESSION_LIFETIME = timedelta(hours=8)
DASHBOARD_ROLES: tuple[Role, ...] = ("manager", "admin")

# Declared as security schemes so the OpenAPI document says which operations need a key (and so
# can answer 401/403); auto_error off: the check below words the 401 itself.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")
BEARER = HTTPBearer(auto_error=False, description="The API key as a Bearer token")


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"funnelcast-dashboard|{expires}".encode(), hashlib.sha256).hexdigest()


def new_session(key: str, now: datetime) -> str:
    """A session token for ``key``, valid for ``SESSION_LIFETIME`` from ``now``."""
    expires = int((now + SESSION_LIFETIME).timestamp())
    return f"{expires}.{_signature(key, expires)}"


def session_role(token: str, api_keys: Mapping[str, Role], now: datetime) -> Role | None:
    """The role of the dashboard key that signed ``token``, or None if it is expired or forged."""
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or int(expires_text) <= now.timestamp():
        return None
    expires = int(expires_text)
    for key, role in api_keys.items():
        if role in DASHBOARD_ROLES and hmac.compare_digest(signature, _signature(key, expires)):
            return role
    return None


class RoleCheck:
    """A dependency: 401 without a known key or session, 403 when the role is not allowed here."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    async def __call__(
        self,
        request: Request,
        api_key: Annotated[str | None, Security(API_KEY_HEADER)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Role:
        keys = request.app.state.settings.api_keys
        key = api_key or (bearer.credentials.strip() if bearer is not None else None)
        token = request.cookies.get(SESSION_COOKIE)
        if key:
            role = keys.get(key)
        elif token and request.method in ("GET", "HEAD"):  # the manager page's session: reads only
            # the clock may be a shared one (a Redis or SQLite read): off the event loop
            role = await run_in_threadpool(lambda: session_role(token, keys, clock.now()))
        else:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send it in the X-API-Key header",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key or ended session",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role != "admin" and role not in self.roles:
            needs = sorted(self.roles)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {role!r} may not call this; needs one of {needs}"
            )
        return role


def require(*roles: Role) -> RoleCheck:
    return RoleCheck(roles)
