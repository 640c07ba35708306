"""Exact point-in-polygon look-ups from a multi-level cell table.

A :class:`PolygonIndex` answers "which polygon covers this point?" for many points at once, with
the same answer as testing each point against every polygon: a point on a boundary (edge or
vertex) counts as covered (``intersects``) and, where several polygons cover a point, the one
with the highest priority wins (ties: the lowest polygon index).

How (all of it vectorized):

* **Cells.** A quadtree over the polygons' bounding box in lon/lat (a square of about equal
  metres on each side): a cell of level ``k`` is one of ``4**k`` rectangles and its four
  children halve it each way. A point's cell at the leaf level is two multiplications and a bit
  interleave (a Morton key), about a hundred times faster than an H3 cell (h3ronpy converts
  about a million points a second here: alone it would cap the index below an STRtree).
* **Boundary cells.** Every polygon ring is sampled at a quarter of a leaf cell, and each sample
  marks the leaf cells of a box of half a leaf around it: a superset of the leaf cells that a
  polygon's boundary touches, and, shifted, of the cells of every coarser level. A cell that no
  boundary marks is either wholly inside or wholly outside each polygon: its answer is the best
  polygon containing its centre, found from its parent's (the polygons wholly containing the
  parent, plus those whose boundary crossed the parent but not the cell and that contain the
  cell's centre).
* **Flat table.** One ``int32`` array: a dense grid of the cells of level ``R0`` (4**R0 at
  most 65,536 entries, row-major) and, for each marked cell of levels ``R0, R0 + 2, ...``, a
  block of its 16 grandchildren. An entry is a polygon (>= 0), -1 (none), a pointer to the
  block below (coarser levels) or the number of a boundary leaf (the leaf level). A point is
  answered with one gather per level step (a few: leaf level <= 20), no binary search.
* **Exact rest.** Points in boundary leaf cells are tested only against that cell's candidate
  polygons (the polygons marking it and the best polygon wholly containing it), prepared
  ``intersects``, best first. Points outside the bounding box are answered -1 at once.

The table is a few numpy arrays: :meth:`PolygonIndex.save` writes them as ``.npy`` files and
:meth:`PolygonIndex.load` memory-maps them, so several worker processes share one copy and a
restarted process maps the index instead of rebuilding it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from riskmap.geo import cells as h3c
from riskmap.geo._cancel import checkpoint
from riskmap.geo._errors import CoordinateError
from riskmap.geo._files import replaced_directory

FORMAT_VERSION = 1
_MAX_LEVEL = 20  # leaf keys of 40 bits, polygon numbers of 24 bits in one uint64
_POLY_BITS = 24
_STEP = 2  # levels per block (16 entries)
_MAX_R0 = 8  # the dense grid has at most 4**8 entries
# the automatic leaf size keeps the boundary cells below about this share of the bounding box ...
_BOUNDARY_SHARE = 0.03
# ... within these bounds (metres)
_LEAF_M = (2.0, 40.0)
_MAX_SAMPLES = 4_000_000
_CHUNK_PAIRS = 250_000  # (cell, polygon) pairs refined at once (16 children each)
_CHUNK_SAMPLES = 500_000  # samples of the boundaries marked at once (bounded memory)
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Lookup:
    """Result of a look-up: ``index[i]`` is the winning polygon of point i, or -1.

    ``resolved_by_cell``: points answered from the cell table alone (no geometry test);
    ``outside``: points outside the polygons' bounding box (answered -1 at once);
    ``exact``: points that needed a geometry test."""

    index: NDArray[np.int64]
    resolved_by_cell: int
    outside: int = 0
    exact: int = 0


@dataclass(frozen=True)
class _Table:
    node: NDArray[np.int32]  # dense grid of level r0, then the blocks (see the module docstring)
    cand_ptr: NDArray[np.int64]  # boundary leaf k: candidates cand[cand_ptr[k]:cand_ptr[k + 1]]
    cand: NDArray[np.int32]  # polygon indices, best first; -1 - p: p wholly contains the leaf
    bbox: NDArray[np.float64]  # (minx, miny, maxx, maxy) of the polygons, NaN when none
    root: NDArray[np.float64]  # the quadtree's root rectangle: (x0, y0, width, height)
    leaf_level: int
    r0: int


_ARRAYS = ("node", "cand_ptr", "cand", "bbox", "root")


def _spread(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Interleave zeros between the low 32 bits of ``v`` (Morton encoding, one axis)."""
    v = v & np.uint64(0xFFFFFFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)


