"""The zone engine: levels per community and day, and zones as of a date, from a rule file.

Everything is computed on a (communities x days) grid with numpy and scipy.sparse:

* a *trigger* level counts qualifying case locations per community and day; a community is at
  that level on days d .. d+N-1 after a qualifying case on day d (N = ``lift_after_days``);
* a *buffer* level is active in every community within ``distance_m`` metres (exact distance in a
  local metric projection) of a community active at one of the ``around`` levels;
* a *parent_remainder* level is active in every community of a parent unit (subdistrict or
  district) that has a community active at one of the ``around`` levels;
* where several levels are active, the highest (first listed) wins.

Only cases reported on or before the as-of date are used, so an answer for a past date is what
was known then; with no later cases, the grid after the as-of date gives each community's
expected lift date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geo import cells as h3c
from geo.crs import WGS84, metric_crs_for
from geo.index import PolygonIndex
from geo.policy import BufferExtent, Level, ParentRemainderExtent, Policy

EPOCH = np.datetime64("1970-01-01", "D")

ZONE_COLUMNS = [
    "zone_id",
    "level",
    "label",
    "color",
    "community_ids",
    "community_count",
    "population",
    "start",
    "last_case",
    "expected_lift",
    "cells",
    "geometry",
]


def to_day(d: dt.date | str) -> int:
    """Days since 1970-01-01."""
    if isinstance(d, str):
        d = dt.date.fromisoformat(d)
    return d.toordinal() - _EPOCH_ORDINAL


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def to_days(values: pd.Series | NDArray[np.object_]) -> NDArray[np.int64]:
    """Days since 1970-01-01 of many dates (datetime64 or ``datetime.date`` values)."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[D]")
    return arr.astype("datetime64[D]").astype(np.int64)


def from_day(n: int) -> dt.date:
    return (EPOCH + np.timedelta64(int(n), "D")).astype(object)


@dataclass
class CommunityLayer:
    """Communities prepared once per data version: metric geometries, parents, H3 cover,
    neighbour graphs and a point look-up index.
    """

    frame: gpd.GeoDataFrame
    h3_res: int
    _graphs: dict[float, sparse.csr_matrix] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        f = self.frame
        if f.crs is None or not f.crs.equals(WGS84):
            self.frame = f = f.to_crs(WGS84) if f.crs is not None else f.set_crs(WGS84)
        self.frame = f.reset_index(drop=True)
        self.ids = self.frame["community_id"].astype(str).to_numpy()
        self.geoms = self.frame.geometry.to_numpy()

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def metric(self) -> NDArray[np.object_]:
        crs = metric_crs_for(self.frame)
        return self.frame.geometry.to_crs(crs).to_numpy()

    @cached_property
    def index(self) -> PolygonIndex:
        return PolygonIndex(self.geoms, self.h3_res)

    @cached_property
    def cells(self) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """(owner, cells): centre-containment H3 cover, at least one cell per community."""
        return h3c.community_cells(self.geoms, self.h3_res)

    def parent_codes(self, parent: str) -> tuple[NDArray[np.int64], int]:
        """Group code per community for a parent column (-1 where the parent is unknown)."""
        col = f"{parent}_id"
        if col not in self.frame:
            return np.full(len(self), -1, dtype=np.int64), 0
        vals = self.frame[col]
        codes, uniques = pd.factorize(vals.where(vals.notna() & (vals != ""), None))
        return codes.astype(np.int64), len(uniques)

    def within(self, distance_m: float) -> sparse.csr_matrix:
        """Sparse boolean matrix: communities at a distance of ``distance_m`` or less."""
        key = float(distance_m)
        if key not in self._graphs:
            tree = shapely.STRtree(self.metric)
            a, b = tree.query(self.metric, predicate="dwithin", distance=key)
            n = len(self)
            self._graphs[key] = sparse.csr_matrix(
                (np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)
            )
        return self._graphs[key]

    def parent_units(self, parent: str) -> gpd.GeoDataFrame:
        """Parent units (``subdistrict`` or ``district``) as unions of their communities."""
        key = f"_units_{parent}"
        if key not in self.__dict__:
            codes, k = self.parent_codes(parent)
            col = f"{parent}_id"
            rows = []
            for code in range(k):
                idx = np.flatnonzero(codes == code)
                pop = pd.to_numeric(self.frame["population"].iloc[idx], errors="coerce")
                rows.append(
                    {
                        col: str(self.frame[col].iat[idx[0]]),
                        "community_count": len(idx),
                        "population": int(pop.sum()) if pop.notna().any() else None,
                        "geometry": shapely.union_all(self.geoms[idx]),
                    }
                )
            self.__dict__[key] = gpd.GeoDataFrame(
                rows,
                columns=[col, "community_count", "population", "geometry"],
                geometry="geometry",
                crs=WGS84,
            )
        return self.__dict__[key]

    @property
    def touching(self) -> sparse.csr_matrix:
        return self.within(0.01)

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        """Index of the community covering each point, -1 outside every community."""
        return self.index.lookup(lon, lat).index


