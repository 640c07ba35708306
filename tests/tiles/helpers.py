"""Helpers shared by the tile tests (imported, never through conftest)."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd

from riskmap.geo.zones import CommunityLayer, ZoneResult
from riskmap.tiles.mvt import TileLayer


@dataclass
class City:
    layer: CommunityLayer
    result: ZoneResult
    zones: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    districts: gpd.GeoDataFrame
    tiles: dict[str, TileLayer]
