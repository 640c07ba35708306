"""Exact point-in-polygon look-ups accelerated by H3.

A :class:`PolygonIndex` answers "which polygon covers this point?" for many points at once.
Points whose H3 cell is *resolved* (every polygon touching the cell contains it entirely) are
answered from a sorted cell table with one binary search; the others (cells that cross a
polygon boundary, or points in no cell of the table) are tested exactly against the polygons
with a shapely STRtree. The answer is therefore identical to testing each point against every
polygon: a point on a boundary counts as covered (``intersects``) and, where several polygons
cover a point, the one with the highest priority wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from riskmap.geo import cells as h3c

# h3 cell edges are great-circle arcs; shapely draws straight lon/lat lines. Over a res-10 edge
# (about 75 m) the two differ by far less than a millimetre: a margin of ~1 cm makes the
# "cell entirely inside" test safe.
_CELL_MARGIN_DEG = 1e-7


@dataclass(frozen=True)
class Lookup:
    """Result of a look-up: ``index[i]`` is the winning polygon of point i, or -1."""

    index: NDArray[np.int64]
    resolved_by_cell: int


class PolygonIndex:
    """Index of (possibly overlapping) polygons in lon/lat with priorities."""

    def __init__(
        self,
        geoms: ArrayLike,
        res: int,
        priority: ArrayLike | None = None,
    ) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.res = h3c.check_resolution(res)
        n = len(self.geoms)
        self.priority = (
            np.zeros(n, dtype=np.int64) if priority is None else np.asarray(priority, np.int64)
        )
        if len(self.priority) != n:
            raise ValueError("priority must have one value per polygon")
        self.tree = shapely.STRtree(self.geoms)
        shapely.prepare(self.geoms)
        self._table: tuple[NDArray[np.uint64], NDArray[np.int64]] | None = None

    @property
    def _cells(self) -> NDArray[np.uint64]:
        return self.table[0]

    @property
    def _owner(self) -> NDArray[np.int64]:
        return self.table[1]

    @property
    def table(self) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        """The resolved cells and their polygon, built on first use (``exact`` needs none)."""
        if self._table is None:
            self._table = self._resolved_cells()
        return self._table

    def _resolved_cells(self) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        if len(self.geoms) == 0:
            return h3c.EMPTY_CELLS, np.empty(0, dtype=np.int64)
        _, cells = h3c.cover_polygons(self.geoms, self.res, "full")
        if len(cells) == 0:
            return h3c.EMPTY_CELLS, np.empty(0, dtype=np.int64)
        cells = np.unique(cells)
        hexes = shapely.buffer(h3c.cell_polygons(cells), _CELL_MARGIN_DEG, quad_segs=1)
        # every polygon touching the (slightly enlarged) cell must contain it entirely
        hi, gi = self.tree.query(hexes, predicate="intersects")
        inside = shapely.contains_properly(self.geoms[gi], hexes[hi])
        n_touch = np.bincount(hi, minlength=len(cells))
        n_inside = np.bincount(hi, weights=inside, minlength=len(cells)).astype(np.int64)
        ok = (n_touch == n_inside) & (n_touch > 0)
        # the winner among the polygons containing the cell: highest priority, then lowest index
        order = np.lexsort((gi, -self.priority[gi], hi))
        hs, gs = hi[order], gi[order]
        first = np.r_[True, hs[1:] != hs[:-1]]
        best = np.full(len(cells), -1, dtype=np.int64)
        best[hs[first]] = gs[first]
        return cells[ok], best[ok]

    @property
    def resolved_cell_count(self) -> int:
        return len(self._cells)

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> Lookup:
        lon_a = np.asarray(lon, dtype=np.float64)
        lat_a = np.asarray(lat, dtype=np.float64)
        n = len(lon_a)
        out = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self.geoms) == 0:
            return Lookup(out, 0)
        todo = np.ones(n, dtype=bool)
        if len(self._cells):
            pc = h3c.points_to_cells(lon_a, lat_a, self.res)
            pos = np.searchsorted(self._cells, pc)
            pos_c = np.minimum(pos, len(self._cells) - 1)
            hit = self._cells[pos_c] == pc
            out[hit] = self._owner[pos_c[hit]]
            todo = ~hit
        rest = np.flatnonzero(todo)
        if len(rest):
            out[rest] = self.exact(lon_a[rest], lat_a[rest])
        return Lookup(out, int(n - len(rest)))

    def exact(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int64]:
        """Brute-force-equivalent answer with the STRtree (no H3)."""
        pts = shapely.points(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        out = np.full(len(pts), -1, dtype=np.int64)
        pi, gi = self.tree.query(pts, predicate="intersects")
        if len(pi):
            # keep, for each point, the highest priority (ties: lowest polygon index)
            order = np.lexsort((gi, -self.priority[gi], pi))
            pi, gi = pi[order], gi[order]
            first = np.r_[True, pi[1:] != pi[:-1]]
            out[pi[first]] = gi[first]
        return out
