"""The cell-table polygon index against brute-force shapely (every polygon x every point)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmap.geo._errors import CoordinateError
from riskmap.geo.index import PolygonIndex


def _brute(geoms: np.ndarray, prio: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> list[int]:
    out = []
    for p in shapely.points(lon, lat):
        hit = [i for i, g in enumerate(geoms) if g is not None and g.intersects(p)]
        out.append(max(hit, key=lambda i: (prio[i], -i)) if hit else -1)
    return out


def _voronoi(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    box = shapely.box(114.2, 30.5, 114.3, 30.6)
    pts = rng.uniform([114.2, 30.5], [114.3, 30.6], (n, 2))
    v = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box, ordered=True)
    return shapely.intersection(np.array(shapely.get_parts(v)), box)


def _on_boundaries(geoms: np.ndarray, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the polygons and the midpoints of their edges (points on boundaries)."""
    rings = shapely.get_rings(shapely.get_parts(geoms))
    lon, lat = [], []
    for r in rings:
        c = shapely.get_coordinates(r)
        mid = (c[1:] + c[:-1]) / 2
        lon += [c[::step, 0], mid[::step, 0]]
        lat += [c[::step, 1], mid[::step, 1]]
    return np.concatenate(lon), np.concatenate(lat)


def _check(idx: PolygonIndex, lon: np.ndarray, lat: np.ndarray) -> None:
    got = idx.lookup(lon, lat)
    assert got.index.tolist() == _brute(idx.geoms, idx.priority, lon, lat)
    assert got.resolved_by_cell + got.outside + got.exact == len(lon)


def test_partition_lookup_equals_brute_force() -> None:
    geoms = _voronoi(0, 60)
    idx = PolygonIndex(geoms, 10)
    rng = np.random.default_rng(1)
    lon = rng.uniform(114.19, 114.31, 3000)
    lat = rng.uniform(30.49, 30.61, 3000)
    # vertices of the polygons and midpoints of their edges: points exactly on boundaries
    v_lon, v_lat = _on_boundaries(geoms, 3)
    lon, lat = np.r_[lon, v_lon], np.r_[lat, v_lat]
    res = idx.lookup(lon, lat)
    assert res.index.tolist() == _brute(geoms, idx.priority, lon, lat)
    assert res.resolved_by_cell > 1000
    assert res.outside > 0 and res.exact > 0  # every path was taken


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    radius=st.floats(0.001, 0.03),
    leaf_m=st.sampled_from([None, 5.0, 20.0, 300.0]),
)
def test_overlapping_polygons_highest_priority_wins(
    seed: int, radius: float, leaf_m: float | None
) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform([114.2, 30.5], [114.3, 30.6], (6, 2))
    geoms = shapely.buffer(shapely.points(centres), radius * rng.uniform(0.5, 1.5, 6))
    prio = rng.integers(0, 3, 6)
    idx = PolygonIndex(geoms, priority=prio, leaf_m=leaf_m)
    lon = rng.uniform(114.17, 114.33, 400)
    lat = rng.uniform(30.47, 30.63, 400)
    v_lon, v_lat = _on_boundaries(geoms, 5)
    _check(idx, np.r_[lon, v_lon], np.r_[lat, v_lat])


def test_holes_multipolygons_and_nested_polygons() -> None:
    outer = shapely.box(114.20, 30.50, 114.30, 30.60)
    hole = shapely.box(114.23, 30.53, 114.27, 30.57)
    with_hole = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    island = shapely.box(114.24, 30.54, 114.26, 30.56)  # inside the hole
    multi = shapely.MultiPolygon(
        [shapely.box(114.31, 30.50, 114.33, 30.52), shapely.box(114.33, 30.52, 114.35, 30.54)]
    )
    ring = (
        shapely.Point(114.29, 30.59)
        .buffer(0.02)
        .difference(shapely.Point(114.29, 30.59).buffer(0.01))
    )
    geoms = np.array([with_hole, island, multi, ring], dtype=object)
    prio = np.array([1, 0, 2, 3])
    idx = PolygonIndex(geoms, priority=prio, leaf_m=15.0)
    rng = np.random.default_rng(3)
    lon = rng.uniform(114.18, 114.37, 4000)
    lat = rng.uniform(30.48, 30.62, 4000)
    v_lon, v_lat = _on_boundaries(geoms)
    _check(idx, np.r_[lon, v_lon, 114.25, 114.235], np.r_[lat, v_lat, 30.55, 30.55])
    # in the hole but on the island; in the hole only
    assert idx.lookup([114.25, 114.235], [30.55, 30.55]).index.tolist() == [1, -1]


