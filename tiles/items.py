"""Pages of a collection as GeoJSON features (OGC API Features ``items``).

:func:`bbox_rows` picks the features of a :class:`tiles.mvt.TileLayer` that meet a bounding
box (through the layer's STRtree, in Web Mercator: a longitude/latitude box is a box there
too); :func:`features` writes some rows of a collection's frame (:mod:`tiles.collections`) as
RFC 7946 features, with the properties as plain JSON values (a missing value is ``null``).
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from riskmap.geo.crs import WGS84
from riskmap.tiles.mvt import WORLD, TileLayer, _plain

BBox = tuple[float, float, float, float]  # (west, south, east, north), WGS84 degrees
_TO_MERCATOR = Transformer.from_crs(WGS84, "EPSG:3857", always_xy=True)


def bbox_rows(layer: TileLayer, bbox: BBox | None = None) -> NDArray[np.int64]:
    """Rows of ``layer`` (in frame order) whose geometry meets ``bbox``; every row when
    ``bbox`` is None."""
    if bbox is None:
        return np.arange(len(layer), dtype=np.int64)
    if not len(layer):
        return np.empty(0, dtype=np.int64)
    w, s, e, n = bbox
    s, n = max(s, WORLD[1]), min(n, WORLD[3])
    if s > n:
        return np.empty(0, dtype=np.int64)
    x0, y0 = _TO_MERCATOR.transform(w, s)
    x1, y1 = _TO_MERCATOR.transform(e, n)
    rows = layer.geometry.tree.query(shapely.box(x0, y0, x1, y1), predicate="intersects")
    return np.sort(np.asarray(rows, dtype=np.int64))


def _json_value(v: Any) -> Any:
    """A property value as JSON writes it: as in tiles (:func:`tiles.mvt._plain`), with whole
    numbers as integers (a column with a missing value is float in pandas)."""
    p = _plain(v)
    return int(p) if isinstance(p, float) and p.is_integer() else p


def features(frame: gpd.GeoDataFrame, rows: NDArray[np.int64]) -> list[dict[str, Any]]:
    """Rows ``rows`` of a collection frame (``id`` column, properties, geometry in WGS84) as
    GeoJSON features: ``id`` is the string id, exterior rings counter-clockwise (RFC 7946)."""
    if not len(rows):
        return []
    geoms = shapely.orient_polygons(frame.geometry.to_numpy()[rows])
    geojson = shapely.to_geojson(geoms)
    cols = [c for c in frame.columns if c != frame.geometry.name]
    values = frame[cols].iloc[rows].to_numpy(dtype=object)
    out = []
    for g, vals in zip(geojson, values, strict=True):
        props = {c: _json_value(v) for c, v in zip(cols, vals, strict=True)}
        out.append(
            {
                "type": "Feature",
                "id": props["id"],
                "geometry": json.loads(g),
                "properties": props,
            }
        )
    return out
