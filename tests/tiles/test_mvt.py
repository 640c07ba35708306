"""Vector tiles: decoded with mapbox_vector_tile and checked against shapely on the sources."""

from __future__ import annotations

import gzip

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from riskmap.tiles.collections import zones_merge
from riskmap.tiles.mvt import (
    BUFFER,
    EXTENT,
    Merge,
    TileCache,
    TileLayer,
    TileNotFound,
    _pixel_dots,
    _valid,
    dense_minzoom,
    encode_tile,
    feature_ids,
    gzip_tile,
    pixel_metres,
    prerender,
    tiles_over,
)
from tests.helpers import LOCAL, squares
from tests.tiles.helpers import City

TMS = morecantile.tms.get("WebMercatorQuad")
_MERC = Transformer.from_crs(4326, 3857, always_xy=True)
PIXEL = EXTENT / 256  # tile units per pixel of a 256-pixel tile


def decode(body: bytes | None) -> dict:
    assert body is not None
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def to_tile_units(g: shapely.Geometry, tile: morecantile.Tile) -> shapely.Geometry:
    """Reference: a lon/lat geometry in the tile's units (y down), without tiles.mvt."""
    left, bottom, right, top = TMS.xy_bounds(tile)

    def f(xy: np.ndarray) -> np.ndarray:
        x, y = _MERC.transform(xy[:, 0], xy[:, 1])
        return np.column_stack(
            [(x - left) / (right - left) * EXTENT, (top - y) / (top - bottom) * EXTENT]
        )

    return shapely.transform(g, f)


def buffered_box() -> shapely.Geometry:
    return shapely.box(-BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)


def centre_tile(city: City, z: int) -> morecantile.Tile:
    w, s, e, n = city.communities.total_bounds
    return TMS.tile((w + e) / 2, (s + n) / 2, z)


def test_tile_layers_features_and_properties(city: City) -> None:
    t = centre_tile(city, 12)
    body = encode_tile(list(city.tiles.values()), t.z, t.x, t.y)
    tile = decode(body)
    assert set(tile) == {"zones", "communities", "districts"}
    for name, frame in (
        ("communities", city.communities),
        ("zones", city.zones),
        ("districts", city.districts),
    ):
        layer = tile[name]
        assert layer["extent"] == EXTENT
        # exactly the features whose geometry meets the buffered tile (none vanish at z12)
        box = buffered_box()
        expected = {
            fid
            for fid, g in zip(frame["id"], frame.geometry, strict=True)
            if shapely.intersects(to_tile_units(g, t), box)
        }
        got = [f["properties"]["id"] for f in layer["features"]]
        assert len(got) == len(set(got)) and set(got) == expected and expected
    by_id = city.communities.set_index("id")
    for f in tile["communities"]["features"]:
        p = f["properties"]
        row = by_id.loc[p["id"]]
        assert p["name"] == row["name"] and p["level"] == row["level"]
        assert p["population"] == row["population"] and p["rank"] == row["rank"]
        assert None not in p.values()  # missing values are left out, never empty
        assert ("zone_id" in p) == (row["zone_id"] is not None)
    for f in tile["zones"]["features"]:
        p = f["properties"]
        assert "cells" not in p and "community_ids" not in p
        assert p["policy"] == "cn-three-zone" and p["rank"] == city.result.policy.rank(p["level"])
    assert {"id", "name"} <= set(tile["districts"]["features"][0]["properties"])


def test_feature_ids_are_stable_across_tiles_and_zooms(city: City) -> None:
    comms = city.tiles["communities"]
    w, s, e, n = city.communities.total_bounds
    seen: dict[str, set[int]] = {}
    for z in (9, 11, 13, 14):
        for t in TMS.tiles(w, s, e, n, [z]):
            body = encode_tile([comms], t.z, t.x, t.y)
            if body is None:
                continue
            for f in decode(body)["communities"]["features"]:
                seen.setdefault(f["properties"]["id"], set()).add(f["id"])
    assert len(seen) == len(city.communities)
    assert all(len(v) == 1 for v in seen.values())  # one integer id per community everywhere
    ints = {next(iter(v)) for v in seen.values()}
    assert len(ints) == len(seen)  # and distinct
    assert [next(iter(seen[k])) for k in sorted(seen)] == feature_ids(sorted(seen)).tolist()
    assert max(ints) < 2**53  # exact as JavaScript numbers


def _square_layer(spec: list[tuple[str, float, float, float, str]]) -> TileLayer:
    frame = squares(spec).rename(columns={"community_id": "id"})
    return TileLayer("communities", frame[["id", "name", "population", "geometry"]])


