"""The zone engine: levels per community and day, and zones as of a date, from a rule file.

Everything is computed on grids of (units x days) with numpy and scipy.sparse, from the first
case to a few weeks after the as-of date:

1. each *triggered* level counts its qualifying case locations per unit (community, parent unit,
   location or H3 cell) and day, evaluates its condition (distinct cases or locations in a
   window, rate per 100,000, cumulative count, cluster, hospital figures) and keeps a unit at the
   level on days d .. d+N-1 after a qualifying day d (N = ``lift_after_days``), then hands it to
   its ``step_down`` level for some more days;
2. *derived* levels follow the levels they are drawn around (buffers, the rest of a parent unit,
   every community);
3. a level drawn per community fills a (communities x days) grid; a level drawn as exact
   geometry (circles, H3 cells) keeps a set of features with their own activity;
4. where levels overlap, the highest (first listed) wins.

Only cases reported on or before the as-of date are used, so an answer for a past date is what
was known then; the grid after the as-of date (no new cases) gives each expected lift date, and
the grid before it is the history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from geo import cells as h3c
from geo._cancel import checkpoint
from geo.crs import WGS84, metric_crs_for
from geo.index import PolygonIndex
from geo.policy import (
    AllExtent,
    BufferExtent,
    CellExtent,
    CommunityExtent,
    Condition,
    GridDiskExtent,
    Level,
    ParentExtent,
    ParentRemainderExtent,
    Policy,
    RadiusExtent,
    Range,
    Trigger,
)

Bool2D = NDArray[np.bool_]
Int1D = NDArray[np.int64]

ZONE_COLUMNS = [
    "zone_id",
    "level",
    "label",
    "color",
    "drawn",
    "community_ids",
    "community_count",
    "population",
    "start",
    "last_case",
    "expected_lift",
    "cells",
    "h3_resolution",
    "geometry",
]
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def to_day(d: dt.date | str) -> int:
    """Days since 1970-01-01."""
    if isinstance(d, str):
        d = dt.date.fromisoformat(d)
    return d.toordinal() - _EPOCH_ORDINAL


def from_day(n: int) -> dt.date:
    return dt.date.fromordinal(int(n) + _EPOCH_ORDINAL)


def to_days(values: pd.Series | NDArray[np.object_]) -> Int1D:
    """Days since 1970-01-01 of many dates (datetime64 or ``datetime.date`` values)."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[D]")
    return arr.astype("datetime64[D]").astype(np.int64)


# --------------------------------------------------------------------------------------------
# communities prepared once per data version
# --------------------------------------------------------------------------------------------


@dataclass
class CommunityLayer:
    """Communities prepared once per data version: metric geometries, parents, H3 cover,
    neighbour graphs and a point look-up index.
    """

    frame: gpd.GeoDataFrame
    h3_res: int
    _graphs: dict[tuple[float, str], sparse.csr_matrix] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        f = self.frame
        if f.crs is None:
            f = f.set_crs(WGS84)
        elif not f.crs.equals(WGS84):
            f = f.to_crs(WGS84)
        self.frame = f.reset_index(drop=True)
        self.ids = self.frame["community_id"].astype(str).to_numpy()
        self.geoms = self.frame.geometry.to_numpy()
        pop = (
            pd.to_numeric(self.frame["population"], errors="coerce")
            if "population" in self.frame
            else pd.Series(np.nan, index=self.frame.index)
        )
        self.population = pop.to_numpy(dtype=np.float64, na_value=np.nan)
        rural = self.frame["rural"] if "rural" in self.frame else pd.Series(False, self.frame.index)
        self.rural = rural.fillna(False).astype(bool).to_numpy()

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, idx: Int1D) -> CommunityLayer:
        """The communities ``idx`` with the parent's metric CRS, metric geometries, neighbour
        graphs and cells, so that computations on the subset equal those on the whole."""
        sub = CommunityLayer(self.frame.iloc[idx], self.h3_res)
        sub.__dict__["metric_crs"] = self.metric_crs
        if "metric" in self.__dict__:  # else computed when needed, from the same CRS
            sub.__dict__["metric"] = self.metric[idx]
        for key, g in self._graphs.items():
            sub._graphs[key] = g[idx][:, idx].tocsr()
        if "cells" in self.__dict__:
            _, cells = self.cells
            off = self._cell_offsets
            lengths = off[idx + 1] - off[idx]
            starts = np.repeat(off[idx] - np.cumsum(lengths) + lengths, lengths)
            take = starts + np.arange(int(lengths.sum()))
            owner = np.repeat(np.arange(len(idx), dtype=np.int64), lengths)
            sub.__dict__["cells"] = (owner, cells[take])
        return sub

    @cached_property
    def metric_crs(self) -> object:
        return metric_crs_for(self.frame)

    @cached_property
    def to_metric(self) -> Transformer:
        return Transformer.from_crs(WGS84, self.metric_crs, always_xy=True)

    @cached_property
    def to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.metric_crs, WGS84, always_xy=True)

    @cached_property
    def metric(self) -> NDArray[np.object_]:
        return self.frame.geometry.to_crs(self.metric_crs).to_numpy()

    @cached_property
    def metric_tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.metric)

    @cached_property
    def index(self) -> PolygonIndex:
        return PolygonIndex(self.geoms, self.h3_res)

    @cached_property
    def cells(self) -> tuple[Int1D, NDArray[np.uint64]]:
        """(owner, cells): centre-containment H3 cover, at least one cell per community,
        sorted by owner."""
        return h3c.community_cells(self.geoms, self.h3_res)

    @cached_property
    def rep_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """A point inside each community (metric x, y) and the farthest distance from it to
        the community's boundary (every point of the community is that close)."""
        pts = shapely.point_on_surface(self.metric)
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        coords, owner = shapely.get_coordinates(self.metric, return_index=True)
        d = np.hypot(coords[:, 0] - x[owner], coords[:, 1] - y[owner])
        reach = np.zeros(len(self))
        np.maximum.at(reach, owner, d)
        return x, y, reach

    @cached_property
    def inner_radius(self) -> NDArray[np.float64]:
        """Distance from each community's inner point (``rep_points``) to its boundary: the
        disc of that radius around the point lies inside the community."""
        x, y, _ = self.rep_points
        return np.asarray(
            shapely.distance(shapely.points(x, y), shapely.boundary(self.metric)), dtype=np.float64
        )

    def probe_blocks(self, side: float) -> tuple[Int1D, NDArray[np.float64], NDArray[np.float64]]:
        """Square blocks of ``side`` metres over the inner points (``rep_points``): block of
        each community, block centres (metric x, y) and each inner point's distance to its
        block's centre."""
        key = f"_blocks_{side!r}"
        if key not in self.__dict__:
            x, y, _ = self.rep_points
            ix, iy = np.floor(x / side), np.floor(y / side)
            cells = np.column_stack([ix, iy])
            uniq, block = np.unique(cells, axis=0, return_inverse=True)
            centre = (uniq + 0.5) * side
            block = np.asarray(block, dtype=np.int64).ravel()
            offset = np.hypot(x - centre[block, 0], y - centre[block, 1])
            self.__dict__[key] = (block, centre, offset)
        return self.__dict__[key]  # type: ignore[no-any-return]

    @cached_property
    def cell_centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric (x, y) of the centre of every community cell."""
        _, cells = self.cells
        lat, lng = h3c.cell_centres(cells)
        x, y = self.to_metric.transform(lng, lat)
        return np.asarray(x), np.asarray(y)

    def cell_centres_at(self, pos: Int1D) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric (x, y) of the centres of some community cells (positions in ``cells``)."""
        if "cell_centres" in self.__dict__:
            x, y = self.cell_centres
            return x[pos], y[pos]
        if len(pos) == 0:
            return np.empty(0), np.empty(0)
        _, cells = self.cells
        lat, lng = h3c.cell_centres(cells[pos])
        x, y = self.to_metric.transform(lng, lat)
        return np.asarray(x), np.asarray(y)

    @cached_property
    def single_cell(self) -> NDArray[np.bool_]:
        """Communities with a single cell (maybe the cell of a point inside a community too
        small to hold a cell centre, whose centre may lie outside it)."""
        off = self._cell_offsets
        return np.asarray((off[1:] - off[:-1]) == 1)

    @cached_property
    def single_cell_centres(
        self,
    ) -> tuple[Int1D, NDArray[np.float64], NDArray[np.float64]]:
        """Positions in ``cells`` and metric centres of the cells of single-cell communities."""
        pos = self.cell_positions(np.flatnonzero(self.single_cell))
        x, y = self.cell_centres_at(pos)
        return pos, x, y

    def cell_positions(self, idx: Int1D) -> Int1D:
        """Positions in ``cells`` of the cells of some communities."""
        off = self._cell_offsets
        idx = np.asarray(idx, dtype=np.int64)
        lengths = off[idx + 1] - off[idx]
        starts = np.repeat(off[idx] - np.cumsum(lengths) + lengths, lengths)
        return starts + np.arange(int(lengths.sum()), dtype=np.int64)

    @cached_property
    def _cell_offsets(self) -> Int1D:
        owner, _ = self.cells
        return np.searchsorted(owner, np.arange(len(self) + 1)).astype(np.int64)

    def cells_of(self, idx: Int1D) -> NDArray[np.uint64]:
        """The cells of some communities."""
        _, cells = self.cells
        off = self._cell_offsets
        idx = np.asarray(idx, dtype=np.int64)
        lengths = off[idx + 1] - off[idx]
        starts = np.repeat(off[idx] - np.cumsum(lengths) + lengths, lengths)
        return cells[starts + np.arange(int(lengths.sum()))]

    def parent_codes(self, parent: str) -> tuple[Int1D, NDArray[np.object_]]:
        """Group code per community for a parent column (-1 where unknown) and the parent ids."""
        key = f"_codes_{parent}"
        if key not in self.__dict__:
            col = f"{parent}_id"
            if col not in self.frame:
                self.__dict__[key] = (np.full(len(self), -1, np.int64), np.empty(0, object))
            else:
                vals = self.frame[col].astype(object)
                vals = vals.where(vals.notna() & (vals != ""), None)
                codes, uniques = pd.factorize(vals)
                self.__dict__[key] = (codes.astype(np.int64), np.asarray(uniques, dtype=object))
        return self.__dict__[key]  # type: ignore[no-any-return]

    def parent_population(self, parent: str) -> NDArray[np.float64]:
        codes, uniq = self.parent_codes(parent)
        ok = codes >= 0
        pop = np.zeros(len(uniq))
        known = np.zeros(len(uniq), dtype=bool)
        np.add.at(pop, codes[ok], np.nan_to_num(self.population[ok]))
        np.logical_or.at(known, codes[ok], ~np.isnan(self.population[ok]))
        return np.where(known, pop, np.nan)

    def within(self, distance_m: float, snap: str = "intersects") -> sparse.csr_matrix:
        """Sparse (communities x communities) matrix: column j selects row i when community i is
        within ``distance_m`` of community j (by ``snap``: any part, centroid, area fraction)."""
        key = (float(distance_m), snap)
        if key not in self._graphs:
            self._graphs[key] = self.select(self.metric, distance_m, snap).T.tocsr()
        return self._graphs[key]

    def select(
        self, metric_geoms: NDArray[np.object_], distance_m: float, snap: str, fraction: float = 0.5
    ) -> sparse.csr_matrix:
        """(features x communities) selection of the communities a metric geometry (grown by
        ``distance_m``) takes, by ``snap``: ``intersects`` (any part within the distance),
        ``centroid`` (the community's centroid within it) or ``area`` (at least ``fraction`` of
        the community's area within it)."""
        n = len(self)
        if len(metric_geoms) == 0:
            return sparse.csr_matrix((0, n), dtype=np.int8)
        if distance_m == 0:
            fi, ci = self.metric_tree.query(metric_geoms, predicate="intersects")
        else:
            fi, ci = self.metric_tree.query(metric_geoms, predicate="dwithin", distance=distance_m)
        if snap == "centroid":
            cent = shapely.centroid(self.metric[ci])
            keep = shapely.dwithin(metric_geoms[fi], cent, distance_m)
        elif snap == "area":
            grown = (
                metric_geoms[fi]
                if distance_m == 0
                else shapely.buffer(metric_geoms[fi], distance_m, quad_segs=16)
            )
            part = shapely.area(shapely.intersection(grown, self.metric[ci]))
            keep = part >= fraction * shapely.area(self.metric[ci]) - 1e-9
        else:
            keep = np.ones(len(fi), dtype=bool)
        fi, ci = fi[keep], ci[keep]
        return sparse.csr_matrix(
            (np.ones(len(fi), dtype=np.int8), (fi, ci)), shape=(len(metric_geoms), n)
        )

    @property
    def touching(self) -> sparse.csr_matrix:
        return self.within(0.01)

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Int1D:
        """Index of the community covering each point, -1 outside every community (exact,
        with the STRtree: building the H3 table is not worth it for one batch of points)."""
        return self.index.exact(lon, lat)

    def parent_units(self, parent: str) -> gpd.GeoDataFrame:
        """Parent units (``subdistrict`` or ``district``) as unions of their communities."""
        key = f"_units_{parent}"
        if key not in self.__dict__:
            codes, uniq = self.parent_codes(parent)
            col = f"{parent}_id"
            pop = self.parent_population(parent)
            rows = []
            for code, pid in enumerate(uniq):
                idx = np.flatnonzero(codes == code)
                rows.append(
                    {
                        col: str(pid),
                        "community_count": len(idx),
                        "population": None if np.isnan(pop[code]) else int(pop[code]),
                        "geometry": shapely.union_all(self.geoms[idx]),
                    }
                )
            self.__dict__[key] = gpd.GeoDataFrame(
                rows,
                columns=[col, "community_count", "population", "geometry"],
                geometry="geometry",
                crs=WGS84,
            )
        return self.__dict__[key]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# grid helpers
