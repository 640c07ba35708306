"""H3 indexing against the scalar h3 functions (the reference implementation)."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely

from riskmap.geo import cells as h3c
from tests.conftest import squares


def test_points_to_cells_matches_scalar_h3() -> None:
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, 2000)
    lat = rng.uniform(-85, 85, 2000)
    got = h3c.points_to_cells(lon, lat, 10)
    assert got.dtype == np.uint64
    expect = [h3.str_to_int(h3.latlng_to_cell(y, x, 10)) for x, y in zip(lon, lat, strict=True)]
    assert got.tolist() == expect


def test_hex_round_trip_and_resolution() -> None:
    cells = h3c.points_to_cells([114.3, 126.9], [30.6, 37.5], 9)
    hexes = h3c.cells_to_hex(cells)
    assert hexes == [h3.latlng_to_cell(30.6, 114.3, 9), h3.latlng_to_cell(37.5, 126.9, 9)]
    assert (h3c.hex_to_cells(hexes) == cells).all()
    assert h3c.resolution_of(cells).tolist() == [9, 9]


def test_bad_resolution() -> None:
    with pytest.raises(ValueError, match="0 to 15"):
        h3c.points_to_cells([0], [0], 16)


def test_community_cells_partition_by_centre() -> None:
    gdf = squares([("A", 0, 0, 1000, "D"), ("B", 1000, 0, 1000, "D"), ("T", 5000, 0, 20, "D")])
    owner, cells = h3c.community_cells(gdf.geometry.to_numpy(), 10)
    # every community has cells (the 20 m square gets its representative point's cell)
    assert set(owner.tolist()) == {0, 1, 2}
    assert len(np.unique(cells)) == len(cells)  # no cell in two communities
    # each centre-containment cell has its centre inside its community
    for o, c in zip(owner[owner < 2], cells[owner < 2], strict=True):
        lat, lng = h3.cell_to_latlng(h3.int_to_str(int(c)))
        assert gdf.geometry.iloc[int(o)].covers(shapely.Point(lng, lat))
    # about 1 km2 / 0.0150 km2 per res-10 cell
    assert 50 < int((owner == 0).sum()) < 90


def test_cell_polygons_are_lng_lat() -> None:
    c = h3c.points_to_cells([114.3], [30.6], 10)
    poly = h3c.cell_polygons(c)[0]
    assert poly.contains(shapely.Point(114.3, 30.6))


def test_compact_keeps_the_area() -> None:
    parent = h3.latlng_to_cell(30.6, 114.3, 8)
    children = h3c.hex_to_cells(h3.cell_to_children(parent, 10))
    assert h3c.cells_to_hex(h3c.compact(children)) == [parent]