def test_polygon_crossing_the_tile_edge_is_clipped_within_the_buffer() -> None:
    layer = _square_layer([("big", -3000, -3000, 6000, "D1")])  # 6 km, several z14 tiles
    g = layer.geometry.geoms[0]
    lonlat = squares([("big", -3000, -3000, 6000, "D1")]).geometry.iat[0]
    west, south, _, _ = lonlat.bounds  # the square goes on beyond this tile's right and top
    t = TMS.tile(west + 1e-4, south + 1e-4, 14)
    feats = decode(encode_tile([layer], t.z, t.x, t.y))["communities"]["features"]
    assert len(feats) == 1 and g is not None
    got = shapely.geometry.shape(feats[0]["geometry"])
    xy = shapely.get_coordinates(got)
    assert xy.min() >= -BUFFER and xy.max() <= EXTENT + BUFFER
    # reaches the buffer's edge on the sides the square goes on beyond the tile
    assert xy[:, 0].max() == EXTENT + BUFFER and xy[:, 1].min() == -BUFFER
    want = shapely.intersection(to_tile_units(lonlat, t), buffered_box())
    assert got.is_valid and shapely.symmetric_difference(got, want).area < 0.01 * want.area
    # the neighbour tile holds the rest, drawn over the same seam
    right = decode(encode_tile([layer], t.z, t.x + 1, t.y))["communities"]["features"]
    seam = shapely.get_coordinates(shapely.geometry.shape(right[0]["geometry"]))
    assert seam[:, 0].min() == -BUFFER


def test_coordinates_round_trip_within_a_tile_pixel(city: City) -> None:
    comms = city.tiles["communities"]
    for z in (11, 13, 15):
        t = centre_tile(city, z)
        tile = decode(encode_tile([comms], t.z, t.x, t.y))
        box = buffered_box()
        by_id = city.communities.set_index("id").geometry
        for f in tile["communities"]["features"]:
            got = shapely.geometry.shape(f["geometry"])
            want = shapely.intersection(to_tile_units(by_id[f["properties"]["id"]], t), box)
            assert got.is_valid
            assert shapely.hausdorff_distance(got, want) <= PIXEL, (z, f["properties"]["id"])
            assert shapely.get_coordinates(got).dtype.kind == "f"  # decoded as numbers
            assert np.all(shapely.get_coordinates(got) % 1 == 0)  # on the integer grid


def test_holes_and_multipolygons_keep_their_rings() -> None:
    donut = shapely.box(0, 0, 1000, 1000).difference(shapely.box(300, 300, 700, 700))
    two = shapely.MultiPolygon([shapely.box(2000, 0, 2400, 400), shapely.box(3000, 0, 3400, 400)])
    frame = gpd.GeoDataFrame({"id": ["donut", "two"]}, geometry=[donut, two], crs=LOCAL)
    frame = frame.to_crs(4326)
    layer = TileLayer("communities", frame)
    w, s, e, n = frame.total_bounds
    z = max(z for z in range(15) if TMS.tile(w, s, z) == TMS.tile(e, n, z))  # all in one tile
    t = TMS.tile(w, s, z)
    feats = decode(encode_tile([layer], t.z, t.x, t.y))["communities"]["features"]
    got = {f["properties"]["id"]: shapely.geometry.shape(f["geometry"]) for f in feats}
    assert got["donut"].geom_type == "Polygon" and len(got["donut"].interiors) == 1
    assert got["two"].geom_type == "MultiPolygon" and len(got["two"].geoms) == 2
    for fid, g in zip(frame["id"], frame.geometry, strict=True):
        want = to_tile_units(g, t)
        assert shapely.symmetric_difference(got[fid], want).area < 0.02 * want.area


def test_small_features_vanish_at_low_zoom_and_empty_tiles_are_none(city: City) -> None:
    comms = city.tiles["communities"]
    t = centre_tile(city, 5)  # communities of ~700 m are below a tile unit (~1.2 km) here
    body = encode_tile([comms, city.tiles["districts"]], t.z, t.x, t.y)
    tile = decode(body)
    kept = tile.get("communities", {"features": []})["features"]
    assert len(kept) < len(city.communities)
    assert all(shapely.geometry.shape(f["geometry"]).area > 0 for f in kept)
    assert len(tile["districts"]["features"]) == len(city.districts)  # districts still show
    far = TMS.tile(-60.0, -30.0, 12)  # the other side of the world
    assert encode_tile(list(city.tiles.values()), far.z, far.x, far.y) is None
    empty = TileLayer("zones", city.zones.iloc[:0])
    assert encode_tile([empty], t.z, t.x, t.y) is None
    # a layer from z10 on: nothing below, everything from there
    late = TileLayer("communities", city.communities, geometry=comms.geometry, minzoom=10)
    for z, shown in ((9, False), (10, True)):
        tt = centre_tile(city, z)
        assert (encode_tile([late], tt.z, tt.x, tt.y) is not None) == shown