def _squeeze(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Inverse of :func:`_spread`: the even bits of ``v``, packed."""
    v = v & np.uint64(0x5555555555555555)
    v = (v | (v >> np.uint64(1))) & np.uint64(0x3333333333333333)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    return (v | (v >> np.uint64(16))) & np.uint64(0xFFFFFFFF)


def morton(ix: NDArray, iy: NDArray) -> NDArray[np.uint64]:
    return _spread(ix.astype(np.uint64)) | (_spread(iy.astype(np.uint64)) << np.uint64(1))


def _unique_sorted(a: NDArray) -> NDArray:
    return h3c.unique(a)


def _member(sorted_set: NDArray, values: NDArray) -> NDArray[np.bool_]:
    """Whether each value is in ``sorted_set`` (sorted, unique)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _group_starts(keys: NDArray) -> NDArray[np.intp]:
    """Start of each run of equal values in sorted ``keys``."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.intp)
    return np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]


def _marks_at(marks: NDArray[np.uint64], leaf: int, level: int) -> NDArray[np.uint64]:
    """The marks of the leaf level at a coarser level (sorted, unique)."""
    pbits = np.uint64(_POLY_BITS)
    pmask = np.uint64(2**_POLY_BITS - 1)
    keys = (marks >> pbits) >> np.uint64(2 * (leaf - level))
    return _unique_sorted((keys << pbits) | (marks & pmask))


def _boundary_vertices(
    geoms: NDArray[np.object_],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """The vertices of every ring (and line) of the geometries, in order: (xy, number of
    their ring, number of their geometry)."""
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    polygon = shapely.get_type_id(parts) == 3
    rings, ring_of = shapely.get_rings(parts[polygon], return_index=True)
    lines = np.concatenate([rings, parts[~polygon]])
    line_geom = np.concatenate([part_of[polygon][ring_of], part_of[~polygon]])
    xy, line = shapely.get_coordinates(lines, return_index=True)
    return xy, line, line_geom[line].astype(np.int64)


class PolygonIndex:
    """Index of (possibly overlapping) polygons in lon/lat with priorities.

    ``leaf_m``: the size of the finest cells in metres (default: chosen from the polygons so
    that boundary cells cover about 3% of their bounding box, 2 to 40 m, larger when the
    polygons' boundaries are longer than about 4,000 km; cells are the root's size halved a
    whole number of times, so between ``leaf_m`` and twice it). ``res`` is accepted
    for callers of earlier versions (an H3 resolution) and only checked. The answer never
    depends on either: only the share of points that need a geometry test does.
    """

    def __init__(
        self,
        geoms: ArrayLike,
        res: int | None = None,
        priority: ArrayLike | None = None,
        *,
        leaf_m: float | None = None,
    ) -> None:
        arr = np.asarray(geoms, dtype=object)
        if arr.ndim != 1:
            raise ValueError("geoms must be a one-dimensional array of geometries")
        self._setup(len(arr), res, priority, leaf_m)
        shapely.prepare(arr)
        self._geoms: NDArray[np.object_] | None = arr

    def _setup(
        self, n: int, res: int | None, priority: ArrayLike | None, leaf_m: float | None
    ) -> None:
        """Everything but the polygons themselves (``__init__`` and :meth:`load`)."""
        if n >= 2**_POLY_BITS - 1:
            raise ValueError(f"at most {2**_POLY_BITS - 2:,} polygons per index")
        self._n = n
        self.res = None if res is None else h3c.check_resolution(res)
        if leaf_m is not None and not (np.isfinite(leaf_m) and leaf_m > 0):
            raise ValueError(f"leaf_m must be a positive number of metres, got {leaf_m!r}")
        self.leaf_m = None if leaf_m is None else float(leaf_m)
        self.priority = (
            np.zeros(n, dtype=np.int64) if priority is None else np.asarray(priority, np.int64)
        )
        if self.priority.shape != (n,):
            raise ValueError("priority must have one value per polygon")
        # rank[p]: position of polygon p when sorted best first (highest priority, lowest index)
        order = np.lexsort((np.arange(n), -self.priority))
        self._best_first = order
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[order] = np.arange(n)
        self._tree: shapely.STRtree | None = None
        self._table: _Table | None = None
        # a loaded index keeps its polygons as WKB (memory-mapped) and decodes them when asked:
        # all of them for ``geoms``, only those a look-up tests otherwise (:meth:`_polygons`)
        self._wkb: NDArray[np.uint8] | None = None
        self._wkb_offsets: NDArray[np.int64] | None = None
        self._decoded: NDArray[np.object_] | None = None
        self._have: NDArray[np.bool_] = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        """The number of polygons (without decoding a loaded index's polygons)."""
        return self._n

    @property
    def geoms(self) -> NDArray[np.object_]:
        """The polygons (prepared); a loaded index decodes them all on the first call."""
        if self._geoms is None:
            arr = self._polygons(np.arange(self._n))
            self._geoms = arr
        return self._geoms

    def _polygons(self, idx: NDArray[np.int64]) -> NDArray[np.object_]:
        """The polygons of numbers ``idx`` (prepared): of a loaded index, only these decoded."""
        if self._geoms is not None:
            return self._geoms[idx]
        assert self._wkb is not None and self._wkb_offsets is not None
        if self._decoded is None:
            self._decoded = np.full(self._n, None, dtype=object)
            self._have = np.zeros(self._n, dtype=bool)
        done, have = self._decoded, self._have
        need = np.unique(idx)
        need = need[~have[need]]
        if len(need):
            off = self._wkb_offsets
            blob = self._wkb
            raw = np.empty(len(need), dtype=object)
            raw[:] = [
                bytes(blob[off[i] : off[i + 1]]) if off[i + 1] > off[i] else None for i in need
            ]
            got = shapely.from_wkb(raw)
            shapely.prepare(got)
            done[need] = got  # safe to race: a polygon decoded twice is the same polygon
            have[need] = True
        return done[idx]

    # -- building -----------------------------------------------------------------------------

    @property
    def tree(self) -> shapely.STRtree:
        if self._tree is None:
            self._tree = shapely.STRtree(self.geoms)
        return self._tree

    def build(self) -> PolygonIndex:
        """Build the cell table now (else on the first :meth:`lookup`); returns the index."""
        _ = self._tab
        return self

    @property
    def _tab(self) -> _Table:
        if self._table is None:
            self._table = self._build()
        return self._table

    @property
    def leaf_level(self) -> int:
        return self._tab.leaf_level

    @property
    def leaf_size_m(self) -> float:
        """Size of the leaf cells in metres (north-south)."""
        t = self._tab
        return float(t.root[3] * _M_PER_DEG / 2**t.leaf_level)

    def _root(self, bbox: NDArray[np.float64]) -> tuple[NDArray[np.float64], int]:
        """The root rectangle (as many metres wide as high) and the leaf level."""
        x0, y0, x1, y1 = bbox.tolist()
        kx = _M_PER_DEG * max(np.cos(np.radians(max(abs(y0), abs(y1)))), 1e-3)
        side = max((x1 - x0) * kx, (y1 - y0) * _M_PER_DEG, 1e-3)
        # a little larger than the box: points on its far edges stay inside the root
        side *= 1 + 1e-9
        root = np.array([x0, y0, side / kx, side / _M_PER_DEG], dtype=np.float64)
        leaf_m = self.leaf_m
        if leaf_m is None:
            # boundary strip of about 2 leaf widths along the polygons' edges
            perimeter = float(np.nansum(shapely.length(self.geoms))) * (kx + _M_PER_DEG) / 2
            area = max((x1 - x0) * kx * (y1 - y0) * _M_PER_DEG, 1.0)
            leaf_m = _BOUNDARY_SHARE * area / max(2 * perimeter, 1e-9)
            leaf_m = float(np.clip(leaf_m, *_LEAF_M))
            # and the rings' samples (4 per leaf width) within a budget
            leaf_m = max(leaf_m, 4 * perimeter / _MAX_SAMPLES)
        level = int(np.clip(np.floor(np.log2(side / leaf_m)), 0, _MAX_LEVEL))  # >= leaf_m
        return root, level

    def _leaf_keys(self, root: NDArray, level: int, lon: NDArray, lat: NDArray) -> NDArray:
        n = np.float64(2**level)
        top = np.float64(2**level - 1)
        ix = np.clip(np.floor((lon - root[0]) * (n / root[2])), 0, top)
        iy = np.clip(np.floor((lat - root[1]) * (n / root[3])), 0, top)
        return morton(ix.astype(np.uint64), iy.astype(np.uint64))

    def _marks(self, root: NDArray, leaf: int) -> NDArray[np.uint64]:
        """Sorted unique ``leaf key << 24 | polygon`` of the leaf cells each polygon's boundary
        may touch (a superset).

        The rings are sampled every quarter leaf, segment by segment, in chunks of at most
        ``_CHUNK_SAMPLES`` samples: the memory of a build stays bounded whatever the length
        of the boundaries (one array of millions of samples took a few hundred MB)."""
        wl, hl = root[2] / 2**leaf, root[3] / 2**leaf
        step = min(wl, hl) / 4
        xy, line, owner = _boundary_vertices(self.geoms)
        if not len(xy):
            return np.empty(0, dtype=np.uint64)
        # segment s runs from vertex s to vertex s + 1 of the same line, in k[s] pieces
        same = line[1:] == line[:-1]
        a = xy[:-1][same]
        b = xy[1:][same]
        seg_owner = owner[:-1][same]
        k = np.maximum(np.ceil(np.hypot(*(b - a).T) / step), 1).astype(np.int64)
        # every vertex, plus the interior samples of the segments, by chunks of segments
        found = [self._mark_samples(root, leaf, xy, owner)]
        ends = np.cumsum(k)
        lo = 0
        while lo < len(k):
            checkpoint()
            base = ends[lo - 1] if lo else 0
            hi = max(int(np.searchsorted(ends, base + _CHUNK_SAMPLES, side="right")), lo + 1)
            kk = k[lo:hi]
            seg = np.repeat(np.arange(lo, hi), kk - 1)
            if len(seg):
                first = np.cumsum(kk - 1) - (kk - 1)  # first sample of each segment
                j = np.arange(len(seg)) - np.repeat(first, kk - 1) + 1
                t = (j / k[seg])[:, None]
                pts = a[seg] + (b[seg] - a[seg]) * t
                found.append(self._mark_samples(root, leaf, pts, seg_owner[seg]))
            lo = hi
        return _unique_sorted(np.concatenate(found))

    def _mark_samples(
        self, root: NDArray, leaf: int, xy: NDArray[np.float64], g: NDArray[np.int64]
    ) -> NDArray[np.uint64]:
        """Sorted unique marks of the leaf cells within a quarter leaf of each sample."""
        wl, hl = root[2] / 2**leaf, root[3] / 2**leaf
        n, top = np.float64(2**leaf), np.float64(2**leaf - 1)
        fx, fy = n / root[2], n / root[3]
        # the leaf columns and rows of the box of half a leaf around each sample
        ix0, ix1 = (
            np.clip(np.floor((xy[:, 0] + d - root[0]) * fx), 0, top).astype(np.int64)
            for d in (-wl / 4, wl / 4)
        )
        iy0, iy1 = (
            np.clip(np.floor((xy[:, 1] + d - root[1]) * fy), 0, top).astype(np.int64)
            for d in (-hl / 4, hl / 4)
        )
        # consecutive samples of a ring mostly mark the same cells
        keep = np.ones(len(g), dtype=bool)
        for v in (g, ix0, ix1, iy0, iy1):
            keep[1:] &= v[1:] == v[:-1]
        keep = ~keep
        if len(keep):
            keep[0] = True
        gk = g[keep].astype(np.uint64)
        sx0, sx1 = _spread(ix0[keep].astype(np.uint64)), _spread(ix1[keep].astype(np.uint64))
        sy0 = _spread(iy0[keep].astype(np.uint64)) << np.uint64(1)
        sy1 = _spread(iy1[keep].astype(np.uint64)) << np.uint64(1)
        pb = np.uint64(_POLY_BITS)
        parts = [((sx | sy) << pb) | gk for sx in (sx0, sx1) for sy in (sy0, sy1)]
        return _unique_sorted(np.concatenate(parts))

    def _centre(self, root: NDArray, level: int, keys: NDArray[np.uint64]):
        ix = _squeeze(keys).astype(np.float64)
        iy = _squeeze(keys >> np.uint64(1)).astype(np.float64)
        w, h = root[2] / 2**level, root[3] / 2**level
        return root[0] + (ix + 0.5) * w, root[1] + (iy + 0.5) * h

    def _best(self, owner: NDArray, poly: NDArray, size: int) -> NDArray[np.int64]:
        """Best polygon (rank) per owner among (owner, polygon) pairs; n (= none) if none."""
        n = self._n
        best = np.full(size, n, dtype=np.int64)
        if len(owner):
            np.minimum.at(best, owner, self._rank[poly])
        return best

    def _build(self) -> _Table:
        n = self._n
        bbox = np.asarray(shapely.total_bounds(self.geoms), dtype=np.float64)
        if n == 0 or not np.isfinite(bbox).all():
            nan4 = np.full(4, np.nan)
            return _Table(
                np.full(1, -1, np.int32),
                np.zeros(1, np.int64),
                np.empty(0, np.int32),
                nan4,
                nan4,
                0,
                0,
            )
        root, leaf = self._root(bbox)
        m = max(0, -(-(leaf - _MAX_R0) // _STEP))
        r0 = leaf - _STEP * m
        marks = self._marks(root, leaf)
        pbits = np.uint64(_POLY_BITS)
        none_rank = n  # rank meaning "no polygon"

        # level r0: every cell; its polygons wholly containing it from an STRtree centre query
        cells = np.arange(4**r0, dtype=np.uint64)
        pairs = _marks_at(marks, leaf, r0)
        x, y = self._centre(root, r0, cells)
        ci, gi = self.tree.query(shapely.points(x, y))
        inside = shapely.intersects_xy(self.geoms[gi], x[ci], y[ci])  # the zones are prepared
        ci, gi = ci[inside], gi[inside]
        code = (cells[ci] << pbits) | gi.astype(np.uint64)
        keep = ~_member(pairs, code)  # a polygon marking the cell may not contain all of it
        full = self._best(ci[keep], gi[keep], len(cells))
        del x, y, ci, gi, inside, code, keep
        nodes: list[NDArray[np.int32]] = []
        offset = 0
        level = r0
        while True:
            marked = _member(_unique_sorted(pairs >> pbits), cells)
            value = np.where(full < none_rank, self._best_first[np.minimum(full, n - 1)], -1)
            entry = value.astype(np.int64)
            if level == leaf:
                leaf_cells, leaf_full = cells[marked], full[marked]
                entry[marked] = -2 - np.arange(int(marked.sum()))
                nodes.append(entry.astype(np.int32))
                break
            # marked cells point to blocks of their 16 grandchildren, in order, after this level
            nb = int(marked.sum())
            start = offset + len(cells)
            entry[marked] = -2 - (start + 16 * np.arange(nb))
            nodes.append(entry.astype(np.int32))
            offset = start
            parents, parent_full = cells[marked], full[marked]
            level += _STEP
            child_pairs = _marks_at(marks, leaf, level)
            cells, full = self._refine(root, level, pairs, child_pairs, parents, parent_full)
            del parents, parent_full, entry, value, marked
            pairs = child_pairs
        # the dense grid row-major (a point needs no Morton key to find its entry)
        rx = _squeeze(np.arange(4**r0, dtype=np.uint64)).astype(np.int64)
        ry = _squeeze(np.arange(4**r0, dtype=np.uint64) >> np.uint64(1)).astype(np.int64)
        grid = np.empty(4**r0, dtype=np.int32)
        grid[(ry << r0) | rx] = nodes[0]
        node = np.concatenate([grid, *nodes[1:]])
        del marks, cells, full, entry, value, marked, nodes
        cand_ptr, cand = self._leaf_candidates(pairs, leaf_cells, leaf_full)
        return _Table(node, cand_ptr, cand, bbox, root, leaf, r0)

    def _refine(
        self,
        root: NDArray,
        level: int,
        pairs: NDArray[np.uint64],
        child_pairs: NDArray[np.uint64],
        parents: NDArray[np.uint64],
        parent_full: NDArray[np.int64],
    ) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        """The 16 children of each marked parent (``level``) and the best polygon wholly
        containing each (its rank; n for none)."""
        pbits = np.uint64(_POLY_BITS)
        pmask = np.uint64(2**_POLY_BITS - 1)
        cells = ((parents[:, None] << np.uint64(4)) | np.arange(16, dtype=np.uint64)).ravel()
        full = np.repeat(parent_full, 16)
        # polygons marking the parent but not the child: wholly in or out of it (centre test),
        # for every child of a parent and every polygon marking the parent, by chunks of pairs
        for lo in range(0, len(pairs), _CHUNK_PAIRS):
            checkpoint()
            chunk = pairs[lo : lo + _CHUNK_PAIRS]
            parent_row = np.searchsorted(parents, chunk >> pbits)  # every marked key is a parent
            child = (parent_row[:, None] * 16 + np.arange(16)).ravel()
            poly = np.repeat(chunk & pmask, 16)
            test = ~_member(child_pairs, (cells[child] << pbits) | poly)
            child, poly = child[test], poly[test].astype(np.int64)
            x, y = self._centre(root, level, cells[child])
            hit = shapely.intersects_xy(self.geoms[poly], x, y)
            more = self._best(child[hit], poly[hit], len(cells))
            np.minimum(full, more, out=full)
        return cells, full

    def _leaf_candidates(
        self, pairs: NDArray[np.uint64], leaf_cells: NDArray[np.uint64], leaf_full: NDArray
    ) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
        """(pointers, candidates) of the boundary leaves: the polygons marking them and the
        best one wholly containing them, best first."""
        pbits = np.uint64(_POLY_BITS)
        pmask = np.uint64(2**_POLY_BITS - 1)
        none_rank = self._n
        pk = pairs >> pbits
        row = np.searchsorted(leaf_cells, pk)
        poly = (pairs & pmask).astype(np.int64)
        has_full = leaf_full < none_rank
        rows = np.r_[row, np.flatnonzero(has_full)]
        polys = np.r_[poly, self._best_first[leaf_full[has_full]]]
        full = np.r_[np.zeros(len(row), bool), np.ones(int(has_full.sum()), bool)]
        order = np.lexsort((self._rank[polys], rows))
        rows, polys, full = rows[order], polys[order], full[order]
        # the polygon wholly containing the leaf answers without a test (stored as -1 - p), and
        # the candidates after it are never reached
        after_full = np.zeros(len(rows), dtype=bool)
        if len(rows):
            seen = np.cumsum(full)
            starts = _group_starts(rows)
            before = np.repeat(seen[starts] - full[starts], np.diff(np.r_[starts, len(rows)]))
            after_full = (seen - full - before) > 0
        rows, polys, full = rows[~after_full], polys[~after_full], full[~after_full]
        cand = np.where(full, -1 - polys, polys).astype(np.int32)
        cand_ptr = np.zeros(len(leaf_cells) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(leaf_cells)), out=cand_ptr[1:])
        return cand_ptr, cand

    # -- the table ----------------------------------------------------------------------------

    @property
    def resolved_cell_count(self) -> int:
        """Entries of the table that answer without a geometry test (a polygon or "none")."""
        return int((self._tab.node >= -1).sum())

    @property
    def boundary_cell_count(self) -> int:
        return len(self._tab.cand_ptr) - 1

    @property
    def table_bytes(self) -> int:
        t = self._tab
        return int(t.node.nbytes + t.cand_ptr.nbytes + t.cand.nbytes)

    # -- look-ups -----------------------------------------------------------------------------

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> Lookup:
        """The winning polygon of each point; raises :class:`CoordinateError` for a coordinate
        that is not finite or out of range (longitude -180..180, latitude -90..90)."""
        lon_a = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        lat_a = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        n = len(lon_a)
        if len(lat_a) != n:
            raise CoordinateError(f"{n} longitudes but {len(lat_a)} latitudes")
        check_coordinates(lon_a, lat_a)
        out = np.full(n, -1, dtype=np.int64)
        if n == 0 or self._n == 0:
            return Lookup(out, 0, n, 0)
        t = self._tab
        if not np.isfinite(t.bbox).all():
            return Lookup(out, 0, n, 0)
        x0, y0, x1, y1 = t.bbox.tolist()
        inb = np.flatnonzero((lon_a >= x0) & (lon_a <= x1) & (lat_a >= y0) & (lat_a <= y1))
        if len(inb) == 0:
            return Lookup(out, 0, n, 0)
        lon_i, lat_i = lon_a[inb], lat_a[inb]
        leaf, r0 = t.leaf_level, t.r0
        top = np.float64(2**leaf - 1)
        scale = np.float64(2**leaf)
        ix = np.clip(np.floor((lon_i - t.root[0]) * (scale / t.root[2])), 0, top).astype(np.int64)
        iy = np.clip(np.floor((lat_i - t.root[1]) * (scale / t.root[3])), 0, top).astype(np.int64)
        node = t.node
        sh = leaf - r0
        code = node[((iy >> sh) << r0) | (ix >> sh)].astype(np.int64)
        level = r0
        while level < leaf:
            level += _STEP
            act = np.flatnonzero(code <= -2)
            if len(act) == 0:
                break
            sh = leaf - level
            bx = (ix[act] >> sh) & 3
            by = (iy[act] >> sh) & 3
            digit = (bx & 1) | ((by & 1) << 1) | ((bx & 2) << 1) | ((by & 2) << 2)
            code[act] = node[(-2 - code[act]) + digit]
        out[inb] = np.maximum(code, -1)
        boundary = np.flatnonzero(code <= -2)
        if len(boundary):
            rows = inb[boundary]
            out[rows] = self._candidates(lon_i[boundary], lat_i[boundary], -2 - code[boundary])
        return Lookup(out, len(inb) - len(boundary), n - len(inb), len(boundary))

    def lookup_one(self, lon: float, lat: float) -> int:
        """:meth:`lookup` of one point (the same answer, bit for bit: the same float
        operations), in plain Python on the table: a few microseconds, where the array path
        costs tens for one point. Raises :class:`CoordinateError` like :meth:`lookup`."""
        lon, lat = float(lon), float(lat)
        if not (abs(lon) <= 180 and abs(lat) <= 90):  # NaN too
            check_coordinates(np.array([lon]), np.array([lat]))
        if self._n == 0:
            return -1
        t = self._tab
        x0, y0, x1, y1 = t.bbox.tolist()
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):  # NaN box (no polygon): outside
            return -1
        leaf, r0 = t.leaf_level, t.r0
        scale, top = float(2**leaf), 2**leaf - 1
        rx, ry, rw, rh = t.root.tolist()
        ix = min(max(int(math.floor((lon - rx) * (scale / rw))), 0), top)
        iy = min(max(int(math.floor((lat - ry) * (scale / rh))), 0), top)
        node = t.node
        sh = leaf - r0
        code = int(node[((iy >> sh) << r0) | (ix >> sh)])
        level = r0
        while level < leaf and code <= -2:
            level += _STEP
            sh = leaf - level
            bx, by = (ix >> sh) & 3, (iy >> sh) & 3
            digit = (bx & 1) | ((by & 1) << 1) | ((bx & 2) << 1) | ((by & 2) << 2)
            code = int(node[(-2 - code) + digit])
        if code > -2:
            return max(code, -1)
        k = -2 - code  # a boundary leaf: its candidates, best first (as _candidates)
        cand = t.cand
        for j in range(int(t.cand_ptr[k]), int(t.cand_ptr[k + 1])):
            g = int(cand[j])
            if g < 0:  # the polygon wholly containing the leaf
                return -1 - g
            if shapely.intersects_xy(self._polygon(g), lon, lat):
                return g
        return -1

    def _polygon(self, i: int) -> Any:
        """Polygon number ``i`` (prepared), decoded alone when the index was loaded."""
        if self._geoms is not None:
            return self._geoms[i]
        return self._polygons(np.array([i], dtype=np.int64))[0]

    def _candidates(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64], leaf: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Exact answer of points in boundary leaf cells: their cell's candidates, best first."""
        t = self._tab
        start = t.cand_ptr[leaf]
        count = t.cand_ptr[leaf + 1] - start
        out = np.full(len(lon), -1, dtype=np.int64)
        pending = np.arange(len(lon))
        j = 0
        while len(pending):
            pending = pending[count[pending] > j]
            if len(pending) == 0:
                break
            g = t.cand[start[pending] + j].astype(np.int64)
            hit = g < 0  # the polygon wholly containing the cell
            g[hit] = -1 - g[hit]
            test = np.flatnonzero(~hit)
            if len(test):
                p = pending[test]
                hit[test] = shapely.intersects_xy(self._polygons(g[test]), lon[p], lat[p])
            out[pending[hit]] = g[hit]
            pending = pending[~hit]
            j += 1
        return out

    def exact(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int64]:
        """Brute-force-equivalent answer with the STRtree alone (no cells, no table)."""
        pts = shapely.points(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        out = np.full(len(pts), -1, dtype=np.int64)
        pi, gi = self.tree.query(pts, predicate="intersects")
        best = self._best(pi, gi, len(pts))
        hit = best < self._n
        out[hit] = self._best_first[best[hit]]
        return out

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the directory ``path`` (replaced atomically): the table as
        ``.npy`` files that :meth:`load` memory-maps, the polygons as WKB."""
        t = self._tab
        dest = Path(path)
        with replaced_directory(dest) as tmp:
            for name in _ARRAYS:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(t, name)))
            np.save(tmp / "priority.npy", self.priority)
            wkb = shapely.to_wkb(self.geoms)
            sizes = np.array([0 if b is None else len(b) for b in wkb], dtype=np.int64)
            offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
            np.cumsum(sizes, out=offsets[1:])
            blob = b"".join(b for b in wkb if b is not None)
            np.save(tmp / "wkb.npy", np.frombuffer(blob, dtype=np.uint8))
            np.save(tmp / "wkb_offsets.npy", offsets)
            meta = {
                "format": FORMAT_VERSION,
                "leaf_level": t.leaf_level,
                "r0": t.r0,
                "leaf_m": self.leaf_m,
                "res": self.res,
                "polygons": self._n,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
        return dest

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> PolygonIndex:
        """An index saved by :meth:`save`; its table is memory-mapped (read-only) unless
        ``mmap`` is false. Raises ``ValueError`` naming the file when it is not such an index."""
        src = Path(path)
        try:
            meta = json.loads((src / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{src}: not a saved polygon index ({e})") from e
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{src}/meta.json: index format {meta.get('format')!r}, "
                f"this riskmap reads format {FORMAT_VERSION}"
            )
        try:
            # plain arrays over the mapping (a memmap's own indexing is slow for one item)
            arrays = {
                n: np.asarray(np.load(src / f"{n}.npy", mmap_mode="r" if mmap else None))
                for n in _ARRAYS
            }
            prio = np.load(src / "priority.npy")
            blob = np.load(src / "wkb.npy", mmap_mode="r" if mmap else None)
            offsets = np.load(src / "wkb_offsets.npy")
        except (OSError, ValueError) as e:
            raise ValueError(f"{src}: cannot read the saved polygon index ({e})") from e
        n = len(offsets) - 1
        if (
            n != meta["polygons"]
            or len(prio) != n
            or blob.ndim != 1
            or (n and (offsets[0] != 0 or offsets[-1] != len(blob) or (np.diff(offsets) < 0).any()))
        ):
            raise ValueError(f"{src}: polygon count or offsets do not match meta.json")
        idx = cls.__new__(cls)
        idx._setup(n, meta["res"], prio, meta["leaf_m"])
        idx._geoms = None
        idx._wkb, idx._wkb_offsets = blob, offsets
        idx._table = _Table(**arrays, leaf_level=int(meta["leaf_level"]), r0=int(meta["r0"]))
        return idx


def check_coordinates(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> None:
    """Raise :class:`CoordinateError` naming the first point that is not a valid lon/lat."""
    ok = (np.abs(lon) <= 180) & (np.abs(lat) <= 90)  # false for NaN too
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CoordinateError(
            f"point {i}: longitude {lon[i]!r}, latitude {lat[i]!r}: coordinates must be finite, "
            f"longitude within -180..180 and latitude within -90..90 "
            f"({int((~ok).sum())} invalid point(s))"
        )
