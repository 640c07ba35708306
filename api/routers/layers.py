"""GeoJSON layers: zones, communities and districts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep
from riskmap.api.errors import unprocessable
from riskmap.tiles.geojson import communities_geojson, districts_geojson, zones_geojson

router = APIRouter(prefix="/v1", tags=["layers"])
GEOJSON = "application/geo+json"


def _etag(request: Request, version: int, keyed: bool = False) -> str:
    """A weak ETag of the data version, the query (rule, date, level) and whether the caller
    sees the exact zones: any ingest that changes the data gives new tags."""
    query = sorted(request.query_params.multi_items())
    key = f"{version}|{request.url.path}|{query}|{'exact' if keyed else 'public'}"
    return 'W/"' + hashlib.sha1(key.encode()).hexdigest()[:20] + '"'


def _layer(
    request: Request,
    version: int,
    build: Callable[[], dict[str, Any]],
    max_age: int = 60,
    keyed: bool = False,
) -> Response:
    """The layer, or 304 when the client's copy (If-None-Match) is current. The exact zones
    of keyed callers are never kept by shared caches."""
    etag = _etag(request, version, keyed)
    headers = {
        "Cache-Control": f"{'private' if keyed else 'public'}, max-age={max_age}",
        "Vary": "Authorization",
        "X-Data-Version": str(version),
        "ETag": etag,
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(build(), media_type=GEOJSON, headers=headers)


_FC = {
    200: {"content": {GEOJSON: {}}, "description": "GeoJSON FeatureCollection (RFC 7946)"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}


@router.get("/zones", operation_id="list_zones", responses=_FC, response_class=JSONResponse)
def list_zones(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    level: Annotated[str | None, Query(description="only zones of this level")] = None,
) -> Response:
    """Zones as GeoJSON; without an API key the public zones (see README, "Privacy")."""
    policy = access.policy
    if level is not None and level not in policy.level_ids:
        raise unprocessable(
            f"unknown level {level!r} for policy {policy.id}: expected one of {policy.level_ids}",
            "query",
            "level",
        )
    snap = access.snapshot(service, at)
    return _layer(
        request, snap.data_version, lambda: zones_geojson(snap.result, level), keyed=access.keyed
    )


@router.get(
    "/communities", operation_id="list_communities", responses=_FC, response_class=JSONResponse
)
def list_communities(
    request: Request, service: ServiceDep, access: AccessDep, at: AtDep
) -> Response:
    """Communities with their level; without an API key as in the public zones."""
    snap = access.snapshot(service, at)
    return _layer(
        request,
        snap.data_version,
        lambda: communities_geojson(snap.layer, snap.result),
        keyed=access.keyed,
    )


@router.get("/districts", operation_id="list_districts", responses=_FC, response_class=JSONResponse)
def list_districts(request: Request, service: ServiceDep) -> Response:
    version, layer, _ = service.data()
    units = service.units()
    return _layer(request, version, lambda: districts_geojson(layer, units), max_age=300)
