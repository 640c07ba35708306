"""H3 adapter: the one place that knows h3's (lat, lng) order and its cell types.

Inside riskmap cells are ``uint64`` numpy arrays. Hex strings appear only at the API edge
(:func:`cells_to_hex`, :func:`hex_to_cells`). Geometries follow shapely/GeoJSON (lng, lat) order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypeVar

import h3
import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import shapely
from h3ronpy.vector import coordinates_to_cells
from numpy.typing import ArrayLike, NDArray

Containment = Literal["center", "full", "overlap"]
CellArray = NDArray[np.uint64]

EMPTY_CELLS: CellArray = np.empty(0, dtype=np.uint64)
_G = TypeVar("_G", bound=np.generic)


def check_resolution(res: int) -> int:
    if not isinstance(res, int | np.integer) or not 0 <= int(res) <= 15:
        raise ValueError(f"H3 resolution must be an integer from 0 to 15, got {res!r}")
    return int(res)


def points_to_cells(lon: ArrayLike, lat: ArrayLike, res: int) -> CellArray:
    """The cell of each (lon, lat) point, as uint64 (input order is GeoJSON's).

    Vectorized (h3ronpy, the same cells as h3's ``latlng_to_cell``); a non-finite coordinate
    raises ``ValueError``."""
    check_resolution(res)
    lon_a = np.ascontiguousarray(lon, dtype=np.float64).ravel()
    lat_a = np.ascontiguousarray(lat, dtype=np.float64).ravel()
    if len(lon_a) != len(lat_a):
        raise ValueError(f"{len(lon_a)} longitudes but {len(lat_a)} latitudes")
    if len(lon_a) == 0:
        return EMPTY_CELLS
    out = coordinates_to_cells(pa.array(lat_a), pa.array(lon_a), res)
    return pa.array(out).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)


def polygon_cells(geom: shapely.Geometry, res: int, contain: Containment = "center") -> CellArray:
    """Cells covering one (multi)polygon.

    ``center``: cells whose centre is inside (a partition of a coverage); ``full``: cells entirely
    inside; ``overlap``: cells touching the polygon at all.
    """
    check_resolution(res)
    if geom is None or geom.is_empty:
        return EMPTY_CELLS
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(geom))
    cells = h3i.h3shape_to_cells_experimental(shape, res, contain=contain)
    return np.array(sorted(cells), dtype=np.uint64)


def cover_polygons(
    geoms: Iterable[shapely.Geometry], res: int, contain: Containment = "center"
) -> tuple[NDArray[np.int64], CellArray]:
    """Cells of many polygons: ``(owner, cells)`` with ``owner[i]`` the index of the polygon."""
    owners: list[NDArray[np.int64]] = []
    cells: list[CellArray] = []
    for i, g in enumerate(geoms):
        c = polygon_cells(g, res, contain)
        cells.append(c)
        owners.append(np.full(len(c), i, dtype=np.int64))
    if not cells:
        return np.empty(0, dtype=np.int64), EMPTY_CELLS
    return np.concatenate(owners), np.concatenate(cells)


def community_cells(
    geoms: Iterable[shapely.Geometry], res: int
) -> tuple[NDArray[np.int64], CellArray]:
    """Centre-containment cover of communities; a community too small to hold any cell centre
    gets the cell of its representative point, so that every community has at least one cell."""
    geoms = list(geoms)
    owner, cells = cover_polygons(geoms, res, "center")
    have = np.zeros(len(geoms), dtype=bool)
    have[owner] = True
    missing = np.flatnonzero(~have)
    if len(missing):
        pts = shapely.point_on_surface(np.asarray(geoms, dtype=object)[missing])
        extra = points_to_cells(shapely.get_x(pts), shapely.get_y(pts), res)
        owner = np.concatenate([owner, missing.astype(np.int64)])
        cells = np.concatenate([cells, extra])
    order = np.lexsort((cells, owner))
    return owner[order], cells[order]


def cell_centres(cells: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lat, lng) of the centre of each cell."""
    arr = np.asarray(cells, dtype=np.uint64)
    out = np.empty((len(arr), 2), dtype=np.float64)
    f = h3i.cell_to_latlng
    if len(arr):
        out[:] = [f(c) for c in arr.tolist()]
    return out[:, 0], out[:, 1]


def cell_polygons(cells: ArrayLike) -> NDArray[np.object_]:
    """Hexagon (or pentagon) of each cell as shapely polygons in (lng, lat)."""
    out = []
    for c in np.asarray(cells, dtype=np.uint64).tolist():
        ring = h3i.cell_to_boundary(c)
        out.append([(lng, lat) for lat, lng in ring])
    return shapely.polygons(out) if out else np.empty(0, dtype=object)


def grid_disk(cell: int, k: int) -> CellArray:
    """The cell and its neighbours up to ``k`` rings away."""
    return np.array(sorted(h3i.grid_disk(int(cell), k)), dtype=np.uint64)


def unique(values: NDArray[_G]) -> NDArray[_G]:
    """Sorted distinct values (by sorting: numpy's ``unique`` hashes large arrays, which is
    many times slower for cells)."""
    arr = np.sort(np.asarray(values).ravel())
    if len(arr) < 2:
        return arr
    keep = np.empty(len(arr), dtype=bool)
    keep[0] = True
    np.not_equal(arr[1:], arr[:-1], out=keep[1:])
    return arr[keep]


def compact(cells: ArrayLike) -> CellArray:
    arr = unique(np.asarray(cells, dtype=np.uint64))
    if len(arr) == 0:
        return EMPTY_CELLS
    return np.array(sorted(h3i.compact_cells(arr.tolist())), dtype=np.uint64)


def children(cells: ArrayLike, res: int) -> CellArray:
    """The cells of resolution ``res`` inside each cell (the cells themselves when they are
    as fine or finer)."""
    check_resolution(res)
    out: list[int] = []
    for c in np.asarray(cells, dtype=np.uint64).tolist():
        out.extend([c] if h3i.get_resolution(c) >= res else h3i.cell_to_children(c, res))
    return unique(np.array(out, dtype=np.uint64))


def cells_to_hex(cells: ArrayLike) -> list[str]:
    return [h3i.int_to_str(c) for c in np.asarray(cells, dtype=np.uint64).tolist()]


def hex_to_cells(cells: Iterable[str]) -> CellArray:
    return np.array([h3i.str_to_int(c) for c in cells], dtype=np.uint64)


def resolution_of(cells: ArrayLike) -> NDArray[np.int64]:
    return np.array(
        [h3i.get_resolution(c) for c in np.asarray(cells, dtype=np.uint64).tolist()],
        dtype=np.int64,
    )


def parents(cells: ArrayLike, res: int) -> CellArray:
    """The cell of resolution ``res`` holding each cell (the cell itself when it is as coarse
    or coarser)."""
    check_resolution(res)
    f, r = h3i.cell_to_parent, h3i.get_resolution
    return np.fromiter(
        (c if r(c) <= res else f(c, res) for c in np.asarray(cells, dtype=np.uint64).tolist()),
        dtype=np.uint64,
    )


def ring_pairs(cells: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(i, j) positions of the pairs of neighbouring cells (sharing an edge) among ``cells``
    (each pair both ways)."""
    arr = np.asarray(cells, dtype=np.uint64)
    pos = {c: i for i, c in enumerate(arr.tolist())}
    rows: list[int] = []
    cols: list[int] = []
    for i, c in enumerate(arr.tolist()):
        for nb in h3i.grid_disk(c, 1):
            j = pos.get(nb)
            if j is not None and j != i:
                rows.append(i)
                cols.append(j)
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
