"""Map layers: GeoJSON encoding and the planner deck, without the API."""

from __future__ import annotations

import json

import shapely
import shapely.geometry

from riskmap.geo import cells as h3c
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from riskmap.tiles import (
    communities_geojson,
    districts_geojson,
    planner_deck,
    planner_page,
    zones_geojson,
)
from tests.geo.scenario import D0, cases
from tests.helpers import squares


def _result():  # type: ignore[no-untyped-def]
    layer = CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 9000, 0, 500, "D2")]), 10
    )
    cs = cases(("k1", 0, "confirmed", "residence", 250, 250))
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    return layer, compute_zones(layer, cs, load_policy("cn-three-zone"), D0)


def test_zones_geojson_is_rfc7946() -> None:
    _, result = _result()
    fc = zones_geojson(result)
    assert fc["type"] == "FeatureCollection"
    sealed = [f for f in fc["features"] if f["properties"]["level"] == "sealed"][0]
    assert sealed["id"] == sealed["properties"]["id"] == "sealed-A"
    ring = sealed["geometry"]["coordinates"][0]
    assert shapely.LinearRing(ring).is_ccw  # exterior rings counter-clockwise
    assert sealed["properties"]["fill"][:3] == [0xC0, 0x39, 0x2B]
    assert sealed["properties"]["h3_resolution"] == 10
    assert "cells" not in sealed["properties"]  # the map layer leaves the cells out
    json.dumps(fc)  # plain JSON
    # riskmap zones keeps them in its files: the zone's cells, compacted, as hex
    with_cells = zones_geojson(result, cells=True)["features"]
    got = {f["id"]: f["properties"]["cells"] for f in with_cells}
    for z in result.zones.itertuples(index=False):
        assert got[z.zone_id] == h3c.cells_to_hex(z.cells) and got[z.zone_id]
    only = zones_geojson(result, "controlled")
    assert {f["properties"]["level"] for f in only["features"]} == {"controlled"}


def test_published_geometry_is_the_exact_geometry() -> None:
    """Regression: coordinates were rounded to 7 decimals, moving vertices by up to 5 mm
    inwards as often as outwards, so a home on the corner of its sealed community fell outside
    the published zone while its status said sealed. They are now written unrounded."""
    layer = CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 9000, 0, 500, "D2")]), 10
    )
    # homes on a corner of A (shared with B) and on the far corner of B
    cs = cases(
        ("k1", 0, "confirmed", "residence", 500, 500), ("k2", 0, "confirmed", "residence", 1000, 0)
    )
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    result = compute_zones(layer, cs, load_policy("cn-three-zone"), D0)
    homes = shapely.points(cs[["lon", "lat"]].to_numpy())
    fc = zones_geojson(result)
    assert len(fc["features"]) == len(result.zones) > 0
    sealed = [f for f in fc["features"] if f["properties"]["level"] == "sealed"]
    assert shapely.intersects(shapely.geometry.shape(sealed[0]["geometry"]), homes).all()
    for f, exact in zip(fc["features"], result.zones.geometry, strict=True):
        pub = shapely.geometry.shape(f["geometry"])
        # every vertex of the exact zone, and every home it holds, lies in the published zone
        assert shapely.intersects(pub, shapely.points(shapely.get_coordinates(exact))).all()
        assert (shapely.intersects(pub, homes) == shapely.intersects(exact, homes)).all()
        assert shapely.equals_exact(shapely.normalize(pub), shapely.normalize(exact), 0)
    # the other layers too
    layers = [
        (communities_geojson(layer, result), layer.frame.geometry),
        (districts_geojson(layer), layer.parent_units("district").geometry),
    ]
    for got, want in layers:
        for f, exact in zip(got["features"], want, strict=True):
            pub = shapely.normalize(shapely.geometry.shape(f["geometry"]))
            assert shapely.equals_exact(pub, shapely.normalize(exact), 0)


def test_communities_and_districts_layers() -> None:
    layer, result = _result()
    fc = communities_geojson(layer, result)
    levels = {f["id"]: f["properties"]["level"] for f in fc["features"]}
    assert levels == {"A": "sealed", "B": "controlled", "F": "none"}
    none = [f for f in fc["features"] if f["id"] == "F"][0]["properties"]
    assert none["zone_id"] is None and none["since"] is None and none["fill"][3] == 40
    districts = districts_geojson(layer)
    assert sorted(f["id"] for f in districts["features"]) == ["D1", "D2"]


def test_planner_deck_and_page_load_nothing_from_outside() -> None:
    deck = planner_deck(
        communities_url="/c", zones_url="/z", districts_url="/d", center=(114.3, 30.6)
    )
    spec = json.loads(deck.to_json())
    assert [layer["id"] for layer in spec["layers"]] == ["communities", "zones", "districts"]
    assert spec["layers"][1]["filled"] is False and "mapStyle" not in spec
    page = planner_page(
        deck,
        title="t",
        bundle_url="/static/deckgl.js",
        legend=[{"color": "#c0392b", "label": "Sealed zone"}],
    )
    assert "http://" not in page and "https://" not in page
    assert '<script src="/static/deckgl.js">' in page and "Sealed zone" in page
    assert '<script src="/static/map.js">' in page


def test_planner_page_escapes_everything_and_inlines_no_script() -> None:
    import re

    from riskmap.tiles.deck import TOOLTIP, json_for_html

    hostile = "</script><script>alert(1)</script><!--<img src=x onerror=alert(2)>&amp;"
    deck = planner_deck(
        communities_url=f"/c?x={hostile}", zones_url="/z", districts_url="/d", center=(0, 0)
    )
    page = planner_page(
        deck,
        title=hostile,
        subtitle=hostile,
        bundle_url="/static/deckgl.js",
        legend=[{"color": '#fff"><script>alert(3)</script>', "label": hostile}],
    )
    assert "<img" not in page and "<!--<" not in page and "alert(3)</script>" not in page
    # every <script> is either a served file or the JSON data block; the block holds no "<"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [a for a, _ in scripts] == [
        ' src="/static/deckgl.js"',
        ' type="application/json" id="deck-config"',
        ' src="/static/map.js"',
    ]
    block = scripts[1][1]
    assert "<" not in block and ">" not in block and "&" not in block
    config = json.loads(block)  # what the browser's JSON.parse reads back: the exact values
    assert config["deck"]["layers"][0]["data"] == f"/c?x={hostile}"
    assert config["tooltip"] == TOOLTIP and "html" not in TOOLTIP  # text, never HTML
    assert json.loads(json_for_html({"k": "a\u2028b</script>"})) == {"k": "a\u2028b</script>"}
    assert "style=" not in page  # no inline style either (the CSP allows none)
