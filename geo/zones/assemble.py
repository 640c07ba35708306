"""Zones from the levels' grids: the level shown for each community, zones drawn per community
(grouped by ``grouping``) and exact-geometry zones (connected parts of the union of a level's
active features, less the higher levels' areas), with their dates and H3 cells."""

from __future__ import annotations

import datetime as dt
import hashlib

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from riskmap.geo import cells as h3c
from riskmap.geo._cancel import checkpoint
from riskmap.geo.crs import WGS84
from riskmap.geo.policy import Level, Policy
from riskmap.geo.zones.days import dates_or_none, from_day
from riskmap.geo.zones.features import Features
from riskmap.geo.zones.grids import Int1D, run_bounds
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import kind_of
from riskmap.geo.zones.state import Context, ZoneResult

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


def sort_zones(zones: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Zones from the highest level to the lowest, by id within a level."""
    zones["_rank"] = [policy.rank(lv) for lv in zones["level"]]
    zones = zones.sort_values(["_rank", "zone_id"], ascending=[False, True]).drop(columns="_rank")
    return zones.reset_index(drop=True)


def assemble(ctx: Context, policy: Policy, at: dt.date, with_geometry: bool) -> ZoneResult:
    """Levels per community and zones as of the as-of date, from the levels' grids."""
    layer, at_i, n = ctx.layer, ctx.at_i, ctx.n
    levels_low_first = policy.levels_low_first
    # ranks of the levels drawn per community (zones), and displayed per community
    zone_rank = np.zeros((n, ctx.ndays), dtype=np.int8)
    show_rank = np.zeros((n, ctx.ndays), dtype=np.int8)
    for k, lv in enumerate(levels_low_first, start=1):
        checkpoint()
        st = ctx.states[lv.id]
        zone_rank[st.grid] = k
        show_rank[st.touch(layer)] = k
    ids_by_rank = np.array(policy.ids_by_rank, dtype=object)
    rank_at = show_rank[:, at_i]
    start, end = run_bounds(show_rank, at_i)
    last = np.full(n, -1, dtype=np.int64)
    for k, lv in enumerate(levels_low_first, start=1):
        m = rank_at == k
        last[m] = ctx.states[lv.id].touch_last(layer, at_i)[m]

    in_zone = rank_at > 0
    levels = pd.DataFrame(
        {
            "community_id": layer.ids,
            "level": ids_by_rank[rank_at],
            "since": dates_or_none(ctx.day0, start, in_zone),
            "expected_lift": dates_or_none(ctx.day0, end, in_zone & (end >= 0)),
            "last_case": dates_or_none(ctx.day0, last, in_zone & (last >= 0)),
        }
    )
    zr_at = zone_rank[:, at_i]
    zone_of = group_zones(layer, policy, zr_at)
    zstart, zend = run_bounds(zone_rank, at_i)
    zlast = np.full(n, -1, dtype=np.int64)
    for k, lv in enumerate(levels_low_first, start=1):
        m = zr_at == k
        st = ctx.states[lv.id]
        zlast[m] = np.where(st.grid[:, at_i], st.last, -1)[m]
    comm_zones = community_zones(
        layer, policy, ctx, zone_of, zr_at, zstart, zend, zlast, with_geometry
    )
    geo_zones = geometric_zones(ctx, policy, with_geometry)
    zones = pd.concat([comm_zones, geo_zones], ignore_index=True)
    zones = gpd.GeoDataFrame(zones, geometry="geometry", crs=WGS84)
    if len(zones):
        zones = sort_zones(zones, policy)
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


def group_zones(
    layer: CommunityLayer, policy: Policy, rank_at: NDArray[np.int8]
) -> NDArray[np.object_]:
    """Zone id per community (None outside community-drawn zones)."""
    zone = np.full(len(layer), None, dtype=object)
    district, _ = layer.parent_codes("district")
    for k, lv in enumerate(policy.levels_low_first, start=1):
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


def community_zones(
    layer: CommunityLayer,
    policy: Policy,
    ctx: Context,
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
    ids_by_rank = policy.ids_by_rank
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


def geometric_zones(ctx: Context, policy: Policy, with_geometry: bool) -> pd.DataFrame:
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
        whole = shapely.union_all(disc_union_inputs(act) if act.is_discs else act.metric)
        shape = whole if higher is None else shapely.difference(whole, higher)
        higher = whole if higher is None else shapely.union(higher, whole)
        parts_m = [p for p in shapely.get_parts(shape) if not p.is_empty and p.area > 0]
        if not parts_m:
            continue
        parts_a = layer.to_lonlat_geoms(np.array(parts_m, dtype=object))
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
        part_pairs = part_of_whole(np.array(parts_m, dtype=object), whole_parts)
        start, end = run_bounds(act.active.astype(np.int8), at_i)
        member_of = pd.Series(fi).groupby(pi).agg(list) if len(pi) else pd.Series(dtype=object)
        # parts in a fixed order (by their bounds, not by GEOS's output order), so that the
        # suffixes of a zone split by a higher area do not depend on how the union was built
        bounds = shapely.bounds(parts_a)
        order = np.lexsort((bounds[:, 3], bounds[:, 2], bounds[:, 1], bounds[:, 0]))
        for k in order.tolist():
            checkpoint()
            part = parts_a[k]
            wp = part_pairs[1][part_pairs[0] == k]
            got = [member_of[w] for w in wp if w in member_of.index]
            members = h3c.unique(np.concatenate(got)) if got else np.empty(0, np.int64)
            first_key = min(act.keys[members].tolist())
            comm, inside, edge = part_communities(layer, parts_m[k])
            ends = end[members]
            last = act.last[members]
            ccells = part_cells(lv, part, parts_m[k], layer, act, members, inside, edge)
            rows.append(
                {
                    "zone_id": _unique_id(area_id(lv.id, first_key), used),
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
                    "h3_resolution": kind_of(lv).cell_res(lv, layer),
                    "geometry": part if with_geometry else None,
                }
            )
    return pd.DataFrame(rows, columns=ZONE_COLUMNS)


def disc_union_inputs(f: Features) -> NDArray[np.object_]:
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


def part_of_whole(
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


def part_communities(layer: CommunityLayer, part_m: shapely.Geometry) -> tuple[Int1D, Int1D, Int1D]:
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


def _unique_id(zid: str, used: set[str]) -> str:
    """``zid``, or ``zid-2``, ``zid-3``... when a higher area split a zone into parts."""
    out, n = zid, 1
    while out in used:
        n += 1
        out = f"{zid}-{n}"
    used.add(out)
    return out


def area_id(level: str, key: str) -> str:
    """Public id of an exact-geometry area (its key may hold a case location: never shown)."""
    return f"{level}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def part_cells(
    lv: Level,
    part: shapely.Geometry,
    part_m: shapely.Geometry,
    layer: CommunityLayer,
    act: Features,
    members: Int1D,
    inside: Int1D,
    edge: Int1D,
) -> NDArray[np.uint64]:
    """H3 cells of an exact-geometry zone part: the cells the extent kind knows itself (the
    building cells of a cell extent at or finer than the layer's resolution); otherwise the
    communities' cells whose
    centre lies in the part (where people live; the part may reach beyond the communities),
    or the cell of a point inside it when none does.

    A community's cell has its centre in the community (within a metre: H3 tests in degrees),
    except the one cell of a community too small to hold a centre: the cells of communities
    ``inside`` the part are in it, those of ``edge`` communities and the single cells of
    communities are tested, the others are out."""
    own = kind_of(lv).own_cells(lv, layer, act.keys[members].tolist())
    if own is not None:
        return own
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
