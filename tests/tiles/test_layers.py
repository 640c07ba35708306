"""Map layers: GeoJSON encoding and the planner map's pages, without the API."""

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
    planner_page,
    rule_info,
    standalone_page,
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


def test_planner_page_loads_nothing_from_outside() -> None:
    rule = rule_info(load_policy("cn-three-zone"), "2024-01-01", "2024-03-31")
    page = planner_page({"rules": [rule], "tiles": {"zones": "/z"}}, title="t")
    assert "http://" not in page and "https://" not in page
    assert '<script src="/static/deckgl.js">' in page and '<script src="/static/map.js">' in page
    assert '<link rel="stylesheet" href="/static/map.css"/>' in page


def test_rule_info_fills_and_exact_geometry() -> None:
    cn = rule_info(load_policy("cn-three-zone"), "2024-01-01", "2024-03-31")
    assert [lv["id"] for lv in cn["levels"]] == ["sealed", "controlled", "precaution"]
    assert cn["levels"][0]["fill"] == [0xC0, 0x39, 0x2B, 255] and cn["levels"][0]["rank"] == 3
    assert cn["none"]["fill"] == [0x95, 0xA5, 0xA6, 255] and cn["none"]["rank"] == 0
    assert cn["exact"] is False and (cn["first"], cn["last"]) == ("2024-01-01", "2024-03-31")
    # circles around homes: the zones are filled, communities only drawn in "no zone"
    assert rule_info(load_policy("india-containment"), "a", "b")["exact"] is True
    # over a base map the fills are see-through
    over = rule_info(load_policy("cn-three-zone"), "a", "b", basemap=True)
    assert over["levels"][0]["fill"][3] < 255


def test_planner_page_escapes_everything_and_inlines_no_script() -> None:
    import re

    from riskmap.tiles.deck import json_for_html

    hostile = "</script><script>alert(1)</script><!--<img src=x onerror=alert(2)>&amp;"
    page = planner_page({"rules": [], "name": hostile}, title=hostile, subtitle=hostile)
    assert "<img" not in page and "<!--<" not in page and "alert(1)</script>" not in page
    # every <script> is either a served file or the JSON data block; the block holds no "<"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [a for a, _ in scripts] == [
        ' src="/static/deckgl.js"',
        ' type="application/json" id="map-config"',
        ' src="/static/map.js"',
    ]
    block = scripts[1][1]
    assert "<" not in block and ">" not in block and "&" not in block
    assert json.loads(block)["name"] == hostile  # what the browser's JSON.parse reads back
    assert json.loads(json_for_html({"k": "a\u2028b</script>"})) == {"k": "a\u2028b</script>"}
    assert "style=" not in page  # no inline style either (the CSP allows none)


def test_standalone_page_holds_everything_and_allows_only_its_own_scripts() -> None:
    import base64
    import hashlib
    import html
    import re

    hostile = "</script><script>alert(1)</script>"
    page = standalone_page({"source": "embedded", "x": hostile}, title=hostile)
    assert "<script src=" not in page and '<link rel="stylesheet"' not in page
    assert "alert(1)</script>" not in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    inline = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(inline) == 2  # the deck.gl bundle and map.js
    for code in inline:
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "deck.MVTLayer" in inline[1] and len(inline[0]) > 1_000_000
