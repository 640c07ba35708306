"""Metric projections: distances are measured in metres in a local azimuthal equidistant CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from pyproj import CRS

WGS84 = CRS.from_epsg(4326)


def local_metric_crs(lon: float, lat: float) -> CRS:
    """Azimuthal equidistant CRS centred on (lon, lat): exact distances from the centre and
    distortion below 0.1% within a few hundred km of it."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"centre ({lon}, {lat}) is not a lon/lat position")
    return CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"
    )


def metric_crs_for(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> CRS:
    """The local metric CRS centred on the bounding box of lon/lat data."""
    if len(gdf) == 0:
        return local_metric_crs(0.0, 0.0)
    minx, miny, maxx, maxy = gdf.total_bounds
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        return local_metric_crs(0.0, 0.0)
    return local_metric_crs(float((minx + maxx) / 2), float((miny + maxy) / 2))
