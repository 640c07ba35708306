"""What the public sees of a rule that draws finer than a community.

A level drawn as exact geometry finer than a community (:attr:`geo.policy.Policy.fine_levels`:
building cells, circles centred on homes) could give away a case's home. For the public:

* a zone of such a level is shown exactly only when every unit inside it (building cell, or
  the cell a circle is centred on) holds at least ``min_count`` distinct qualifying cases in the
  days that can still sustain it; a circle centred on a home is one home, so it is never shown
  exactly (unless ``min_count`` is 1). Any other such zone is *coarsened*: it becomes the whole
  communities it touches, and its part outside every community becomes the H3 cells of
  resolution :data:`OUTSIDE_RES` it overlaps. Coarsening only enlarges: every place of the
  exact zone is in the public one. Coarsened zones of one level sharing a community are one
  public zone;
* no zone of such a level, and no community shown at such a level, has a ``start``,
  ``last_case``, ``since`` or ``expected_lift`` date (each is a case's report date, or one
  plus the rule's lifting days);
* the zone history leaves out the events of such areas (their ids are hashes of the unit,
  a building cell), and a place's history is at the precision of its community
  (:func:`public_point_ranks`).

Levels drawn per community, and exact geometry at resolution 10 or coarser, are public as
computed.
"""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from riskmap.geo import cells as h3c
from riskmap.geo.crs import WGS84
from riskmap.geo.history import point_ranks
from riskmap.geo.policy import CellExtent, GridDiskExtent, Level, Policy, RadiusExtent
from riskmap.geo.zones import ZONE_COLUMNS, CommunityLayer, ZoneResult, to_day, to_days

# the part of a coarsened zone outside every community is shown as the H3 cells of this
# resolution it overlaps (about 0.74 km2 each, edge about 460 m)
OUTSIDE_RES = 8
DATE_COLUMNS = ("start", "last_case", "expected_lift")
LEVEL_DATE_COLUMNS = ("since", "expected_lift", "last_case")


def _sources(policy: Policy, level_id: str) -> list[Level]:
    """The triggered levels whose case locations draw a level (itself, the levels that step
    down to it, the levels an exact buffer is drawn around)."""
    lv = policy.level(level_id)
    out: list[Level] = [lv] if lv.trigger is not None else []
    out += [h for h in policy.levels if h.step_down is not None and h.step_down.to == level_id]
    for a in getattr(lv.extent, "around", ()):
        out += _sources(policy, a)
    return out


def _span(lv: Level) -> int:
    """Days back from the as-of date whose cases can sustain a level's features."""
    assert lv.trigger is not None
    down = lv.step_down.after_days if lv.step_down else 0
    return lv.lift_after_days + down + lv.trigger.window_days - 1


