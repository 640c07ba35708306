"""The H3-accelerated polygon index against brute-force shapely."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmap.geo.index import PolygonIndex


def _brute(geoms: np.ndarray, prio: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> list[int]:
    out = []
    for p in shapely.points(lon, lat):
        hit = [i for i, g in enumerate(geoms) if g.intersects(p)]
        out.append(max(hit, key=lambda i: (prio[i], -i)) if hit else -1)
    return out


def _voronoi(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    box = shapely.box(114.2, 30.5, 114.3, 30.6)
    pts = rng.uniform([114.2, 30.5], [114.3, 30.6], (n, 2))
    v = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box, ordered=True)
    return shapely.intersection(np.array(shapely.get_parts(v)), box)


def test_partition_lookup_equals_brute_force() -> None:
    geoms = _voronoi(0, 60)
    idx = PolygonIndex(geoms, 10)
    rng = np.random.default_rng(1)
    lon = rng.uniform(114.19, 114.31, 3000)
    lat = rng.uniform(30.49, 30.61, 3000)
    # vertices of the polygons: points exactly on boundaries
    v = shapely.get_coordinates(geoms)[::7]
    lon, lat = np.r_[lon, v[:, 0]], np.r_[lat, v[:, 1]]
    res = idx.lookup(lon, lat)
    assert res.index.tolist() == _brute(geoms, idx.priority, lon, lat)
    assert res.resolved_by_cell > 1000


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    radius=st.floats(0.001, 0.03),
    res=st.sampled_from([8, 9, 10]),
)
def test_overlapping_polygons_highest_priority_wins(seed: int, radius: float, res: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform([114.2, 30.5], [114.3, 30.6], (6, 2))
    geoms = shapely.buffer(shapely.points(centres), radius * rng.uniform(0.5, 1.5, 6))
    prio = rng.integers(0, 3, 6)
    idx = PolygonIndex(geoms, res, priority=prio)
    lon = rng.uniform(114.17, 114.33, 400)
    lat = rng.uniform(30.47, 30.63, 400)
    assert idx.lookup(lon, lat).index.tolist() == _brute(geoms, prio, lon, lat)


def test_empty_index() -> None:
    idx = PolygonIndex(np.array([], dtype=object), 10)
    assert idx.lookup([114.0], [30.0]).index.tolist() == [-1]
