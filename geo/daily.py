"""Zones day by day: the zones of every date of a range from one engine computation, and the
exact-geometry areas of a history with their geometry and cells.

One :func:`~geo.zones.compute_zones` as of the last date of the range evaluates every level
over the whole day axis; column t of its grids depends only on cases reported on or before
day t (see :mod:`geo.history`), so the zones of each earlier date are assembled from the same
grids with that date's column as the as-of column. Only the assembly (grouping communities
into zones, their unions and cells) is repeated per date, never the levels' evaluation; a
zone with the same communities as the day before keeps that day's geometry and cells.

Two columns look *forward* from the as-of date and cannot come from a computation that
already knows the later cases: ``expected_lift`` (when the zone lifts if no case comes) and
``last_case`` (the qualifying day sustaining the zone, counted in the as-of date's window).
:func:`zones_over` leaves them empty (None) unless ``forecast=True``, which fills them from
one light computation per date (no geometry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd

from riskmap.geo import cells as h3c
from riskmap.geo._cancel import checkpoint
from riskmap.geo.crs import WGS84
from riskmap.geo.policy import Policy
from riskmap.geo.zones import (
    CommunityLayer,
    Context,
    ZoneResult,
    area_id,
    compute_zones,
    from_day,
    kind_of,
    to_day,
    to_days,
)
from riskmap.geo.zones.assemble import assemble

FORWARD_ZONE_COLUMNS = ("last_case", "expected_lift")
FORWARD_LEVEL_COLUMNS = ("last_case", "expected_lift")
AREA_COLUMNS = [
    "unit_id",
    "level",
    "label",
    "first_day",
    "last_day",
    "days_active",
    "cells",
    "h3_resolution",
    "geometry",
]

__all__ = ["AREA_COLUMNS", "DailyZones", "area_history", "date_range", "zones_over"]


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """The dates ``start`` .. ``end`` (inclusive); a clear error when ``start`` is after
    ``end``."""
    if start > end:
        raise ValueError(f"the first date {start} is after the last date {end}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass
class DailyZones:
    """The zones of every date of a range (:func:`zones_over`).

    ``result`` is the one engine computation as of the last date (its grids hold the whole
    history); ``by_date`` maps each date to its :class:`~geo.zones.ZoneResult` (levels per
    community and zones, as :func:`~geo.zones.compute_zones` answers for that date, forward
    columns aside: see the module's docstring)."""

    result: ZoneResult
    by_date: dict[dt.date, ZoneResult]
    forecast: bool

    def __iter__(self) -> Iterator[tuple[dt.date, ZoneResult]]:
        return iter(self.by_date.items())

    def __len__(self) -> int:
        return len(self.by_date)

    def zones(self) -> gpd.GeoDataFrame:
        """Every date's zones in one frame, with a ``date`` column first."""
        frames = []
        for d, r in self.by_date.items():
            z = r.zones.copy()
            z.insert(0, "date", d)
            frames.append(z)
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return gpd.GeoDataFrame(out, geometry="geometry" if len(out) else None, crs=WGS84)

    def levels(self) -> pd.DataFrame:
        """Every date's levels per community in one frame, with a ``date`` column first."""
        frames = []
        for d, r in self.by_date.items():
            lv = r.levels.copy()
            lv.insert(0, "date", d)
            frames.append(lv)
        return pd.concat(frames, ignore_index=True)


def zones_over(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    policy: Policy,
    start: dt.date,
    end: dt.date,
    *,
    metrics: pd.DataFrame | None = None,
    with_geometry: bool = True,
    forecast: bool = False,
) -> DailyZones:
    """The zones under ``policy`` as of every date ``start`` .. ``end``, from one engine
    computation as of ``end``.

    ``cases`` and ``metrics`` as for :func:`~geo.zones.compute_zones` (case locations with
    their ``community`` index). Each date's :class:`~geo.zones.ZoneResult` has the same zones
    (ids, levels, communities, population, start, cells, geometry) and the same levels per
    community (level, since, zone id) as ``compute_zones(layer, cases, policy, date)``.
    ``last_case`` and ``expected_lift`` (of zones and of communities) are None unless
    ``forecast`` is true: they look forward from each date, and are then taken from one
    computation per date without geometry (slower)."""
    dates = date_range(start, end)
    whole = compute_zones(layer, cases, policy, end, metrics=metrics, with_geometry=with_geometry)
    assert whole.rank_grid is not None
    ndays = whole.rank_grid.shape[1]
    first_case = _first_case_day(cases, to_day(end))
    empty = cases.iloc[:0]
    by_date: dict[dt.date, ZoneResult] = {}
    known: dict[str, tuple[list[str], object, np.ndarray]] = {}  # the day before's zones
    prev: tuple[int, ZoneResult] | None = None  # the day before's grid column and result
    for d in dates:
        checkpoint()
        d_i = to_day(d)
        if first_case is None or d_i < first_case:
            # nothing reported yet: only the levels drawn over every community (a
            # computation without cases, no grid to share)
            r = compute_zones(layer, empty, policy, d, metrics=metrics, with_geometry=with_geometry)
            prev = None
        else:
            t = min(d_i - whole.day0, whole.at_index)
            if prev is not None and _unchanged(whole, prev[0], t):
                # the same grids' columns as the day before: the same zones and levels
                r = replace(prev[1], at=d, zones=prev[1].zones.copy(), levels=prev[1].levels.copy())
            else:
                ctx = Context(
                    layer, empty, np.empty(0, np.int64), whole.day0, ndays, t, None, whole.states
                )
                r = assemble(ctx, policy, d, with_geometry, known)
                r.at_index = t
            prev = (t, r)
        z = r.zones[r.zones["drawn"] == "community"]
        known = {
            str(zid): (list(c), g, cl)
            for zid, c, g, cl in zip(
                z["zone_id"], z["community_ids"], z.geometry, z["cells"], strict=True
            )
        }
        if forecast:
            _fill_forward(
                r, compute_zones(layer, cases, policy, d, metrics=metrics, with_geometry=False)
            )
        else:
            _clear_forward(r)
        by_date[d] = r
    return DailyZones(whole, by_date, forecast)


def _unchanged(whole: ZoneResult, t_prev: int, t: int) -> bool:
    """Whether grid column ``t`` gives the same zones as column ``t_prev`` (the day before,
    or the same column): every rank and every exact feature the same."""
    if t == t_prev:
        return True
    if t != t_prev + 1:
        return False
    assert whole.rank_grid is not None and whole.zone_rank_grid is not None
    for g in (whole.rank_grid, whole.zone_rank_grid):
        if not np.array_equal(g[:, t], g[:, t_prev]):
            return False
    for st in whole.states.values():
        f = st.features
        if f is not None and len(f) and not np.array_equal(f.active[:, t], f.active[:, t_prev]):
            return False
    return True


def _first_case_day(cases: pd.DataFrame, end_d: int) -> int | None:
    """The first report day of a case (up to ``end_d``), None if there is none: the engine's
    grids start there."""
    if len(cases) == 0:
        return None
    rep = to_days(cases["reported"])
    rep = rep[rep <= end_d]
    return int(rep.min()) if len(rep) else None


def _clear_forward(r: ZoneResult) -> None:
    for col in FORWARD_ZONE_COLUMNS:
        r.zones[col] = pd.Series([None] * len(r.zones), index=r.zones.index, dtype=object)
    for col in FORWARD_LEVEL_COLUMNS:
        r.levels[col] = pd.Series([None] * len(r.levels), index=r.levels.index, dtype=object)


def _fill_forward(r: ZoneResult, own: ZoneResult) -> None:
    """The forward columns of ``r`` from the date's own computation ``own`` (same zone ids
    and communities)."""
    for col in FORWARD_ZONE_COLUMNS:
        by_id = dict(zip(own.zones["zone_id"], own.zones[col], strict=True))
        r.zones[col] = pd.Series(
            [by_id.get(z) for z in r.zones["zone_id"]], index=r.zones.index, dtype=object
        )
    for col in FORWARD_LEVEL_COLUMNS:
        r.levels[col] = own.levels[col].to_numpy()


def _cells_in(layer: CommunityLayer, part_m: object) -> np.ndarray:
    """The communities' cells whose centre lies in a metric area (where people live in it,
    as the cells of exact-geometry zones)."""
    import shapely

    _, cells = layer.cells
    x, y = layer.cell_centres
    minx, miny, maxx, maxy = shapely.bounds(part_m)
    box = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
    if len(box) == 0:
        return h3c.EMPTY_CELLS
    shapely.prepare(part_m)
    return cells[box[shapely.contains_xy(part_m, x[box], y[box])]]


def area_history(
    result: ZoneResult, layer: CommunityLayer, start: dt.date, end: dt.date
) -> gpd.GeoDataFrame:
    """The exact-geometry areas (circles, building cells, buffers around them) active on some
    day ``start`` .. ``end`` (at most the result's as-of date), one row per area: its
    ``unit_id`` (the id :func:`geo.history.zone_events` gives it), level, label, first and
    last active day in the period, number of active days, its H3 cells (the cells the kind
    knows itself, e.g. building cells; else the communities' cells whose centre lies in the
    area, as for exact-geometry zones) and its polygon
    (lon/lat; several features with the same id, e.g. a level's own circle and the one a
    higher level stepped down to it, are merged).

    Privacy: an area's polygon and cells show where it is, as the zones of the same dates
    do (a circle is centred on a case location): this is the analysts' view; the public sees
    fine zones only through :func:`geo.precision.public_result`."""
    import shapely

    d0 = from_day(result.day0)
    lo = max((start - d0).days, 0)
    hi = min((end - d0).days, result.at_index)
    rows: list[dict[str, object]] = []
    for lv in result.policy.levels:
        checkpoint()
        f = result.states[lv.id].features
        if f is None or len(f) == 0 or hi < lo:
            continue
        window = f.active[:, lo : hi + 1]
        on = np.flatnonzero(window.any(axis=1))
        if len(on) == 0:
            continue
        kind = kind_of(lv)
        res = kind.cell_res(lv, layer)
        ids = np.array([area_id(lv.id, str(k)) for k in f.keys[on]], dtype=object)
        lonlat = layer.to_lonlat_geoms(f.metric[on])
        for uid in sorted(set(ids.tolist())):
            pick = ids == uid
            members = on[pick]
            days = np.flatnonzero(window[members].any(axis=0))
            poly = shapely.union_all(lonlat[pick])
            own = kind.own_cells(lv, layer, [str(k) for k in f.keys[members]])
            if own is not None:
                cells = own
            else:
                cells = _cells_in(layer, shapely.union_all(f.metric[members]))
            if len(cells) == 0:
                pt = shapely.point_on_surface(poly)
                cells = h3c.points_to_cells([pt.x], [pt.y], res)
            rows.append(
                {
                    "unit_id": uid,
                    "level": lv.id,
                    "label": lv.label,
                    "first_day": from_day(result.day0 + lo + int(days[0])),
                    "last_day": from_day(result.day0 + lo + int(days[-1])),
                    "days_active": len(days),
                    "cells": h3c.compact(cells),
                    "h3_resolution": res,
                    "geometry": poly,
                }
            )
    out = gpd.GeoDataFrame(pd.DataFrame(rows, columns=AREA_COLUMNS), geometry="geometry", crs=WGS84)
    rank = {lv: result.policy.rank(lv) for lv in result.policy.level_ids}
    out["_r"] = out["level"].map(rank)
    out = out.sort_values(["_r", "unit_id"], ascending=[False, True]).drop(columns="_r")
    return out.reset_index(drop=True)
