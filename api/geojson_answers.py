"""What the GeoJSON routes share: the media type, the response class and its OpenAPI entry,
the weak ETag of a layer and the layer answer (304 when the client's copy is current)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from riskmap.api.schemas import FeatureCollection

GEOJSON = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


#: the OpenAPI answers of a GeoJSON layer route
FC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": FeatureCollection, "description": "GeoJSON FeatureCollection (RFC 7946)"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
}


def weak_etag(text: str) -> str:
    """The weak ETag of an answer described by ``text`` (what it is of: version, rule, date,
    view, path and query): the form every route's tag has."""
    return 'W/"' + hashlib.sha1(text.encode()).hexdigest()[:20] + '"'


def source_etag(key: tuple[Any, ...], path: str, query: list[tuple[str, str]]) -> str:
    """The tag of a collection's answer (its items, tiles, TileJSON): the key of the layer
    (data version, rule, date, view), the path and the sorted query (the tile route's and the
    fast path's, api.fastpath)."""
    return weak_etag(f"{key}|{path}|{query}")


def etag(request: Request, version: int, keyed: bool = False, at: str = "") -> str:
    """A weak ETag of the data version, the query (rule, date, level, bbox, page), the date
    answered (``?at`` defaults to today) and whether the caller sees the exact zones: any
    ingest that changes the data gives new tags."""
    query = sorted(request.query_params.multi_items())
    return weak_etag(f"{version}|{request.url.path}|{query}|{'exact' if keyed else 'public'}|{at}")


def layer_response(
    request: Request,
    version: int,
    build: Callable[[], dict[str, Any]],
    keyed: bool = False,
    at: str = "",
) -> Response:
    """The layer, or 304 when the client's copy (If-None-Match) is current. Its
    Cache-Control (private for keyed callers: shared caches never keep their exact zones)
    comes from api/middleware.py."""
    tag = etag(request, version, keyed, at)
    headers = {
        "Vary": "Authorization",
        "X-Data-Version": str(version),
        "ETag": tag,
    }
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(build(), media_type=GEOJSON, headers=headers)