@pytest.mark.parametrize(("z", "x", "y"), [(-1, 0, 0), (25, 0, 0), (3, 8, 0), (3, 0, -1)])
def test_tiles_outside_the_matrix_are_not_found(city: City, z: int, x: int, y: int) -> None:
    with pytest.raises(TileNotFound, match=f"tile {z}/{x}/{y}"):
        encode_tile([city.tiles["zones"]], z, x, y)


def test_layer_needs_ids_and_matching_geometry(city: City) -> None:
    with pytest.raises(ValueError, match="no 'id' column"):
        TileLayer("zones", city.zones.drop(columns="id"))
    with pytest.raises(ValueError, match="prepared geometries"):
        TileLayer("zones", city.zones, geometry=city.tiles["communities"].geometry)


def test_cache_serves_keeps_gzip_and_stays_within_its_bound(city: City) -> None:
    comms = city.tiles["communities"]
    cache = TileCache(max_bytes=40_000)
    calls: list[tuple[int, int, int]] = []

    def render(z: int, x: int, y: int) -> bytes | None:
        calls.append((z, x, y))
        return encode_tile([comms], z, x, y)

    t = centre_tile(city, 13)
    key = ("v1", "cn-three-zone", "2024-03-31", "communities", t.z, t.x, t.y)
    first = cache.get_or_render(key, lambda: render(t.z, t.x, t.y))
    again = cache.get_or_render(key, lambda: render(t.z, t.x, t.y))
    assert first is not None and again == first and len(calls) == 1 and cache.hits == 1
    assert 2 * len(first) < cache.max_bytes  # room for it and its gzip body
    gz = cache.get_or_render(key, lambda: render(t.z, t.x, t.y), gzip=True)
    assert gz is not None and gzip.decompress(gz) == first and gz == gzip_tile(first)
    assert cache.get_or_render(key, lambda: render(t.z, t.x, t.y), gzip=True) == gz
    assert len(calls) == 1
    # empty tiles are kept too
    far = ("v1", "cn-three-zone", "2024-03-31", "communities", 12, 0, 0)
    assert cache.get_or_render(far, lambda: render(12, 0, 0)) is None
    assert cache.get_or_render(far, lambda: render(12, 0, 0), gzip=True) is None
    assert len(calls) == 2
    # many tiles: the bound holds, the least recently used go first
    w, s, e, n = city.communities.total_bounds
    keys = []
    for tt in TMS.tiles(w, s, e, n, [14]):
        k = ("v1", "cn-three-zone", "2024-03-31", "communities", tt.z, tt.x, tt.y)
        keys.append(k)
        cache.get_or_render(k, lambda tt=tt: render(tt.z, tt.x, tt.y))
        assert cache.nbytes <= cache.max_bytes
    assert key not in cache and keys[-1] in cache and len(cache) < len(keys)
    # a tile larger than the whole bound is served, not kept
    tiny = TileCache(max_bytes=100)
    assert tiny.get_or_render(key, lambda: first) == first and len(tiny) == 0
    with pytest.raises(ValueError, match="max_bytes"):
        TileCache(max_bytes=-1)


def test_prerender_fills_the_cache_with_the_served_tiles(city: City) -> None:
    zones = city.tiles["zones"]
    cache = TileCache()
    done: list[tuple[int, int]] = []
    prefix = ("v1", "cn-three-zone", "2024-03-31")
    found = prerender(cache, prefix, zones, 10, 12, progress=lambda i, n: done.append((i, n)))
    every = list(tiles_over(zones.bounds, 10, 12))
    assert done[-1] == (len(every), len(every)) and len(cache) == len(every)
    bodies = {t: encode_tile([zones], t.z, t.x, t.y) for t in every}
    assert found == sum(b is not None for b in bodies.values()) > 0
    hits = cache.hits
    for t, body in bodies.items():
        key = (*prefix, "zones", t.z, t.x, t.y)
        assert cache.get_or_render(key, lambda: b"not rendered again") == body
    assert cache.hits == hits + len(every)


