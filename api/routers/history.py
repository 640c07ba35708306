"""Zone history: ``GET /v1/zones/history`` and ``GET /v1/status/history``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.access import AccessDep
from api.deps import LatQ, LonQ, ServiceDep
from api.errors import unprocessable
from api.routers.status import CommunityRef
from geo.precision import public_events

router = APIRouter(prefix="/v1", tags=["history"])
MAX_SPAN_DAYS = 3660

FromQ = Annotated[dt.date | None, Query(alias="from", description="first day (default: to - 29)")]
ToQ = Annotated[dt.date | None, Query(alias="to", description="last day (default: today)")]


def _period(
    start: dt.date | None, end: dt.date | None, default_days: int = 30
) -> tuple[dt.date, dt.date]:
    """The period asked for: ``to`` defaults to today, ``from`` to ``default_days`` days
    ending on ``to``."""
    end = end or dt.date.today()
    if start is None:
        back = dt.timedelta(days=default_days - 1)
        start = end - back if end - dt.date.min >= back else dt.date.min
    if start > end:
        raise unprocessable(f"'from' ({start}) is after 'to' ({end})", "query", "from")
    if (end - start).days > MAX_SPAN_DAYS:
        raise unprocessable(f"the period may span at most {MAX_SPAN_DAYS} days", "query", "from")
    return start, end


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
    start, end = _period(start, end)
    ev = service.zone_history(policy, start, end)
    if not access.keyed:
        ev = public_events(ev, policy)
    if kind:
        ev = ev[ev["kind"].isin(kind)]
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
    response: Response,
    start: FromQ = None,
    end: ToQ = None,
) -> dict[str, Any]:
    """The levels a place had, as intervals of days: "was this place in a risk zone in the
    last N days?". Without an API key, a level drawn finer than a community is given at
    the precision of the place's community."""
    response.headers["Cache-Control"] = "no-store"
    start, end = _period(start, end)
    return service.status_history(lon, lat, access.policy, start, end, public=not access.keyed)
