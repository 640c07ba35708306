"""TileJSON 3.0.0 documents and the collections' frames."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import mapbox_vector_tile
import morecantile
import pytest

from riskmap.tiles.collections import COLLECTIONS, COMMUNITIES, ZONES
from riskmap.tiles.mvt import MAX_TILE_FEATURES, Merge, TileLayer, dense_minzoom, encode_tile
from riskmap.tiles.tilejson import tilejson
from tests.tiles.helpers import City

TMS = morecantile.tms.get("WebMercatorQuad")


def test_tilejson_fields(city: City) -> None:
    layer = city.tiles["communities"]
    doc = tilejson(
        COMMUNITIES,
        "http://example.test/riskmap/",
        layer.bounds,
        query={"policy": "cn-three-zone", "at": "2024-03-31", "skip": None},
        attribution="Health bureau",
    )
    d = json.loads(doc.model_dump_json(exclude_none=True))
    assert d["tilejson"] == "3.0.0" and d["scheme"] == "xyz"
    (url,) = d["tiles"]
    parts = urlsplit(url)
    assert parts.path == "/riskmap/collections/communities/tiles/WebMercatorQuad/{z}/{x}/{y}"
    assert parse_qs(parts.query) == {"policy": ["cn-three-zone"], "at": ["2024-03-31"]}
    assert d["bounds"] == pytest.approx(list(city.communities.total_bounds))
    w, s, e, n = d["bounds"]
    lon, lat, zoom = d["center"]
    assert w < lon < e and s < lat < n and d["minzoom"] <= zoom <= d["maxzoom"]
    # the city's width fits in a tile's width at the centre's zoom, not at the next one
    assert 360 / 2**zoom >= e - w > 360 / 2 ** (zoom + 1)
    assert d["minzoom"] == 0 and d["maxzoom"] == 14 and d["attribution"] == "Health bureau"
    (vl,) = d["vector_layers"]
    assert vl["id"] == "communities" and vl["fields"] == COMMUNITIES.fields
    # every property a tile carries is declared, with its type
    t = TMS.tile(lon, lat, 12)
    tile = mapbox_vector_tile.decode(encode_tile([layer], t.z, t.x, t.y))
    for f in tile["communities"]["features"]:
        for k, v in f["properties"].items():
            assert k in vl["fields"]
            assert vl["fields"][k] == ("Number" if isinstance(v, int | float) else "String")


def test_tilejson_of_merged_zones_declares_the_merge(city: City) -> None:
    """Zones merged below a zoom: the layer's description says from which zoom and how, its
    fields add the count, and every property of a merged tile's features is declared."""
    merge = Merge(13, "level", keep=("label", "rank", "color", "policy", "at"), count="zone_count")
    layer = TileLayer("zones", city.zones, merge=merge)
    d = tilejson(ZONES, "http://h/", layer.bounds, merge=merge).model_dump()
    (vl,) = d["vector_layers"]
    assert vl["fields"] == ZONES.fields | {"zone_count": "Number"}
    assert "Below zoom 13: one feature per level" in vl["description"]
    assert "zone_count" in vl["description"]
    w, s, e, n = layer.bounds
    t = TMS.tile((w + e) / 2, (s + n) / 2, 11)
    tile = mapbox_vector_tile.decode(encode_tile([layer], t.z, t.x, t.y))
    for f in tile["zones"]["features"]:
        assert set(f["properties"]) <= set(vl["fields"])
    # nothing merged at the zooms the TileJSON covers: nothing said
    plain = tilejson(ZONES, "http://h/", layer.bounds, merge=merge, minzoom=13).model_dump()
    assert plain["vector_layers"][0]["fields"] == ZONES.fields


def test_tilejson_without_data_and_bad_zooms() -> None:
    d = tilejson(ZONES, "http://h", (180.0, 85.0, -180.0, -85.0)).model_dump()
    assert d["bounds"][0] == -180.0 and d["tiles"][0].endswith("/{z}/{x}/{y}")
    with pytest.raises(ValueError, match="minzoom <= maxzoom"):
        tilejson(ZONES, "http://h", (0, 0, 1, 1), minzoom=10, maxzoom=5)


def test_frames_follow_the_collections(city: City) -> None:
    for name, frame in (
        ("zones", city.zones),
        ("communities", city.communities),
        ("districts", city.districts),
    ):
        assert [c for c in frame.columns if c != "geometry"] == list(COLLECTIONS[name].fields)
        assert frame["id"].is_unique and frame.crs.to_epsg() == 4326
    c = city.communities
    assert len(c) == len(city.layer) and list(c["id"]) == list(city.layer.ids)
    none = c[c["level"] == "none"]
    assert none["since"].isna().all() and (none["rank"] == 0).all()
    assert set(c.loc[c["level"] != "none", "zone_id"].dropna()) <= set(city.zones["id"])
    assert city.districts["name"].notna().all()


def test_dense_layers_are_drawn_from_a_zoom_of_a_few_thousand_features_a_tile() -> None:
    """The planner map's communities: a small city at every zoom; the scale city's 100,000
    (2.6 x 2.4 degrees) from the zoom at which a tile holds at most MAX_TILE_FEATURES."""
    wuhan = (114.1, 30.4, 114.5, 30.75)
    scale = (113.03, 29.48, 115.61, 31.88)
    assert dense_minzoom(2_000, wuhan) == 0
    z = dense_minzoom(100_000, scale)
    tiles = [
        len(list(morecantile.tms.get("WebMercatorQuad").tiles(*scale, [k]))) for k in (z - 1, z)
    ]
    assert MAX_TILE_FEATURES * tiles[0] < 100_000 <= MAX_TILE_FEATURES * tiles[1]
    assert dense_minzoom(10**9, scale) == 14  # never beyond the tiles' maxzoom
    assert dense_minzoom(0, scale) == 0