# --------------------------------------------------------------------------------------------


def _rolling_any(q: Bool2D, n: int) -> Bool2D:
    """active[:, t] = any q in [t-n+1, t] (the running count grew over the window)."""
    cs = np.cumsum(q, axis=1, dtype=np.int32)
    out = cs > 0
    if n < cs.shape[1]:
        np.greater(cs[:, n:], cs[:, :-n], out=out[:, n:])
    return out


def _last_true(q: Bool2D, lo: int, hi: int) -> Int1D:
    """Index of the last True in columns [lo, hi] per row, -1 if none."""
    lo = max(lo, 0)
    if hi < lo:
        return np.full(q.shape[0], -1, dtype=np.int64)
    win = q[:, lo : hi + 1][:, ::-1]
    has = win.any(axis=1)
    return np.where(has, hi - win.argmax(axis=1), -1).astype(np.int64)


def _run_bounds(grid: NDArray[np.int8], at_i: int) -> tuple[Int1D, Int1D]:
    """First day of the run containing ``at_i`` and first later day with another value (-1)."""
    cur = grid[:, at_i]
    before = grid[:, : at_i + 1] != cur[:, None]
    rev = before[:, ::-1]
    start = np.where(rev.any(axis=1), at_i + 1 - rev.argmax(axis=1), 0)
    after = grid[:, at_i + 1 :] != cur[:, None]
    has = after.any(axis=1)
    end = np.where(has, at_i + 1 + after.argmax(axis=1), -1)
    return start.astype(np.int64), end.astype(np.int64)


def _spread(sel: sparse.spmatrix, grid: Bool2D) -> Bool2D:
    """out[j] = any grid[i] with sel[i, j] (sel: sources x targets)."""
    if sel.shape[0] == 0 or grid.shape[1] == 0:
        return np.zeros((sel.shape[1], grid.shape[1]), dtype=bool)
    return np.asarray((sel.T.tocsr().astype(np.int32) @ grid.astype(np.int32)) > 0)


def _spread_max(sel: sparse.spmatrix, values: Int1D) -> Int1D:
    """out[j] = max values[i] with sel[i, j] (-1 if none)."""
    coo = sel.tocoo()
    out = np.full(sel.shape[1], -1, dtype=np.int64)
    if coo.nnz:
        np.maximum.at(out, coo.col, values[coo.row])
    return out


def _in_range(values: NDArray[np.floating[Any]] | NDArray[np.integer[Any]], r: Range) -> Bool2D:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values)
        if r.min is not None:
            ok &= values >= r.min
        if r.max is not None:
            ok &= values < r.max
    return ok


# --------------------------------------------------------------------------------------------
# level states
# --------------------------------------------------------------------------------------------


@dataclass
class Features:
    """Exact-geometry zone parts of a level: one per unit (location, cell), with activity.

    *Discs* (circles around locations, ``centre`` and ``radius`` given) keep no polygon until
    one is needed: the communities they touch are found day by day from their centres, which
    keeps a million epicentres affordable. A disc's polygon has 128 segments.
    """

    keys: NDArray[np.object_]  # stable text key per feature
    community: Int1D  # community of the feature's location (-1 if none)
    active: Bool2D  # features x days
    events: Bool2D  # features x days: a qualifying case sustaining the feature
    last: Int1D  # grid index of the sustaining qualifying day at the as-of date (-1)
    polygons: NDArray[np.object_] | None = None  # metric polygons (cells, disks...)
    centre: NDArray[np.float64] | None = None  # discs: metric (x, y) of the centre
    radius: NDArray[np.float64] | None = None  # discs: radius in metres
    lift: int = 0  # discs: active = any event in the last ``lift`` days
    # discs sharing centres and events with this one (a level and the buffers around it)
    family: _DiscFamily | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def is_discs(self) -> bool:
        return self.centre is not None

    @property
    def metric(self) -> NDArray[np.object_]:
        if self.polygons is None:
            assert self.centre is not None and self.radius is not None
            pts = shapely.points(self.centre)
            self.polygons = shapely.buffer(pts, self.radius, quad_segs=32)
        return self.polygons

    def take(self, mask: NDArray[np.bool_]) -> Features:
        return Features(
            self.keys[mask],
            self.community[mask],
            self.active[mask],
            self.events[mask],
            self.last[mask],
            None if self.polygons is None else self.polygons[mask],
            None if self.centre is None else self.centre[mask],
            None if self.radius is None else self.radius[mask],
            self.lift,
        )

    @staticmethod
    def concat(parts: list[Features], ndays: int) -> Features:
        parts = [p for p in parts if len(p)]
        if not parts:
            e = np.empty(0, dtype=object)
            z = np.zeros((0, ndays), dtype=bool)
            return Features(e, np.empty(0, np.int64), z, z, np.empty(0, np.int64), e)
        if len(parts) == 1:
            return parts[0]
        discs = all(p.is_discs for p in parts) and len({p.lift for p in parts}) == 1
        return Features(
            np.concatenate([p.keys for p in parts]),
            np.concatenate([p.community for p in parts]),
            np.concatenate([p.active for p in parts]),
            np.concatenate([p.events for p in parts]),
            np.concatenate([p.last for p in parts]),
            None if discs else np.concatenate([p.metric for p in parts]),
            np.concatenate([p.centre for p in parts]) if discs else None,  # type: ignore[misc]
            np.concatenate([p.radius for p in parts]) if discs else None,  # type: ignore[misc]
            parts[0].lift if discs else 0,
        )

    def covering(self, x: float, y: float) -> Int1D:
        """The features whose polygon covers a metric point."""
        pt = shapely.Point(x, y)
        if self.is_discs:
            assert self.centre is not None and self.radius is not None
            d = np.hypot(self.centre[:, 0] - x, self.centre[:, 1] - y)
            cand = np.flatnonzero(d <= self.radius + 1.0)
            polys = shapely.buffer(
                shapely.points(self.centre[cand]), self.radius[cand], quad_segs=32
            )
            return cand[shapely.intersects(polys, pt)]
        return shapely.STRtree(self.metric).query(pt, predicate="intersects")

    def hits(self, layer: CommunityLayer) -> Bool2D:
        """communities x days: a feature qualifying that day touches the community (discs:
        within the radius of the centre, by exact distance)."""
        n, ndays = len(layer), self.active.shape[1]
        out = np.zeros((n, ndays), dtype=bool)
        if len(self) == 0:
            return out
        if not self.is_discs:
            return _spread(layer.select(self.metric, 0.0, "intersects"), self.events)
        assert self.centre is not None and self.radius is not None
        if self.family is not None:
            return self.family.hits_of(self, layer)
        return _disc_hits(layer, self.centre, self.events, [self.radius])[0]


