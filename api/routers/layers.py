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
from riskmap.api.paging import BBox, BBoxDep, Page, PageDep, page_links
from riskmap.api.schemas import FeatureCollection
from riskmap.api.service import MapLayer
from riskmap.tiles.geojson import communities_geojson, districts_geojson, zones_geojson
from riskmap.tiles.items import bbox_rows

router = APIRouter(prefix="/v1", tags=["layers"])
GEOJSON = "application/geo+json"


def _etag(request: Request, version: int, keyed: bool = False, at: str = "") -> str:
    """A weak ETag of the data version, the query (rule, date, level, bbox, page), the date
    answered (``?at`` defaults to today) and whether the caller sees the exact zones: any
    ingest that changes the data gives new tags."""
    query = sorted(request.query_params.multi_items())
    key = f"{version}|{request.url.path}|{query}|{'exact' if keyed else 'public'}|{at}"
    return 'W/"' + hashlib.sha1(key.encode()).hexdigest()[:20] + '"'


def _layer(
    request: Request,
    version: int,
    build: Callable[[], dict[str, Any]],
    keyed: bool = False,
    at: str = "",
) -> Response:
    """The layer, or 304 when the client's copy (If-None-Match) is current. Its
    Cache-Control (private for keyed callers: shared caches never keep their exact zones)
    comes from api/middleware.py."""
    etag = _etag(request, version, keyed, at)
    headers = {
        "Vary": "Authorization",
        "X-Data-Version": str(version),
        "ETag": etag,
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(build(), media_type=GEOJSON, headers=headers)


def _paged(
    request: Request,
    map_layer: Callable[[], MapLayer],
    bbox: BBox | None,
    page: Page,
    encode: Callable[[list[int] | None], dict[str, Any]],
    keep: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """The whole layer when no bbox, limit or offset is given (``encode(None)``), else the
    page of the features meeting ``bbox`` (and ``keep``: a mask of the rows) with
    ``numberMatched``, ``numberReturned`` and the ``links`` of the pages."""
    if bbox is None and page.limit is None and page.offset == 0:
        return encode(None)
    rows = bbox_rows(map_layer().tiles, bbox)
    if keep is not None:
        rows = rows[keep(rows)]
    start, stop = page.slice(len(rows))
    out = encode([int(i) for i in rows[start:stop]])
    out["numberMatched"] = len(rows)
    out["numberReturned"] = len(out["features"])
    out["links"] = [
        ln.model_dump(exclude_none=True) for ln in page_links(request, page, len(rows), GEOJSON)
    ]
    return out


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


_FC: dict[int | str, dict[str, Any]] = {
    200: {"model": FeatureCollection, "description": "GeoJSON FeatureCollection (RFC 7946)"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}


@router.get("/zones", operation_id="list_zones", responses=_FC, response_class=GeoJSONResponse)
def list_zones(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    bbox: BBoxDep,
    page: PageDep,
    level: Annotated[str | None, Query(description="only zones of this level")] = None,
) -> Response:
    """Zones as GeoJSON; without an API key the public zones (see README, "Privacy").
    Every zone unless ``bbox``, ``limit`` or ``offset`` is given: then a page of them with
    ``numberMatched``, ``numberReturned`` and ``next`` / ``prev`` links."""
    policy = access.policy
    if level is not None and level not in policy.level_ids:
        raise unprocessable(
            f"unknown level {level!r} for policy {policy.id}: expected one of {policy.level_ids}",
            "query",
            "level",
        )
    snap = access.snapshot(service, at)
    levels = snap.result.zones["level"].to_numpy()
    return _layer(
        request,
        snap.data_version,
        lambda: _paged(
            request,
            lambda: service.map_layer("zones", snap),
            bbox,
            page,
            lambda rows: zones_geojson(snap.result, level, rows),
            None if level is None else (lambda rows: levels[rows] == level),
        ),
        keyed=access.keyed,
        at=at.isoformat(),
    )


@router.get(
    "/communities", operation_id="list_communities", responses=_FC, response_class=GeoJSONResponse
)
def list_communities(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    bbox: BBoxDep,
    page: PageDep,
) -> Response:
    """Communities with their level; without an API key as in the public zones. Every
    community unless ``bbox``, ``limit`` or ``offset`` is given (then a page, as
    ``/v1/zones``)."""
    snap = access.snapshot(service, at)
    return _layer(
        request,
        snap.data_version,
        lambda: _paged(
            request,
            lambda: service.map_layer("communities", snap),
            bbox,
            page,
            lambda rows: communities_geojson(snap.layer, snap.result, rows),
        ),
        keyed=access.keyed,
        at=at.isoformat(),
    )


@router.get(
    "/districts", operation_id="list_districts", responses=_FC, response_class=GeoJSONResponse
)
def list_districts(request: Request, service: ServiceDep) -> Response:
    version, layer, _ = service.data()
    units = service.units()
    return _layer(request, version, lambda: districts_geojson(layer, units))
