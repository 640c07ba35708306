"""A small generated city and its zones, shared by the tile tests (built once per session)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from riskmap.data.generator import generate_city
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from riskmap.tiles.collections import communities_frame, districts_frame, zones_frame
from riskmap.tiles.mvt import MercatorGeometries, TileLayer
from tests.tiles.helpers import City

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="session")
def city() -> City:
    c = generate_city(seed=1, communities=300, cases=800, days=30, end=END)
    layer = CommunityLayer(c.communities, 10)
    cs = c.cases.copy()
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    result = compute_zones(layer, cs, load_policy("cn-three-zone"), END)
    # the district units as the store states them (names, populations)
    stated = pd.DataFrame(
        {
            "unit_id": c.districts["district_id"],
            "level": "district",
            "name": c.districts["name"],
            "population": c.districts["population"],
        }
    )
    zones, comms = zones_frame(result), communities_frame(layer, result)
    dists = districts_frame(layer, stated)
    shared = MercatorGeometries.from_wgs84(layer.geoms)  # as the service shares it per version
    return City(
        layer,
        result,
        zones,
        comms,
        dists,
        {
            "zones": TileLayer("zones", zones),
            "communities": TileLayer("communities", comms, geometry=shared),
            "districts": TileLayer("districts", dists),
        },
    )
