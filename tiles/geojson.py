"""RFC 7946 feature collections of zones and communities; every feature has a stable ``id``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import shapely

from riskmap.geo import cells as h3c
from riskmap.geo._values import int_or_none, iso_date, or_none
from riskmap.geo.policy import NONE_LEVEL, Policy, hex_to_rgb
from riskmap.geo.zones import CommunityLayer, ZoneResult


def _geometry(g: shapely.Geometry) -> dict[str, Any]:
    # Coordinates are written unrounded (shapely writes the shortest decimal that reads back
    # as the same double): the published polygon is the very polygon the status answer tests,
    # so a point is in a published zone exactly when status says so. Rounding to 7 decimals
    # moved vertices by up to 5 mm, inwards as often as outwards (a home on its zone's edge fell
    # outside it); rounding outwards would instead publish slivers that status answers as
    # outside the zone.
    # shapely's GeoJSON writer keeps polygon rings in their stored order; RFC 7946 asks for
    # counter-clockwise exteriors, which orient_polygons gives.
    g = shapely.orient_polygons(g) if hasattr(shapely, "orient_polygons") else g
    return json.loads(shapely.to_geojson(g))


def zones_geojson(
    result: ZoneResult,
    level: str | None = None,
    rows: Sequence[int] | None = None,
    *,
    cells: bool = False,
) -> dict[str, Any]:
    """The zones (only those of ``level``; only rows ``rows`` of ``result.zones``, in that
    order, when given). ``cells``: add each zone's H3 cells (compacted, hex) as the property
    ``cells`` (files of ``riskmap zones``; the map layers leave them out: they were most of
    the layer's bytes, and devices get cells made for them from ``GET /v1/zones/cells``)."""
    feats = []
    zones = result.zones if rows is None else result.zones.iloc[list(rows)]
    for z in zones.itertuples(index=False):
        if level is not None and z.level != level:
            continue
        feats.append(
            {
                "type": "Feature",
                "id": z.zone_id,
                "geometry": _geometry(z.geometry),
                "properties": {
                    "id": z.zone_id,
                    "level": z.level,
                    "label": z.label,
                    "color": z.color,
                    "fill": [*hex_to_rgb(z.color), 150],
                    "policy": result.policy.id,
                    "at": result.at.isoformat(),
                    "start": iso_date(z.start),
                    "last_case": iso_date(z.last_case),
                    "expected_lift": iso_date(z.expected_lift),
                    "community_count": int(z.community_count),
                    "community_ids": list(z.community_ids),
                    "population": int_or_none(z.population),
                    "h3_resolution": int(z.h3_resolution),
                },
            }
        )
        if cells:
            feats[-1]["properties"]["cells"] = h3c.cells_to_hex(z.cells)
    return {"type": "FeatureCollection", "features": feats}


def communities_geojson(
    layer: CommunityLayer, result: ZoneResult, rows: Sequence[int] | None = None
) -> dict[str, Any]:
    """The communities with their level (only rows ``rows`` of the layer, in that order,
    when given)."""
    policy: Policy = result.policy
    lv = result.levels
    f = layer.frame
    picked = range(len(f)) if rows is None else [int(i) for i in rows]
    all_geoms = f.geometry.to_numpy()
    colors = {lvl.id: lvl.color for lvl in policy.levels} | {NONE_LEVEL: policy.none_color}
    feats = []
    for i in picked:
        g = _geometry(all_geoms[i])
        level = lv["level"].iat[i]
        pop = f["population"].iat[i] if "population" in f else None
        feats.append(
            {
                "type": "Feature",
                "id": layer.ids[i],
                "geometry": g,
                "properties": {
                    "id": layer.ids[i],
                    "name": or_none(f["name"].iat[i]),
                    "population": int_or_none(pop),
                    "subdistrict_id": or_none(f["subdistrict_id"].iat[i]),
                    "district_id": or_none(f["district_id"].iat[i]),
                    "level": level,
                    "label": policy.label(level),
                    "color": colors[level],
                    "fill": [*hex_to_rgb(colors[level]), 170 if level != NONE_LEVEL else 40],
                    "zone_id": or_none(lv["zone_id"].iat[i]),
                    "since": iso_date(lv["since"].iat[i]),
                    "expected_lift": iso_date(lv["expected_lift"].iat[i]),
                    "policy": policy.id,
                    "at": result.at.isoformat(),
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def districts_geojson(layer: CommunityLayer, stated: pd.DataFrame | None = None) -> dict[str, Any]:
    """District outlines (unions of their communities) with their names and populations as
    stated by the store's parent units (``stated``), else the sum of their communities'."""
    units = layer.parent_units("district")
    names: dict[str, Any] = {}
    pops: dict[str, Any] = {}
    if stated is not None and len(stated):
        own = stated[stated["level"] == "district"]
        names = dict(zip(own["unit_id"], own["name"], strict=True))
        pops = {u: p for u, p in zip(own["unit_id"], own["population"], strict=True) if pd.notna(p)}
    feats = [
        {
            "type": "Feature",
            "id": u.district_id,
            "geometry": _geometry(u.geometry),
            "properties": {
                "id": u.district_id,
                "name": or_none(names.get(u.district_id)),
                "community_count": int(u.community_count),
                "population": int_or_none(pops.get(u.district_id, u.population)),
            },
        }
        for u in units.itertuples(index=False)
    ]
    return {"type": "FeatureCollection", "features": feats}
