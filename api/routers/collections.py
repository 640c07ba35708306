"""The map layers in OGC API shapes: collections, GeoJSON items (paged), vector tiles
(``WebMercatorQuad``) and their TileJSON, and the conformance page.

Callers without an API key get the public view, exactly as ``/v1/zones`` and
``/v1/communities`` give it (:class:`api.access.Access`): a tile or an item never shows more
than those routes show the same caller. Every answer has an ETag of the data version, the
rule, the date and the view (public or exact), and ``If-None-Match`` gets ``304``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from riskmap.api.access import Access, AccessDep, AtDep
from riskmap.api.auth import MaybeCaller
from riskmap.api.deps import ServiceDatesDep, ServiceDep, SettingsDep
from riskmap.api.errors import unprocessable
from riskmap.api.fastpath import accepts_gzip
from riskmap.api.geojson_answers import GEOJSON, GeoJSONResponse, etag, source_etag
from riskmap.api.paging import BBoxDep, ItemsPageDep, Link, paged_collection
from riskmap.api.routers.aggregates import FromQ, PeriodQ, ToQ, TypeQ, WeekQ, count_view
from riskmap.api.schemas import FeatureCollection
from riskmap.api.service import MapLayer, RiskService, policy_key
from riskmap.geo import cells as h3c
from riskmap.geo._errors import NotFoundError
from riskmap.geo.h3layers import TooManyCells, cell_counts, zone_cells
from riskmap.geo.policy import PUBLIC_RES
from riskmap.geo.warning import PUBLIC_MAX_RES
from riskmap.tiles.collections import COLLECTIONS, Collection
from riskmap.tiles.items import bbox_rows, features
from riskmap.tiles.mvt import (
    MAX_ZOOM,
    MVT_MEDIA_TYPE,
    TILE_MATRIX_SET,
    WORLD,
    TileNotFound,
    check_tile,
)
from riskmap.tiles.tilejson import TileJSON, tilejson

router = APIRouter(prefix="/collections", tags=["collections"])
conformance_router = APIRouter(tags=["collections"])

CONFORMS_TO = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]


#: the layers are for other web maps too (MapLibre, Leaflet, deck.gl pages of other sites): any
#: site may read the answers a browser gets without a key. A request with a key from another
#: site needs a CORS preflight, which this service does not grant: keyed answers stay on the
#: server's own pages and on non-browser clients.
OTHER_SITES = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}


class MVTResponse(Response):
    media_type = MVT_MEDIA_TYPE


class SpatialExtent(BaseModel):
    bbox: list[list[float]] = Field(description="[[minLon, minLat, maxLon, maxLat]] of the data")
    crs: str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


class Extent(BaseModel):
    spatial: SpatialExtent


class CollectionInfo(BaseModel):
    id: str
    title: str
    description: str
    itemType: str = "feature"  # noqa: N815 (OGC API's name)
    extent: Extent
    links: list[Link]


class Collections(BaseModel):
    collections: list[CollectionInfo]
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str]  # noqa: N815 (OGC API's name)


class ItemCollection(FeatureCollection):
    """A page of a collection's features (OGC API Features)."""

    numberMatched: int = Field(description="features meeting bbox")  # noqa: N815
    numberReturned: int = Field(description="features in this page")  # noqa: N815
    links: list[Link] = Field(description="self, and next / prev pages when there are")


def get_collection(
    layer_id: Annotated[
        str,
        Path(alias="layerId", max_length=64, description="zones, communities or districts"),
    ],
) -> Collection:
    c = COLLECTIONS.get(layer_id)
    if c is None:
        if layer_id == "counts":  # H3_COLLECTIONS' only layer without features
            raise NotFoundError(
                "collection 'counts' has no items or tiles, only H3 cells: "
                "GET /collections/counts/h3?res="
            )
        raise NotFoundError(
            f"unknown collection {layer_id!r}: expected one of {', '.join(COLLECTIONS)}"
        )
    return c


CollectionDep = Annotated[Collection, Depends(get_collection)]

#: case counts per H3 cell: a collection of H3 cells only (no items, no tiles)
COUNTS = Collection(
    "counts",
    "Case counts per H3 cell",
    "Distinct cases with a location in each H3 cell over a publication period (perturbed "
    "for the public, never from 1 to RISKMAP_MIN_PUBLIC_COUNT - 1): GET .../h3 only.",
    {"hex": "String", "count": "Number"},
)
#: the collections with an H3 layer (GET /collections/{layerId}/h3)
H3_COLLECTIONS = ("zones", "counts")
#: the finest resolution callers without a key get: zones at the public precision (a
#: community or a res-10 cell), counts as fine as the public hotspots (res 8)
PUBLIC_H3_RES = {"zones": PUBLIC_RES, "counts": PUBLIC_MAX_RES}