@dataclass
class ZoneResult:
    """Zones and per-community levels under one policy as of one date."""

    policy: Policy
    at: dt.date
    levels: pd.DataFrame  # community_id, level, since, expected_lift, last_case, zone_id
    zones: gpd.GeoDataFrame
    day0: int = 0
    grid: NDArray[np.int8] | None = field(default=None, repr=False)  # rank per community x day

    def level_of(self, community_index: NDArray[np.int64]) -> NDArray[np.object_]:
        lv = self.levels["level"].to_numpy()
        out = np.full(len(community_index), "none", dtype=object)
        ok = community_index >= 0
        out[ok] = lv[community_index[ok]]
        return out


def _rolling_any(events: NDArray[np.int32], n: int) -> NDArray[np.bool_]:
    """active[:, t] = any event in [t-n+1, t]."""
    cs = np.cumsum(events, axis=1, dtype=np.int64)
    shifted = np.zeros_like(cs)
    if n < cs.shape[1]:
        shifted[:, n:] = cs[:, :-n]
    return (cs - shifted) > 0


def _last_event_at(events: NDArray[np.int32], at_i: int, n: int) -> NDArray[np.int64]:
    """Grid index of the latest event in [at_i-n+1, at_i] per row, -1 if none."""
    lo = max(0, at_i - n + 1)
    win = events[:, lo : at_i + 1] > 0
    if win.shape[1] == 0:
        return np.full(events.shape[0], -1, dtype=np.int64)
    rev = win[:, ::-1]
    has = rev.any(axis=1)
    idx = at_i - rev.argmax(axis=1)
    return np.where(has, idx, -1).astype(np.int64)


