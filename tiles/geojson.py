"""RFC 7946 feature collections of zones and communities; every feature has a stable ``id``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import shapely

from riskmap.geo import cells as h3c
from riskmap.geo.policy import Policy, hex_to_rgb
from riskmap.geo.zones import CommunityLayer, ZoneResult


def _iso(d: Any) -> str | None:
    if d is None or d is pd.NaT or (isinstance(d, float) and np.isnan(d)):
        return None
    return d.isoformat() if isinstance(d, dt.date) else str(d)


def _geometry(g: shapely.Geometry, precision: int = 7) -> dict[str, Any]:
    # shapely's GeoJSON writer keeps polygon rings in their stored order; RFC 7946 asks for
    # counter-clockwise exteriors, which orient_polygons gives.
    g = shapely.set_precision(g, 10**-precision)  # may reorder rings: orient after it
    g = shapely.orient_polygons(g) if hasattr(shapely, "orient_polygons") else g
    return json.loads(shapely.to_geojson(g))


def zones_geojson(result: ZoneResult, level: str | None = None) -> dict[str, Any]:
    feats = []
    for z in result.zones.itertuples(index=False):
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
                    "start": _iso(z.start),
                    "last_case": _iso(z.last_case),
                    "expected_lift": _iso(z.expected_lift),
                    "community_count": int(z.community_count),
                    "community_ids": list(z.community_ids),
                    "population": None
                    if z.population is None or pd.isna(z.population)
                    else int(z.population),
                    "h3_resolution": int(z.h3_resolution),
                    "cells": h3c.cells_to_hex(z.cells),
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def communities_geojson(layer: CommunityLayer, result: ZoneResult) -> dict[str, Any]:
    policy: Policy = result.policy
    lv = result.levels
    f = layer.frame
    geoms = [_geometry(g) for g in f.geometry.to_numpy()]
    colors = {lvl.id: lvl.color for lvl in policy.levels} | {"none": policy.none_color}
    feats = []
    for i, g in enumerate(geoms):
        level = lv["level"].iat[i]
        pop = f["population"].iat[i] if "population" in f else None
        feats.append(
            {
                "type": "Feature",
                "id": layer.ids[i],
                "geometry": g,
                "properties": {
                    "id": layer.ids[i],
                    "name": None if pd.isna(f["name"].iat[i]) else f["name"].iat[i],
                    "population": None if pop is None or pd.isna(pop) else int(pop),
                    "subdistrict_id": _none(f["subdistrict_id"].iat[i]),
                    "district_id": _none(f["district_id"].iat[i]),
                    "level": level,
                    "label": policy.level(level).label if level != "none" else "No risk zone",
                    "color": colors[level],
                    "fill": [*hex_to_rgb(colors[level]), 170 if level != "none" else 40],
                    "zone_id": _none(lv["zone_id"].iat[i]),
                    "since": _iso(lv["since"].iat[i]),
                    "expected_lift": _iso(lv["expected_lift"].iat[i]),
                    "policy": policy.id,
                    "at": result.at.isoformat(),
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _none(v: Any) -> Any:
    return None if v is None or pd.isna(v) else v


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
                "name": _none(names.get(u.district_id)),
                "community_count": int(u.community_count),
                "population": int(pops[u.district_id])
                if u.district_id in pops
                else None
                if u.population is None or pd.isna(u.population)
                else int(u.population),
            },
        }
        for u in units.itertuples(index=False)
    ]
    return {"type": "FeatureCollection", "features": feats}
