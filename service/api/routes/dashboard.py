"""The manager page (it calls the API with the manager's key, kept in the browser tab)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service.dashboard import render_dashboard

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(key: str | None = None, lang: Literal["zh", "en"] = "en") -> HTMLResponse:
    """The manager page: forecast chart with range and baseline, top risks, churn risks, filters."""
    return HTMLResponse(render_dashboard(lang))
