"""Extent kinds drawn around each qualifying location: ``radius`` (a metric circle), ``cell``
(the H3 cell of the location) and ``grid_disk`` (k rings of H3 cells), kept as exact geometry
or snapped to whole communities."""

from __future__ import annotations

from typing import ClassVar, Protocol, cast

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo import cells as h3c
from riskmap.geo.policy import (
    CellExtent,
    ExtentSpec,
    GridDiskExtent,
    Level,
    RadiusExtent,
)
from riskmap.geo.zones.features import Features
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import Bool1D, ExtentKind, Int1D, S
from riskmap.geo.zones.state import Activity, Context, Units


class Located(Protocol):
    """What the model of a location extent has: how its geometry is snapped to communities."""

    snap: str
    min_area_fraction: float


class Celled(Protocol):
    """The model of an extent whose units are H3 cells at ``res``."""

    res: int


class LocationKind(ExtentKind[S]):
    """Units are the qualifying locations: their H3 cells at :meth:`unit_res` (or their
    coordinates when it is None); each unit draws the metric geometry of
    :meth:`metric_geoms`."""

    def unit_res(self, lv: Level) -> int | None:
        """The H3 resolution of the units (None: the exact coordinates); by default the
        extent's ``res``."""
        return cast(Celled, lv.extent).res

    def units(self, ctx: Context, lv: Level, q: Bool1D) -> Units:
        c = ctx.cases
        rows = q.copy()
        res = self.unit_res(lv)
        if res is None:
            keys = pd.Series(
                [
                    f"{la:.6f},{lo:.6f}"
                    for la, lo in zip(c["lat"][rows], c["lon"][rows], strict=True)
                ],
                dtype=object,
            )
            codes, uniq = pd.factorize(keys)
            return Units(
                len(uniq),
                codes.astype(np.int64),
                rows,
                np.full(len(uniq), np.nan),
                np.asarray(uniq),
            )
        cells = h3c.points_to_cells(c["lon"].to_numpy()[rows], c["lat"].to_numpy()[rows], res)
        # the same codes as factorizing the hex keys: first appearance, one key per cell
        codes, cell_uniq = pd.factorize(cells)
        uniq = np.asarray(h3c.cells_to_hex(cell_uniq), dtype=object)
        return Units(len(uniq), codes.astype(np.int64), rows, np.full(len(uniq), np.nan), uniq)

    def cell_polygons(self, lv: Level, cells: NDArray[np.uint64]) -> NDArray[np.object_]:
        """Lon/lat polygons drawn around the cells of location units."""
        raise NotImplementedError

    def metric_geoms(
        self, ctx: Context, lv: Level, units: Units, which: Int1D
    ) -> tuple[NDArray[np.object_], Int1D]:
        """Metric geometry and community of the location units ``which``."""
        comm = units.community(ctx.cases)[which]
        cells = h3c.hex_to_cells(units.ids[which])
        return ctx.layer.to_metric_geoms(self.cell_polygons(lv, cells)), comm

    def selection(self, ctx: Context, lv: Level, units: Units) -> sparse.csr_matrix:
        metric, _ = self.metric_geoms(ctx, lv, units, np.arange(units.count))
        ext = cast(Located, lv.extent)
        return ctx.layer.select(metric, 0.0, ext.snap, ext.min_area_fraction)

    def features(
        self, ctx: Context, lv: Level, units: Units, act: Activity, discs: bool = True
    ) -> Features:
        ever, active, events, last_at = act.ever(ctx.at_i)
        metric, comm = self.metric_geoms(ctx, lv, units, ever)
        keys = feature_keys(lv, units, ever)
        return Features(keys, comm, active, events, last_at, polygons=metric)


def feature_keys(lv: Level, units: Units, which: Int1D) -> NDArray[np.object_]:
    """Stable text key of each feature: level id and unit id."""
    return np.asarray([f"{lv.id}:{k}" for k in units.ids[which]], dtype=object)