def test_boundaries_on_the_cell_grid_and_ties() -> None:
    """Squares whose edges fall on the quadtree's cell edges (the polygons' bounding box is
    the root): points on those edges and corners; equal priorities keep the lowest index."""
    xs = 114.0 + 0.01 * np.arange(5)
    squares = [
        shapely.box(x, 30.0 + 0.01 * j, x + 0.01, 30.01 + 0.01 * j)
        for x in xs[:4]
        for j in range(4)
    ]
    geoms = np.array(squares + [shapely.box(114.0, 30.0, 114.02, 30.02)], dtype=object)
    prio = np.r_[np.zeros(16, dtype=np.int64), 0]
    idx = PolygonIndex(geoms, priority=prio, leaf_m=50.0)
    gx, gy = np.meshgrid(114.0 + 0.0025 * np.arange(17), 30.0 + 0.0025 * np.arange(17))
    _check(idx, gx.ravel(), gy.ravel())
    # the corner shared by four squares: the lowest index among them
    assert idx.lookup([114.01], [30.01]).index.tolist() == [0]


def test_polygons_smaller_than_a_leaf_cell() -> None:
    rng = np.random.default_rng(5)
    centres = rng.uniform([114.2, 30.5], [114.3, 30.6], (30, 2))
    geoms = shapely.buffer(shapely.points(centres), 2e-6)  # about 20 cm across
    idx = PolygonIndex(geoms, leaf_m=40.0)
    lon = np.r_[centres[:, 0], rng.uniform(114.2, 114.3, 500)]
    lat = np.r_[centres[:, 1], rng.uniform(30.5, 30.6, 500)]
    _check(idx, lon, lat)
    assert idx.lookup(centres[:, 0], centres[:, 1]).index.tolist() == list(range(30))


def test_empty_index() -> None:
    idx = PolygonIndex(np.array([], dtype=object), 10)
    assert idx.lookup([114.0], [30.0]).index.tolist() == [-1]


def test_empty_and_missing_geometries_never_match() -> None:
    geoms = np.array([None, shapely.Polygon(), shapely.box(0, 0, 1, 1)], dtype=object)
    idx = PolygonIndex(geoms)
    assert idx.lookup([0.5, 2.0, 0.0], [0.5, 2.0, 1.0]).index.tolist() == [2, -1, 2]


def test_invalid_coordinates_are_refused_by_name() -> None:
    idx = PolygonIndex(_voronoi(0, 10))
    for lon, lat in ((np.nan, 30.5), (114.2, np.inf), (181.0, 30.5), (114.2, -90.5)):
        with pytest.raises(CoordinateError, match=r"point 1: longitude .*latitude"):
            idx.lookup([114.25, lon], [30.55, lat])
    with pytest.raises(CoordinateError, match="2 longitudes but 1 latitudes"):
        idx.lookup([1.0, 2.0], [1.0])


def test_poles_and_the_date_line() -> None:
    """Valid extreme coordinates answer like brute force (here: polygons touching the pole and
    the date line, points on them)."""
    cap = shapely.box(-180, 80, 180, 90)
    east = shapely.box(170, -10, 180, 10)
    west = shapely.box(-180, -10, -170, 10)
    geoms = np.array([cap, east, west], dtype=object)
    idx = PolygonIndex(geoms, leaf_m=20_000.0)
    lon = np.array([0.0, 180.0, -180.0, 175.0, -175.0, 0.0, 45.0, 180.0, -180.0])
    lat = np.array([90.0, 90.0, -90.0, 0.0, 0.0, -90.0, 79.999, 10.0, -10.0])
    _check(idx, lon, lat)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    geoms = _voronoi(2, 40)
    prio = np.random.default_rng(2).integers(0, 4, len(geoms))
    idx = PolygonIndex(geoms, 10, priority=prio).build()
    path = idx.save(tmp_path / "zones.idx")
    back = PolygonIndex.load(path)
    for name in ("node", "cand_ptr", "cand", "bbox", "root"):
        assert np.array_equal(getattr(back._tab, name), getattr(idx._tab, name), equal_nan=True)
    assert isinstance(back._tab.node.base, np.memmap)  # mapped, not read
    assert (back.leaf_level, back.priority.tolist()) == (idx.leaf_level, prio.tolist())
    assert shapely.equals(back.geoms, geoms).all()
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(114.19, 114.31, 2000), rng.uniform(30.49, 30.61, 2000)
    assert back.lookup(lon, lat).index.tolist() == idx.lookup(lon, lat).index.tolist()
    # saving again replaces the directory whole
    PolygonIndex(geoms[:5]).save(path)
    assert len(PolygonIndex.load(path, mmap=False).geoms) == 5


