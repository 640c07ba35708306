"""``GET /v1/status``: the zone status of a place."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import LatQ, LonQ, ServiceDep

router = APIRouter(prefix="/v1", tags=["status"])


class CommunityRef(BaseModel):
    id: str
    name: str | None


class Status(BaseModel):
    level: str = Field(description="a level id of the policy, or 'none'")
    label: str
    color: str
    zone_id: str | None
    community: CommunityRef | None = Field(description="the community containing the place")
    covered: bool = Field(
        description="the place lies in a community of the data; false: riskmap has no data "
        "there, so 'none' does not mean the place is safe"
    )
    since: dt.date | None = Field(description="first day of the place's current level")
    expected_lift: dt.date | None = Field(
        description="the day the level ends if no new qualifying case is reported"
    )
    policy: str
    at: dt.date
    data_version: int = Field(description="the data version the zones were computed from")
    computed_at: dt.datetime = Field(description="when the zones were computed (UTC)")
    data_through: dt.date | None = Field(
        description="the last report date of that data: an app can tell stale data from a "
        "safe place"
    )


@router.get("/status", operation_id="get_status", response_model=Status)
def get_status(
    lat: LatQ,
    lon: LonQ,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    response: Response,
) -> Status:
    """The level of a place; without an API key against the public zones (see README,
    "Privacy")."""
    answer = service.status(lon, lat, access.policy, at, access.public_min)
    response.headers["X-Data-Version"] = str(answer["data_version"])
    return Status.model_validate(answer)
