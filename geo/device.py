"""Zones for status on the device: what a phone needs to decide its own status, exactly,
without sending its position.

Per level of the rule, :func:`device_cells` gives

* ``cells``: compact H3 cells wholly inside the level's zones (a compacted cell stands for all
  its descendants at the answer's resolution ``res``, as ``h3.compact_cells`` means it);
* ``boundary``: the cells of resolution ``res`` within :data:`MARGIN_M` of a zone boundary of
  the level, each with the zone polygons (``polygons``: the zones' own polygons, unchanged
  coordinates) that may cover part of it.

A point's status (:mod:`api.device_client` is the reference client): its cell ``c`` at ``res``
(``h3.latlng_to_cell``); for each level, highest rank first: the point is in the level when
``c`` or one of its parents (``h3.cell_to_parent``) is among the level's ``cells``, or when
``c`` is a boundary cell of the level and one of its polygons covers the point (a point on a
polygon's edge or vertex is covered, as the server's index counts it). No level: "none".

How the cells are found (all geometry tests in the zones' local metric projection):

* **Touching cells.** The zone rings are sampled every third of a cell edge; the cells of the
  samples and their neighbours are candidates, and the candidates within :data:`MARGIN_M` of a
  ring are the touching cells ``T``. A fine cell outside ``T`` lies wholly inside or wholly
  outside each zone (the margin covers the difference between a cell's true edges, arcs on the
  sphere, and the straight lines of its polygon, far below a millimetre at resolution 9).
* **Interior cells, coarse first.** The cells of a coarse resolution ``r0`` whose centre lies
  in the zones' bounding box are visited; a cell none of whose descendants at ``res`` is in
  ``T`` has descendants that are all inside or all outside (they form one connected patch that
  no boundary crosses): its centre child's centre decides, and an inside cell is kept whole. A
  cell with a descendant in ``T`` is split into its children, down to ``res``, where a
  touching cell is interior when one polygon of the level covers it with the margin, else a
  boundary cell. The kept cells are then compacted (seven siblings become their parent).
* A boundary cell of a level that is interior to a higher level is left out (the device stops
  at the higher level), and so are the polygons no boundary cell needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from riskmap.geo import cells as h3c
from riskmap.geo._cancel import checkpoint
from riskmap.geo.crs import WGS84, local_metric_crs
from riskmap.geo.policy import Policy

__all__ = ["MARGIN_M", "DeviceCells", "DeviceLevel", "device_cells", "polygon_parts"]

#: a fine cell within this distance (metres) of a zone boundary is a boundary cell; at coarse
#: resolutions a thousandth of the cell edge (the true edges of a 9 km cell bow by a few metres)
MARGIN_M = 1.0
_M_PER_DEG = 111_320.0  # metres per degree of latitude: only to cut long segments
#: the coarsest resolution visited is chosen so that the zones' bounding box holds at most
#: about this many of its cells
_MAX_ROOT_CELLS = 4000
#: ring samples per cell edge (a boundary point is within a sixth of an edge of a sample, so
#: every cell within the margin of it is the sample's cell or a neighbour)
_SAMPLES_PER_EDGE = 3


@dataclass(frozen=True)
class DeviceLevel:
    """One level's part of the answer."""

    id: str
    label: str
    color: str
    rank: int
    cells: NDArray[np.uint64]  # compact interior cells (resolutions <= res)
    boundary: NDArray[np.uint64]  # boundary cells of resolution res, sorted
    candidates: list[list[int]]  # per boundary cell: positions in ``polygons``
    polygons: list[shapely.Polygon]  # the zones' polygons the boundary cells need

    @property
    def vertices(self) -> int:
        return int(sum(shapely.get_num_coordinates(p) for p in self.polygons))


