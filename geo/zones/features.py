"""Exact-geometry zone parts of a level (circles, H3 cells, buffers around them) and which
communities they touch, day by day."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from riskmap.geo._cancel import checkpoint
from riskmap.geo.zones.grids import Bool2D, Int1D, spread
from riskmap.geo.zones.layer import CommunityLayer


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
    family: DiscFamily | None = field(default=None, repr=False, compare=False)

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
            return spread(layer.select(self.metric, 0.0, "intersects"), self.events)
        assert self.centre is not None and self.radius is not None
        if self.family is not None:
            return self.family.hits_of(self, layer)
        return disc_hits(layer, self.centre, self.events, [self.radius])[0]


class DiscFamily:
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
            grids = disc_hits(layer, self.centre, self.events, radii)  # type: ignore[arg-type]
            self.results = {id(m): g for m, g in zip(self.members, grids, strict=True)}
        return self.results.pop(id(f))


def disc_hits(
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
