"""Map layers: GeoJSON feature collections and the pydeck planner map (no FastAPI here)."""

from riskmap.tiles.deck import DECK_BUNDLE, planner_deck, planner_page
from riskmap.tiles.geojson import communities_geojson, districts_geojson, zones_geojson

__all__ = [
    "DECK_BUNDLE",
    "communities_geojson",
    "districts_geojson",
    "planner_deck",
    "planner_page",
    "zones_geojson",
]