@dataclass(frozen=True)
class DeviceCells:
    """The answer for one set of zones (levels highest rank first)."""

    res: int
    levels: list[DeviceLevel] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Items of the answer: cells, boundary cells and polygon vertices."""
        return sum(len(lv.cells) + len(lv.boundary) + lv.vertices for lv in self.levels)

    def to_dict(self) -> dict[str, Any]:
        """The levels as JSON-ready dictionaries (cells as hex strings, polygons as lists of
        rings of [lon, lat], coordinates unrounded)."""
        return {
            "resolution": self.res,
            "levels": [
                {
                    "id": lv.id,
                    "label": lv.label,
                    "color": lv.color,
                    "rank": lv.rank,
                    "cells": h3c.cells_to_hex(lv.cells),
                    "boundary": dict(
                        zip(h3c.cells_to_hex(lv.boundary), lv.candidates, strict=True)
                    ),
                    "polygons": [_rings(p) for p in lv.polygons],
                }
                for lv in self.levels
            ],
        }


def _rings(p: shapely.Polygon) -> list[list[list[float]]]:
    return [
        shapely.get_coordinates(r).tolist()
        for r in [p.exterior, *p.interiors]  # type: ignore[union-attr]
    ]


def polygon_parts(geoms: Iterable[shapely.Geometry]) -> list[shapely.Polygon]:
    """The non-empty polygons of (multi)polygons and collections, in order."""
    out: list[shapely.Polygon] = []
    todo = [g for g in geoms if g is not None]
    while todo:
        g = todo.pop(0)
        if g.is_empty:
            continue
        if isinstance(g, shapely.Polygon):
            out.append(g)
        elif isinstance(g, shapely.MultiPolygon | shapely.GeometryCollection):
            todo[:0] = list(shapely.get_parts(g))
    return out


def vertex_count(geoms: Iterable[shapely.Geometry]) -> int:
    """Vertices of the polygons of ``geoms`` (a bound on the answer before any cell)."""
    return int(sum(shapely.get_num_coordinates(p) for p in polygon_parts(geoms)))


class _Metric:
    """lon/lat <-> the zones' local metric projection."""

    def __init__(self, bounds: Sequence[float]) -> None:
        crs = local_metric_crs((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        self.fwd = Transformer.from_crs(WGS84, crs, always_xy=True)
        self.inv = Transformer.from_crs(crs, WGS84, always_xy=True)

    def to_m(self, geoms: Any) -> Any:
        return shapely.transform(geoms, lambda xy: np.column_stack(self.fwd.transform(*xy.T)))

    def to_ll(self, geoms: Any) -> Any:
        return shapely.transform(geoms, lambda xy: np.column_stack(self.inv.transform(*xy.T)))


def _children(cells: NDArray[np.uint64], res: int) -> NDArray[np.uint64]:
    out: list[int] = []
    for c in cells.tolist():
        out.extend(h3i.cell_to_children(c, res))
    return np.array(out, dtype=np.uint64)


def _centre_children(cells: NDArray[np.uint64], res: int) -> NDArray[np.uint64]:
    f = h3i.cell_to_center_child
    return np.array([f(c, res) for c in cells.tolist()], dtype=np.uint64)


def _member(sorted_set: NDArray[np.uint64], values: NDArray[np.uint64]) -> NDArray[np.bool_]:
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


def _compact(cells: NDArray[np.uint64], res: int) -> NDArray[np.uint64]:
    """Replace every complete set of siblings (7, or 6 under a pentagon) by their parent,
    from ``res`` up (h3's ``compact_cells`` takes one resolution at a time)."""
    if len(cells) == 0:
        return cells
    by_res: dict[int, set[int]] = {}
    for c in cells.tolist():
        by_res.setdefault(h3i.get_resolution(c), set()).add(c)
    for k in range(res, 0, -1):
        here = by_res.get(k)
        if not here:
            continue
        groups: dict[int, list[int]] = {}
        for c in here:
            groups.setdefault(h3i.cell_to_parent(c, k - 1), []).append(c)
        for p, kids in groups.items():
            if len(kids) == (6 if h3i.is_pentagon(p) else 7):
                here.difference_update(kids)
                by_res.setdefault(k - 1, set()).add(p)
    return np.array(sorted(c for s in by_res.values() for c in s), dtype=np.uint64)


def _root_res(area_m2: float, res: int) -> int:
    k = res
    while k > 0 and area_m2 / h3.average_hexagon_area(k, "m^2") > _MAX_ROOT_CELLS:
        k -= 1
    return k


def _level_cells(
    parts: list[shapely.Polygon], metric: _Metric, res: int
) -> tuple[NDArray[np.uint64], NDArray[np.uint64], list[list[int]]]:
    """(compact interior cells, boundary cells, candidate parts of each) of one level."""
    empty = h3c.EMPTY_CELLS
    if not parts:
        return empty, empty, []
    ll = np.asarray(parts, dtype=object)
    edge = h3.average_hexagon_edge_length(res, "m")
    margin = max(MARGIN_M, edge / 1000)
    # segments cut to a third of a cell edge before the projection: a straight segment in
    # lon/lat stays straight enough in metres (a 5 km edge would bow by decimetres)
    m = metric.to_m(shapely.segmentize(ll, edge / _SAMPLES_PER_EDGE / _M_PER_DEG))
    # the rings as short segments (each segment knows its polygon)
    rings, owner = shapely.get_rings(m, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    segments = shapely.linestrings(np.stack([xy[:-1][same], xy[1:][same]], axis=1))
    seg_owner = owner[ring_of[:-1][same]]
    # touching cells: cells of the segments' ends and their neighbours, kept when within the
    # margin of a segment
    lon, lat = metric.inv.transform(xy[:, 0], xy[:, 1])
    seed = h3c.unique(h3c.points_to_cells(lon, lat, res))
    checkpoint()
    near: list[int] = []
    for c in seed.tolist():
        near.extend(h3i.grid_disk(c, 1))
    cand = h3c.unique(np.array(near, dtype=np.uint64))
    cand_m = metric.to_m(h3c.cell_polygons(cand))
    ci, si = shapely.STRtree(segments).query(cand_m, predicate="dwithin", distance=margin)
    rows = h3c.unique(ci)
    touching, touching_m = cand[rows], cand_m[rows]
    checkpoint()
    # (touching cell, polygon) pairs: a polygon whose ring is within the margin of the cell
    # is a candidate; a polygon holding the cell's centre whose ring is not is a polygon
    # covering the whole cell: the cell is interior
    near_pairs = h3c.unique(
        (np.searchsorted(rows, ci).astype(np.uint64) << np.uint64(32))
        | seg_owner[si].astype(np.uint64)
    )
    ti, pi = shapely.STRtree(m).query(shapely.centroid(touching_m), predicate="intersects")
    holding = (ti.astype(np.uint64) << np.uint64(32)) | pi.astype(np.uint64)
    inner = np.zeros(len(touching), dtype=bool)
    inner[ti[~_member(near_pairs, holding)]] = True
    pair_cell = (near_pairs >> np.uint64(32)).astype(np.int64)
    pair_part = (near_pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)
    boundary_rows = np.flatnonzero(~inner)
    cand_lists: dict[int, list[int]] = {int(r): [] for r in boundary_rows}
    for t, p in zip(pair_cell.tolist(), pair_part.tolist(), strict=True):
        if not inner[t]:
            cand_lists[t].append(p)
    boundary = touching[boundary_rows]
    candidates = [cand_lists[int(r)] for r in boundary_rows]
    # interior cells, coarse first
    bounds = shapely.total_bounds(m)
    area = float((bounds[2] - bounds[0]) * (bounds[3] - bounds[1]))
    r0 = _root_res(area, res)
    pad = 2 * h3.average_hexagon_edge_length(r0, "m")
    box = shapely.segmentize(
        shapely.box(bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad),
        max(pad, 1.0),
    )
    level_cells = h3c.unique(
        np.concatenate(
            [h3c.polygon_cells(metric.to_ll(box), r0, "center"), h3c.parents(touching, r0)]
        )
    )
    inside: list[NDArray[np.uint64]] = [touching[inner]]
    ll_tree = shapely.STRtree(ll)
    for k in range(r0, res + 1):
        checkpoint()
        if len(level_cells) == 0:
            break
        if k == res:
            dirty = _member(touching, level_cells)
        else:
            dirty = _member(h3c.unique(h3c.parents(touching, k)), level_cells)
        clean = level_cells[~dirty]
        if len(clean):
            plat, plon = h3c.cell_centres(_centre_children(clean, res))
            hit, _ = ll_tree.query(shapely.points(plon, plat), predicate="intersects")
            inside.append(clean[h3c.unique(hit)])
        if k < res:
            level_cells = _children(level_cells[dirty], k + 1)
    interior = _compact(h3c.unique(np.concatenate(inside)), res)
    return interior, boundary, candidates


def _covered_by(cells: NDArray[np.uint64], interior: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """Whether each cell or one of its parents is in ``interior`` (sorted)."""
    out = np.zeros(len(cells), dtype=bool)
    if len(interior) == 0 or len(cells) == 0:
        return out
    for k in sorted(set(h3c.resolution_of(interior).tolist())):
        out |= _member(interior, h3c.parents(cells, k))
    return out


def device_cells(
    geoms: Sequence[shapely.Geometry], levels: Sequence[str], policy: Policy, res: int
) -> DeviceCells:
    """The on-device answer for zones (``geoms`` in lon/lat, ``levels`` their level ids)
    under ``policy`` at H3 resolution ``res`` (see the module docstring); every level of the
    rule is in it, those without a zone empty."""
    h3c.check_resolution(res)
    geoms_a = np.asarray(geoms, dtype=object)
    level_a = np.asarray(levels, dtype=object)
    out: list[DeviceLevel] = []
    bounds = shapely.total_bounds(geoms_a) if len(geoms_a) else np.zeros(4)
    metric = _Metric(np.nan_to_num(bounds).tolist())
    higher: list[NDArray[np.uint64]] = []
    for lv in policy.levels:  # highest first
        parts = polygon_parts(geoms_a[level_a == lv.id])
        interior, boundary, candidates = _level_cells(parts, metric, res)
        # the device stops at a higher level: its interior needs no test here
        keep = np.ones(len(boundary), dtype=bool)
        for cells in higher:
            keep &= ~_covered_by(boundary, cells)
        boundary = boundary[keep]
        candidates = [c for c, k in zip(candidates, keep.tolist(), strict=True) if k]
        used = sorted({p for c in candidates for p in c})
        renumber = {p: i for i, p in enumerate(used)}
        out.append(
            DeviceLevel(
                id=lv.id,
                label=lv.label,
                color=lv.color,
                rank=policy.rank(lv.id),
                cells=interior,
                boundary=boundary,
                candidates=[[renumber[p] for p in c] for c in candidates],
                polygons=[parts[p] for p in used],
            )
        )
        higher.append(interior)
    return DeviceCells(res, out)