def test_zones_are_merged_per_level_below_the_merge_zoom(city: City) -> None:
    """Below ``Merge.below`` a tile holds one feature per level: the union of its zones,
    within a pixel of them, with the level's properties and the number of zones merged; from
    ``below`` on, one feature per zone again."""
    zones = city.zones
    merge = Merge(13, "level", keep=("label", "rank", "color"), count="zone_count", order="rank")
    layer = TileLayer("zones", zones, merge=merge)
    plain = TileLayer("zones", zones)
    t = centre_tile(city, 11)
    feats = decode(encode_tile([layer], t.z, t.x, t.y))["zones"]["features"]
    box = buffered_box()
    levels = {f["properties"]["level"] for f in feats}
    assert len(feats) == len(levels) >= 2  # one feature per level
    ranks = [f["properties"]["rank"] for f in feats]
    assert ranks == sorted(ranks)  # the highest level last: drawn on top
    for f in feats:
        p = f["properties"]
        of_level = zones[zones["level"] == p["level"]]
        assert p["id"] == f"merged:{p['level']}"
        assert f["id"] == feature_ids([p["id"]])[0]
        assert p["zone_count"] == len(of_level)
        first = of_level.iloc[0]
        assert (p["label"], p["rank"], p["color"]) == (
            first["label"],
            first["rank"],
            first["color"],
        )
        assert set(p) == {"id", "level", "label", "rank", "color", "zone_count"}
        got = shapely.geometry.shape(f["geometry"])
        assert all(part.is_valid for part in shapely.get_parts(got))
        want = shapely.intersection(to_tile_units(of_level.union_all(), t), box)
        # simplified by a pixel, snapped to the grid: within two pixels of the zones
        assert shapely.hausdorff_distance(got, want) <= 2 * PIXEL, p["level"]
        assert shapely.symmetric_difference(got, want).area < 0.05 * want.area
    # the same tile of the plain layer has every zone; from the merge zoom on, both agree
    assert len(decode(encode_tile([plain], t.z, t.x, t.y))["zones"]["features"]) > len(feats)
    t = centre_tile(city, 13)
    assert encode_tile([layer], t.z, t.x, t.y) == encode_tile([plain], t.z, t.x, t.y)
    assert layer.at_zoom(13) is layer and layer.at_zoom(12) is layer.at_zoom(12)
    # the merge needs its columns
    with pytest.raises(ValueError, match="no column"):
        TileLayer("zones", zones, merge=Merge(5, "grade"))


def test_merge_zoom_follows_the_number_of_zones_a_tile() -> None:
    """The sample city's few zones are never merged; the scale city's 3,000 zones over
    2.6 x 2.4 degrees are below zoom 8 at 500 a tile."""
    sample = gpd.GeoDataFrame(
        {"id": ["a"], "level": ["sealed"], "label": ["S"], "rank": [3], "color": ["#c0392b"]}
        | {"policy": ["p"], "at": ["2026-01-01"]},
        geometry=[shapely.box(114.0, 30.0, 114.01, 30.01)],
        crs=4326,
    )
    assert zones_merge(sample) is None
    assert zones_merge(sample.iloc[:0]) is None
    many = pd.concat([sample] * 3_000, ignore_index=True)
    many["geometry"] = [
        shapely.box(113.0 + 2.6 * i / 3_000, 29.4, 113.001 + 2.6 * i / 3_000, 31.8)
        for i in range(3_000)
    ]
    m = zones_merge(many, 500)
    assert m is not None and m.by == "level" and m.count == "zone_count"
    assert m.below == dense_minzoom(3_000, tuple(many.total_bounds), 500) == 8


def test_a_level_of_many_parts_is_repaired_part_by_part() -> None:
    """A merged level of many parts, one of which rounding made invalid (a bow tie): only that
    part is repaired; the others are kept as they are."""
    squares_ = [shapely.box(10 * i, 0, 10 * i + 5, 5) for i in range(40)]
    bowtie = shapely.Polygon([(500, 0), (510, 10), (510, 0), (500, 10)])
    g = np.array([shapely.MultiPolygon([*squares_, bowtie]), bowtie], dtype=object)
    out = _valid(g.copy())
    parts = shapely.get_parts(out[0])
    assert all(shapely.is_valid(parts))
    assert len(parts) == 42  # the bow tie is two triangles
    assert shapely.area(out[0]) == pytest.approx(40 * 25 + 50)
    assert out[1].is_valid and out[1].area == pytest.approx(50)


def test_a_city_wide_view_keeps_parts_smaller_than_a_pixel_as_a_pixel() -> None:
    """Merged for a zoom, a part smaller than a pixel becomes a one-pixel square at its centre
    (a lone sealed community stays visible) and a hole smaller than a pixel is filled; larger
    parts and holes stay."""
    px = pixel_metres(8)
    big = shapely.box(0, 0, 40 * px, 40 * px)
    with_holes = big.difference(shapely.box(5 * px, 5 * px, 5.5 * px, 5.5 * px)).difference(
        shapely.box(20 * px, 20 * px, 30 * px, 30 * px)
    )
    tiny = shapely.box(100 * px, 100 * px, 100.3 * px, 100.2 * px)
    got = _pixel_dots(shapely.MultiPolygon([with_holes, tiny]), px)
    parts = sorted(shapely.get_parts(got), key=lambda g: g.area)
    assert len(parts) == 2
    dot, kept = parts
    assert dot.area == pytest.approx(px * px)
    assert dot.centroid.distance(tiny.centroid) < 1e-6 * px
    assert len(kept.interiors) == 1  # the 10 x 10 pixel hole; the half-pixel one is filled
    assert kept.area == pytest.approx(big.area - 100 * px * px)
