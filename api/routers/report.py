"""``GET /v1/report``: the daily situation report as one self-contained HTML page (see
:mod:`api.report`). It holds exact case counts per district and per day, so it needs an
analyst's (or admin's) key; what the public may see of the same day is at ``/v1/zones``,
``/v1/alerts``, ``/v1/hotspots`` and ``/v1/aggregates/cases``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.auth import Caller, require
from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.report import situation_report

router = APIRouter(prefix="/v1", tags=["report"])


@router.get(
    "/report",
    operation_id="situation_report",
    response_class=HTMLResponse,
    responses={
        200: {"description": "the report: one HTML page that loads nothing"},
        401: {"description": "no API key"},
        403: {"description": "a key whose role is not analyst or admin"},
    },
)
def get_report(
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    settings: SettingsDep,
    # last: /openapi.json keeps one `authorization` header per route, the last declared, and
    # this route's key is required (the rule's and the date's dependencies take it optionally)
    caller: Annotated[Caller, Depends(require("analyst"))],
) -> HTMLResponse:
    """The situation report of ``at`` under the rule ``policy``: zones by level with the
    residents affected, zones created, escalated and lifted since the day before, scan
    alerts and hotspots (as /v1/alerts and /v1/hotspots), incidence and 7-day growth by
    district, trend plots and a map, in one HTML file that opens offline. Exact figures:
    an analyst's or admin's key (Authorization: Bearer <key>). Computed once per data
    version, rule and date."""
    version, page = situation_report(
        service,
        access.policy,
        at,
        replications=settings.scan_replications,
        min_count=settings.min_public_count,
    )
    headers = {
        "X-Data-Version": str(version),
        "Vary": "Authorization",
        "Content-Disposition": f'inline; filename="riskmap-report-{at.isoformat()}.html"',
        # the page's own policy (its style block by hash), and no framing
        "Content-Security-Policy": page.csp + "; frame-ancestors 'none'",
    }
    return HTMLResponse(page.html, headers=headers)
