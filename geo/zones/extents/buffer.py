"""The ``buffer`` extent kind: communities near the levels it is drawn around (or the exact
metric buffer of those levels' areas)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo._cancel import checkpoint
from riskmap.geo.policy import BufferExtent, ExtentSpec, Level, Policy
from riskmap.geo.zones.features import DiscFamily, Features
from riskmap.geo.zones.grids import spread, spread_max
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import Bool1D, ExtentKind, Int1D, kind_of
from riskmap.geo.zones.state import Context, LevelState, Patching


class BufferKind(ExtentKind[BufferExtent]):
    """Within ``distance_m`` (``rural_distance_m`` around rural places) of the levels named in
    ``around``: whole communities selected by ``snap``, or the exact buffer (``snap: exact``)."""

    name = "buffer"
    spec: ClassVar[type[ExtentSpec]] = BufferExtent

    def derived(self, ctx: Context, lv: Level) -> LevelState:
        layer, ext, at_i = ctx.layer, self.extent(lv), ctx.at_i
        srcs = [ctx.states[a] for a in ext.around]
        if lv.geometric:
            parts = []
            for s in srcs:
                checkpoint()
                parts += buffer_features(ctx, lv, ext, s)
            return ctx.blank(Features.concat(parts, ctx.ndays))
        g = np.zeros((ctx.n, ctx.ndays), dtype=bool)
        e = np.zeros_like(g)
        last = np.full(ctx.n, -1, dtype=np.int64)
        for s in srcs:
            checkpoint()
            # sources drawn per community
            sel = community_buffer_selection(layer, ext)
            g |= spread(sel, s.grid)
            e |= spread(sel, s.events)
            last = np.maximum(last, spread_max(sel, np.where(s.grid[:, at_i], s.last, -1)))
            if s.features is not None and len(s.features):
                f = s.features
                sel_f = feature_buffer_selection(layer, ext, f)
                g |= spread(sel_f, f.active)
                e |= spread(sel_f, f.events)
                last = np.maximum(last, spread_max(sel_f, np.where(f.active[:, at_i], f.last, -1)))
        return LevelState(g, e, last)

    def incremental(self, policy: Policy, lv: Level) -> bool:
        """Buffers of whole communities around levels whose rows follow their own cases."""
        if lv.geometric:
            return False
        return all(kind_of(policy.level(a)).row_local for a in self.extent(lv).around)

    def patch(self, p: Patching, lv: Level, src_dirty: Bool1D) -> tuple[Int1D, LevelState] | None:
        """The communities within the distance of a changed row (through the sparse selection
        matrix), from the rows of the levels it is drawn around."""
        layer, states, at_i = p.layer, p.states, p.at_i
        ext = self.extent(lv)
        ndays = states[lv.id].grid.shape[1]
        sel = community_buffer_selection(layer, ext)  # sources x targets
        touched = sel[np.flatnonzero(src_dirty)].tocoo().col
        target = np.unique(touched)
        if len(target) == 0:
            return None
        part = sel[:, target].tocoo()  # sources x these targets
        src = np.unique(part.row)
        pos = np.searchsorted(src, part.row)
        part_t = sparse.csr_matrix(
            (np.ones(part.nnz, dtype=np.int32), (part.col, pos)), shape=(len(target), len(src))
        )
        part_s = sparse.coo_matrix((part.data, (pos, part.col)), shape=(len(src), len(target)))
        g = np.zeros((len(target), ndays), dtype=bool)
        e = np.zeros_like(g)
        last = np.full(len(target), -1, dtype=np.int64)
        for a in ext.around:
            s = states[a]
            g |= np.asarray((part_t @ s.grid[src].astype(np.int32)) > 0)
            e |= np.asarray((part_t @ s.events[src].astype(np.int32)) > 0)
            last_src = np.where(s.grid[src, at_i], s.last[src], -1)
            last = np.maximum(last, spread_max(part_s, last_src))
        return target, LevelState(g, e, last)


def community_buffer_selection(layer: CommunityLayer, ext: BufferExtent) -> sparse.csr_matrix:
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


def feature_buffer_selection(
    layer: CommunityLayer, ext: BufferExtent, f: Features
) -> sparse.csr_matrix:
    """features x communities: the communities within the distance of each feature."""
    d = feature_distances(layer, ext, f)
    grown = shapely.buffer(f.metric, d, quad_segs=32)
    return layer.select(grown, 0.0, ext.snap, ext.min_area_fraction)


def feature_distances(layer: CommunityLayer, ext: BufferExtent, f: Features) -> NDArray[np.float64]:
    """The buffer distance of each feature (rural features: the rural distance)."""
    d = np.full(len(f), ext.distance_m)
    if ext.rural_distance_m is not None:
        rural = (f.community >= 0) & layer.rural[np.maximum(f.community, 0)]
        d[rural] = ext.rural_distance_m
    return d


def buffer_features(ctx: Context, lv: Level, ext: BufferExtent, s: LevelState) -> list[Features]:
    """Exact buffers around a source level's features (discs grow their radius) and around
    its whole communities."""
    layer, at_i = ctx.layer, ctx.at_i
    out = []
    if s.features is not None and len(s.features):
        f = s.features
        d = feature_distances(layer, ext, f)
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
            (f.family or DiscFamily(f)).join(grown_discs)
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