class RadiusKind(LocationKind[RadiusExtent]):
    """A metric circle around each qualifying location (or around the centre of its H3 cell
    at ``centre_res``); exact circles are kept as discs (centre and radius)."""

    name = "radius"
    spec: ClassVar[type[ExtentSpec]] = RadiusExtent

    def unit_res(self, lv: Level) -> int | None:
        return self.extent(lv).centre_res

    def centre(
        self, ctx: Context, lv: Level, units: Units
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Where a unit's circle is centred: its location, or its H3 cell's centre."""
        if self.extent(lv).centre_res is not None:
            lat, lng = h3c.cell_centres(h3c.hex_to_cells(units.ids))
            return lng, lat
        return units.location(ctx.cases)

    def radii(self, layer: CommunityLayer, lv: Level, comm: Int1D) -> NDArray[np.float64]:
        """The radius of each circle (the rural radius in rural communities)."""
        ext = self.extent(lv)
        r = np.full(len(comm), ext.radius_m)
        if ext.rural_radius_m is not None:
            rural = (comm >= 0) & layer.rural[np.maximum(comm, 0)]
            r[rural] = ext.rural_radius_m
        return r

    def metric_geoms(
        self, ctx: Context, lv: Level, units: Units, which: Int1D
    ) -> tuple[NDArray[np.object_], Int1D]:
        layer = ctx.layer
        comm = units.community(ctx.cases)[which]
        lon, lat = self.centre(ctx, lv, units)
        x, y = layer.to_metric.transform(lon[which], lat[which])
        r = self.radii(layer, lv, comm)
        return shapely.buffer(shapely.points(x, y), r, quad_segs=32), comm

    def features(
        self, ctx: Context, lv: Level, units: Units, act: Activity, discs: bool = True
    ) -> Features:
        """Discs (unless ``discs`` is false: polygons)."""
        ever, active, events, last_at = act.ever(ctx.at_i)
        keys = feature_keys(lv, units, ever)
        layer = ctx.layer
        lon, lat = self.centre(ctx, lv, units)
        x, y = layer.to_metric.transform(lon[ever], lat[ever])
        comm = units.community(ctx.cases)[ever]
        f = Features(
            keys,
            comm,
            active,
            events,
            last_at,
            centre=np.column_stack([x, y]),
            radius=self.radii(layer, lv, comm),
            lift=lv.lift_after_days,
        )
        if not discs:
            f = Features(keys, comm, f.active, f.events, last_at, polygons=f.metric)
        return f


class CellKind(LocationKind[CellExtent]):
    """The H3 cell of each qualifying location (e.g. a building at res 12)."""

    name = "cell"
    spec: ClassVar[type[ExtentSpec]] = CellExtent

    def cell_polygons(self, lv: Level, cells: NDArray[np.uint64]) -> NDArray[np.object_]:
        return h3c.cell_polygons(cells)

    def cell_res(self, lv: Level, layer: CommunityLayer) -> int:
        res = self.extent(lv).res
        return res if res >= layer.h3_res else layer.h3_res

    def own_cells(
        self, lv: Level, layer: CommunityLayer, keys: list[str]
    ) -> NDArray[np.uint64] | None:
        """The building cells themselves, at or finer than the layer's resolution."""
        if self.extent(lv).res < layer.h3_res:
            return None
        return h3c.unique(h3c.hex_to_cells([k.split(":", 1)[1] for k in keys]))


class GridDiskKind(LocationKind[GridDiskExtent]):
    """k rings of H3 cells around the cell of each qualifying location."""

    name = "grid_disk"
    spec: ClassVar[type[ExtentSpec]] = GridDiskExtent

    def cell_polygons(self, lv: Level, cells: NDArray[np.uint64]) -> NDArray[np.object_]:
        k = self.extent(lv).k
        return np.array(
            [shapely.union_all(h3c.cell_polygons(h3c.grid_disk(int(cl), k))) for cl in cells],
            dtype=object,
        )
