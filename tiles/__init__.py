"""Map layers: GeoJSON feature collections, vector tiles (MVT), TileJSON, the PMTiles export
and the pydeck planner map (no FastAPI here)."""

from riskmap.tiles.collections import (
    COLLECTIONS,
    COMMUNITIES,
    DISTRICTS,
    ZONES,
    Collection,
    communities_frame,
    districts_frame,
    zones_frame,
)
from riskmap.tiles.deck import DECK_BUNDLE, planner_page, rule_info, standalone_page
from riskmap.tiles.export import ExportSummary, export_pmtiles
from riskmap.tiles.geojson import communities_geojson, districts_geojson, zones_geojson
from riskmap.tiles.mvt import (
    MVT_MEDIA_TYPE,
    TILE_MATRIX_SET,
    MercatorGeometries,
    TileCache,
    TileLayer,
    TileNotFound,
    check_tile,
    encode_tile,
    feature_ids,
    gzip_tile,
    prerender,
    tiles_over,
)
from riskmap.tiles.tilejson import TileJSON, tile_url, tilejson

__all__ = [
    "COLLECTIONS",
    "COMMUNITIES",
    "DECK_BUNDLE",
    "DISTRICTS",
    "MVT_MEDIA_TYPE",
    "TILE_MATRIX_SET",
    "ZONES",
    "Collection",
    "ExportSummary",
    "MercatorGeometries",
    "TileCache",
    "TileJSON",
    "TileLayer",
    "TileNotFound",
    "check_tile",
    "communities_frame",
    "communities_geojson",
    "districts_frame",
    "districts_geojson",
    "encode_tile",
    "export_pmtiles",
    "feature_ids",
    "gzip_tile",
    "planner_page",
    "prerender",
    "rule_info",
    "standalone_page",
    "tile_url",
    "tilejson",
    "tiles_over",
    "zones_frame",
    "zones_geojson",
]
