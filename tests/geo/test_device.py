"""geo.device and the reference client (api.device_client) against brute force: the status a
device works out from the cells answer is the highest level whose zones cover the point,
points on edges and vertices included."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from riskmap.api.device_client import DeviceZones, covers, orientation
from riskmap.geo import cells as h3c
from riskmap.geo.device import device_cells
from riskmap.geo.policy import load_policy
from tests.helpers import LOCAL

POLICY = load_policy("cn-three-zone")  # sealed > controlled > precaution


def _local(geom: shapely.Geometry) -> shapely.Geometry:
    """A geometry drawn in metres in the local frame, in lon/lat."""
    import geopandas as gpd

    return gpd.GeoSeries([geom], crs=LOCAL).to_crs(4326).iloc[0]


def _zones() -> tuple[list[shapely.Geometry], list[str]]:
    ring = Polygon(
        [(0, 0), (3000, 0), (3000, 3000), (0, 3000)],
        holes=[[(1000, 1000), (2000, 1000), (2000, 2000), (1000, 2000)]],
    )
    far = shapely.MultiPolygon(
        [shapely.box(6000, 0, 6500, 400), shapely.box(6500, 400, 7000, 800)]  # touch at a corner
    )
    long_edge = Polygon([(-8000, -6000), (9000, -5500), (-8000, -5000)])  # 17 km edges
    sealed = shapely.box(1200, 1200, 1800, 1800)  # inside the hole of the ring
    inner = shapely.Point(2500, 2500).buffer(300)  # a disc on the ring, higher level
    sliver = shapely.box(-500, 0, -499.5, 3000)  # half a metre wide
    geoms = [ring, far, long_edge, sealed, inner, sliver]
    levels = ["precaution", "controlled", "precaution", "sealed", "sealed", "controlled"]
    return [_local(g) for g in geoms], levels


def _brute(geoms: list[shapely.Geometry], levels: list[str], lon, lat) -> list[str | None]:
    out = []
    for x, y in zip(lon, lat, strict=True):
        best, rank = None, 0
        for g, lv in zip(geoms, levels, strict=True):
            if POLICY.rank(lv) > rank and shapely.intersects_xy(g, x, y):
                best, rank = lv, POLICY.rank(lv)
        out.append(best)
    return out


def _boundary_points(geoms: list[shapely.Geometry]) -> tuple[np.ndarray, np.ndarray]:
    xy = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geoms)))
    mid = (xy[:-1] + xy[1:]) / 2
    pts = np.concatenate([xy, mid])
    return pts[:, 0], pts[:, 1]


@pytest.mark.parametrize("res", [9, 10, 6])
def test_device_status_equals_brute_force(res: int) -> None:
    geoms, levels = _zones()
    cells = device_cells(geoms, levels, POLICY, res)
    doc = cells.to_dict()
    assert [lv["id"] for lv in doc["levels"]] == POLICY.level_ids  # every level, highest first
    assert [lv["rank"] for lv in doc["levels"]] == [3, 2, 1]
    rng = np.random.default_rng(res)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    lon = rng.uniform(x0 - 0.005, x1 + 0.005, 2000)
    lat = rng.uniform(y0 - 0.005, y1 + 0.005, 2000)
    for g in geoms:  # and 300 in the box of each zone
        gx0, gy0, gx1, gy1 = g.bounds
        lon = np.r_[lon, rng.uniform(gx0, gx1, 300)]
        lat = np.r_[lat, rng.uniform(gy0, gy1, 300)]
    blon, blat = _boundary_points(geoms)
    # the corners of the answer's own cells (where H3 cells meet)
    corners = [
        (lo, la)
        for lv in doc["levels"]
        for c in [*lv["cells"][:40], *list(lv["boundary"])[:40]]
        for la, lo in h3.cell_to_boundary(c)
    ]
    clon = np.array([c[0] for c in corners])
    clat = np.array([c[1] for c in corners])
    lon, lat = np.r_[lon, blon, clon], np.r_[lat, blat, clat]
    zones = DeviceZones(doc)
    got = [zones.status(la, lo) for lo, la in zip(lon.tolist(), lat.tolist(), strict=True)]
    want = _brute(geoms, levels, lon.tolist(), lat.tolist())
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, bad[:10]
    for level in ("sealed", "controlled", "precaution", None):  # many points of each
        assert want.count(level) >= 100, (level, want.count(level))


def test_cells_are_compact_and_apart() -> None:
    geoms, levels = _zones()
    doc = device_cells(geoms, levels, POLICY, 10).to_dict()
    for lv in doc["levels"]:
        cells = set(lv["cells"])
        assert cells and lv["boundary"]
        assert all(h3.get_resolution(c) == 10 for c in lv["boundary"])
        assert all(h3.get_resolution(c) <= 10 for c in cells)
        if lv["id"] == "precaution":  # 1 km wide bands: res-9 cells inside
            assert min(h3.get_resolution(c) for c in cells) <= 9
        # compact: no complete set of siblings, no cell under another
        parents: dict[str, int] = {}
        for c in cells:
            r = h3.get_resolution(c)
            if r:
                p = h3.cell_to_parent(c, r - 1)
                parents[p] = parents.get(p, 0) + 1
            for k in range(r):
                assert h3.cell_to_parent(c, k) not in cells
        assert all(n < len(h3.cell_to_children(p)) for p, n in parents.items())
        # a boundary cell is never under an interior cell of its level
        for c in lv["boundary"]:
            assert not any(h3.cell_to_parent(c, k) in cells for k in range(11))
        # polygons are the zones' own, unchanged
        for p in lv["polygons"]:
            poly = Polygon(p[0], p[1:])
            assert any(shapely.equals_exact(poly, g, 0) for g in _parts(geoms))


def _parts(geoms: list[shapely.Geometry]) -> list[shapely.Geometry]:
    return list(shapely.get_parts(geoms))


def test_no_zones() -> None:
    doc = device_cells([], [], POLICY, 9).to_dict()
    assert [lv["cells"] for lv in doc["levels"]] == [[], [], []]
    assert DeviceZones(doc).status(30.6, 114.3) is None


def test_interior_cells_lie_inside() -> None:
    """Every descendant at the answer's resolution of an interior cell lies inside its level's
    zones (its hexagon is covered)."""
    geoms, levels = _zones()
    doc = device_cells(geoms, levels, POLICY, 9).to_dict()
    for lv in doc["levels"]:
        union = shapely.union_all([g for g, v in zip(geoms, levels, strict=True) if v == lv["id"]])
        fine = h3c.children(h3c.hex_to_cells(lv["cells"]), 9)
        assert shapely.covers(union, h3c.cell_polygons(fine)).all()
        assert not shapely.covers(union, h3c.cell_polygons(h3c.hex_to_cells(lv["boundary"]))).all()


# -- the client's geometry ---------------------------------------------------------------------


def test_covers_counts_edges_vertices_and_holes() -> None:
    rings = [
        [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [0.0, 0.0]],
        [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0], [1.0, 1.0]],
    ]
    assert covers(rings, 0.5, 0.5) and covers(rings, 0.0, 0.0) and covers(rings, 2.0, 0.0)
    assert covers(rings, 4.0, 2.0) and covers(rings, 1.0, 2.0)  # on the hole's edge
    assert not covers(rings, 2.0, 2.0) and not covers(rings, 5.0, 0.0)
    assert not covers(rings, -1.0, 0.0) and not covers(rings, 2.0, 4.5)


def test_orientation_is_exact() -> None:
    # a point a hair off a long diagonal: the floating-point determinant cannot tell
    assert orientation(0.0, 0.0, 1.0, 1.0, 0.5, 0.5) == 0
    assert orientation(0.0, 0.0, 3.0, 1.0, 1.5, 0.5) == 0
    y = np.nextafter(0.5, 1.0)
    assert orientation(0.0, 0.0, 3.0, 1.0, 1.5, y) == 1
    assert orientation(0.0, 0.0, 3.0, 1.0, 1.5, np.nextafter(0.5, 0.0)) == -1


def test_covers_equals_shapely_near_edges() -> None:
    """Points computed on (or a rounding away from) the edges of random polygons: the client
    agrees with GEOS."""
    rng = np.random.default_rng(3)
    n = 0
    for _ in range(30):
        centre = rng.uniform([100, 20], [120, 40])
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        radii = rng.uniform(0.001, 0.01, 12)
        ring = centre + np.c_[np.cos(angles), np.sin(angles)] * radii[:, None]
        poly = Polygon(ring)
        if not poly.is_valid:
            continue
        coords = shapely.get_coordinates(poly.exterior)
        t = rng.uniform(0, 1, (len(coords) - 1, 5))
        a, b = coords[:-1, None, :], coords[1:, None, :]
        pts = (a + t[..., None] * (b - a)).reshape(-1, 2)
        pts = np.r_[pts, coords, (coords[:-1] + coords[1:]) / 2]
        rings = [coords.tolist()]
        for x, y in pts.tolist():
            assert covers(rings, x, y) == shapely.intersects_xy(poly, x, y), (x, y)
            n += 1
    assert n > 1000