def compute_zones(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    policy: Policy,
    at: dt.date,
    *,
    with_geometry: bool = True,
) -> ZoneResult:
    """Zones under ``policy`` as of ``at``.

    ``cases`` has one row per case location with columns case_id, reported (date), type, role
    and ``community`` (index into ``layer``, -1 outside every community).
    """
    n = len(layer)
    at_d = to_day(at)
    rep = to_days(cases["reported"]) if len(cases) else np.empty(0, dtype=np.int64)
    keep = rep <= at_d
    horizon = max((lv.lift_after_days or 0) for lv in policy.levels) + 1
    day0 = int(min(rep[keep].min(), at_d)) if keep.any() else at_d
    ndays = at_d - day0 + 1 + horizon
    at_i = at_d - day0

    active: dict[str, NDArray[np.bool_]] = {}
    last_ev: dict[str, NDArray[np.int64]] = {}  # grid index of the sustaining case at `at`
    for lv in policy.levels:
        active[lv.id], last_ev[lv.id] = _level_activity(
            lv, layer, cases, rep, keep, day0, ndays, at_i, active, last_ev
        )

    # precedence: the highest active level wins
    nlev = len(policy.levels)
    grid = np.zeros((n, ndays), dtype=np.int8)
    for k, lv in enumerate(reversed(policy.levels), start=1):
        grid[active[lv.id]] = k
    rank_at = grid[:, at_i] if ndays else np.zeros(n, dtype=np.int8)

    # since: first day of the current run; expected lift: first later day at another level
    changed_before = grid[:, : at_i + 1] != rank_at[:, None]
    rev = changed_before[:, ::-1]
    run_start = np.where(rev.any(axis=1), at_i + 1 - rev.argmax(axis=1), 0)
    changed_after = grid[:, at_i + 1 :] != rank_at[:, None]
    has_end = changed_after.any(axis=1)
    run_end = np.where(has_end, at_i + 1 + changed_after.argmax(axis=1), -1)

    ids_by_rank = ["none"] + [lv.id for lv in reversed(policy.levels)]
    level_names = np.array(ids_by_rank, dtype=object)[rank_at]
    last_case = np.full(n, -1, dtype=np.int64)
    for k, lv in enumerate(reversed(policy.levels), start=1):
        m = rank_at == k
        last_case[m] = last_ev[lv.id][m]

    def dates(idx: NDArray[np.int64], mask: NDArray[np.bool_]) -> list[dt.date | None]:
        return [from_day(day0 + int(i)) if ok else None for i, ok in zip(idx, mask, strict=True)]

    in_zone = rank_at > 0
    levels = pd.DataFrame(
        {
            "community_id": layer.ids,
            "level": level_names,
            "since": dates(run_start, in_zone),
            "expected_lift": dates(run_end, in_zone & has_end),
            "last_case": dates(last_case, in_zone & (last_case >= 0)),
        }
    )
    zone_of = _group_zones(layer, policy, rank_at, nlev)
    levels["zone_id"] = zone_of
    zones = _build_zones(layer, policy, levels, with_geometry)
    return ZoneResult(policy, at, levels, zones, day0=day0, grid=grid)


def _level_activity(
    lv: Level,
    layer: CommunityLayer,
    cases: pd.DataFrame,
    rep: NDArray[np.int64],
    keep: NDArray[np.bool_],
    day0: int,
    ndays: int,
    at_i: int,
    active: dict[str, NDArray[np.bool_]],
    last_ev: dict[str, NDArray[np.int64]],
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    n = len(layer)
    ext = lv.extent
    if ext.kind == "community":
        assert lv.trigger is not None and lv.lift_after_days is not None
        tr = lv.trigger
        m = keep.copy()
        if len(cases):
            m &= cases["type"].isin(tr.case_types).to_numpy()
            m &= cases["role"].isin(tr.roles).to_numpy()
            m &= cases["community"].to_numpy() >= 0
        q = pd.DataFrame(
            {
                "c": cases["community"].to_numpy()[m] if len(cases) else np.empty(0, np.int64),
                "t": rep[m] - day0,
                "case": cases["case_id"].to_numpy()[m] if len(cases) else np.empty(0, object),
            }
        ).drop_duplicates()  # a case counts once per community and day
        counts = np.zeros((n, ndays), dtype=np.int32)
        np.add.at(counts, (q["c"].to_numpy(np.int64), q["t"].to_numpy(np.int64)), 1)
        events = counts
        if tr.min_cases > 1:
            window = lv.lift_after_days
            cs = np.cumsum(counts, axis=1)
            prev = np.zeros_like(cs)
            prev[:, window:] = cs[:, :-window]
            events = ((counts > 0) & ((cs - prev) >= tr.min_cases)).astype(np.int32)
        return _rolling_any(events, lv.lift_after_days), _last_event_at(
            events, at_i, lv.lift_after_days
        )
    if isinstance(ext, BufferExtent):
        src = np.zeros((n, ndays), dtype=bool)
        src_last = np.full(n, -1, dtype=np.int64)
        for a in ext.around:
            src |= active[a]
            src_last = np.maximum(src_last, np.where(active[a][:, at_i], last_ev[a], -1))
        g = layer.within(ext.distance_m)
        act = (g @ src.astype(np.int32)) > 0
        # the latest sustaining case among the neighbours active at `at`
        rows, cols = g.nonzero()
        last = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last, rows, src_last[cols])
        return np.asarray(act), last
    if isinstance(ext, ParentRemainderExtent):
        codes, k = layer.parent_codes(ext.parent)
        src = np.zeros((n, ndays), dtype=bool)
        src_last = np.full(n, -1, dtype=np.int64)
        for a in ext.around:
            src |= active[a]
            src_last = np.maximum(src_last, np.where(active[a][:, at_i], last_ev[a], -1))
        ok = codes >= 0
        par = np.zeros((k, ndays), dtype=bool)
        np.logical_or.at(par, codes[ok], src[ok])
        par_last = np.full(k, -1, dtype=np.int64)
        np.maximum.at(par_last, codes[ok], src_last[ok])
        act = np.zeros((n, ndays), dtype=bool)
        act[ok] = par[codes[ok]]
        last = np.full(n, -1, dtype=np.int64)
        last[ok] = par_last[codes[ok]]
        return act, last
    raise AssertionError(f"unknown extent {ext!r}")


