"""Zone history: ``GET /v1/zones/history`` and ``GET /v1/status/history``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from riskmap.api.access import AccessDep, DatesDep
from riskmap.api.deps import LatQ, LonQ, ServiceDep, SettingsDep
from riskmap.api.errors import unprocessable
from riskmap.api.routers.status import CommunityRef
from riskmap.geo.precision import public_events

router = APIRouter(prefix="/v1", tags=["history"])

FromQ = Annotated[dt.date | None, Query(alias="from", description="first day (default: to - 29)")]
ToQ = Annotated[dt.date | None, Query(alias="to", description="last day (default: today)")]


class ZoneEvent(BaseModel):
    date: dt.date
    kind: str = Field(description="created, escalated, stepped_down, extended or lifted")
    unit_type: str = Field(description="community, or area (an exact-geometry zone part)")
    unit_id: str
    level_from: str
    level_to: str


class ZoneHistory(BaseModel):
    policy: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    events: list[ZoneEvent]


@router.get(
    "/zones/history",
    operation_id="zone_history",
    response_model=ZoneHistory,
    response_model_by_alias=True,
)
def zone_history(
    service: ServiceDep,
    access: AccessDep,
    dates: DatesDep,
    settings: SettingsDep,
    start: FromQ = None,
    end: ToQ = None,
    kind: Annotated[
        list[Literal["created", "escalated", "stepped_down", "extended", "lifted"]] | None,
        Query(description="only events of these kinds"),
    ] = None,
) -> dict[str, Any]:
    """Every change of level between two dates: zones created, escalated, stepped down,
    extended by a new qualifying case, lifted. Without an API key, the exact areas of a rule
    drawn finer than a community are left out (see README, "Privacy")."""
    policy = access.policy
    start, end = dates.period(start, end, default_days=30)
    ev = service.zone_history(policy, start, end)
    if not access.keyed:
        ev = public_events(ev, policy)
    if kind:
        ev = ev[ev["kind"].isin(kind)]
    if len(ev) > settings.max_history_events:
        raise unprocessable(
            f"{len(ev)} events from {start} to {end}: at most {settings.max_history_events} in "
            "one answer (RISKMAP_MAX_HISTORY_EVENTS); ask for a shorter period or some kinds",
            "query",
            "from",
        )
    return {
        "policy": policy.id,
        "from": start,
        "to": end,
        "events": ev.to_dict(orient="records"),
    }


class Interval(BaseModel):
    level: str
    label: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    days: int


class StatusHistory(BaseModel):
    policy: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    community: CommunityRef | None
    in_zone: bool = Field(description="whether the place was in a zone on any day of the period")
    days_in_zone: int
    intervals: list[Interval]


@router.get(
    "/status/history",
    operation_id="status_history",
    response_model=StatusHistory,
    response_model_by_alias=True,
)
def status_history(
    lat: LatQ,
    lon: LonQ,
    service: ServiceDep,
    access: AccessDep,
    dates: DatesDep,
    response: Response,
    start: FromQ = None,
    end: ToQ = None,
) -> dict[str, Any]:
    """The levels a place had, as intervals of days: "was this place in a risk zone in the
    last N days?". Without an API key, a level drawn finer than a community is given at
    the precision of the place's community."""
    response.headers["Cache-Control"] = "no-store"
    start, end = dates.period(start, end, default_days=30)
    return service.status_history(lon, lat, access.policy, start, end, public=not access.keyed)
