"""GeoJSON layers: zones, communities and districts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep
from riskmap.api.errors import unprocessable
from riskmap.api.geojson_answers import (
    FC_RESPONSES,
    GEOJSON,
    GeoJSONResponse,
    layer_response,
)
from riskmap.api.paging import BBox, BBoxDep, Page, PageDep, paged_collection
from riskmap.api.service import MapLayer
from riskmap.tiles.geojson import communities_geojson, districts_geojson, zones_geojson
from riskmap.tiles.items import bbox_rows

router = APIRouter(prefix="/v1", tags=["layers"])


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
    return paged_collection(request, page, rows, encode, GEOJSON)


@router.get(
    "/zones", operation_id="list_zones", responses=FC_RESPONSES, response_class=GeoJSONResponse
)
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
    return layer_response(
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
    "/communities",
    operation_id="list_communities",
    responses=FC_RESPONSES,
    response_class=GeoJSONResponse,
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
    return layer_response(
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
    "/districts",
    operation_id="list_districts",
    responses=FC_RESPONSES,
    response_class=GeoJSONResponse,
)
def list_districts(request: Request, service: ServiceDep) -> Response:
    version, layer, _ = service.data()
    units = service.units()
    return layer_response(request, version, lambda: districts_geojson(layer, units))