class _DiscFamily:
    """Discs with the same centres and events but other radii (a level and the buffers drawn
    around it): their community hits come from one pass over the days."""

    def __init__(self, first: Features) -> None:
        self.centre = first.centre
        self.events = first.events
        self.members: list[Features] = []
        self.results: dict[int, Bool2D] | None = None
        self.join(first)

    def join(self, f: Features) -> None:
        assert f.centre is self.centre and f.events is self.events
        if not any(m is f for m in self.members):
            self.members.append(f)
            self.results = None
        f.family = self

    def hits_of(self, f: Features, layer: CommunityLayer) -> Bool2D:
        assert self.centre is not None and f.radius is not None
        if self.results is None or id(f) not in self.results:
            radii = [m.radius for m in self.members]
            grids = _disc_hits(layer, self.centre, self.events, radii)  # type: ignore[arg-type]
            self.results = {id(m): g for m, g in zip(self.members, grids, strict=True)}
        return self.results.pop(id(f))


def _disc_hits(
    layer: CommunityLayer,
    centre: NDArray[np.float64],
    events: Bool2D,
    radii: list[NDArray[np.float64]],
) -> list[Bool2D]:
    """communities x days for each radius vector: a disc (``centre``, radius) with an event
    that day is within the radius of the community (exact polygon-to-centre distance).

    Day by day, one KD-tree of that day's centres answers every radius vector: with the
    community's inner point at distance d from the nearest centre, the community is hit when
    d <= r + (inner radius) and missed when d > r + (reach); only the communities in between
    test their polygon exactly, each (community, disc) pair once over all days. Square blocks
    of communities are asked first: the distance from a block's centre bounds d for each of
    its communities, and only the communities that the bounds leave open are asked."""
    n, ndays = len(layer), events.shape[1]
    if len(centre) == 0 or n == 0:
        return [np.zeros((n, ndays), dtype=bool) for _ in radii]
    outs = [np.zeros((ndays, n), dtype=bool) for _ in radii]  # days x communities until the end
    rep_x, rep_y, reach = layer.rep_points
    inner = layer.inner_radius
    rep = np.column_stack([rep_x, rep_y])
    reach_max = float(np.nanmax(reach))
    bound = max(float(r.max()) for r in radii) + reach_max
    block_of, block_centre, offset = layer.probe_blocks(
        max(min(float(r.min()) for r in radii) * 2 / 3, 1.0)
    )
    block_bound = bound + float(offset.max())
    f_of, t_of = np.nonzero(events)
    by_day = np.argsort(t_of, kind="stable")
    t_of, f_of = t_of[by_day], f_of[by_day]  # (day, disc), sorted by day
    cuts = np.searchsorted(t_of, np.arange(ndays + 1))
    todo: list[list[tuple[Int1D, Int1D, int]]] = [[] for _ in radii]
    for t in np.flatnonzero(np.diff(cuts)):
        checkpoint()
        fs = f_of[cuts[t] : cuts[t + 1]]
        pts = centre[fs]
        tree = cKDTree(pts)
        d_block, _ = tree.query(block_centre, k=1, distance_upper_bound=block_bound)
        d_c = d_block[block_of]
        d_hi = d_c + offset  # bounds of d
        d_lo = d_c - offset
        known_hit: list[NDArray[np.bool_]] = []
        undecided: list[NDArray[np.bool_]] = []
        for radius in radii:
            rf = radius[fs]
            # the nearest centre's disc is at least as large as the smallest one
            known_hit.append(d_hi <= rf.min() + inner)
            undecided.append(~known_hit[-1] & ~(d_lo > rf.max() + reach))
        ask = np.flatnonzero(np.logical_or.reduce(undecided))
        d = np.full(n, np.inf)
        if len(ask):
            d[ask], _ = tree.query(rep[ask], k=1, distance_upper_bound=bound)
        for k, radius in enumerate(radii):
            rf = radius[fs]
            hit = known_hit[k] | (undecided[k] & (d <= rf.min() + inner))
            for rho in np.unique(rf):
                cand = np.flatnonzero(~hit & undecided[k] & (d <= rho + reach))
                if len(cand) == 0:
                    continue
                on = rf == rho
                if on.all():
                    sub, sub_f, dr = tree, fs, d[cand]
                else:
                    sub, sub_f = cKDTree(pts[on]), fs[on]
                    dr, _ = sub.query(rep[cand], k=1, distance_upper_bound=rho + reach_max)
                sure = dr <= rho + inner[cand]
                hit[cand[sure]] = True
                unsure = cand[~sure & (dr <= rho + reach[cand])]
                if len(unsure) == 0:
                    continue
                near = sub.query_ball_point(rep[unsure], rho + reach[unsure], return_sorted=False)
                sizes = np.fromiter((len(x) for x in near), dtype=np.int64, count=len(near))
                total = int(sizes.sum())
                if total == 0:
                    continue
                ci = np.repeat(unsure, sizes)
                pi = np.fromiter(chain.from_iterable(near), dtype=np.int64, count=total)
                todo[k].append((ci, sub_f[pi], int(t)))
            outs[k][t] = hit
    for k, radius in enumerate(radii):
        checkpoint()
        if not todo[k]:
            continue
        ci = np.concatenate([c for c, _, _ in todo[k]])
        fi = np.concatenate([f for _, f, _ in todo[k]])
        ti = np.concatenate([np.full(len(c), t, dtype=np.int64) for c, _, t in todo[k]])
        open_ = ~outs[k][ti, ci]
        ci, fi, ti = ci[open_], fi[open_], ti[open_]
        if len(ci) == 0:
            continue
        pair, inv = np.unique(ci * len(centre) + fi, return_inverse=True)
        pc, pf = pair // len(centre), pair % len(centre)
        uf, at_f = np.unique(pf, return_inverse=True)
        points = shapely.points(centre[uf])[at_f]
        ok = shapely.dwithin(layer.metric[pc], points, radius[pf])
        sel = ok[inv]
        outs[k][ti[sel], ci[sel]] = True
    return [np.ascontiguousarray(o.T) for o in outs]


@dataclass
class LevelState:
    """What one level contributes: whole communities (``grid``) and/or exact features."""

    grid: Bool2D  # communities x days drawn at this level
    events: Bool2D  # communities x days: qualifying cases sustaining it
    last: Int1D  # per community: sustaining qualifying day (grid index) at the as-of date
    features: Features | None = None
    touch_cache: Bool2D | None = None
    hits_cache: Bool2D | None = None
    sel_cache: sparse.csr_matrix | None = None

    def feature_selection(self, layer: CommunityLayer) -> sparse.csr_matrix:
        """features x communities: the communities each feature intersects."""
        assert self.features is not None
        if self.sel_cache is None:
            self.sel_cache = layer.select(self.features.metric, 0.0, "intersects")
        return self.sel_cache

    def feature_hits(self, layer: CommunityLayer) -> Bool2D:
        """communities x days: a qualifying case of a feature touching the community."""
        assert self.features is not None
        if self.hits_cache is None:
            f = self.features
            if f.is_discs:
                self.hits_cache = f.hits(layer)
            else:
                self.hits_cache = _spread(self.feature_selection(layer), f.events)
        return self.hits_cache

    def touch(self, layer: CommunityLayer) -> Bool2D:
        """Communities drawn at the level or touched by one of its active features."""
        if self.touch_cache is None:
            t = self.grid.copy()
            f = self.features
            if f is not None and len(f):
                if f.is_discs:
                    t |= _rolling_any(self.feature_hits(layer), f.lift)
                else:
                    t |= _spread(self.feature_selection(layer), f.active)
            self.touch_cache = t
        return self.touch_cache

    def touch_last(self, layer: CommunityLayer, at_i: int) -> Int1D:
        last = np.where(self.grid[:, at_i], self.last, -1)
        f = self.features
        if f is not None and len(f):
            if f.is_discs:
                hit = self.feature_hits(layer)
                last = np.maximum(last, _last_true(hit, at_i - f.lift + 1, at_i))
            else:
                last_f = np.where(f.active[:, at_i], f.last, -1)
                last = np.maximum(last, _spread_max(self.feature_selection(layer), last_f))
        return last