def get_any_collection(
    layer_id: Annotated[
        str,
        Path(alias="layerId", max_length=64, description="zones, communities, districts or counts"),
    ],
) -> Collection:
    if layer_id == COUNTS.id:
        return COUNTS
    return get_collection(layer_id)


AnyCollectionDep = Annotated[Collection, Depends(get_any_collection)]


def get_tile_matrix_set(
    tms: Annotated[str, Path(alias="tileMatrixSetId", max_length=64)],
) -> str:
    if tms != TILE_MATRIX_SET:
        raise NotFoundError(f"unknown tile matrix set {tms!r}: this service has {TILE_MATRIX_SET}")
    return tms


TmsDep = Annotated[str, Depends(get_tile_matrix_set)]


@dataclass(frozen=True)
class _Source:
    """What an answer is of: the prepared layer the caller may see, its key (data version,
    rule, date, view; the data version alone for districts) and the answer's headers."""

    layer: MapLayer
    key: tuple[Any, ...]
    headers: dict[str, str]
    unchanged: bool  # If-None-Match matched the ETag: answer 304

    def not_modified(self) -> Response:
        return Response(status_code=304, headers=self.headers)


def _source(
    request: Request,
    service: RiskService,
    collection: Collection,
    access: Access,
    at: dt.date,
    vary: str = "Authorization",
) -> _Source:
    """The layer of ``collection`` the caller may see (``/v1/zones``' view), and the ETag of
    the answer: a weak tag of the key and the request's path and query."""
    key: tuple[Any, ...]
    if collection.id == "districts":
        version, layer = service.districts_layer()
        key = (version,)
    else:
        snap = access.snapshot(service, at)
        view = "exact" if access.keyed else f"public-{access.min_count}"
        key = (snap.data_version, policy_key(access.policy), at.isoformat(), view)
        layer = service.map_layer(collection.id, snap)
    etag = source_etag(key, request.url.path, sorted(request.query_params.multi_items()))
    headers = {"ETag": etag, "Vary": vary, "X-Data-Version": str(key[0])} | OTHER_SITES
    tags = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    return _Source(layer, key, headers, etag in tags or "*" in tags)


def _accepts_gzip(request: Request) -> bool:
    return accepts_gzip(request.headers.get("accept-encoding", "").encode("latin-1"))


def _bounds(service: RiskService) -> list[float]:
    _, layer, _ = service.data()
    if not len(layer):
        return list(WORLD)
    return [float(v) for v in layer.frame.total_bounds]


def _info(request: Request, c: Collection, bounds: list[float]) -> CollectionInfo:
    base = str(request.base_url).rstrip("/") + f"/collections/{c.id}"
    links = [Link(href=base, rel="self", type="application/json")]
    if c.id in COLLECTIONS:
        links += [
            Link(href=f"{base}/items", rel="items", type=GEOJSON, title=f"{c.title} (GeoJSON)"),
            Link(
                href=f"{base}/tiles/{TILE_MATRIX_SET}/tilejson.json",
                rel="describedby",
                type="application/json",
                title=f"{c.title}: TileJSON of the vector tiles",
            ),
        ]
    if c.id in H3_COLLECTIONS:
        links.append(
            Link(
                href=f"{base}/h3",
                rel="h3",
                type="application/json",
                title=f"{c.title} per H3 cell (deck.gl H3HexagonLayer rows)",
            )
        )
    return CollectionInfo(
        id=c.id,
        title=c.title,
        description=c.description,
        itemType="feature" if c.id in COLLECTIONS else "h3-cell",
        extent=Extent(spatial=SpatialExtent(bbox=[bounds])),
        links=links,
    )


@conformance_router.get("/conformance", operation_id="conformance", response_model=Conformance)
def conformance() -> Conformance:
    """The OGC API conformance classes the collections follow."""
    return Conformance(conformsTo=CONFORMS_TO)


@router.get("", operation_id="list_collections", response_model=Collections)
def list_collections(request: Request, service: ServiceDep) -> Collections:
    """The map's collections: zones, communities, districts (features: items and tiles), and
    counts (case counts per H3 cell); zones and counts have an H3 layer."""
    bounds = _bounds(service)
    return Collections(
        collections=[_info(request, c, bounds) for c in [*COLLECTIONS.values(), COUNTS]],
        links=[Link(href=str(request.url), rel="self", type="application/json")],
    )


