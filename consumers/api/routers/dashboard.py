"""``GET /``: the live dashboard page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from consumers.api.dashboard_page import DASHBOARD_HTML

router = APIRouter(tags=["dashboard"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """Live prices, positions and P&L, updated in place from ``/api/v1/stream``."""
    return HTMLResponse(DASHBOARD_HTML)