def test_a_loaded_index_decodes_only_the_polygons_it_tests(tmp_path: Path) -> None:
    """A loaded index answers from its mapped table and decodes a polygon only when a point
    falls in one of its boundary cells (a one-point look-up on a large snapshot reads almost
    nothing); ``geoms`` then decodes the rest, the same polygons as saved."""
    geoms = _voronoi(5, 200)
    geoms[7] = None  # a missing geometry round-trips as missing
    idx = PolygonIndex(geoms, priority=np.arange(len(geoms)) % 3).build()
    back = PolygonIndex.load(idx.save(tmp_path / "i"))
    assert len(back) == len(geoms) and back._geoms is None
    one = geoms[20].exterior.coords[0]  # a vertex: on a boundary, so tested exactly
    assert back.lookup([one[0]], [one[1]]).index.tolist() == _brute(
        geoms, back.priority, np.array([one[0]]), np.array([one[1]])
    )
    decoded = int(back._have.sum())
    assert 1 <= decoded <= 4 and back._geoms is None
    lon, lat = _on_boundaries(geoms[~shapely.is_missing(geoms)], step=5)
    assert back.lookup(lon, lat).index.tolist() == idx.lookup(lon, lat).index.tolist()
    assert back._geoms is None
    full = back.geoms
    assert full[7] is None and shapely.equals(full[:7], geoms[:7]).all()
    assert shapely.equals(full[8:], geoms[8:]).all()
    assert back.exact(lon, lat).tolist() == idx.exact(lon, lat).tolist()


def test_one_point_answers_as_many(tmp_path: Path) -> None:
    """``lookup_one`` (the status answer's path) gives ``lookup``'s answer for every point:
    random, on boundaries and vertices, outside the box, of a built and of a loaded index."""
    geoms = _voronoi(9, 120)
    prio = np.random.default_rng(9).integers(0, 3, len(geoms))
    idx = PolygonIndex(geoms, priority=prio).build()
    loaded = PolygonIndex.load(idx.save(tmp_path / "i"))
    rng = np.random.default_rng(10)
    blon, blat = _on_boundaries(geoms, step=3)
    lon = np.concatenate([rng.uniform(114.18, 114.32, 3000), blon, [114.2, 114.3, 0.0, 180.0]])
    lat = np.concatenate([rng.uniform(30.48, 30.62, 3000), blat, [30.5, 30.6, 0.0, -90.0]])
    want = idx.lookup(lon, lat).index.tolist()
    assert [idx.lookup_one(x, y) for x, y in zip(lon, lat, strict=True)] == want
    assert [loaded.lookup_one(x, y) for x, y in zip(lon, lat, strict=True)] == want
    assert PolygonIndex(np.empty(0, dtype=object)).lookup_one(114.2, 30.5) == -1
    for bad in ((float("nan"), 30.5), (114.2, 91.0), (181.0, 0.0)):
        with pytest.raises(CoordinateError):
            idx.lookup_one(*bad)


def test_load_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a saved polygon index"):
        PolygonIndex.load(tmp_path)
    path = PolygonIndex(_voronoi(0, 5)).save(tmp_path / "i")
    (path / "node.npy").unlink()
    with pytest.raises(ValueError, match="cannot read the saved polygon index"):
        PolygonIndex.load(path)
    path = PolygonIndex(_voronoi(0, 5)).save(tmp_path / "j")
    np.save(path / "wkb_offsets.npy", np.array([0, 10, 5, 20], dtype=np.int64))
    with pytest.raises(ValueError, match="offsets do not match"):
        PolygonIndex.load(path)


def test_exact_equals_lookup() -> None:
    geoms = _voronoi(6, 30)
    prio = np.arange(30) % 3
    idx = PolygonIndex(geoms, priority=prio)
    rng = np.random.default_rng(6)
    lon, lat = rng.uniform(114.19, 114.31, 3000), rng.uniform(30.49, 30.61, 3000)
    assert idx.exact(lon, lat).tolist() == idx.lookup(lon, lat).index.tolist()


def test_the_table_is_the_same_whatever_the_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The boundaries are sampled and the cells refined by chunks (bounded memory): tiny
    chunks give the very same table as chunks holding everything at once."""
    import riskmap.geo.index as index_module

    geoms = np.r_[_voronoi(3, 80), [shapely.Point(114.25, 30.55).buffer(0.01)]]

    def table(samples: int, pairs: int) -> list[np.ndarray]:
        monkeypatch.setattr(index_module, "_CHUNK_SAMPLES", samples)
        monkeypatch.setattr(index_module, "_CHUNK_PAIRS", pairs)
        t = PolygonIndex(geoms, 10).build()._tab
        return [t.node, t.cand_ptr, t.cand, t.root]

    whole = table(10**9, 10**9)
    small = table(997, 101)
    for a, b in zip(whole, small, strict=True):
        assert np.array_equal(a, b)
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(114.19, 114.31, 2000), rng.uniform(30.49, 30.61, 2000)
    _check(PolygonIndex(geoms, 10), lon, lat)
