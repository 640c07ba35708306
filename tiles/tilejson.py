"""TileJSON 3.0.0 of a collection's vector tiles (as titiler: a pydantic model)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import urlencode

from pydantic import BaseModel, Field

from riskmap.tiles.collections import Collection
from riskmap.tiles.mvt import TILE_MATRIX_SET, WORLD, Merge

MINZOOM = 0
MAXZOOM = 14  # z14 tile units are about 0.6 m at 30 degrees of latitude: clients overzoom beyond


class VectorLayer(BaseModel):
    id: str
    fields: dict[str, str]
    description: str | None = None
    minzoom: int | None = None
    maxzoom: int | None = None


class TileJSON(BaseModel):
    """https://github.com/mapbox/tilejson-spec/tree/master/3.0.0"""

    tilejson: str = "3.0.0"
    tiles: list[str]
    vector_layers: list[VectorLayer]
    name: str | None = None
    description: str | None = None
    version: str | None = None
    attribution: str | None = None
    scheme: str = "xyz"
    bounds: list[float] = Field(default_factory=lambda: list(WORLD))
    center: list[float] | None = None
    minzoom: int = MINZOOM
    maxzoom: int = MAXZOOM


def tile_url(base_url: str, collection_id: str, query: Mapping[str, str] | None = None) -> str:
    """The ``{z}/{x}/{y}`` URL template of a collection's tiles under ``base_url`` (the
    service's root URL as the client reached it), with ``query`` (rule, date) appended so
    that every tile is of the same snapshot as the TileJSON."""
    root = base_url.rstrip("/")
    url = f"{root}/collections/{collection_id}/tiles/{TILE_MATRIX_SET}/{{z}}/{{x}}/{{y}}"
    q = {k: v for k, v in (query or {}).items() if v is not None}
    return f"{url}?{urlencode(q)}" if q else url


def fit_zoom(bounds: tuple[float, float, float, float], minzoom: int, maxzoom: int) -> int:
    """The highest zoom at which the width of ``bounds`` fits in one tile, within
    ``minzoom..maxzoom``."""
    w, s, e, n = bounds
    span = max(e - w, 1e-9)
    z = math.floor(math.log2(360.0 / span))
    return max(minzoom, min(maxzoom, z))


def tilejson(
    collection: Collection,
    base_url: str,
    bounds: tuple[float, float, float, float],
    *,
    query: Mapping[str, str] | None = None,
    minzoom: int = MINZOOM,
    maxzoom: int = MAXZOOM,
    name: str | None = None,
    attribution: str | None = None,
    merge: Merge | None = None,
) -> TileJSON:
    """TileJSON of ``collection``: ``tiles`` under ``base_url`` (+ ``query``), the data's
    ``bounds`` (west, south, east, north in degrees), its centre at the zoom that fits them,
    and one vector layer named after the collection with its fields (``merge``: how the
    tiles merge features below a zoom, said in the layer's description, with its count
    field)."""
    if not 0 <= minzoom <= maxzoom <= 24:
        raise ValueError(f"zooms must satisfy 0 <= minzoom <= maxzoom <= 24: {minzoom}, {maxzoom}")
    w, s, e, n = (float(v) for v in bounds)
    if not (w <= e and s <= n):  # no data
        w, s, e, n = WORLD
    fields = dict(collection.fields)
    described = collection.description
    if merge is not None and merge.below > minzoom:
        fields[merge.count] = "Number"
        described += (
            f" Below zoom {merge.below}: one feature per {merge.by} (its features merged, id"
            f" 'merged:<{merge.by}>', properties {', '.join((merge.by, *merge.keep))} and"
            f" {merge.count}, the number merged)."
        )
    return TileJSON(
        tiles=[tile_url(base_url, collection.id, query)],
        vector_layers=[
            VectorLayer(
                id=collection.id,
                fields=fields,
                description=described,
                minzoom=minzoom,
                maxzoom=maxzoom,
            )
        ],
        name=name or collection.title,
        description=collection.description,
        attribution=attribution,
        bounds=[w, s, e, n],
        center=[(w + e) / 2, (s + n) / 2, fit_zoom((w, s, e, n), minzoom, maxzoom)],
        minzoom=minzoom,
        maxzoom=maxzoom,
    )