@router.get("/{layerId}", operation_id="get_collection", response_model=CollectionInfo)
def describe_collection(
    request: Request, service: ServiceDep, collection: AnyCollectionDep
) -> CollectionInfo:
    """One collection: its title, extent and links to its items and tiles."""
    return _info(request, collection, _bounds(service))


_ITEMS: dict[int | str, dict[str, Any]] = {
    200: {"model": ItemCollection, "description": "a page of features (GeoJSON)"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}


@router.get(
    "/{layerId}/items",
    operation_id="list_items",
    responses=_ITEMS,
    response_class=GeoJSONResponse,
)
def list_items(
    request: Request,
    service: ServiceDep,
    collection: CollectionDep,
    access: AccessDep,
    at: AtDep,
    bbox: BBoxDep,
    page: ItemsPageDep,
) -> Response:
    """A page of the collection's features as GeoJSON (``next`` / ``prev`` links); without
    an API key the public view, as ``/v1/zones`` gives it."""
    src = _source(request, service, collection, access, at)
    if src.unchanged:
        return src.not_modified()
    rows = bbox_rows(src.layer.tiles, bbox)
    body = paged_collection(
        request,
        page,
        rows,
        lambda page_rows: {
            "type": "FeatureCollection",
            "features": features(src.layer.frame, page_rows),
        },
        GEOJSON,
    )
    return GeoJSONResponse(body, headers=src.headers)


_TILE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MVT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "a Mapbox Vector Tile (one layer, named after the collection)",
    },
    204: {"description": "no feature in this tile"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}