def _units(
    lv: Level, cases: pd.DataFrame, at_day: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """(lon, lat, count) of the units of a triggered fine level: the point each unit is
    drawn around and its distinct qualifying cases that can sustain it as of ``at_day``
    (a unit that is a home, a circle centred on a case location, counts 1)."""
    tr = lv.trigger
    assert tr is not None
    if len(cases) == 0:
        e = np.empty(0)
        return e, e, np.empty(0, np.int64)
    rep = to_days(cases["reported"])
    ok = (
        cases["type"].isin(tr.case_types).to_numpy()
        & cases["role"].isin(tr.roles).to_numpy()
        & (rep <= at_day)
        & (rep > at_day - _span(lv))
    )
    c = cases.loc[ok]
    lon, lat = c["lon"].to_numpy(np.float64), c["lat"].to_numpy(np.float64)
    ext = lv.extent
    res = ext.centre_res if isinstance(ext, RadiusExtent) else getattr(ext, "res", None)
    if isinstance(ext, RadiusExtent) and res is None:  # circles centred on homes
        homes = pd.DataFrame({"lon": lon, "lat": lat}).drop_duplicates()
        return homes["lon"].to_numpy(), homes["lat"].to_numpy(), np.ones(len(homes), np.int64)
    assert isinstance(ext, CellExtent | GridDiskExtent | RadiusExtent) and res is not None
    cells = h3c.points_to_cells(lon, lat, int(res))
    counts = pd.DataFrame({"cell": cells, "case": c["case_id"].to_numpy()})
    per_cell = counts.groupby("cell")["case"].nunique()
    clat, clon = h3c.cell_centres(per_cell.index.to_numpy(np.uint64))
    return clon, clat, per_cell.to_numpy(np.int64)


def _filled(geom: shapely.Geometry) -> shapely.Geometry:
    """The geometry with its holes filled (an exact buffer's ring holds its centres)."""
    parts = shapely.get_parts(geom)
    return shapely.union_all(shapely.polygons(shapely.get_exterior_ring(parts)))


def zone_counts(result: ZoneResult, cases: pd.DataFrame) -> NDArray[np.int64]:
    """Per zone of ``result``: for zones of fine levels, the smallest count of the units
    inside it (0 when none is); -1 for other zones."""
    policy, zones = result.policy, result.zones
    fine = policy.fine_levels
    out = np.full(len(zones), -1, dtype=np.int64)
    at_day = to_day(result.at)
    units: dict[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]] = {}
    for i, z in enumerate(zones.itertuples(index=False)):
        if z.level not in fine:
            continue
        filled = _filled(z.geometry)
        shapely.prepare(filled)
        found: list[NDArray[np.int64]] = []
        for src in _sources(policy, z.level):
            if src.id not in units:
                units[src.id] = _units(src, cases, at_day)
            lon, lat, n = units[src.id]
            found.append(n[shapely.intersects_xy(filled, lon, lat)])
        got = np.concatenate(found) if found else np.empty(0, np.int64)
        out[i] = int(got.min()) if len(got) else 0
    return out


def _positive_overlap(layer: CommunityLayer, geom: shapely.Geometry) -> NDArray[np.int64]:
    """Communities sharing some area with ``geom`` (more than a boundary)."""
    g = _metric(layer, geom)
    cand = h3c.unique(layer.metric_tree.query(g)).astype(np.int64)
    if len(cand) == 0:
        return cand
    return cand[shapely.area(shapely.intersection(layer.metric[cand], g)) > 0.01]


def _metric(layer: CommunityLayer, geom: shapely.Geometry) -> shapely.Geometry:
    return gpd.GeoSeries([geom], crs=WGS84).to_crs(layer.metric_crs).iloc[0]


def _coarse_shape(
    layer: CommunityLayer, geom: shapely.Geometry, touched: NDArray[np.int64]
) -> tuple[shapely.Geometry, NDArray[np.int64], NDArray[np.uint64]]:
    """(geometry, communities, cells at the layer's resolution) of a coarsened zone: the
    communities it touches, and the cells of :data:`OUTSIDE_RES` its outside part overlaps."""
    geoms = [layer.geoms[touched]] if len(touched) else []
    cells = [layer.cells_of(touched)] if len(touched) else []
    rest = (
        shapely.difference(geom, shapely.union_all(layer.geoms[touched])) if len(touched) else geom
    )
    comm = touched
    if not rest.is_empty and shapely.area(_metric(layer, rest)) > 0:
        coarse = h3c.polygon_cells(rest, OUTSIDE_RES, "overlap")
        if len(coarse) == 0:  # smaller than a cell: the cell of a point inside it
            pt = shapely.point_on_surface(rest)
            coarse = h3c.points_to_cells([pt.x], [pt.y], OUTSIDE_RES)
        polys = h3c.cell_polygons(coarse)
        geoms.append(polys)
        cells.append(h3c.children(coarse, layer.h3_res))
        comm = np.union1d(comm, _positive_overlap(layer, shapely.union_all(polys)))
    shape = shapely.union_all(np.concatenate(geoms))
    return shape, comm.astype(np.int64), np.concatenate(cells) if cells else h3c.EMPTY_CELLS