@dataclass
class _Context:
    layer: CommunityLayer
    cases: pd.DataFrame  # qualifying for no level yet: all case locations reported <= at
    rep: Int1D  # report day (grid index) per case location
    day0: int
    ndays: int
    at_i: int
    metrics: pd.DataFrame | None
    states: dict[str, LevelState] = field(default_factory=dict)
    pending: dict[str, list[LevelState]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.layer)

    @cached_property
    def case_codes(self) -> Int1D:
        """An integer per case id (distinct counts compare these, not the text ids)."""
        if len(self.cases) == 0:
            return np.empty(0, dtype=np.int64)
        return pd.factorize(self.cases["case_id"])[0].astype(np.int64)

    def empty(self) -> LevelState:
        z = np.zeros((self.n, self.ndays), dtype=bool)
        return LevelState(z, z.copy(), np.full(self.n, -1, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# triggers
# --------------------------------------------------------------------------------------------


@dataclass
class _Units:
    """Qualifying case locations grouped into units, with their per-day statistics."""

    count: int
    of_row: Int1D  # unit of each qualifying location
    rows: NDArray[np.bool_]  # mask over ctx.cases: qualifying locations with a unit
    population: NDArray[np.float64]
    ids: NDArray[np.object_]


def _qualifying(ctx: _Context, tr: Trigger) -> NDArray[np.bool_]:
    c = ctx.cases
    if len(c) == 0:
        return np.zeros(0, dtype=bool)
    return (c["type"].isin(tr.case_types) & c["role"].isin(tr.roles)).to_numpy()


def _units(ctx: _Context, lv: Level, q: NDArray[np.bool_]) -> _Units:
    layer, c = ctx.layer, ctx.cases
    comm = c["community"].to_numpy() if len(c) else np.empty(0, np.int64)
    ext = lv.extent
    if isinstance(ext, CommunityExtent):
        rows = q & (comm >= 0)
        return _Units(len(layer), comm[rows], rows, layer.population, layer.ids.astype(object))
    if isinstance(ext, ParentExtent):
        codes, uniq = layer.parent_codes(ext.parent)
        unit = np.where(comm >= 0, codes[np.maximum(comm, 0)], -1)
        rows = q & (unit >= 0)
        return _Units(len(uniq), unit[rows], rows, layer.parent_population(ext.parent), uniq)
    # location units: exact coordinates (radius) or H3 cells (cell, grid_disk)
    rows = q.copy()
    if isinstance(ext, RadiusExtent) and ext.centre_res is None:
        keys = pd.Series(
            [f"{la:.6f},{lo:.6f}" for la, lo in zip(c["lat"][rows], c["lon"][rows], strict=True)],
            dtype=object,
        )
    else:
        res = ext.centre_res if isinstance(ext, RadiusExtent) else ext.res  # type: ignore[union-attr]
        assert res is not None
        cells = h3c.points_to_cells(c["lon"].to_numpy()[rows], c["lat"].to_numpy()[rows], int(res))
        # the same codes as factorizing the hex keys: first appearance, one key per cell
        codes, cell_uniq = pd.factorize(cells)
        uniq = np.asarray(h3c.cells_to_hex(cell_uniq), dtype=object)
        return _Units(len(uniq), codes.astype(np.int64), rows, np.full(len(uniq), np.nan), uniq)
    codes, uniq = pd.factorize(keys)
    return _Units(
        len(uniq), codes.astype(np.int64), rows, np.full(len(uniq), np.nan), np.asarray(uniq)
    )


def _metric_grid(ctx: _Context, ids: NDArray[np.object_], column: str) -> NDArray[np.float64]:
    """Hospital figure per unit and day: the latest figure dated on or before the day."""
    out = np.full((len(ids), ctx.ndays), np.nan)
    m = ctx.metrics
    if m is None or len(m) == 0 or column not in m:
        return out
    pos = {str(k): i for i, k in enumerate(ids)}
    for uid, grp in m.dropna(subset=[column]).groupby("unit_id"):
        i = pos.get(str(uid))
        if i is None:
            continue
        days = to_days(grp["date"]) - ctx.day0
        order = np.argsort(days)
        days, vals = days[order], grp[column].to_numpy(np.float64)[order]
        idx = np.searchsorted(days, np.arange(ctx.ndays), side="right") - 1
        ok = idx >= 0
        out[i, ok] = vals[idx[ok]]
    return out


def _qualifying_days(ctx: _Context, lv: Level, units: _Units) -> tuple[Bool2D, Bool2D]:
    """(q, new): the condition holds on the day / a qualifying case was reported that day."""
    tr = lv.trigger
    assert tr is not None
    c = ctx.cases
    day = ctx.rep[units.rows]
    case_ids = ctx.case_codes[units.rows]
    new = _distinct_in_window(units.of_row, day, case_ids, units.count, 1, ctx.ndays)
    w = tr.window_days
    cases_w = (
        _distinct_in_window(units.of_row, day, case_ids, units.count, w, ctx.ndays)
        if w > 1
        else new
    )
    holds = np.zeros((units.count, ctx.ndays), dtype=bool)
    cache: dict[str, NDArray[np.float64]] = {}
    for cond in tr.any_of:
        ok = np.ones((units.count, ctx.ndays), dtype=bool)
        if cond.cases is not None:
            ok &= _in_range(cases_w, cond.cases)  # integer counts compare exactly
        if cond.locations is not None:
            if "loc" not in cache:
                cells = h3c.points_to_cells(
                    c["lon"].to_numpy()[units.rows], c["lat"].to_numpy()[units.rows], 12
                )
                cache["loc"] = _distinct_in_window(
                    units.of_row, day, cells, units.count, w, ctx.ndays
                ).astype(np.float64)
            ok &= _in_range(cache["loc"], cond.locations)
        if cond.rate_per_100k is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                pop = units.population[:, None]
                rate = np.where(pop > 0, cases_w * 1e5 / pop, np.nan)
            ok &= _in_range(rate, cond.rate_per_100k)
        if cond.cumulative is not None:
            if "cum" not in cache:
                first = _first_seen(units.of_row, day, case_ids, units.count, ctx.ndays)
                cache["cum"] = np.cumsum(first, axis=1).astype(np.float64)
            ok &= _in_range(cache["cum"], cond.cumulative)
        if cond.cluster is not None:
            ok &= _cluster(ctx, lv, units, cond)
        for col in ("admissions_per_100k", "beds_pct"):
            r = getattr(cond, col)
            if r is not None:
                if col not in cache:
                    cache[col] = _metric_grid(ctx, units.ids, col)
                ok &= _in_range(cache[col], r)
        holds |= ok
    return holds, new > 0


def _distinct_in_window(
    unit: Int1D, day: Int1D, ident: NDArray[np.generic], count: int, w: int, ndays: int
) -> NDArray[np.int32]:
    """Distinct ``ident`` per unit seen in the window [t-w+1, t] (a case with places on
    several days counts once).

    Each (unit, ident) pair is counted on the union of the intervals [t, t+w-1] of its days:
    +1 where such an interval starts and -1 after it ends, then a running sum per unit (no
    (pairs x days) grid)."""
    out_shape = (count, ndays)
    if len(unit) == 0 or count == 0 or ndays == 0:
        return np.zeros(out_shape, dtype=np.int32)
    c = pd.factorize(np.asarray(ident))[0].astype(np.int64)
    n_id = int(c.max()) + 1
    # one sortable key per (unit, ident, day), distinct
    key = h3c.unique((np.asarray(unit, np.int64) * n_id + c) * ndays + np.asarray(day, np.int64))
    pair, t = np.divmod(key, ndays)
    u = pair // n_id
    out = np.zeros((count, ndays + 1), dtype=np.int32)
    flat = out.reshape(-1)
    width = ndays + 1
    if w == 1:  # each distinct (unit, ident, day) counts on its day
        np.add.at(flat, u * width + t, 1)
        return out[:, :ndays]
    end = np.minimum(t + w, ndays)
    start = t.copy()
    # intervals of one pair are sorted and of equal width: the previous one ends the latest
    same_pair = pair[1:] == pair[:-1]
    start[1:] = np.where(same_pair, np.maximum(t[1:], end[:-1]), t[1:])
    ok = start < end
    np.add.at(flat, u[ok] * width + start[ok], 1)
    np.add.at(flat, u[ok] * width + end[ok], -1)
    np.cumsum(out, axis=1, out=out)
    return out[:, :ndays]


def _first_seen(
    unit: Int1D, day: Int1D, ident: NDArray[np.generic], count: int, ndays: int
) -> NDArray[np.int64]:
    """Per unit and day, the ``ident`` seen for the first time (cumulative counts)."""
    first = pd.DataFrame({"u": unit, "c": ident, "t": day}).groupby(["u", "c"])["t"].min()
    out = np.zeros((count, ndays), dtype=np.int64)
    if len(first):
        u = first.index.get_level_values("u").to_numpy(np.int64)
        np.add.at(out, (u, first.to_numpy(np.int64)), 1)
    return out


def _cluster(ctx: _Context, lv: Level, units: _Units, cond: Condition) -> Bool2D:
    """Some community of the unit has >= min_cases qualifying cases within the window."""
    assert cond.cluster is not None and lv.trigger is not None
    layer, c = ctx.layer, ctx.cases
    comm = c["community"].to_numpy()[units.rows]
    ok = comm >= 0
    in_window = _distinct_in_window(
        comm[ok],
        ctx.rep[units.rows][ok],
        ctx.case_codes[units.rows][ok],
        len(layer),
        cond.cluster.window_days,
        ctx.ndays,
    )
    hot = in_window >= cond.cluster.min_cases
    # community -> unit
    pairs = pd.DataFrame({"c": comm[ok], "u": units.of_row[ok]}).drop_duplicates()
    sel = sparse.csr_matrix(
        (np.ones(len(pairs), np.int8), (pairs["c"].to_numpy(), pairs["u"].to_numpy())),
        shape=(len(layer), units.count),
    )
    if isinstance(lv.extent, ParentExtent):  # every community of the parent counts
        codes, uniq = layer.parent_codes(lv.extent.parent)
        okc = codes >= 0
        sel = sparse.csr_matrix(
            (np.ones(int(okc.sum()), np.int8), (np.flatnonzero(okc), codes[okc])),
            shape=(len(layer), len(uniq)),
        )
    return _spread(sel, hot)


def _triggered(ctx: _Context, lv: Level) -> None:
    assert lv.trigger is not None
    units = _units(ctx, lv, _qualifying(ctx, lv.trigger))
    holds, new = _qualifying_days(ctx, lv, units)
    ev = holds & new  # a new qualifying case while the condition holds
    q = ev if lv.lift_after_days > 1 else holds  # lift 1: recomputed every day
    n_lift = lv.lift_after_days
    active = _rolling_any(q, n_lift)
    if n_lift > 1:
        last = _last_true(q, ctx.at_i - n_lift + 1, ctx.at_i)
    else:  # the latest qualifying case still counted by the window
        last = _last_true(ev, ctx.at_i - _longest_window(lv) + 1, ctx.at_i)
    down_active = down_last = None
    if lv.step_down is not None:
        total = n_lift + lv.step_down.after_days
        down_active = _rolling_any(q, total) & ~active
        down_last = _last_true(q, ctx.at_i - total + 1, ctx.at_i - n_lift)
    if lv.geometric:
        feats = _unit_features(ctx, lv, units, active, q, last)
        ctx.states[lv.id] = LevelState(*_no_grid(ctx), features=feats)
        if down_active is not None and down_last is not None:
            down = _unit_features(
                ctx, lv, units, down_active, q & down_active, down_last, discs=False
            )
            _add_pending(ctx, lv, LevelState(*_no_grid(ctx), features=down))
        return
    sel = _unit_selection(ctx, lv, units)  # units x communities
    grid = _spread(sel, active)
    ev = _spread(sel, ev & active)
    last_c = _spread_max(sel, np.where(active[:, ctx.at_i], last, -1))
    ctx.states[lv.id] = LevelState(grid, ev, last_c)
    if down_active is not None and down_last is not None:
        dg = _spread(sel, down_active)
        dl = _spread_max(sel, np.where(down_active[:, ctx.at_i], down_last, -1))
        _add_pending(ctx, lv, LevelState(dg, np.zeros_like(dg), dl))


def _longest_window(lv: Level) -> int:
    """The longest look-back of a level's conditions (trigger window, cluster windows)."""
    tr = lv.trigger
    if tr is None:
        return 1
    cluster = [c.cluster.window_days for c in tr.any_of if c.cluster is not None]
    return max([tr.window_days, *cluster])


def _add_pending(ctx: _Context, lv: Level, st: LevelState) -> None:
    assert lv.step_down is not None
    ctx.pending.setdefault(lv.step_down.to, []).append(st)


def _no_grid(ctx: _Context) -> tuple[Bool2D, Bool2D, Int1D]:
    z = np.zeros((ctx.n, ctx.ndays), dtype=bool)
    return z, z.copy(), np.full(ctx.n, -1, dtype=np.int64)


def _unit_centre(
    ctx: _Context, lv: Level, units: _Units
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where a radius unit's circle is centred: its location, or its H3 cell's centre."""
    ext = lv.extent
    if isinstance(ext, RadiusExtent) and ext.centre_res is not None:
        lat, lng = h3c.cell_centres(h3c.hex_to_cells(units.ids))
        return lng, lat
    lon, lat = _unit_location(ctx, units)
    return lon, lat


def _unit_location(ctx: _Context, units: _Units) -> tuple[NDArray[np.float64], ...]:
    """Coordinates (lon, lat) of each location unit (its first location)."""
    c = ctx.cases
    lon = np.zeros(units.count)
    lat = np.zeros(units.count)
    idx = np.flatnonzero(units.rows)
    u, pos = np.unique(units.of_row, return_index=True)
    lon[u] = c["lon"].to_numpy()[idx[pos]]
    lat[u] = c["lat"].to_numpy()[idx[pos]]
    return lon, lat


def _unit_community(ctx: _Context, units: _Units) -> Int1D:
    comm = np.full(units.count, -1, dtype=np.int64)
    idx = np.flatnonzero(units.rows)
    u, pos = np.unique(units.of_row, return_index=True)
    comm[u] = ctx.cases["community"].to_numpy()[idx[pos]]
    return comm


def _unit_metric_geoms(
    ctx: _Context, lv: Level, units: _Units, which: Int1D
) -> tuple[NDArray[np.object_], Int1D]:
    """Metric geometry and community of the location units ``which``."""
    layer = ctx.layer
    lon, lat = _unit_location(ctx, units)
    comm = _unit_community(ctx, units)[which]
    ext = lv.extent
    if isinstance(ext, RadiusExtent):
        lon, lat = _unit_centre(ctx, lv, units)
        x, y = layer.to_metric.transform(lon[which], lat[which])
        r = np.full(len(which), ext.radius_m)
        if ext.rural_radius_m is not None:
            rural = (comm >= 0) & layer.rural[np.maximum(comm, 0)]
            r[rural] = ext.rural_radius_m
        return shapely.buffer(shapely.points(x, y), r, quad_segs=32), comm
    assert isinstance(ext, CellExtent | GridDiskExtent)
    keys = units.ids[which]
    cells = h3c.hex_to_cells(keys)
    if isinstance(ext, GridDiskExtent):
        polys = np.array(
            [shapely.union_all(h3c.cell_polygons(h3c.grid_disk(int(cl), ext.k))) for cl in cells],
            dtype=object,
        )
    else:
        polys = h3c.cell_polygons(cells)
    return _to_metric(layer, polys), comm


def _to_metric(layer: CommunityLayer, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    return gpd.GeoSeries(geoms, crs=WGS84).to_crs(layer.metric_crs).to_numpy()


def _to_lonlat(layer: CommunityLayer, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    return gpd.GeoSeries(geoms, crs=layer.metric_crs).to_crs(WGS84).to_numpy()


def _unit_selection(ctx: _Context, lv: Level, units: _Units) -> sparse.csr_matrix:
    """units x communities: the communities each unit draws."""
    layer, ext = ctx.layer, lv.extent
    n = len(layer)
    if isinstance(ext, CommunityExtent):
        return sparse.identity(n, dtype=np.int8, format="csr")
    if isinstance(ext, ParentExtent):
        codes, uniq = layer.parent_codes(ext.parent)
        ok = codes >= 0
        return sparse.csr_matrix(
            (np.ones(int(ok.sum()), np.int8), (codes[ok], np.flatnonzero(ok))),
            shape=(len(uniq), n),
        )
    which = np.arange(units.count)
    metric, _ = _unit_metric_geoms(ctx, lv, units, which)
    return layer.select(metric, 0.0, ext.snap, ext.min_area_fraction)  # type: ignore[union-attr]


def _unit_features(
    ctx: _Context,
    lv: Level,
    units: _Units,
    active: Bool2D,
    events: Bool2D,
    last: Int1D,
    discs: bool = True,
) -> Features:
    """Features of the units ever active: discs for a radius extent (unless ``discs`` is
    false), polygons otherwise."""
    ever = np.flatnonzero(active.any(axis=1))
    keys = np.asarray([f"{lv.id}:{k}" for k in units.ids[ever]], dtype=object)
    last_at = np.where(active[ever, ctx.at_i], last[ever], -1)
    ext = lv.extent
    if isinstance(ext, RadiusExtent):
        layer = ctx.layer
        lon, lat = _unit_centre(ctx, lv, units)
        x, y = layer.to_metric.transform(lon[ever], lat[ever])
        comm = _unit_community(ctx, units)[ever]
        r = np.full(len(ever), ext.radius_m)
        if ext.rural_radius_m is not None:
            rural = (comm >= 0) & layer.rural[np.maximum(comm, 0)]
            r[rural] = ext.rural_radius_m
        f = Features(
            keys,
            comm,
            active[ever],
            events[ever],
            last_at,
            centre=np.column_stack([x, y]),
            radius=r,
            lift=lv.lift_after_days,
        )
        if not discs:
            f = Features(keys, comm, f.active, f.events, last_at, polygons=f.metric)
        return f
    metric, comm = _unit_metric_geoms(ctx, lv, units, ever)
    return Features(keys, comm, active[ever], events[ever], last_at, polygons=metric)


# --------------------------------------------------------------------------------------------
# derived levels
# --------------------------------------------------------------------------------------------


def _derived(ctx: _Context, lv: Level) -> None:
    layer, ext, at_i = ctx.layer, lv.extent, ctx.at_i
    if isinstance(ext, AllExtent):
        g = np.ones((ctx.n, ctx.ndays), dtype=bool)
        ctx.states[lv.id] = LevelState(g, np.zeros_like(g), np.full(ctx.n, -1, np.int64))
        return
    srcs = [ctx.states[a] for a in ext.around]  # type: ignore[union-attr]
    if isinstance(ext, ParentRemainderExtent):
        codes, uniq = layer.parent_codes(ext.parent)
        ok = codes >= 0
        touch = np.zeros((ctx.n, ctx.ndays), dtype=bool)
        ev = np.zeros_like(touch)
        last = np.full(ctx.n, -1, dtype=np.int64)
        for s in srcs:
            checkpoint()
            touch |= s.touch(layer)
            ev |= s.events
            if s.features is not None and len(s.features):
                ev |= _feature_events(s, layer)
            last = np.maximum(last, s.touch_last(layer, at_i))
        par = np.zeros((len(uniq), ctx.ndays), dtype=bool)
        par_ev = np.zeros_like(par)
        par_last = np.full(len(uniq), -1, dtype=np.int64)
        np.logical_or.at(par, codes[ok], touch[ok])
        np.logical_or.at(par_ev, codes[ok], ev[ok])
        np.maximum.at(par_last, codes[ok], last[ok])
        g = np.zeros_like(touch)
        e = np.zeros_like(touch)
        lst = np.full(ctx.n, -1, dtype=np.int64)
        g[ok], e[ok], lst[ok] = par[codes[ok]], par_ev[codes[ok]], par_last[codes[ok]]
        ctx.states[lv.id] = LevelState(g, e, lst)
        return
    assert isinstance(ext, BufferExtent)
    if lv.geometric:
        parts = []
        for s in srcs:
            checkpoint()
            parts += _buffer_features(ctx, lv, ext, s)
        feats = Features.concat(parts, ctx.ndays)
        ctx.states[lv.id] = LevelState(*_no_grid(ctx), features=feats)
        return
    g = np.zeros((ctx.n, ctx.ndays), dtype=bool)
    e = np.zeros_like(g)
    last = np.full(ctx.n, -1, dtype=np.int64)
    for s in srcs:
        checkpoint()
        # sources drawn per community
        sel = _community_buffer_selection(layer, ext)
        g |= _spread(sel, s.grid)
        e |= _spread(sel, s.events)
        last = np.maximum(last, _spread_max(sel, np.where(s.grid[:, at_i], s.last, -1)))
        if s.features is not None and len(s.features):
            f = s.features
            sel_f = _feature_buffer_selection(layer, ext, f)
            g |= _spread(sel_f, f.active)
            e |= _spread(sel_f, f.events)
            last = np.maximum(last, _spread_max(sel_f, np.where(f.active[:, at_i], f.last, -1)))
    ctx.states[lv.id] = LevelState(g, e, last)


def _feature_events(s: LevelState, layer: CommunityLayer) -> Bool2D:
    return s.feature_hits(layer)


def _community_buffer_selection(layer: CommunityLayer, ext: BufferExtent) -> sparse.csr_matrix:
    """sources x targets for buffers around whole communities (rural sources use the rural
    distance)."""
    base = layer.within(ext.distance_m, ext.snap).T.tocsr()  # sources x targets
    if ext.rural_distance_m is None or not layer.rural.any():
        return base
    rural = layer.rural
    wide = layer.within(ext.rural_distance_m, ext.snap).T.tocsr()
    keep_base = sparse.diags((~rural).astype(np.int8)) @ base
    keep_wide = sparse.diags(rural.astype(np.int8)) @ wide
    return (keep_base + keep_wide).astype(bool).astype(np.int8).tocsr()


def _feature_buffer_selection(
    layer: CommunityLayer, ext: BufferExtent, f: Features
) -> sparse.csr_matrix:
    d = _feature_distances(layer, ext, f)
    grown = shapely.buffer(f.metric, d, quad_segs=32)
    return layer.select(grown, 0.0, ext.snap, ext.min_area_fraction)


def _feature_distances(
    layer: CommunityLayer, ext: BufferExtent, f: Features
) -> NDArray[np.float64]:
    d = np.full(len(f), ext.distance_m)
    if ext.rural_distance_m is not None:
        rural = (f.community >= 0) & layer.rural[np.maximum(f.community, 0)]
        d[rural] = ext.rural_distance_m
    return d


def _buffer_features(ctx: _Context, lv: Level, ext: BufferExtent, s: LevelState) -> list[Features]:
    layer, at_i = ctx.layer, ctx.at_i
    out = []
    if s.features is not None and len(s.features):
        f = s.features
        d = _feature_distances(layer, ext, f)
        keys = np.asarray([f"{lv.id}:{k}" for k in f.keys], dtype=object)
        if f.is_discs:
            assert f.radius is not None
            grown_discs = Features(
                keys,
                f.community,
                f.active,
                f.events,
                f.last,
                centre=f.centre,
                radius=f.radius + d,
                lift=f.lift,
            )
            (f.family or _DiscFamily(f)).join(grown_discs)
            out.append(grown_discs)
        else:
            grown = shapely.buffer(f.metric, d, quad_segs=32)
            out.append(Features(keys, f.community, f.active, f.events, f.last, polygons=grown))
    ever = np.flatnonzero(s.grid.any(axis=1))
    if len(ever):
        d = np.full(len(ever), ext.distance_m)
        if ext.rural_distance_m is not None:
            d[layer.rural[ever]] = ext.rural_distance_m
        grown = shapely.buffer(layer.metric[ever], d, quad_segs=32)
        out.append(
            Features(
                np.asarray([f"{lv.id}:{cid}" for cid in layer.ids[ever]], dtype=object),
                ever.astype(np.int64),
                s.grid[ever],
                s.events[ever],
                np.where(s.grid[ever, at_i], s.last[ever], -1),
                polygons=grown,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# the computation
# --------------------------------------------------------------------------------------------


@dataclass
class ZoneResult:
    """Zones and per-community levels under one policy as of one date."""

    policy: Policy
    at: dt.date
    levels: pd.DataFrame  # community_id, level, since, expected_lift, last_case, zone_id
    zones: gpd.GeoDataFrame
    day0: int = 0
    # communities x days, rank of the level shown for the community (highest zone on any part)
    rank_grid: NDArray[np.int8] | None = field(default=None, repr=False)
    # communities x days, rank of the community-drawn zone the community belongs to
    zone_rank_grid: NDArray[np.int8] | None = field(default=None, repr=False)
    states: dict[str, LevelState] = field(default_factory=dict, repr=False)

    # the grid column of the as-of date (or of the day after which nothing changes any more)
    at_index: int = -1


def compute_zones(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    policy: Policy,
    at: dt.date,
    *,
    metrics: pd.DataFrame | None = None,
    with_geometry: bool = True,
    horizon_days: int | None = None,
    day0: int | None = None,
    grid_at_day: int | None = None,
) -> ZoneResult:
    """Zones under ``policy`` as of ``at``.

    ``cases`` has one row per case location with columns case_id, reported (date), type, role,
    lat, lon and ``community`` (index into ``layer``, -1 outside every community).
    ``metrics`` (optional hospital figures) has unit_id, date, admissions_per_100k, beds_pct.
    """
    at_d = to_day(at)
    rep_all = to_days(cases["reported"]) if len(cases) else np.empty(0, dtype=np.int64)
    keep = rep_all <= at_d
    cases = cases.loc[keep].reset_index(drop=True) if len(cases) else cases
    rep_all = rep_all[keep]
    day0, grid_at, ndays = day_axis(
        policy, rep_all, at_d, metrics, horizon_days=horizon_days, day0=day0
    )
    if grid_at_day is not None:  # forced (incremental updates keep the previous axis)
        grid_at = grid_at_day
        ndays = grid_at - day0 + 1 + _horizon(policy, horizon_days)
    ctx = _Context(layer, cases, rep_all - day0, day0, ndays, grid_at - day0, metrics)

    for lv in policy.levels:
        checkpoint(_grid_bytes(ctx.n, ndays))
        if lv.trigger is not None:
            _triggered(ctx, lv)
        else:
            _derived(ctx, lv)
        for extra in ctx.pending.pop(lv.id, []):
            _merge(ctx.states[lv.id], extra, ctx.at_i)
    checkpoint(_grid_bytes(ctx.n, ndays))
    result = _assemble(ctx, policy, at, with_geometry)
    result.at_index = ctx.at_i
    return result


def _grid_bytes(n: int, ndays: int) -> int:
    """About what one level adds to memory: a few (units x days) grids and their
    temporaries."""
    return 16 * n * ndays


def longest_lift(policy: Policy) -> int:
    """The most days a case keeps any level of the rule in force (its lift and step-down)."""
    return max(
        lv.lift_after_days + (lv.step_down.after_days if lv.step_down else 0)
        for lv in policy.levels
    )


def _horizon(policy: Policy, horizon_days: int | None = None) -> int:
    longest = longest_lift(policy)
    window = max(_longest_window(lv) for lv in policy.levels)
    return (horizon_days if horizon_days is not None else longest + window) + 1


def day_axis(
    policy: Policy,
    rep: Int1D,
    at_d: int,
    metrics: pd.DataFrame | None = None,
    *,
    horizon_days: int | None = None,
    day0: int | None = None,
) -> tuple[int, int, int]:
    """(first day, last day with inputs that can still matter, number of grid days) of the
    grids for cases reported on days ``rep`` (those up to ``at_d``) as of day ``at_d``."""
    rep = rep[rep <= at_d]
    longest = longest_lift(policy)
    window = max(_longest_window(lv) for lv in policy.levels)
    first = int(min(rep.min(), at_d)) if len(rep) else at_d
    if day0 is None or day0 > first:
        day0 = first
    # long after the last input nothing changes any more: the grid stops there
    inputs = [int(rep.max())] if len(rep) else []
    if metrics is not None and len(metrics):
        inputs.append(int(to_days(metrics["date"]).max()))
    grid_at = at_d
    if inputs:
        grid_at = min(at_d, max(max(inputs), day0) + longest + window + 1)
    return day0, grid_at, grid_at - day0 + 1 + _horizon(policy, horizon_days)


def _merge(into: LevelState, extra: LevelState, at_i: int) -> None:
    """Add a step-down contribution to a level."""
    into.last = np.maximum(
        np.where(into.grid[:, at_i], into.last, -1), np.where(extra.grid[:, at_i], extra.last, -1)
    )
    into.grid = into.grid | extra.grid
    into.events = into.events | extra.events
    if extra.features is not None:
        parts = [p for p in (into.features, extra.features) if p is not None]
        into.features = Features.concat(parts, into.grid.shape[1])
    into.touch_cache = None
    into.sel_cache = None


def _assemble(ctx: _Context, policy: Policy, at: dt.date, with_geometry: bool) -> ZoneResult:
    layer, at_i, n = ctx.layer, ctx.at_i, ctx.n
    levels_low_first = list(reversed(policy.levels))
    # ranks of the levels drawn per community (zones), and displayed per community
    zone_rank = np.zeros((n, ctx.ndays), dtype=np.int8)
    show_rank = np.zeros((n, ctx.ndays), dtype=np.int8)
    for k, lv in enumerate(levels_low_first, start=1):
        checkpoint()
        st = ctx.states[lv.id]
        zone_rank[st.grid] = k
        show_rank[st.touch(layer)] = k
    ids_by_rank = np.array(["none"] + [lv.id for lv in levels_low_first], dtype=object)
    rank_at = show_rank[:, at_i]
    start, end = _run_bounds(show_rank, at_i)
    last = np.full(n, -1, dtype=np.int64)
    for k, lv in enumerate(levels_low_first, start=1):
        m = rank_at == k
        last[m] = ctx.states[lv.id].touch_last(layer, at_i)[m]

    def dates(idx: Int1D, mask: NDArray[np.bool_]) -> list[dt.date | None]:
        return [
            from_day(ctx.day0 + int(i)) if ok else None
            for i, ok in zip(idx.tolist(), mask.tolist(), strict=True)
        ]

    in_zone = rank_at > 0
    levels = pd.DataFrame(
        {
            "community_id": layer.ids,
            "level": ids_by_rank[rank_at],
            "since": dates(start, in_zone),
            "expected_lift": dates(end, in_zone & (end >= 0)),
            "last_case": dates(last, in_zone & (last >= 0)),
        }
    )
    zr_at = zone_rank[:, at_i]
    zone_of = _group_zones(layer, policy, zr_at)
    zstart, zend = _run_bounds(zone_rank, at_i)
    zlast = np.full(n, -1, dtype=np.int64)
    for k, lv in enumerate(levels_low_first, start=1):
        m = zr_at == k
        st = ctx.states[lv.id]
        zlast[m] = np.where(st.grid[:, at_i], st.last, -1)[m]
    comm_zones = _community_zones(
        layer, policy, ctx, zone_of, zr_at, zstart, zend, zlast, with_geometry
    )
    geo_zones = _geometric_zones(ctx, policy, with_geometry)
    zones = pd.concat([comm_zones, geo_zones], ignore_index=True)
    zones = gpd.GeoDataFrame(zones, geometry="geometry", crs=WGS84)
    if len(zones):
        zones["_rank"] = [policy.rank(lv) for lv in zones["level"]]
        zones = zones.sort_values(["_rank", "zone_id"], ascending=[False, True]).drop(
            columns="_rank"
        )
        zones = zones.reset_index(drop=True)
    # the zone shown for each community: its own zone, else the highest geometric zone on it
    shown = zone_of.copy()
    shown[zr_at != rank_at] = None
    need = np.flatnonzero((rank_at > 0) & (zr_at != rank_at))
    if len(need) and len(geo_zones):
        gz = zones[zones["drawn"] == "geometry"].reset_index(drop=True)
        tree = shapely.STRtree(gz.geometry.to_numpy())
        zone_level, zone_ids = gz["level"].to_numpy(), gz["zone_id"].to_numpy()
        shown_level = levels["level"].to_numpy()

        zone_geoms = gz.geometry.to_numpy()
        shapely.prepare(zone_geoms)  # large zones: the prepared side of each test

        def assign(which: Int1D, geoms: NDArray[np.object_]) -> None:
            ci, zi = tree.query(geoms)  # candidates by box, in the tree's order
            same = zone_level[zi] == shown_level[which[ci]]
            ci, zi = ci[same], zi[same]
            hit = shapely.intersects(zone_geoms[zi], geoms[ci])
            ci, zi = ci[hit], zi[hit]
            first = np.unique(ci, return_index=True)[1]  # the first matching zone
            shown[which[ci[first]]] = zone_ids[zi[first]]

        # a point inside the community first (cheap), its whole polygon for the rest
        assign(need, shapely.point_on_surface(layer.geoms[need]))
        rest = need[np.array([shown[i] is None for i in need], dtype=bool)]
        if len(rest):
            assign(rest, layer.geoms[rest])
    levels["zone_id"] = shown
    return ZoneResult(policy, at, levels, zones, ctx.day0, show_rank, zone_rank, ctx.states)


def _group_zones(
    layer: CommunityLayer, policy: Policy, rank_at: NDArray[np.int8]
) -> NDArray[np.object_]:
    """Zone id per community (None outside community-drawn zones)."""
    zone = np.full(len(layer), None, dtype=object)
    district, _ = layer.parent_codes("district")
    for k, lv in enumerate(reversed(policy.levels), start=1):
        members = np.flatnonzero(rank_at == k)
        if len(members) == 0:
            continue
        if lv.grouping == "community":
            zone[members] = [f"{lv.id}-{c}" for c in layer.ids[members]]
            continue
        if lv.grouping == "parent":
            parent = getattr(lv.extent, "parent", "district")
            codes, uniq = layer.parent_codes(parent)
            known = codes[members] >= 0
            pid = uniq[codes[members[known]]] if known.any() else np.empty(0, object)
            zone[members[known]] = [f"{lv.id}-{p}" for p in pid]
            zone[members[~known]] = [f"{lv.id}-{c}" for c in layer.ids[members[~known]]]
            continue
        # connected communities of the same level in the same district
        sub = layer.touching[members][:, members].tocoo()
        same = district[members][sub.row] == district[members][sub.col]
        g = sparse.csr_matrix(
            (np.ones(int(same.sum())), (sub.row[same], sub.col[same])),
            shape=(len(members), len(members)),
        )
        _, labels = connected_components(g, directed=False)
        frame = pd.DataFrame({"label": labels, "id": layer.ids[members]})
        first_id = frame.groupby("label")["id"].transform("min").to_numpy()
        zone[members] = [f"{lv.id}-{i}" for i in first_id]
    return zone


def _community_zones(
    layer: CommunityLayer,
    policy: Policy,
    ctx: _Context,
    zone_of: NDArray[np.object_],
    zr_at: NDArray[np.int8],
    zstart: Int1D,
    zend: Int1D,
    zlast: Int1D,
    with_geometry: bool,
    known: dict[str, tuple[list[str], object, NDArray[np.uint64]]] | None = None,
) -> pd.DataFrame:
    """Zones drawn per community. ``known`` (zone id -> community ids, geometry, cells) gives
    the geometry and cells of zones with the same communities as before."""
    ids_by_rank = ["none"] + [lv.id for lv in reversed(policy.levels)]
    idx_all = np.flatnonzero(zr_at > 0)
    rows = []
    if len(idx_all):
        frame = pd.DataFrame({"zone": zone_of[idx_all], "i": idx_all})
        for zid, grp in frame.groupby("zone", sort=True):
            checkpoint()
            idx = grp["i"].to_numpy()
            lv = policy.level(ids_by_rank[int(zr_at[idx[0]])])
            pop = layer.population[idx]
            lasts = zlast[idx]
            ends = zend[idx]
            member_ids = sorted(layer.ids[idx].tolist())
            old = known.get(str(zid)) if known is not None else None
            if old is not None and old[0] == member_ids:
                geom, cells = old[1], old[2]
            else:
                geom = shapely.union_all(layer.geoms[idx]) if with_geometry else None
                cells = h3c.compact(layer.cells_of(idx))
            rows.append(
                {
                    "zone_id": zid,
                    "level": lv.id,
                    "label": lv.label,
                    "color": lv.color,
                    "drawn": "community",
                    "community_ids": member_ids,
                    "community_count": len(idx),
                    "population": None if np.isnan(pop).all() else int(np.nansum(pop)),
                    "start": from_day(ctx.day0 + int(zstart[idx].min())),
                    "last_case": from_day(ctx.day0 + int(lasts.max()))
                    if lasts.max() >= 0
                    else None,
                    "expected_lift": from_day(ctx.day0 + int(ends.max()))
                    if (ends >= 0).all()
                    else None,
                    "cells": cells,
                    "h3_resolution": layer.h3_res,
                    "geometry": geom,
                }
            )
    return pd.DataFrame(rows, columns=ZONE_COLUMNS)


def _geometric_zones(ctx: _Context, policy: Policy, with_geometry: bool) -> pd.DataFrame:
    """Zones of exact-geometry levels: connected parts of the union of active features, less
    the area of higher exact-geometry levels."""
    layer, at_i = ctx.layer, ctx.at_i
    rows: list[dict[str, object]] = []
    used: set[str] = set()
    higher: shapely.Geometry | None = None
    for lv in policy.levels:
        checkpoint()
        f = ctx.states[lv.id].features
        if f is None or len(f) == 0:
            continue
        act = f.take(f.active[:, at_i])
        if len(act) == 0:
            continue
        # union in the metric CRS, parts back in lon/lat
        whole = shapely.union_all(_disc_union_inputs(act) if act.is_discs else act.metric)
        shape = whole if higher is None else shapely.difference(whole, higher)
        higher = whole if higher is None else shapely.union(higher, whole)
        parts_m = [p for p in shapely.get_parts(shape) if not p.is_empty and p.area > 0]
        if not parts_m:
            continue
        parts_a = _to_lonlat(layer, np.array(parts_m, dtype=object))
        # which features make each part (by the union before subtraction)
        whole_parts = np.array(shapely.get_parts(whole), dtype=object)
        shapely.prepare(whole_parts)  # the large geometry is the prepared one in every test
        if act.is_discs:  # a disc lies in the part of the union holding its centre
            assert act.centre is not None
            pi, fi = shapely.STRtree(shapely.points(act.centre)).query(
                whole_parts, predicate="intersects"
            )
        else:
            pi, fi = shapely.STRtree(act.metric).query(whole_parts, predicate="intersects")
        part_of_whole = _part_of_whole(np.array(parts_m, dtype=object), whole_parts)
        start, end = _run_bounds(act.active.astype(np.int8), at_i)
        member_of = pd.Series(fi).groupby(pi).agg(list) if len(pi) else pd.Series(dtype=object)
        # parts in a fixed order (by their bounds, not by GEOS's output order), so that the
        # suffixes of a zone split by a higher area do not depend on how the union was built
        bounds = shapely.bounds(parts_a)
        order = np.lexsort((bounds[:, 3], bounds[:, 2], bounds[:, 1], bounds[:, 0]))
        for k in order.tolist():
            checkpoint()
            part = parts_a[k]
            wp = part_of_whole[1][part_of_whole[0] == k]
            got = [member_of[w] for w in wp if w in member_of.index]
            members = h3c.unique(np.concatenate(got)) if got else np.empty(0, np.int64)
            first_key = min(act.keys[members].tolist())
            comm, inside, edge = _part_communities(layer, parts_m[k])
            ends = end[members]
            last = act.last[members]
            ccells = _part_cells(lv, part, parts_m[k], layer, act, members, inside, edge)
            rows.append(
                {
                    "zone_id": _unique_id(f"{lv.id}-{_short_hash(first_key)}", used),
                    "level": lv.id,
                    "label": lv.label,
                    "color": lv.color,
                    "drawn": "geometry",
                    "community_ids": sorted(layer.ids[comm].tolist()),
                    "community_count": len(comm),
                    "population": None,
                    "start": from_day(ctx.day0 + int(start[members].min())),
                    "last_case": from_day(ctx.day0 + int(last.max())) if last.max() >= 0 else None,
                    "expected_lift": from_day(ctx.day0 + int(ends.max()))
                    if (ends >= 0).all()
                    else None,
                    "cells": ccells,
                    "h3_resolution": _cell_res(lv, layer),
                    "geometry": part if with_geometry else None,
                }
            )
    return pd.DataFrame(rows, columns=ZONE_COLUMNS)


def _disc_union_inputs(f: Features) -> NDArray[np.object_]:
    """Polygons with the same union as the discs ``f``: the discs near the edge of the union,
    and for the discs deep inside it (most of them in dense areas) grid squares that lie
    inside some disc.

    A square (side s) whose centre is within R cos(pi/128) - s/sqrt(2) - 1 m of a disc's
    centre lies inside the disc's 128-gon (the 128-gon holds the circle of radius
    R cos(pi/128)); a disc whose centre is farther than R + s/sqrt(2) + 1 m from the centre of
    every square not inside a disc lies inside the union of those squares."""
    assert f.centre is not None and f.radius is not None
    centre, radius = f.centre, f.radius
    if len(centre) < 64:
        return f.metric
    side = float(radius.min()) / 8
    half_diag = side * np.sqrt(2) / 2
    lo = centre.min(axis=0) - radius.max() - side
    hi = centre.max(axis=0) + radius.max() + side
    nx, ny = (np.ceil((hi - lo) / side).astype(np.int64) + 1).tolist()
    if nx * ny > 4_000_000:  # a map far larger than the discs: not worth it
        return f.metric
    gx = lo[0] + side * (np.arange(nx) + 0.5)
    gy = lo[1] + side * (np.arange(ny) + 0.5)
    tx, ty = np.meshgrid(gx, gy)  # ny x nx
    tiles = np.column_stack([tx.ravel(), ty.ravel()])
    tree = cKDTree(centre)
    d, nn = tree.query(tiles, k=1, distance_upper_bound=float(radius.max()))
    found = np.isfinite(d)
    full = np.zeros(len(tiles), dtype=bool)
    full[found] = d[found] <= radius[nn[found]] * np.cos(np.pi / 128) - half_diag - 1.0
    if not full.any():
        return f.metric
    d_open, _ = cKDTree(tiles[~full]).query(centre, k=1)
    inner = d_open > radius + half_diag + 1.0
    if not inner.any():
        return f.metric
    keep = ~inner
    discs = shapely.buffer(shapely.points(centre[keep]), radius[keep], quad_segs=32)
    # the squares as runs along each row
    grid = full.reshape(ny, nx)
    edges = np.diff(np.pad(grid.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rs, cs = np.nonzero(edges == 1)
    re_, ce = np.nonzero(edges == -1)
    assert (rs == re_).all()
    boxes = shapely.box(
        lo[0] + side * cs, lo[1] + side * rs, lo[0] + side * ce, lo[1] + side * (rs + 1)
    )
    return np.concatenate([np.asarray(discs, dtype=object), np.asarray(boxes, dtype=object)])


def _part_of_whole(
    parts: NDArray[np.object_], whole_parts: NDArray[np.object_]
) -> tuple[Int1D, Int1D]:
    """(part, whole part) pairs that intersect. A part lies in one whole part, whose box holds
    the part's box: a part with a single candidate needs no test."""
    if len(parts) == 0 or len(whole_parts) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e
    pk, wk = shapely.STRtree(whole_parts).query(parts)
    single = np.bincount(pk, minlength=len(parts))[pk] == 1
    ok = single.copy()
    test = np.flatnonzero(~single)
    if len(test):  # the whole parts are prepared
        ok[test] = shapely.intersects(whole_parts[wk[test]], parts[pk[test]])
    return pk[ok], wk[ok]


def _part_communities(
    layer: CommunityLayer, part_m: shapely.Geometry
) -> tuple[Int1D, Int1D, Int1D]:
    """(intersecting, inside, edge) communities of a metric zone part: those intersecting it
    (sorted); those surely inside it (with a metre to spare); and the others within a metre
    of it (their cells need a test of their centres).

    A community lies within its reach of its inner point: the inner point inside the part
    and the part's boundary farther than the reach decide at once; a community whose inner
    point is farther than the reach from the part is out; the rest is tested exactly (a
    community of several pieces counts as an edge one: one piece may lie outside)."""
    ci = h3c.unique(layer.metric_tree.query(part_m))
    e = np.empty(0, dtype=np.int64)
    if len(ci) == 0:
        return e, e, e
    x, y, reach = layer.rep_points
    shapely.prepare(part_m)
    pin = shapely.intersects_xy(part_m, x[ci], y[ci])
    have = ci[pin]
    edge_parts = [e]
    inside = e
    if len(have):
        bnd = shapely.boundary(part_m)
        shapely.prepare(bnd)
        close = shapely.dwithin(bnd, shapely.points(x[have], y[have]), reach[have] + 1.0)
        near_bnd = have[close]
        # a polygon whose inner point is inside and which keeps clear of the boundary is
        # inside; a community of several pieces may have another piece outside: tested
        crossing = shapely.dwithin(bnd, layer.metric[near_bnd], 1.0) | (
            shapely.get_num_geometries(layer.metric[near_bnd]) > 1
        )
        inside = np.concatenate([have[~close], near_bnd[~crossing]])
        edge_parts.append(near_bnd[crossing])
    rest = ci[~pin]
    if len(rest):
        near = rest[shapely.dwithin(part_m, shapely.points(x[rest], y[rest]), reach[rest] + 1.0)]
        if len(near):
            within_m = shapely.dwithin(part_m, layer.metric[near], 1.0)
            near = near[within_m]
            hit = shapely.intersects(part_m, layer.metric[near])
            have = np.union1d(have, near[hit])
            edge_parts.append(near)
    edge = h3c.unique(np.concatenate(edge_parts))
    return have, inside, edge


def _cell_res(lv: Level, layer: CommunityLayer) -> int:
    """The resolution of a zone's cells (before compaction)."""
    ext = lv.extent
    if isinstance(ext, CellExtent) and ext.res >= layer.h3_res:
        return ext.res
    return layer.h3_res


def _unique_id(zid: str, used: set[str]) -> str:
    """``zid``, or ``zid-2``, ``zid-3``... when a higher area split a zone into parts."""
    out, n = zid, 1
    while out in used:
        n += 1
        out = f"{zid}-{n}"
    used.add(out)
    return out


def _short_hash(key: str) -> str:
    import hashlib

    return hashlib.sha1(key.encode()).hexdigest()[:10]


def _part_cells(
    lv: Level,
    part: shapely.Geometry,
    part_m: shapely.Geometry,
    layer: CommunityLayer,
    act: Features,
    members: Int1D,
    inside: Int1D,
    edge: Int1D,
) -> NDArray[np.uint64]:
    """H3 cells of an exact-geometry zone part: the building cells themselves for cell
    extents at or finer than the layer's resolution; otherwise the communities' cells whose
    centre lies in the part (where people live; the part may reach beyond the communities),
    or the cell of a point inside it when none does.

    A community's cell has its centre in the community (within a metre: H3 tests in degrees),
    except the one cell of a community too small to hold a centre: the cells of communities
    ``inside`` the part are in it, those of ``edge`` communities and the single cells of
    communities are tested, the others are out."""
    ext = lv.extent
    if isinstance(ext, CellExtent) and ext.res >= layer.h3_res:
        return h3c.unique(h3c.hex_to_cells([k.split(":", 1)[1] for k in act.keys[members]]))
    _, cells = layer.cells
    single = layer.single_cell
    pos_in = layer.cell_positions(inside[~single[inside]])
    pos_edge = layer.cell_positions(edge[~single[edge]])
    pos_loose, lx, ly = layer.single_cell_centres
    minx, miny, maxx, maxy = part_m.bounds
    box = (lx >= minx) & (lx <= maxx) & (ly >= miny) & (ly <= maxy)
    pos_test = np.concatenate([pos_edge, pos_loose[box]])
    x, y = layer.cell_centres_at(pos_test)
    shapely.prepare(part_m)
    found = pos_test[shapely.contains_xy(part_m, x, y)] if len(pos_test) else pos_test
    c = cells[np.concatenate([pos_in, found])]
    if len(c) == 0:
        pt = shapely.point_on_surface(part)
        c = h3c.points_to_cells([pt.x], [pt.y], layer.h3_res)
    return h3c.compact(c)
