"""API keys with roles (crm, forecaster, manager, admin) from settings; admin may call everything."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request, status

Role = str


def require(*roles: Role) -> Callable[[Request], Role]:
    """A dependency: 401 without a known key, 403 when the key's role is not allowed here."""

    def check(request: Request) -> Role:
        key = request.headers.get("x-api-key")
        if key is None:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send it in the X-API-Key header",
                headers={"WWW-Authenticate": "Bearer"},
            )
        role = request.app.state.settings.api_keys.get(key)
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if role != "admin" and role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {role!r} may not call this; needs one of {sorted(roles)}"
            )
        return role

    return check
