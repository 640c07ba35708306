"""What the planner map shows besides its layers: residents under each level day by day (the
page's panel), community search by name, and the data a standalone map embeds
(``riskmap export map``).

The public sees zones at the precision of their rule (:mod:`geo.precision`): for a rule whose
levels are drawn finer than a community, residents are counted per *community* (a community
counts whole under the highest level on any part of it, as the public communities layer shows
it), never by the area of a circle around a home.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import shapely

from riskmap.geo.history import base_rank
from riskmap.geo.measures import population_under_levels
from riskmap.geo.policy import NONE_LEVEL
from riskmap.geo.zones import CommunityLayer, ZoneResult, to_day

#: coordinates of an exported map are rounded to this many decimals (about 1 m)
EXPORT_DECIMALS = 5


def population_by_level(
    result: ZoneResult,
    layer: CommunityLayer,
    start: dt.date,
    end: dt.date,
    *,
    per_community: bool,
) -> pd.DataFrame:
    """Residents under each level of the rule on each day ``start .. end`` (at most the
    result's date): columns date, level, label, population, area_weighted.

    ``per_community`` counts each community's residents whole under the level shown for it
    (the highest on any part of it); otherwise exact-geometry levels are area-weighted
    (:func:`geo.measures.population_under_levels`)."""
    if not per_community:
        return population_under_levels(result, layer, start, end)
    if end > result.at:
        raise ValueError(f"end {end} is after the result's as-of date {result.at}")
    if start > end:
        raise ValueError(f"the first date {start} is after the last date {end}")
    assert result.rank_grid is not None
    policy = result.policy
    pop = np.nan_to_num(layer.population)
    base = base_rank(result, True)
    rows = []
    day = start
    while day <= end:
        t = to_day(day) - result.day0
        if t < 0:
            ranks = np.full(len(layer), base, dtype=np.int64)
        else:
            ranks = result.rank_grid[:, min(t, result.at_index)].astype(np.int64)
        per_rank = np.bincount(ranks, weights=pop, minlength=len(policy.levels) + 1)
        for lv in policy.levels:
            rows.append((day, lv.id, lv.label, float(per_rank[policy.rank(lv.id)]), False))
        day += dt.timedelta(days=1)
    return pd.DataFrame(rows, columns=["date", "level", "label", "population", "area_weighted"])


def search_communities(layer: CommunityLayer, query: str, limit: int) -> list[dict[str, Any]]:
    """Communities whose id or name matches ``query`` (case-insensitive): the same id first,
    then names equal to it, names starting with it, names holding it; at most ``limit``,
    each with a point inside it (lon, lat) to look its status up at."""
    q = query.strip().casefold()
    if not q or not len(layer):
        return []
    ids = pd.Series(layer.ids.astype(str)).str.casefold()
    if "name" in layer.frame:
        names = (
            layer.frame["name"].astype("string").fillna("").str.casefold().reset_index(drop=True)
        )
    else:
        names = pd.Series([""] * len(layer))
    score = np.full(len(layer), 9, dtype=np.int8)
    holds = names.str.contains(q, regex=False).to_numpy()
    score[holds] = 3
    score[names.str.startswith(q).to_numpy()] = 2
    score[(names == q).to_numpy()] = 1
    score[(ids == q).to_numpy()] = 0
    found = np.flatnonzero(score < 9)
    found = found[np.lexsort((names.to_numpy()[found], score[found]))][:limit]
    points = shapely.point_on_surface(np.asarray(layer.geoms)[found])
    out = []
    for i, p in zip(found.tolist(), points, strict=True):
        name = layer.frame["name"].iat[i] if "name" in layer.frame else None
        district = layer.frame["district_id"].iat[i] if "district_id" in layer.frame else None
        out.append(
            {
                "id": str(layer.ids[i]),
                "name": None if pd.isna(name) else str(name),
                "district_id": None if district is None or pd.isna(district) else str(district),
                "lon": round(float(p.x), 6),
                "lat": round(float(p.y), 6),
            }
        )
    return out


# ---- the data of a standalone map -----------------------------------------------------------


def _coords(geom: shapely.Geometry) -> dict[str, Any]:
    rounded = shapely.set_precision(geom, 10**-EXPORT_DECIMALS)
    return shapely.geometry.mapping(rounded if not rounded.is_empty else geom)


def _text(v: Any) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def embedded_data(
    layer: CommunityLayer,
    districts: Any,
    days: dict[dt.date, ZoneResult],
    population: pd.DataFrame,
) -> dict[str, Any]:
    """The data of a standalone map: the communities' outlines once (id, name, district,
    population), the district outlines once, each distinct zone once, and per day the rank of
    every community, its zone and since date, the zones drawn that day and the residents under
    each level. ``days``: the zones of each date (the view to publish); ``population``: as
    :func:`population_by_level` answers for those dates."""
    f = layer.frame
    names = f["name"] if "name" in f else pd.Series([None] * len(f))
    dist = f["district_id"] if "district_id" in f else pd.Series([None] * len(f))
    communities = [
        {
            "type": "Feature",
            "id": str(cid),
            "geometry": _coords(g),
            "properties": {
                "id": str(cid),
                "name": _text(n),
                "district_id": _text(d),
                "population": None if np.isnan(p) else int(p),
            },
        }
        for cid, g, n, d, p in zip(
            layer.ids, layer.geoms, names, dist, layer.population, strict=True
        )
    ]
    district_features = [
        {
            "type": "Feature",
            "id": str(row.id),
            "geometry": _coords(row.geometry),
            "properties": {"id": str(row.id), "name": _text(row.name)},
        }
        for row in districts.itertuples(index=False)
    ]
    zones: dict[str, dict[str, Any]] = {}
    per_day: dict[str, dict[str, Any]] = {}
    for day, r in days.items():
        policy = r.policy
        lv = r.levels
        ranks = [policy.rank(str(v)) for v in lv["level"]]
        # community position -> [zone id, since] for the communities in a zone
        info: dict[str, list[str | None]] = {}
        for i, (level, zone, since) in enumerate(
            zip(lv["level"], lv["zone_id"], lv["since"], strict=True)
        ):
            if level != NONE_LEVEL:
                info[str(i)] = [_text(zone), _text(since)]
        keys = []
        for z in r.zones.itertuples(index=False):
            key = hashlib.sha1(
                f"{z.zone_id}|{z.level}|{_text(z.start)}".encode() + shapely.to_wkb(z.geometry)
            ).hexdigest()[:16]
            if key not in zones:
                zones[key] = {
                    "type": "Feature",
                    "id": str(z.zone_id),
                    "geometry": _coords(z.geometry),
                    "properties": {
                        "id": str(z.zone_id),
                        "level": str(z.level),
                        "label": str(z.label),
                        "rank": policy.rank(str(z.level)),
                        "start": _text(z.start),
                        "community_count": None
                        if pd.isna(z.community_count)
                        else int(z.community_count),
                        "population": None if pd.isna(z.population) else int(z.population),
                    },
                }
            keys.append(key)
        pop = population[population["date"] == day]
        per_day[day.isoformat()] = {
            "ranks": ranks,
            "info": info,
            "zones": keys,
            "population": {
                str(lvl): round(float(n))
                for lvl, n in zip(pop["level"], pop["population"], strict=True)
            },
        }
    return {
        "communities": {"type": "FeatureCollection", "features": communities},
        "districts": {"type": "FeatureCollection", "features": district_features},
        "zones": zones,
        "days": per_day,
    }


#: longest period of an exported map (days) and the size above which it is refused (MB)
MAX_EXPORT_DAYS = 92
MAX_EXPORT_MB = 150.0


def standalone_map(
    layer: CommunityLayer,
    districts: Any,
    days: dict[dt.date, ZoneResult],
    population: pd.DataFrame,
    *,
    rule: dict[str, Any],
    view: dict[str, float],
) -> dict[str, Any]:
    """The configuration of a standalone map (:func:`tiles.deck.standalone_page`): the rule
    (:func:`tiles.deck.rule_info` of the period), the view and the embedded data."""
    if len(days) > MAX_EXPORT_DAYS:
        raise ValueError(f"{len(days)} days: an exported map holds at most {MAX_EXPORT_DAYS}")
    first = min(days).isoformat()
    return {
        "source": "embedded",
        "rule": rule["id"],
        "at": max(days).isoformat() if days else first,
        "rules": [rule],
        "view": view,
        "basemap": None,
        "data": embedded_data(layer, districts, days, population),
    }