def public_result(
    result: ZoneResult, layer: CommunityLayer, cases: pd.DataFrame, min_count: int
) -> ZoneResult:
    """``result`` as the public sees it (see the module's docstring): the same result when
    the rule draws nothing finer than a community.

    ``cases`` are the case locations the result was computed from (columns case_id,
    reported, type, role, lon, lat)."""
    policy = result.policy
    fine = policy.fine_levels
    if not fine:
        return result
    zones = result.zones.reset_index(drop=True)
    counts = zone_counts(result, cases)
    is_fine = zones["level"].isin(list(fine)).to_numpy()
    coarse = np.flatnonzero(is_fine & (counts < min_count))
    pos = {cid: i for i, cid in enumerate(layer.ids.tolist())}
    keep = zones.loc[~np.isin(np.arange(len(zones)), coarse)].copy()
    for col in DATE_COLUMNS:
        keep[col] = keep[col].astype(object)
        keep.loc[keep["level"].isin(list(fine)), col] = None
    remap: dict[str, str | None] = {}
    rows = []
    raised: dict[int, tuple[str, str]] = {}  # community -> (level, zone id) from outside cells
    for lvl in policy.level_ids:
        idx = coarse[zones["level"].to_numpy()[coarse] == lvl]
        if len(idx) == 0:
            continue
        shapes = []
        for i in idx.tolist():
            touched = np.array(
                sorted(pos[c] for c in zones.at[i, "community_ids"] if c in pos), dtype=np.int64
            )
            shapes.append(_coarse_shape(layer, zones.at[i, "geometry"], touched))
        # coarsened zones of one level sharing a community or an outside cell are one zone
        keys = [{f"c{c}" for c in s[1].tolist()} | {f"h{c}" for c in s[2].tolist()} for s in shapes]
        token = {t: k for k, t in enumerate(sorted(set().union(*keys)))}
        r = np.concatenate([[j] * len(k) for j, k in enumerate(keys)]).astype(np.int64)
        t = np.array([token[x] for k in keys for x in sorted(k)], dtype=np.int64)
        g = sparse.csr_matrix((np.ones(len(r)), (r, t)), shape=(len(shapes), len(token)))
        _, label = connected_components(g @ g.T, directed=False)
        lv = policy.level(lvl)
        used = set(zones["zone_id"])
        for grp in np.unique(label).tolist():
            members = np.flatnonzero(label == grp)
            comm = np.unique(np.concatenate([shapes[m][1] for m in members])).astype(np.int64)
            cells = h3c.compact(np.concatenate([shapes[m][2] for m in members]))
            ids = sorted(layer.ids[comm].tolist())
            base = f"{lvl}-{ids[0]}" if ids else f"{lvl}-{h3c.cells_to_hex(cells[:1])[0]}"
            zid, n = base, 1
            while zid in used:
                n += 1
                zid = f"{base}-{n}"
            used.add(zid)
            for m in members:
                remap[str(zones.at[int(idx[m]), "zone_id"])] = zid
            for c in comm.tolist():
                if c not in raised or policy.rank(lvl) > policy.rank(raised[c][0]):
                    raised[c] = (lvl, zid)
            pop = layer.population[comm]
            rows.append(
                {
                    "zone_id": zid,
                    "level": lvl,
                    "label": lv.label,
                    "color": lv.color,
                    "drawn": "community",
                    "community_ids": ids,
                    "community_count": len(ids),
                    "population": None
                    if len(pop) == 0 or np.isnan(pop).all()
                    else int(np.nansum(pop)),
                    "start": None,
                    "last_case": None,
                    "expected_lift": None,
                    "cells": cells,
                    "h3_resolution": layer.h3_res,
                    "geometry": shapely.union_all([shapes[m][0] for m in members]),
                }
            )
    extra = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=ZONE_COLUMNS), geometry="geometry", crs=WGS84
    )
    out = pd.concat([keep, extra], ignore_index=True) if len(extra) else keep
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84)
    if len(out):
        out["_rank"] = [policy.rank(lv) for lv in out["level"]]
        out = out.sort_values(["_rank", "zone_id"], ascending=[False, True]).drop(columns="_rank")
        out = out.reset_index(drop=True)
    levels = _public_levels(result, layer, remap, raised)
    return dataclasses.replace(result, zones=out, levels=levels)