def _group_zones(
    layer: CommunityLayer, policy: Policy, rank_at: NDArray[np.int8], nlev: int
) -> NDArray[np.object_]:
    """Zone id per community (None outside zones)."""
    n = len(layer)
    zone = np.full(n, None, dtype=object)
    district, _ = layer.parent_codes("district")
    for k, lv in enumerate(reversed(policy.levels), start=1):
        members = np.flatnonzero(rank_at == k)
        if len(members) == 0:
            continue
        if lv.grouping == "community":
            labels = np.arange(len(members))
        elif lv.grouping == "parent":
            parent = getattr(lv.extent, "parent", "district")
            codes, _ = layer.parent_codes(parent)
            col = f"{parent}_id"
            pid = layer.frame[col] if col in layer.frame else layer.frame["community_id"]
            pid = pid.to_numpy()[members]
            known = codes[members] >= 0
            # one zone per parent unit; a community with an unknown parent is a zone of its own
            zone[members[known]] = [f"{lv.id}-{p}" for p in pid[known]]
            zone[members[~known]] = [f"{lv.id}-{c}" for c in layer.ids[members[~known]]]
            continue
        else:  # connected communities of the same level in the same district
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


def _build_zones(
    layer: CommunityLayer, policy: Policy, levels: pd.DataFrame, with_geometry: bool
) -> gpd.GeoDataFrame:
    inz = levels[levels["zone_id"].notna()]
    if len(inz) == 0:
        return gpd.GeoDataFrame(
            {c: [] for c in ZONE_COLUMNS if c != "geometry"}, geometry=[], crs=WGS84
        )
    owner, cells = layer.cells
    pop = (
        pd.to_numeric(layer.frame["population"], errors="coerce")
        if "population" in layer.frame
        else pd.Series(np.nan, index=layer.frame.index)
    )
    rows = []
    for zid, grp in inz.groupby("zone_id", sort=True):
        idx = grp.index.to_numpy()
        lv = policy.level(grp["level"].iloc[0])
        zone_cells = cells[np.isin(owner, idx)]
        p = pop.iloc[idx]
        rows.append(
            {
                "zone_id": zid,
                "level": lv.id,
                "label": lv.label,
                "color": lv.color,
                "community_ids": sorted(grp["community_id"].tolist()),
                "community_count": len(idx),
                "population": int(p.sum()) if p.notna().any() else None,
                "start": min(grp["since"]),
                "last_case": max((d for d in grp["last_case"] if d is not None), default=None),
                "expected_lift": max((d for d in grp["expected_lift"] if d), default=None),
                "cells": h3c.compact(zone_cells),
                "geometry": shapely.union_all(layer.geoms[idx]) if with_geometry else None,
            }
        )
    z = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    z["_rank"] = [policy.rank(lv) for lv in z["level"]]
    return z.sort_values(["_rank", "zone_id"], ascending=[False, True]).drop(columns="_rank")
