"""The map's collections (zones, communities, districts) as flat GeoDataFrames.

One row per feature: ``id`` (the stable public id), the collection's properties as plain
scalars (never lists: no ``cells``, no ``community_ids``) and ``geometry`` in EPSG:4326. These
frames feed the vector tiles (:mod:`tiles.mvt`), the PMTiles export and TileJSON's
``vector_layers`` (the ``fields`` of each :class:`Collection`). Missing values stay missing
(``None``): a tile leaves the property out rather than writing an empty one.

The frames are built from whatever result they are given: the routes pass the public result
(:func:`geo.precision.public_result`), never the exact one of a building-level rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from riskmap.geo.crs import WGS84
from riskmap.geo.policy import NONE_LEVEL
from riskmap.geo.zones import CommunityLayer, ZoneResult
from riskmap.tiles.mvt import Merge, dense_minzoom


@dataclass(frozen=True)
class Collection:
    """A map layer as OGC API and TileJSON describe it: the layer name in tiles is ``id``."""

    id: str
    title: str
    description: str
    # property name -> TileJSON type ("String", "Number", "Boolean")
    fields: dict[str, str]


ZONES = Collection(
    "zones",
    "Risk zones",
    "Zones of the rule in force on the date: one feature per zone (its cells are served apart).",
    {
        "id": "String",
        "level": "String",
        "label": "String",
        "rank": "Number",
        "color": "String",
        "drawn": "String",
        "policy": "String",
        "at": "String",
        "start": "String",
        "last_case": "String",
        "expected_lift": "String",
        "community_count": "Number",
        "population": "Number",
    },
)
COMMUNITIES = Collection(
    "communities",
    "Communities",
    "Communities with the level shown for each on the date (none: in no zone).",
    {
        "id": "String",
        "name": "String",
        "population": "Number",
        "district_id": "String",
        "level": "String",
        "label": "String",
        "rank": "Number",
        "color": "String",
        "zone_id": "String",
        "since": "String",
        "expected_lift": "String",
    },
)
DISTRICTS = Collection(
    "districts",
    "Districts",
    "District outlines (unions of their communities) with their names.",
    {"id": "String", "name": "String", "population": "Number"},
)
COLLECTIONS: dict[str, Collection] = {c.id: c for c in (ZONES, COMMUNITIES, DISTRICTS)}


def _date(v: Any) -> str | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def _int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _str(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def _frame(rows: dict[str, list[Any]], geoms: Any, collection: Collection) -> gpd.GeoDataFrame:
    assert list(rows) == list(collection.fields), "columns must follow the collection's fields"
    return gpd.GeoDataFrame(rows, geometry=list(geoms), crs=WGS84)


def zones_frame(result: ZoneResult) -> gpd.GeoDataFrame:
    """One row per zone, highest level first (as :class:`ZoneResult` sorts them)."""
    z = result.zones
    policy = result.policy
    rows: dict[str, list[Any]] = {
        "id": [str(v) for v in z["zone_id"]],
        "level": [str(v) for v in z["level"]],
        "label": [str(v) for v in z["label"]],
        "rank": [policy.rank(v) for v in z["level"]],
        "color": [str(v) for v in z["color"]],
        "drawn": [str(v) for v in z["drawn"]],
        "policy": [policy.id] * len(z),
        "at": [result.at.isoformat()] * len(z),
        "start": [_date(v) for v in z["start"]],
        "last_case": [_date(v) for v in z["last_case"]],
        "expected_lift": [_date(v) for v in z["expected_lift"]],
        "community_count": [_int(v) for v in z["community_count"]],
        "population": [_int(v) for v in z["population"]],
    }
    return _frame(rows, z.geometry.to_numpy(), ZONES)


#: a large city's zones are drawn merged, one feature per level (tiles.mvt.Merge), at the
#: zooms where a tile over the city would hold more than this many of them on average
ZONE_TILE_FEATURES = 500


def zones_merge(frame: gpd.GeoDataFrame, per_tile: int = ZONE_TILE_FEATURES) -> Merge | None:
    """How the tiles of a zones frame merge its zones (one feature per level) at the zooms
    where a tile would hold more than ``per_tile`` of them; None when no zoom does."""
    if not len(frame):
        return None
    w, s, e, n = (float(v) for v in frame.total_bounds)
    below = dense_minzoom(len(frame), (w, s, e, n), per_tile)
    if below == 0:
        return None
    keep = ("label", "rank", "color", "policy", "at")
    return Merge(below, "level", keep=keep, count="zone_count", order="rank")


def communities_frame(layer: CommunityLayer, result: ZoneResult) -> gpd.GeoDataFrame:
    """One row per community of ``layer`` (same order), with its level on ``result.at``."""
    f = layer.frame
    lv = result.levels
    policy = result.policy
    levels = [str(v) for v in lv["level"]]
    n = len(f)
    name = f["name"] if "name" in f else pd.Series([None] * n)
    district = f["district_id"] if "district_id" in f else pd.Series([None] * n)
    rows: dict[str, list[Any]] = {
        "id": [str(v) for v in layer.ids],
        "name": [_str(v) for v in name],
        "population": [_int(v) for v in layer.population],
        "district_id": [_str(v) for v in district],
        "level": levels,
        "label": [policy.label(v) for v in levels],
        "rank": [policy.rank(v) for v in levels],
        "color": [policy.color(v) for v in levels],
        "zone_id": [_str(v) for v in lv["zone_id"]],
        "since": [
            None if lvl == NONE_LEVEL else _date(v)
            for v, lvl in zip(lv["since"], levels, strict=True)
        ],
        "expected_lift": [_date(v) for v in lv["expected_lift"]],
    }
    return _frame(rows, layer.geoms, COMMUNITIES)


def stated_units(stated: pd.DataFrame | None, level: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Names and populations (where stated) by unit id of the store's parent units of
    ``level`` (``stated``: columns ``unit_id``, ``level``, ``name``, ``population``)."""
    if stated is None or not len(stated):
        return {}, {}
    own = stated[stated["level"] == level]
    names = dict(zip(own["unit_id"], own["name"], strict=True))
    pops = {u: p for u, p in zip(own["unit_id"], own["population"], strict=True) if pd.notna(p)}
    return names, pops


def districts_frame(layer: CommunityLayer, stated: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """District outlines with the names and populations the store states for them
    (``stated``: the parent units, as for :func:`tiles.geojson.districts_geojson`), else the
    sum of their communities' populations and no name."""
    units = layer.parent_units("district")
    names, pops = stated_units(stated, "district")
    ids = [str(v) for v in units["district_id"]]
    rows: dict[str, list[Any]] = {
        "id": ids,
        "name": [_str(names.get(u)) for u in ids],
        "population": [
            _int(pops[u]) if u in pops else _int(p)
            for u, p in zip(ids, units["population"], strict=True)
        ],
    }
    return _frame(rows, units.geometry.to_numpy(), DISTRICTS)
