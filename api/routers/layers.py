"""GeoJSON layers: zones, communities and districts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import AtDep, PolicyDep, ServiceDep
from api.errors import unprocessable
from tiles.geojson import communities_geojson, districts_geojson, zones_geojson

router = APIRouter(prefix="/v1", tags=["layers"])
GEOJSON = "application/geo+json"


def _geojson(body: dict[str, Any], version: int, max_age: int = 60) -> JSONResponse:
    return JSONResponse(
        body,
        media_type=GEOJSON,
        headers={"Cache-Control": f"public, max-age={max_age}", "X-Data-Version": str(version)},
    )


_FC = {200: {"content": {GEOJSON: {}}, "description": "GeoJSON FeatureCollection (RFC 7946)"}}


@router.get("/zones", operation_id="list_zones", responses=_FC, response_class=JSONResponse)
def list_zones(
    service: ServiceDep,
    policy: PolicyDep,
    at: AtDep,
    level: Annotated[str | None, Query(description="only zones of this level")] = None,
) -> JSONResponse:
    if level is not None and level not in policy.level_ids:
        raise unprocessable(
            f"unknown level {level!r} for policy {policy.id}: expected one of {policy.level_ids}",
            "query",
            "level",
        )
    snap = service.snapshot(policy, at)
    return _geojson(zones_geojson(snap.result, level), snap.data_version)


@router.get(
    "/communities", operation_id="list_communities", responses=_FC, response_class=JSONResponse
)
def list_communities(service: ServiceDep, policy: PolicyDep, at: AtDep) -> JSONResponse:
    snap = service.snapshot(policy, at)
    return _geojson(communities_geojson(snap.layer, snap.result), snap.data_version)


@router.get("/districts", operation_id="list_districts", responses=_FC, response_class=JSONResponse)
def list_districts(service: ServiceDep) -> JSONResponse:
    version, layer, _ = service.data()
    return _geojson(districts_geojson(layer), version, max_age=300)
