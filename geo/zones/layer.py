"""Communities prepared once per data version: metric geometries, parent units, H3 cover,
neighbour graphs and a point look-up index, each computed when first needed and kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from scipy import sparse

from riskmap.geo import cells as h3c
from riskmap.geo.crs import WGS84, metric_crs_for
from riskmap.geo.index import PolygonIndex

Int1D = NDArray[np.int64]
Cells = tuple[Int1D, NDArray[np.uint64]]
Blocks = tuple[Int1D, NDArray[np.float64], NDArray[np.float64]]


@dataclass
class CommunityLayer:
    """Communities prepared once per data version: metric geometries, parents, H3 cover,
    neighbour graphs and a point look-up index.
    """

    frame: gpd.GeoDataFrame
    h3_res: int
    # caches: filled when first needed (a subset takes them from its parent)
    _graphs: dict[tuple[float, str], sparse.csr_matrix] = field(default_factory=dict, repr=False)
    _metric_crs: CRS | None = field(default=None, init=False, repr=False)
    _metric: NDArray[np.object_] | None = field(default=None, init=False, repr=False)
    _cells: Cells | None = field(default=None, init=False, repr=False)
    _cell_centres: tuple[NDArray[np.float64], NDArray[np.float64]] | None = field(
        default=None, init=False, repr=False
    )
    _blocks: dict[float, Blocks] = field(default_factory=dict, init=False, repr=False)
    _codes: dict[str, tuple[Int1D, NDArray[np.object_]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _parent_units: dict[str, gpd.GeoDataFrame] = field(default_factory=dict, init=False, repr=False)

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
        sub._metric_crs = self.metric_crs
        if self._metric is not None:  # else computed when needed, from the same CRS
            sub._metric = self._metric[idx]
        for key, g in self._graphs.items():
            sub._graphs[key] = g[idx][:, idx].tocsr()
        if self._cells is not None:
            _, cells = self._cells
            off = self._cell_offsets
            lengths = off[idx + 1] - off[idx]
            owner = np.repeat(np.arange(len(idx), dtype=np.int64), lengths)
            sub._cells = (owner, cells[self.cell_positions(idx)])
        return sub

    @property
    def metric_crs(self) -> CRS:
        if self._metric_crs is None:
            self._metric_crs = metric_crs_for(self.frame)
        return self._metric_crs

    @cached_property
    def to_metric(self) -> Transformer:
        return Transformer.from_crs(WGS84, self.metric_crs, always_xy=True)

    @cached_property
    def to_lonlat(self) -> Transformer:
        return Transformer.from_crs(self.metric_crs, WGS84, always_xy=True)

    @property
    def metric(self) -> NDArray[np.object_]:
        """The communities' polygons in the metric CRS."""
        if self._metric is None:
            self._metric = self.frame.geometry.to_crs(self.metric_crs).to_numpy()
        return self._metric

    @cached_property
    def metric_tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.metric)

    @cached_property
    def index(self) -> PolygonIndex:
        return PolygonIndex(self.geoms, self.h3_res)

    @property
    def cells(self) -> Cells:
        """(owner, cells): centre-containment H3 cover, at least one cell per community,
        sorted by owner."""
        if self._cells is None:
            self._cells = h3c.community_cells(self.geoms, self.h3_res)
        return self._cells

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
        if side not in self._blocks:
            x, y, _ = self.rep_points
            ix, iy = np.floor(x / side), np.floor(y / side)
            cells = np.column_stack([ix, iy])
            uniq, block = np.unique(cells, axis=0, return_inverse=True)
            centre = (uniq + 0.5) * side
            block = np.asarray(block, dtype=np.int64).ravel()
            offset = np.hypot(x - centre[block, 0], y - centre[block, 1])
            self._blocks[side] = (block, centre, offset)
        return self._blocks[side]

    @property
    def cell_centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric (x, y) of the centre of every community cell."""
        if self._cell_centres is None:
            _, cells = self.cells
            lat, lng = h3c.cell_centres(cells)
            x, y = self.to_metric.transform(lng, lat)
            self._cell_centres = (np.asarray(x), np.asarray(y))
        return self._cell_centres

    def cell_centres_at(self, pos: Int1D) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metric (x, y) of the centres of some community cells (positions in ``cells``)."""
        if self._cell_centres is not None:
            x, y = self._cell_centres
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
        return cells[self.cell_positions(idx)]

    def parent_codes(self, parent: str) -> tuple[Int1D, NDArray[np.object_]]:
        """Group code per community for a parent column (-1 where unknown) and the parent ids."""
        if parent not in self._codes:
            col = f"{parent}_id"
            if col not in self.frame:
                self._codes[parent] = (np.full(len(self), -1, np.int64), np.empty(0, object))
            else:
                vals = self.frame[col].astype(object)
                vals = vals.where(vals.notna() & (vals != ""), None)
                codes, uniques = pd.factorize(vals)
                self._codes[parent] = (codes.astype(np.int64), np.asarray(uniques, dtype=object))
        return self._codes[parent]

    def parent_membership(self, parent: str) -> sparse.csr_matrix:
        """parents x communities: the communities of each parent unit."""
        codes, uniq = self.parent_codes(parent)
        ok = codes >= 0
        return sparse.csr_matrix(
            (np.ones(int(ok.sum()), np.int8), (codes[ok], np.flatnonzero(ok))),
            shape=(len(uniq), len(self)),
        )

    def same_parent(self, parent: str, rows: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Communities sharing a parent unit with one of ``rows``."""
        codes, uniq = self.parent_codes(parent)
        hit = np.zeros(len(uniq), dtype=bool)
        hit[codes[rows & (codes >= 0)]] = True
        return (codes >= 0) & hit[np.maximum(codes, 0)]

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

    def to_metric_geoms(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Lon/lat geometries in the layer's metric CRS."""
        if len(geoms) == 0:
            return np.empty(0, dtype=object)
        return gpd.GeoSeries(geoms, crs=WGS84).to_crs(self.metric_crs).to_numpy()

    def to_lonlat_geoms(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Metric geometries in lon/lat."""
        if len(geoms) == 0:
            return np.empty(0, dtype=object)
        return gpd.GeoSeries(geoms, crs=self.metric_crs).to_crs(WGS84).to_numpy()

    @property
    def touching(self) -> sparse.csr_matrix:
        return self.within(0.01)

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> Int1D:
        """Index of the community covering each point, -1 outside every community (exact,
        with the STRtree: building the H3 table is not worth it for one batch of points)."""
        return self.index.exact(lon, lat)

    def parent_units(self, parent: str) -> gpd.GeoDataFrame:
        """Parent units (``subdistrict`` or ``district``) as unions of their communities."""
        if parent not in self._parent_units:
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
            self._parent_units[parent] = gpd.GeoDataFrame(
                rows,
                columns=[col, "community_count", "population", "geometry"],
                geometry="geometry",
                crs=WGS84,
            )
        return self._parent_units[parent]
