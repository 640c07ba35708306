"""What the planner map asks besides its tiles: residents under each level over the last days
(``GET /v1/aggregates/population``) and communities by name (``GET /v1/communities/search``).
Both are bounded: at most :data:`MAX_DAYS` dates, :data:`MAX_STEP` days apart, and
:data:`MAX_MATCHES` matches."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep
from riskmap.tiles.planner_data import population_by_level, search_communities

router = APIRouter(prefix="/v1", tags=["map"])

MAX_DAYS = 62
MAX_STEP = 7
MAX_MATCHES = 20


class LevelPopulation(BaseModel):
    level: str
    label: str
    color: str
    population: list[float] = Field(description="residents under the level, one per date")


class PopulationUnderLevels(BaseModel):
    policy: str
    at: dt.date
    dates: list[dt.date] = Field(description="the days, oldest first; the last is `at`")
    levels: list[LevelPopulation] = Field(description="the rule's levels, highest first")
    per_community: bool = Field(
        description="true: each community counts whole under the highest level on any part "
        "of it (the public view of rules drawn finer than a community); false: levels drawn "
        "as exact geometry are estimated by area weighting"
    )
    data_version: int


@router.get(
    "/aggregates/population",
    operation_id="population_under_levels",
    response_model=PopulationUnderLevels,
)
def population_under_levels(
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    response: Response,
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="how many dates, the last one `at`")
    ] = 14,
    step: Annotated[
        int, Query(ge=1, le=MAX_STEP, description="days between two dates (7: weekly)")
    ] = 1,
) -> PopulationUnderLevels:
    """Residents living under each level of the rule on ``days`` dates ``step`` days apart,
    the last one ``at`` (the planner map's panel: 14 days, or weekly for rules drawn as exact
    geometry, whose area weighting takes longer). Without an API key, a rule drawn finer than
    a community is counted per community, as the public communities layer shows it."""
    snap = access.snapshot(service, at)
    policy = access.policy
    per_community = not access.keyed and bool(policy.fine_levels)
    if step == 1:
        start = at - dt.timedelta(days=days - 1)
        table = population_by_level(snap.result, snap.layer, start, at, per_community=per_community)
    else:
        every = [at - dt.timedelta(days=step * k) for k in reversed(range(days))]
        table = pd.concat(
            [
                population_by_level(snap.result, snap.layer, d, d, per_community=per_community)
                for d in every
            ],
            ignore_index=True,
        )
    dates = sorted(set(table["date"]))
    levels = [
        LevelPopulation(
            level=lv.id,
            label=lv.label,
            color=lv.color,
            population=[
                round(float(v), 1) for v in table.loc[table["level"] == lv.id, "population"]
            ],
        )
        for lv in policy.levels
    ]
    response.headers["X-Data-Version"] = str(snap.data_version)
    return PopulationUnderLevels(
        policy=policy.id,
        at=at,
        dates=dates,
        levels=levels,
        per_community=per_community or not any(lv.geometric for lv in policy.levels),
        data_version=snap.data_version,
    )


class CommunityMatch(BaseModel):
    id: str
    name: str | None
    district_id: str | None
    lon: float = Field(description="a point inside the community (to look its status up)")
    lat: float


class CommunitySearch(BaseModel):
    query: str
    matches: list[CommunityMatch] = Field(
        description="the same id first, then names equal to the query, starting with it, "
        "holding it (case-insensitive)"
    )


@router.get(
    "/communities/search", operation_id="search_communities", response_model=CommunitySearch
)
def communities_search(
    service: ServiceDep,
    q: Annotated[
        str, Query(min_length=1, max_length=100, description="a community id or part of a name")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_MATCHES, description="most matches")] = 10,
) -> CommunitySearch:
    """Communities by id or name, each with a point inside it (the planner map's search)."""
    _, layer, _ = service.data()
    matches = search_communities(layer, q, limit)
    return CommunitySearch(query=q, matches=[CommunityMatch(**m) for m in matches])
