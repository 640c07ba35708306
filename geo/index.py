"""Exact point-in-polygon look-ups from a multi-resolution cell table.

A :class:`PolygonIndex` answers "which polygon covers this point?" for many points at once, with
the same answer as testing each point against every polygon: a point on a boundary (edge or
vertex) counts as covered (``intersects``) and, where several polygons cover a point, the one
with the highest priority wins (ties: the lowest polygon index).

How (all of it vectorized):

* **Cells.** A quadtree over the polygons' bounding box in lon/lat (a square of about equal
  metres on each side): a cell of level ``k`` is one of ``4**k`` rectangles, its four children
  halve it each way. A point's cell is two multiplications and a bit interleave (a Morton key),
  about 100 times faster than an H3 cell (h3ronpy converts about a million points a second
  here: alone it would cap the index below the STRtree's speed).
* **Build.** From the root down, each cell (its rectangle enlarged by 1e-9 degree against
  rounding) is classified against the polygons (STRtree candidates, then prepared
  ``intersects`` / ``contains_properly``): a cell no polygon touches answers "none"; a cell
  entirely inside its highest-priority touching polygon answers that polygon; any other cell is
  split, down to the *leaf level* (cells of about ``leaf_m`` metres, chosen so that the boundary
  cells hold a few percent of the box), where the remaining boundary cells keep the list of
  polygons touching them, highest priority first. Coarse cells deep inside polygons (or far from
  them), fine cells only along boundaries.
* **Flat table.** Every cell of the table, whatever its level, is stored as the interval of leaf
  keys below it (a cell's descendants have consecutive Morton keys): sorted ``uint64`` arrays
  searched with one ``np.searchsorted`` per point batch.
* **Exact rest.** Points in boundary leaf cells are tested only against that cell's candidate
  polygons (prepared ``intersects``, best first); points outside the bounding box are answered
  "none" at once.

The table is a handful of numpy arrays: :meth:`PolygonIndex.save` writes them as ``.npy`` files
and :meth:`PolygonIndex.load` memory-maps them, so several worker processes share one copy and
a restarted process maps the index instead of rebuilding it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geo import cells as h3c
from geo._errors import CoordinateError

FORMAT_VERSION = 1
# the cells' rectangles are enlarged by this much (degrees) against rounding in a point's key
_EPS_DEG = 1e-9
_MAX_LEVEL = 24  # 2 x 24 bits of Morton key
# the automatic leaf size keeps the boundary cells below about this share of the bounding box ...
_BOUNDARY_SHARE = 0.03
# ... within these bounds (metres); fewer boundary cells than this never need finer leaves
_LEAF_M = (2.0, 40.0)
_M_PER_DEG = 111_320.0
_NO_ENTRY = np.int64(-(2**62))  # a point whose leaf is in no table cell


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
    lo: NDArray[np.uint64]  # first leaf key below each table cell (sorted)
    hi: NDArray[np.uint64]  # last leaf key below it
    value: NDArray[np.int64]  # >= 0 polygon, -1 none, <= -2 boundary leaf number (-2 - k)
    level: NDArray[np.int8]  # the cell's level
    cand_ptr: NDArray[np.int64]  # boundary leaf k: candidates cand[cand_ptr[k]:cand_ptr[k + 1]]
    cand: NDArray[np.int64]  # polygon indices, highest priority first
    bbox: NDArray[np.float64]  # (minx, miny, maxx, maxy) of the polygons, NaN when none
    # the quadtree: root corner, root size (degrees) and the leaf level
    root: NDArray[np.float64]  # (x0, y0, width, height)
    leaf_level: int


_ARRAYS = ("lo", "hi", "value", "level", "cand_ptr", "cand", "bbox", "root")


def _spread(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Interleave zeros between the low 32 bits of ``v`` (Morton encoding, one axis)."""
    v = v & np.uint64(0xFFFFFFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x3333333333333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x5555555555555555)