def _public_levels(
    result: ZoneResult,
    layer: CommunityLayer,
    remap: dict[str, str | None],
    raised: dict[int, tuple[str, str]],
) -> pd.DataFrame:
    """Levels per community as the public sees them: a community inside a coarsened zone is
    at least at its level (the level shown was already the highest zone on any part of it),
    the zone ids are the public ones, and no community at a fine level has dates."""
    policy = result.policy
    lv = result.levels.copy()
    for col in LEVEL_DATE_COLUMNS:
        lv[col] = lv[col].astype(object)
    lv["zone_id"] = [remap.get(z, z) if isinstance(z, str) else z for z in lv["zone_id"]]
    level = lv["level"].to_numpy(dtype=object).copy()
    zone = lv["zone_id"].to_numpy(dtype=object).copy()
    for c, (lvl, zid) in raised.items():
        if policy.rank(lvl) > policy.rank(str(level[c])):
            level[c], zone[c] = lvl, zid
        elif level[c] == lvl and zone[c] is None:
            zone[c] = zid
    lv["level"], lv["zone_id"] = level, zone
    hide = lv["level"].isin(list(policy.fine_levels)).to_numpy()
    for col in LEVEL_DATE_COLUMNS:
        lv.loc[hide, col] = None
    return lv


def public_events(events: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Zone events without those of exact areas of fine levels (their ids hash a building
    cell or a home; their dates are its cases' report dates)."""
    fine = list(policy.fine_levels)
    if not fine or len(events) == 0:
        return events
    area = events["unit_type"].to_numpy() == "area"
    of_fine = events["level_from"].isin(fine).to_numpy() | events["level_to"].isin(fine).to_numpy()
    return events[~(area & of_fine)].reset_index(drop=True)


def public_point_ranks(
    result: ZoneResult, layer: CommunityLayer, lon: float, lat: float
) -> NDArray[np.int8]:
    """:func:`geo.history.point_ranks` as the public sees it: a fine level covers a place
    on the days one of its areas touches the place's community (outside every community:
    the place's H3 cell of :data:`OUTSIDE_RES`), as a coarsened zone would."""
    policy = result.policy
    fine = policy.fine_levels
    if not fine:
        return point_ranks(result, layer, lon, lat)
    assert result.zone_rank_grid is not None
    ndays = result.zone_rank_grid.shape[1]
    c = int(layer.locate(np.array([lon]), np.array([lat]))[0])
    out = result.zone_rank_grid[c].copy() if c >= 0 else np.zeros(ndays, dtype=np.int8)
    x, y = layer.to_metric.transform(lon, lat)
    if c < 0:
        cell = h3c.points_to_cells([lon], [lat], OUTSIDE_RES)
        around = _metric(layer, h3c.cell_polygons(cell)[0])
    for k, lv in enumerate(reversed(policy.levels), start=1):
        st = result.states[lv.id]
        f = st.features
        if f is None or len(f) == 0:
            continue
        if lv.id not in fine:
            hit = f.covering(x, y)
            on = f.active[hit].any(axis=0) if len(hit) else np.zeros(ndays, dtype=bool)
        elif c >= 0:
            on = st.touch(layer)[c]
        else:
            hit = shapely.STRtree(f.metric).query(around, predicate="intersects")
            on = f.active[hit].any(axis=0) if len(hit) else np.zeros(ndays, dtype=bool)
        out = np.where(on & (out < k), k, out).astype(np.int8)
    return out
