"""Incremental zone updates: a batch of new cases recomputes only what it can affect.

A new case can change the levels of its own community, of the communities within the rule's
buffer distances of it, and of every community of the parent units (subdistrict, district)
those lie in. riskmap recomputes that *affected* set on a sub-layer that also holds every
community able to influence it (the sources within the buffer distances, with their parent
units when those sources are derived levels themselves), forcing the same day axis, and
splices the rows and zones into the previous result; a batch that would need more than a
quarter of the map is recomputed in full. The result equals a
full recomputation (tested on random batches); rules with exact-geometry levels, hospital
figures or cases older than the previous grid fall back to a full recomputation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.policy import BufferExtent, Policy
from geo.zones import CommunityLayer, LevelState, ZoneResult, compute_zones, to_day, to_days

Int1D = NDArray[np.int64]
MAX_SHARE = 0.25  # beyond this share of the map to recompute, recompute everything


def reach_m(policy: Policy) -> float:
    """The largest distance a case can act at through chains of buffers."""
    total = 0.0
    for lv in policy.levels:
        ext = lv.extent
        if isinstance(ext, BufferExtent):
            total += max(ext.distance_m, ext.rural_distance_m or 0.0)
    return total


def supports_incremental(policy: Policy, metrics: pd.DataFrame | None) -> bool:
    """Rules whose levels are all drawn per community, with buffers only around levels drawn
    per community from cases (a buffer around a whole parent unit reaches beyond it)."""
    if metrics is not None and len(metrics):
        return False
    kinds = {lv.id: lv.extent.kind for lv in policy.levels}
    for lv in policy.levels:
        if lv.extent.kind in ("radius", "cell", "grid_disk") or lv.geometric:
            return False
        if lv.extent.kind == "buffer" and any(
            kinds[a] != "community" for a in getattr(lv.extent, "around", ())
        ):
            return False
    return True


def _derived_sources(policy: Policy) -> bool:
    """Whether some level is drawn around a level that is itself derived (then the sources of
    the affected communities need their whole parent units too)."""
    kinds = {lv.id: lv.extent.kind for lv in policy.levels}
    return any(
        kinds[a] in ("buffer", "parent_remainder", "all")
        for lv in policy.levels
        for a in getattr(lv.extent, "around", ())
    )


def _grow(
    layer: CommunityLayer, seed: NDArray[np.bool_], reach: float, parents: bool = True
) -> NDArray[np.bool_]:
    """The seed, the communities within ``reach`` of it and (``parents``) every community
    sharing a parent unit with those."""
    out = seed.copy()
    if reach > 0 and seed.any():
        _, near = layer.metric_tree.query(layer.metric[seed], predicate="dwithin", distance=reach)
        out[near] = True
    for parent in ("subdistrict", "district") if parents else ():
        codes, uniq = layer.parent_codes(parent)
        if len(uniq) == 0:
            continue
        hit = np.zeros(len(uniq), dtype=bool)
        hit[codes[out & (codes >= 0)]] = True
        out |= (codes >= 0) & hit[np.maximum(codes, 0)]
    return out


def update_zones(
    prev: ZoneResult,
    layer: CommunityLayer,
    cases: pd.DataFrame,
    new: pd.DataFrame,
    *,
    metrics: pd.DataFrame | None = None,
    with_geometry: bool = True,
) -> ZoneResult:
    """The zones of ``prev`` (same rule and date) after adding the case locations ``new``.

    ``cases`` holds every case location, the new ones included (columns as for
    :func:`geo.zones.compute_zones`, with ``community``); ``new`` holds the new rows.
    """
    policy, at = prev.policy, prev.at
    full = lambda: compute_zones(  # noqa: E731
        layer, cases, policy, at, metrics=metrics, with_geometry=with_geometry
    )
    if not supports_incremental(policy, metrics) or prev.rank_grid is None:
        return full()
    rep = to_days(new["reported"]) if len(new) else np.empty(0, np.int64)
    at_d = to_day(at)
    if prev.day0 + prev.at_index != at_d and rep.max(initial=at_d) > prev.day0 + prev.at_index:
        return full()  # new cases after the point where the previous grid stopped
    relevant = rep <= at_d
    if not relevant.any():
        return prev
    if rep[relevant].min() < prev.day0:
        return full()
    comm = new["community"].to_numpy()[relevant]
    seed = np.zeros(len(layer), dtype=bool)
    seed[comm[comm >= 0]] = True
    if not seed.any():
        return prev
    district, names = layer.parent_codes("district")
    if (district < 0).any():  # zones of communities without a district are not local
        return full()
    if len(np.unique(district[seed])) > MAX_SHARE * len(names):  # spread over the map
        return full()
    reach = reach_m(policy)
    affected = _grow(layer, seed, reach)
    # what the affected communities depend on: sources within reach (and their parent units
    # when those sources are themselves derived)
    needed = _grow(layer, affected, reach, parents=_derived_sources(policy))
    if needed.mean() > MAX_SHARE:  # a batch spread over most of the map: cheaper in full
        return full()
    idx = np.flatnonzero(needed)
    sub = layer.subset(idx)
    local = np.full(len(layer), -1, dtype=np.int64)
    local[idx] = np.arange(len(idx))
    cc = cases["community"].to_numpy()
    mine = (cc >= 0) & needed[np.maximum(cc, 0)]
    sub_cases = cases.loc[mine].copy()
    sub_cases["community"] = local[cc[mine]]
    res = compute_zones(
        sub,
        sub_cases,
        policy,
        at,
        with_geometry=with_geometry,
        day0=prev.day0,
        grid_at_day=prev.day0 + prev.at_index,
    )
    assert prev.rank_grid is not None and res.rank_grid is not None
    if res.rank_grid.shape[1] != prev.rank_grid.shape[1]:  # a different day axis
        return full()
    return _splice(prev, res, affected, local)


def _splice(
    prev: ZoneResult, res: ZoneResult, affected: NDArray[np.bool_], local: Int1D
) -> ZoneResult:
    rows = np.flatnonzero(affected)
    loc = local[rows]
    assert prev.rank_grid is not None and res.rank_grid is not None
    assert prev.zone_rank_grid is not None and res.zone_rank_grid is not None
    if prev.rank_grid.shape[1] != res.rank_grid.shape[1]:
        raise AssertionError("incremental update on a different day axis")
    levels = prev.levels.copy()
    for col in levels.columns:
        vals = levels[col].to_numpy(dtype=object).copy()
        vals[rows] = res.levels[col].to_numpy(dtype=object)[loc]
        levels[col] = vals
    rank = prev.rank_grid.copy()
    rank[rows] = res.rank_grid[loc]
    zrank = prev.zone_rank_grid.copy()
    zrank[rows] = res.zone_rank_grid[loc]
    states = {}
    for key, st in prev.states.items():
        new_st = res.states[key]
        grid, events, last = st.grid.copy(), st.events.copy(), st.last.copy()
        grid[rows], events[rows], last[rows] = (
            new_st.grid[loc],
            new_st.events[loc],
            new_st.last[loc],
        )
        states[key] = LevelState(grid, events, last)
    affected_ids = set(levels["community_id"].to_numpy()[rows].tolist())
    keep_old = [not (set(ids) & affected_ids) for ids in prev.zones["community_ids"]]
    take_new = [set(ids) <= affected_ids for ids in res.zones["community_ids"]]
    zones = pd.concat([prev.zones[keep_old], res.zones[take_new]], ignore_index=True)
    zones["_rank"] = [prev.policy.rank(lv) for lv in zones["level"]]
    zones = zones.sort_values(["_rank", "zone_id"], ascending=[False, True]).drop(columns="_rank")
    zones = zones.reset_index(drop=True)
    zones = type(prev.zones)(zones, geometry="geometry", crs=prev.zones.crs)
    return ZoneResult(
        prev.policy, prev.at, levels, zones, prev.day0, rank, zrank, states, prev.at_index
    )
