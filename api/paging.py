"""Bounding boxes and pages of feature collections: the ``bbox``, ``limit`` and ``offset``
query parameters of ``/collections/{layerId}/items``, ``/v1/zones`` and ``/v1/communities``,
and the ``next`` / ``prev`` links of a page (OGC API Features)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import BaseModel

from riskmap.api.deps import SettingsDep
from riskmap.api.errors import unprocessable

MAX_OFFSET = 10**9
BBox = tuple[float, float, float, float]


def get_bbox(
    bbox: Annotated[
        str | None,
        Query(
            description="only features meeting this box: minLon,minLat,maxLon,maxLat (WGS84 "
            "degrees)",
            examples=["114.2,30.5,114.4,30.7"],
            max_length=200,
        ),
    ] = None,
) -> BBox | None:
    if bbox is None:
        return None
    parts = [p.strip() for p in bbox.split(",")]
    if len(parts) != 4:
        raise unprocessable(
            f"bbox must be 4 numbers minLon,minLat,maxLon,maxLat; got {len(parts)} value(s)",
            "query",
            "bbox",
        )
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise unprocessable(
            f"bbox must be 4 numbers minLon,minLat,maxLon,maxLat; got {bbox!r}", "query", "bbox"
        ) from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise unprocessable("bbox values must be finite numbers", "query", "bbox")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise unprocessable("bbox longitudes must be in -180..180", "query", "bbox")
    if not (-90 <= s <= 90 and -90 <= n <= 90):
        raise unprocessable("bbox latitudes must be in -90..90", "query", "bbox")
    if w > e or s > n:
        raise unprocessable(
            f"bbox must be minLon,minLat,maxLon,maxLat with min <= max; got {bbox!r}",
            "query",
            "bbox",
        )
    return (w, s, e, n)


BBoxDep = Annotated[BBox | None, Depends(get_bbox)]


@dataclass(frozen=True)
class Page:
    limit: int | None  # None: every feature (the /v1 routes' default)
    offset: int

    def slice(self, n: int) -> tuple[int, int]:
        """The rows ``[start, stop)`` of this page among ``n`` matched features."""
        start = min(self.offset, n)
        stop = n if self.limit is None else min(n, start + self.limit)
        return start, stop


def _check_limit(limit: int | None, most: int) -> None:
    if limit is not None and limit > most:
        raise unprocessable(
            f"limit must be at most {most} (RISKMAP_MAX_ITEMS); got {limit}", "query", "limit"
        )


OffsetQ = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="number of matched features to skip")
]


def get_page(
    settings: SettingsDep,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description="most features in the answer (at most RISKMAP_MAX_ITEMS); default: all",
        ),
    ] = None,
    offset: OffsetQ = 0,
) -> Page:
    """Paging of the /v1 layers: no ``limit`` answers every feature (after ``offset``)."""
    _check_limit(limit, settings.max_items)
    return Page(limit, offset)


DEFAULT_ITEMS = 100  # features in a page of /collections/{layerId}/items without ?limit=


def get_items_page(
    settings: SettingsDep,
    limit: Annotated[
        int,
        Query(
            ge=1,
            description=f"most features in the page (default {DEFAULT_ITEMS}, at most "
            "RISKMAP_MAX_ITEMS)",
        ),
    ] = DEFAULT_ITEMS,
    offset: OffsetQ = 0,
) -> Page:
    _check_limit(limit, settings.max_items)
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(get_page)]
ItemsPageDep = Annotated[Page, Depends(get_items_page)]


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


def page_links(request: Request, page: Page, matched: int, media_type: str) -> list[Link]:
    """``self``, and ``next`` / ``prev`` when there are features after / before the page:
    the request's own URL with ``offset`` (and ``limit``) changed."""
    links = [Link(href=str(request.url), rel="self", type=media_type)]
    if page.limit is None:
        return links
    start, stop = page.slice(matched)
    if stop < matched:
        href = request.url.include_query_params(offset=stop, limit=page.limit)
        links.append(Link(href=str(href), rel="next", type=media_type, title="next page"))
    if start > 0:
        prev = max(0, start - page.limit)
        href = request.url.include_query_params(offset=prev, limit=page.limit)
        links.append(Link(href=str(href), rel="prev", type=media_type, title="previous page"))
    return links


def paged_collection(
    request: Request,
    page: Page,
    rows: Sequence[int],
    encode: Callable[[list[int]], dict[str, Any]],
    media_type: str,
) -> dict[str, Any]:
    """The page of ``rows`` (the features matched, in order) as a feature collection:
    ``encode(rows of the page)`` with ``numberMatched``, ``numberReturned`` and the pages'
    ``links``."""
    start, stop = page.slice(len(rows))
    out = encode([int(i) for i in rows[start:stop]])
    out["numberMatched"] = len(rows)
    out["numberReturned"] = len(out["features"])
    out["links"] = [
        ln.model_dump(exclude_none=True) for ln in page_links(request, page, len(rows), media_type)
    ]
    return out
