"""API keys with roles (crm, forecaster, manager, admin) from settings; admin may call everything."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

Role = str

# Declared as security schemes so the OpenAPI document says which operations need a key (and so
# can answer 401/403); auto_error off: the check below words the 401 itself.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")
BEARER = HTTPBearer(auto_error=False, description="The API key as a Bearer token")


class RoleCheck:
    """A dependency: 401 without a known key, 403 when the key's role is not allowed here."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    def __call__(
        self,
        request: Request,
        api_key: Annotated[str | None, Security(API_KEY_HEADER)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Role:
        key = api_key or (bearer.credentials.strip() if bearer is not None else None)
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
        if role != "admin" and role not in self.roles:
            needs = sorted(self.roles)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {role!r} may not call this; needs one of {needs}"
            )
        return role


def require(*roles: Role) -> RoleCheck:
    return RoleCheck(roles)
