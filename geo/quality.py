"""Quality flags of case locations: accepted locations that deserve a look (outside every
community, an area's centroid, coarse coordinates, a coordinate shared by many cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from riskmap.geo.zones import CommunityLayer

__all__ = ["CENTROID_DISTANCE_M", "REPEATED_MIN_CASES", "location_flags", "parent_centroids"]

REPEATED_MIN_CASES = 10  # a coordinate shared by this many cases is flagged
CENTROID_DISTANCE_M = 100.0  # a location this close to an area's centroid is flagged


def parent_centroids(
    layer: CommunityLayer, parent: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The centroids (lon, lat) of the parent units (``district``, ``subdistrict``) of the
    communities: the area-weighted mean of their communities' centroids, which is the
    centroid of their union when the communities do not overlap, without computing the
    union (seconds for a city of 100,000 communities; this runs on every ingest)."""
    codes, uniq = layer.parent_codes(parent)
    ok = codes >= 0
    if not ok.any():
        return np.empty(0), np.empty(0)
    geoms = layer.geoms[ok]
    area = shapely.area(geoms)
    c = shapely.centroid(geoms)
    x, y = shapely.get_x(c), shapely.get_y(c)
    good = np.isfinite(x) & np.isfinite(y) & (area > 0)
    code, area = codes[ok][good], area[good]
    total = np.bincount(code, weights=area, minlength=len(uniq))
    has = total > 0
    cx = np.bincount(code, weights=area * x[good], minlength=len(uniq))[has] / total[has]
    cy = np.bincount(code, weights=area * y[good], minlength=len(uniq))[has] / total[has]
    return cx, cy


def location_flags(frame: pd.DataFrame, layer: CommunityLayer) -> list[str]:
    """Warnings for accepted locations that deserve a look: outside every community, an
    area's centroid, coarse coordinates, or a coordinate repeated by many cases (hospitals,
    airports, geocoder fall-backs make false hotspots)."""
    out: list[str] = []
    lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
    rows = frame["row"].to_numpy()
    outside = layer.locate(lon, lat) < 0
    for i in np.flatnonzero(outside):
        out.append(f"row {rows[i]}: ({lat[i]:g}, {lon[i]:g}) is outside every community (accepted)")
    coarse = (np.round(lat, 2) == lat) & (np.round(lon, 2) == lon)
    for i in np.flatnonzero(coarse):
        out.append(
            f"row {rows[i]}: ({lat[i]:g}, {lon[i]:g}) has 2 decimals or fewer "
            "(about 1 km): an area centroid? (accepted)"
        )
    centres = [parent_centroids(layer, parent) for parent in ("district", "subdistrict")]
    cx = np.concatenate([c[0] for c in centres])
    cy = np.concatenate([c[1] for c in centres])
    if len(cx):
        mx, my = layer.to_metric.transform(cx, cy)
        tree = shapely.STRtree(shapely.points(mx, my))
        x, y = layer.to_metric.transform(lon, lat)
        near, _ = tree.query(
            shapely.points(x, y), predicate="dwithin", distance=CENTROID_DISTANCE_M
        )
        for i in np.unique(near):
            out.append(
                f"row {rows[i]}: ({lat[i]:g}, {lon[i]:g}) is within {CENTROID_DISTANCE_M:g} m "
                "of the centroid of a district or subdistrict: an area centroid? (accepted)"
            )
    shared = frame.groupby(["lat", "lon"])["case_id"].nunique()
    for (la, lo), k in shared[shared >= REPEATED_MIN_CASES].items():
        out.append(
            f"({la:g}, {lo:g}) is a location of {k} cases: a hospital, an airport or a "
            "geocoder's fall-back? (accepted)"
        )
    return out
