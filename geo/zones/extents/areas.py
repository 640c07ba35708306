"""Extent kinds drawn as whole communities: ``community`` and ``parent`` (triggered), ``all``
and ``parent_remainder`` (derived from the levels above)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo._cancel import checkpoint
from riskmap.geo.policy import (
    AllExtent,
    CommunityExtent,
    ExtentSpec,
    Level,
    ParentExtent,
    ParentRemainderExtent,
    Policy,
)
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import Bool1D, ExtentKind, Int1D
from riskmap.geo.zones.state import Context, LevelState, Patching, Units


def case_communities(ctx: Context) -> Int1D:
    """Community of each case location (-1 outside every community)."""
    c = ctx.cases
    return c["community"].to_numpy() if len(c) else np.empty(0, np.int64)


class CommunityKind(ExtentKind[CommunityExtent]):
    """The community of each qualifying location."""

    name = "community"
    spec: ClassVar[type[ExtentSpec]] = CommunityExtent
    row_local = True

    def units(self, ctx: Context, lv: Level, q: Bool1D) -> Units:
        layer, comm = ctx.layer, case_communities(ctx)
        rows = q & (comm >= 0)
        return Units(len(layer), comm[rows], rows, layer.population, layer.ids.astype(object))

    def selection(self, ctx: Context, lv: Level, units: Units) -> sparse.csr_matrix:
        return sparse.identity(len(ctx.layer), dtype=np.int8, format="csr")

    def incremental(self, policy: Policy, lv: Level) -> bool:
        return True


class ParentKind(ExtentKind[ParentExtent]):
    """The whole parent unit (subdistrict or district) of each qualifying location."""

    name = "parent"
    spec: ClassVar[type[ExtentSpec]] = ParentExtent

    def units(self, ctx: Context, lv: Level, q: Bool1D) -> Units:
        layer, comm, parent = ctx.layer, case_communities(ctx), self.extent(lv).parent
        codes, uniq = layer.parent_codes(parent)
        unit = np.where(comm >= 0, codes[np.maximum(comm, 0)], -1)
        rows = q & (unit >= 0)
        return Units(len(uniq), unit[rows], rows, layer.parent_population(parent), uniq)

    def selection(self, ctx: Context, lv: Level, units: Units) -> sparse.csr_matrix:
        return ctx.layer.parent_membership(self.extent(lv).parent)

    def cluster_members(self, layer: CommunityLayer, lv: Level) -> sparse.csr_matrix:
        # every community of the parent counts
        return layer.parent_membership(self.extent(lv).parent).T.tocsr()

    def incremental(self, policy: Policy, lv: Level) -> bool:
        return True

    def unit_rows(self, layer: CommunityLayer, lv: Level, seed: Bool1D) -> Bool1D:
        return layer.same_parent(self.extent(lv).parent, seed)


class AllKind(ExtentKind[AllExtent]):
    """Every community, every day."""

    name = "all"
    spec: ClassVar[type[ExtentSpec]] = AllExtent
    covers_all = True

    def derived(self, ctx: Context, lv: Level) -> LevelState:
        g = np.ones((ctx.n, ctx.ndays), dtype=bool)
        return LevelState(g, np.zeros_like(g), np.full(ctx.n, -1, np.int64))

    def incremental(self, policy: Policy, lv: Level) -> bool:
        return True

    def patch(self, p: Patching, lv: Level, src_dirty: Bool1D) -> tuple[Int1D, LevelState] | None:
        return None  # never changes


class ParentRemainderKind(ExtentKind[ParentRemainderExtent]):
    """The rest of every parent unit that holds a community of the levels it is drawn around."""

    name = "parent_remainder"
    spec: ClassVar[type[ExtentSpec]] = ParentRemainderExtent

    def derived(self, ctx: Context, lv: Level) -> LevelState:
        layer, ext, at_i = ctx.layer, self.extent(lv), ctx.at_i
        srcs = [ctx.states[a] for a in ext.around]
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
                ev |= s.feature_hits(layer)
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
        return LevelState(g, e, lst)

    def incremental(self, policy: Policy, lv: Level) -> bool:
        return True

    def patch(self, p: Patching, lv: Level, src_dirty: Bool1D) -> tuple[Int1D, LevelState] | None:
        """The communities of the parent units holding a changed row, from the grids of the
        levels it is drawn around (drawn per community)."""
        layer, states, at_i = p.layer, p.states, p.at_i
        ext = self.extent(lv)
        codes, _ = layer.parent_codes(ext.parent)
        target = np.flatnonzero(layer.same_parent(ext.parent, src_dirty))
        if len(target) == 0:
            return None
        ndays = states[lv.id].grid.shape[1]
        order = np.argsort(codes[target], kind="stable")
        target = target[order]
        grp = codes[target]
        starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])
        touch = np.zeros((len(target), ndays), dtype=bool)
        ev = np.zeros_like(touch)
        last: NDArray[np.int64] = np.full(len(target), -1, dtype=np.int64)
        for a in ext.around:
            s = states[a]
            touch |= s.grid[target]
            ev |= s.events[target]
            last = np.maximum(last, np.where(s.grid[target, at_i], s.last[target], -1))
        sizes = np.diff(np.r_[starts, len(target)])
        par = np.logical_or.reduceat(touch, starts, axis=0)
        par_ev = np.logical_or.reduceat(ev, starts, axis=0)
        par_last = np.maximum.reduceat(last, starts)
        got = LevelState(
            np.repeat(par, sizes, axis=0),
            np.repeat(par_ev, sizes, axis=0),
            np.repeat(par_last, sizes),
        )
        return target, got