def morton(ix: NDArray, iy: NDArray) -> NDArray[np.uint64]:
    return _spread(ix.astype(np.uint64)) | (_spread(iy.astype(np.uint64)) << np.uint64(1))


def _rank_order(owner: NDArray[np.int64], g: NDArray[np.int64], prio: NDArray[np.int64]):
    """Order of (owner, polygon) pairs: by owner, then highest priority, then lowest index."""
    return np.lexsort((g, -prio[g], owner))


class PolygonIndex:
    """Index of (possibly overlapping) polygons in lon/lat with priorities.

    ``leaf_m``: the size of the finest cells in metres (default: chosen from the polygons so
    that boundary cells cover about 3% of their bounding box, 2 to 40 m). ``res`` is accepted
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
        self.geoms = np.asarray(geoms, dtype=object)
        if self.geoms.ndim != 1:
            raise ValueError("geoms must be a one-dimensional array of geometries")
        self.res = None if res is None else h3c.check_resolution(res)
        if leaf_m is not None and not (np.isfinite(leaf_m) and leaf_m > 0):
            raise ValueError(f"leaf_m must be a positive number of metres, got {leaf_m!r}")
        self.leaf_m = leaf_m
        n = len(self.geoms)
        self.priority = (
            np.zeros(n, dtype=np.int64) if priority is None else np.asarray(priority, np.int64)
        )
        if self.priority.shape != (n,):
            raise ValueError("priority must have one value per polygon")
        shapely.prepare(self.geoms)
        self._tree: shapely.STRtree | None = None
        self._table: _Table | None = None

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
        root = np.array([x0, y0, side / kx, side / _M_PER_DEG], dtype=np.float64)
        leaf_m = self.leaf_m
        if leaf_m is None:
            # boundary strip of about 1.5 leaf widths along the polygons' edges
            perimeter = float(np.nansum(shapely.length(self.geoms))) * (kx + _M_PER_DEG) / 2
            area = max((x1 - x0) * kx * (y1 - y0) * _M_PER_DEG, 1.0)
            leaf_m = _BOUNDARY_SHARE * area / max(1.5 * perimeter, 1e-9)
            leaf_m = float(np.clip(leaf_m, *_LEAF_M))
        level = int(np.clip(np.ceil(np.log2(side / leaf_m)), 0, _MAX_LEVEL))
        return root, level

    def _build(self) -> _Table:
        n = len(self.geoms)
        bbox = np.asarray(shapely.total_bounds(self.geoms), dtype=np.float64)
        empty_u = np.empty(0, dtype=np.uint64)
        empty_i = np.empty(0, dtype=np.int64)
        if n == 0 or not np.isfinite(bbox).all():
            nan4 = np.full(4, np.nan)
            return _Table(
                empty_u,
                empty_u,
                empty_i,
                np.empty(0, np.int8),
                np.zeros(1, np.int64),
                empty_i,
                nan4,
                nan4,
                0,
            )
        root, leaf = self._root(bbox)
        tree = self.tree
        cx = np.zeros(1, dtype=np.int64)
        cy = np.zeros(1, dtype=np.int64)
        out: list[tuple[int, NDArray, NDArray, NDArray]] = []  # level, cx, cy, value
        leaf_xy = (empty_i, empty_i)
        leaf_owner = empty_i
        leaf_cand = empty_i
        for k in range(leaf + 1):
            if len(cx) == 0:
                break
            w, h = root[2] / 2**k, root[3] / 2**k
            boxes = shapely.box(
                root[0] + cx * w - _EPS_DEG,
                root[1] + cy * h - _EPS_DEG,
                root[0] + (cx + 1) * w + _EPS_DEG,
                root[1] + (cy + 1) * h + _EPS_DEG,
            )
            bi, gi = tree.query(boxes)
            if len(bi):
                touch = shapely.intersects(self.geoms[gi], boxes[bi])
                bi, gi = bi[touch], gi[touch]
            order = _rank_order(bi, gi, self.priority)
            bi, gi = bi[order], gi[order]
            first = np.r_[True, bi[1:] != bi[:-1]] if len(bi) else np.empty(0, bool)
            winner = np.full(len(cx), -1, dtype=np.int64)
            winner[bi[first]] = gi[first]
            t = np.flatnonzero(winner >= 0)
            inside = np.zeros(len(cx), dtype=bool)
            if len(t):
                inside[t] = shapely.contains_properly(self.geoms[winner[t]], boxes[t])
            resolved = (winner < 0) | inside
            out.append((k, cx[resolved], cy[resolved], winner[resolved]))
            boundary = ~resolved
            if k < leaf:
                bx, by = cx[boundary] * 2, cy[boundary] * 2
                cx = np.concatenate([bx, bx + 1, bx, bx + 1])
                cy = np.concatenate([by, by, by + 1, by + 1])
            else:
                leaf_xy = (cx[boundary], cy[boundary])
                keep = boundary[bi]
                # boundary leaf number of each kept (cell, polygon) pair, in cell order
                number = np.cumsum(boundary) - 1
                leaf_owner = number[bi[keep]]
                leaf_cand = gi[keep]
        nb = len(leaf_xy[0])
        cand_ptr = np.zeros(nb + 1, dtype=np.int64)
        np.cumsum(np.bincount(leaf_owner, minlength=nb), out=cand_ptr[1:])
        out.append((leaf, leaf_xy[0], leaf_xy[1], -2 - np.arange(nb, dtype=np.int64)))
        los, his, values, levels = [], [], [], []
        for k, x, y, v in out:
            shift = np.uint64(2 * (leaf - k))
            lo = morton(x, y) << shift
            los.append(lo)
            his.append(lo + ((np.uint64(1) << shift) - np.uint64(1)))
            values.append(v)
            levels.append(np.full(len(v), k, dtype=np.int8))
        lo = np.concatenate(los)
        order = np.argsort(lo, kind="stable")
        return _Table(
            lo[order],
            np.concatenate(his)[order],
            np.concatenate(values)[order],
            np.concatenate(levels)[order],
            cand_ptr,
            leaf_cand.astype(np.int64),
            bbox,
            root,
            leaf,
        )

    # -- the table ----------------------------------------------------------------------------

    def keys(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.uint64]:
        """The leaf key (Morton code in the quadtree) of each point; points outside the root
        rectangle get the key of the nearest leaf on its border."""
        t = self._tab
        n = np.float64(2**t.leaf_level)
        top = np.int64(2**t.leaf_level - 1)
        ix = np.floor((np.asarray(lon, np.float64) - t.root[0]) * (n / t.root[2]))
        iy = np.floor((np.asarray(lat, np.float64) - t.root[1]) * (n / t.root[3]))
        ix = np.clip(ix, 0, top).astype(np.int64)
        iy = np.clip(iy, 0, top).astype(np.int64)
        return morton(ix, iy)

    @property
    def table(self) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        """The resolved cells inside a polygon (as their first leaf key) and that polygon."""
        t = self._tab
        m = t.value >= 0
        return t.lo[m], t.value[m]

    @property
    def resolved_cell_count(self) -> int:
        """Cells of the table that answer without a geometry test (a polygon or "none")."""
        return int((self._tab.value >= -1).sum())

    @property
    def boundary_cell_count(self) -> int:
        return len(self._tab.cand_ptr) - 1

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
        if n == 0 or len(self.geoms) == 0:
            return Lookup(out, 0, n, 0)
        t = self._tab
        if not np.isfinite(t.bbox).all():
            return Lookup(out, 0, n, 0)
        x0, y0, x1, y1 = t.bbox.tolist()
        inb = np.flatnonzero((lon_a >= x0) & (lon_a <= x1) & (lat_a >= y0) & (lat_a <= y1))
        if len(inb) == 0:
            return Lookup(out, 0, n, 0)
        lon_i, lat_i = lon_a[inb], lat_a[inb]
        keys = self.keys(lon_i, lat_i)
        value = np.full(len(inb), _NO_ENTRY, dtype=np.int64)
        if len(t.lo):
            pos = np.searchsorted(t.lo, keys, side="right") - 1
            np.maximum(pos, 0, out=pos)
            hit = keys <= t.hi[pos]
            value[hit] = t.value[pos[hit]]
        out[inb] = np.maximum(value, -1)
        boundary = np.flatnonzero((value <= -2) & (value != _NO_ENTRY))
        if len(boundary):
            rows = inb[boundary]
            out[rows] = self._candidates(lon_i[boundary], lat_i[boundary], -2 - value[boundary])
        missing = np.flatnonzero(value == _NO_ENTRY)
        if len(missing):
            out[inb[missing]] = self.exact(lon_i[missing], lat_i[missing])
        n_exact = len(boundary) + len(missing)
        return Lookup(out, len(inb) - n_exact, n - len(inb), n_exact)

    def _candidates(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64], leaf: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Exact answer of points in boundary leaf cells: their cell's candidates, best first."""
        t = self._tab
        start = t.cand_ptr[leaf]
        count = t.cand_ptr[leaf + 1] - start
        pts = shapely.points(lon, lat)
        out = np.full(len(pts), -1, dtype=np.int64)
        pending = np.arange(len(pts))
        j = 0
        while len(pending):
            pending = pending[count[pending] > j]
            if len(pending) == 0:
                break
            g = t.cand[start[pending] + j]
            hit = shapely.intersects(self.geoms[g], pts[pending])
            out[pending[hit]] = g[hit]
            pending = pending[~hit]
            j += 1
        return out

    def exact(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int64]:
        """Brute-force-equivalent answer with the STRtree alone (no cells, no table)."""
        pts = shapely.points(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        out = np.full(len(pts), -1, dtype=np.int64)
        pi, gi = self.tree.query(pts, predicate="intersects")
        if len(pi):
            # keep, for each point, the highest priority (ties: lowest polygon index)
            order = _rank_order(pi, gi, self.priority)
            pi, gi = pi[order], gi[order]
            first = np.r_[True, pi[1:] != pi[:-1]]
            out[pi[first]] = gi[first]
        return out

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the directory ``path`` (replaced atomically): the table as
        ``.npy`` files that :meth:`load` memory-maps, the polygons as WKB."""
        t = self._tab
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
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
                "leaf_m": self.leaf_m,
                "res": self.res,
                "polygons": len(self.geoms),
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            old = None
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
                dest.rename(old)
            tmp.rename(dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        mode = "r" if mmap else None
        try:
            arrays = {n: np.load(src / f"{n}.npy", mmap_mode=mode) for n in _ARRAYS}
            prio = np.load(src / "priority.npy")
            blob = np.load(src / "wkb.npy")
            offsets = np.load(src / "wkb_offsets.npy")
        except (OSError, ValueError) as e:
            raise ValueError(f"{src}: cannot read the saved polygon index ({e})") from e
        raw = blob.tobytes()
        wkb = np.array(
            [raw[a:b] if b > a else None for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
            dtype=object,
        )
        geoms = shapely.from_wkb(wkb) if len(wkb) else np.empty(0, dtype=object)
        if len(geoms) != meta["polygons"] or len(prio) != len(geoms):
            raise ValueError(f"{src}: polygon count does not match meta.json")
        idx = cls(geoms, meta["res"], priority=prio, leaf_m=meta["leaf_m"])
        idx._table = _Table(**arrays, leaf_level=int(meta["leaf_level"]))
        return idx


def check_coordinates(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> None:
    """Raise :class:`CoordinateError` naming the first point that is not a valid lon/lat."""
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CoordinateError(
            f"point {i}: longitude {lon[i]!r}, latitude {lat[i]!r}: coordinates must be finite, "
            f"longitude within -180..180 and latitude within -90..90 "
            f"({int((~ok).sum())} invalid point(s))"
        )
