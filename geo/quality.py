"""Quality flags of case locations: accepted locations that deserve a look (outside every
community, an area's centroid, coarse coordinates, a coordinate shared by many cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from riskmap.geo.zones import CommunityLayer

__all__ = ["CENTROID_DISTANCE_M", "REPEATED_MIN_CASES", "location_flags"]

REPEATED_MIN_CASES = 10  # a coordinate shared by this many cases is flagged
CENTROID_DISTANCE_M = 100.0  # a location this close to an area's centroid is flagged


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
    centres = []
    for parent in ("district", "subdistrict"):
        units = layer.parent_units(parent)
        if len(units):
            centres.append(shapely.centroid(units.geometry.to_numpy()))
    if centres:
        pts = np.concatenate(centres)
        mx, my = layer.to_metric.transform(shapely.get_x(pts), shapely.get_y(pts))
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