@router.get(
    "/{layerId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
    operation_id="get_tile",
    responses=_TILE,
    response_class=MVTResponse,
)
def get_tile(
    request: Request,
    service: ServiceDep,
    collection: CollectionDep,
    tms: TmsDep,
    access: AccessDep,
    at: AtDep,
    z: Annotated[int, Path(description=f"zoom, 0..{MAX_ZOOM}")],
    x: Annotated[int, Path(description="column, 0..2^z - 1")],
    y: Annotated[int, Path(description="row from the top, 0..2^z - 1")],
) -> Response:
    """A vector tile of the collection (gzip when the client accepts it); 204 when it has no
    feature; without an API key of the public view."""
    if not 0 <= z <= MAX_ZOOM:
        raise TileNotFound(f"tile {z}/{x}/{y}: zoom {z} is outside 0..{MAX_ZOOM}")
    check_tile(z, x, y)
    src = _source(request, service, collection, access, at, "Accept-Encoding, Authorization")
    if src.unchanged:
        return src.not_modified()
    headers = dict(src.headers)
    gz = _accepts_gzip(request)
    body = service.tile(src.key, src.layer.tiles, z, x, y, gzip=gz)
    if body is None:
        return Response(status_code=204, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
    return MVTResponse(body, headers=headers)


@router.get(
    "/{layerId}/tiles/{tileMatrixSetId}/tilejson.json",
    operation_id="get_tilejson",
    responses={200: {"model": TileJSON}, 304: {"description": "not modified"}},
    response_class=JSONResponse,
)
def get_tilejson(
    request: Request,
    service: ServiceDep,
    collection: CollectionDep,
    tms: TmsDep,
    access: AccessDep,
    at: AtDep,
) -> Response:
    """TileJSON 3.0.0 of the collection's vector tiles: the tile URL carries the rule and the
    date, so every tile is of the same zones."""
    src = _source(request, service, collection, access, at)
    if src.unchanged:
        return src.not_modified()
    query = None
    if collection.id != "districts":
        query = {"policy": access.policy.id, "at": at.isoformat()}
    tiles = src.layer.tiles
    doc = tilejson(collection, str(request.base_url), tiles.bounds, query=query, merge=tiles.merge)
    return JSONResponse(doc.model_dump(exclude_none=True), headers=src.headers)


# -- H3 layers ------------------------------------------------------------------------------


class H3Cell(BaseModel):
    """One row of an H3 layer, as deck.gl's H3HexagonLayer takes it
    (``getHexagon: d => d.hex``, ``getFillColor: d => d.rgb``)."""

    hex: str = Field(description="the H3 cell (hexadecimal index)")
    level: str | None = Field(None, description="zones: the level at the cell's centre")
    rank: int | None = Field(None, description="zones: the level's rank (1: the lowest)")
    color: str | None = Field(None, description="zones: the level's colour, #rrggbb")
    rgb: list[int] | None = Field(None, description="zones: the level's colour as [r, g, b]")
    count: int | None = Field(
        None,
        description="counts: distinct cases with a location in the cell (public: perturbed, "
        "never from 1 to min_count - 1; cells published as 0 are left out)",
    )


_H3: dict[int | str, dict[str, Any]] = {
    200: {"model": list[H3Cell], "description": "one row per cell (a JSON array)"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}
ResQ = Annotated[
    int,
    Query(
        ge=0,
        le=15,
        description=f"H3 resolution of the cells; without an API key at most "
        f"{PUBLIC_H3_RES['zones']} for zones and {PUBLIC_H3_RES['counts']} for counts",
    ),
]
_ZONE_ONLY = ("at", "policy")
_COUNT_ONLY = ("period", "week", "from", "to", "type")


def _rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


@router.get(
    "/{layerId}/h3",
    operation_id="get_h3_layer",
    responses=_H3,
    response_class=JSONResponse,
)
def get_h3_layer(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    caller: MaybeCaller,
    access: AccessDep,
    at: AtDep,
    service_dates: ServiceDatesDep,
    bbox: BBoxDep,
    res: ResQ,
    layer_id: Annotated[str, Path(alias="layerId", max_length=64, description="zones or counts")],
    period: PeriodQ = None,
    week: WeekQ = None,
    start: FromQ = None,
    end: ToQ = None,
    case_type: TypeQ = None,
) -> Response:
    """A layer on H3 cells of resolution ``res`` as a JSON array deck.gl's H3HexagonLayer
    draws directly. ``zones``: each cell whose centre lies in a zone, with the level there
    (what GET /v1/status answers at the centre; ``at``, ``policy``). ``counts``: distinct
    cases per cell over a publication table (``period``, ``week`` as in
    GET /v1/aggregates/cases; analysts also ``from``, ``to``, ``type``), perturbed for the
    public. ``bbox`` keeps the cells whose centre lies in it; at most RISKMAP_MAX_H3_CELLS
    cells (more: 422)."""
    if layer_id not in H3_COLLECTIONS:
        raise NotFoundError(
            f"collection {layer_id!r} has no H3 layer: expected one of {', '.join(H3_COLLECTIONS)}"
        )
    other = _COUNT_ONLY if layer_id == "zones" else _ZONE_ONLY
    for name in other:
        if name in request.query_params:
            raise unprocessable(
                f"{name}: the {layer_id} layer does not take it (it takes "
                f"{', '.join(_ZONE_ONLY if layer_id == 'zones' else _COUNT_ONLY)})",
                "query",
                name,
            )
    finest = PUBLIC_H3_RES[layer_id]
    if caller is None and res > finest:
        raise unprocessable(
            f"res: without an API key the {layer_id} layer goes to resolution {finest} at "
            f"finest (got {res})",
            "query",
            "res",
        )
    most = settings.max_h3_cells
    try:
        if layer_id == "zones":
            snap = access.snapshot(service, at)
            tag = etag(request, snap.data_version, access.keyed, at.isoformat())
            version = snap.data_version
            if _matches(request, tag):
                return _not_modified(tag, version)
            frame = zone_cells(snap.lookup, res, bbox, most)
            colors = {lv.id: lv.color for lv in access.policy.levels}
            hexes = h3c.cells_to_hex(frame["cell"].to_numpy())
            rows = [
                {
                    "hex": h,
                    "level": lv,
                    "rank": int(r),
                    "color": colors[lv],
                    "rgb": _rgb(colors[lv]),
                }
                for h, lv, r in zip(hexes, frame["level"], frame["rank"], strict=True)
            ]
        else:
            view = count_view(
                service, settings, caller, service_dates, period, week, start, end, case_type
            )
            version, _, cases = service.data()
            tag = etag(request, version, caller is not None, view.start.isoformat())
            if _matches(request, tag):
                return _not_modified(tag, version)
            counted = cell_counts(
                cases, res, view.start, view.end, view.case_type, view.secret, bbox, most
            )
            shown = view.shown(counted.counts, counted.keys)
            keep = shown > 0
            hexes = h3c.cells_to_hex(counted.cells[keep])
            rows = [{"hex": h, "count": int(n)} for h, n in zip(hexes, shown[keep], strict=True)]
    except TooManyCells as e:
        raise unprocessable(
            f"{e} (RISKMAP_MAX_H3_CELLS): ask a coarser res or a smaller bbox", "query", "res"
        ) from None
    headers = {
        "ETag": tag,
        "Vary": "Authorization",
        "X-Data-Version": str(version),
        "X-H3-Resolution": str(res),
    } | OTHER_SITES
    return JSONResponse(rows, headers=headers)


def _matches(request: Request, tag: str) -> bool:
    tags = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    return tag in tags or "*" in tags


def _not_modified(tag: str, version: int) -> Response:
    headers = {"ETag": tag, "Vary": "Authorization", "X-Data-Version": str(version)}
    return Response(status_code=304, headers=headers | OTHER_SITES)
