"""Incremental zone updates: a batch of new cases recomputes only the rows it can change.

A new case changes the rows of the units it falls in (its community, or every community of its
parent unit for levels drawn per parent unit). riskmap recomputes the triggered levels of those
communities alone (on a sub-layer, on the previous day axis) and patches their rows into the
previous (communities x days) grids; derived levels follow row by row: a buffer recomputes the
communities within its distance of a changed row (through the sparse selection matrix), a
parent remainder recomputes the parent units holding a changed row. Zones are regrouped on the
patched grids; a zone with the same communities as before keeps its geometry and cells, a zone
untouched by the batch is kept as it was. The result equals a full recomputation (tested on
random batches).

Rules with exact-geometry levels, buffers around levels that are not drawn per community from
cases, step-downs into derived levels, hospital figures, and batches that move the day axis
(cases before the first day, or after the day where the previous grid stopped) fall back to a
full recomputation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from riskmap.geo._cancel import checkpoint
from riskmap.geo.policy import Policy
from riskmap.geo.zones import (
    ZONE_COLUMNS,
    CommunityLayer,
    Context,
    LevelState,
    Patching,
    ZoneResult,
    community_zones,
    compute_zones,
    dates_or_none,
    day_axis,
    evaluate_level,
    group_zones,
    kind_of,
    run_bounds,
    sort_zones,
    to_day,
    to_days,
)

Int1D = NDArray[np.int64]
Bool1D = NDArray[np.bool_]


def supports_incremental(policy: Policy, metrics: pd.DataFrame | None) -> bool:
    """Rules whose levels all have an incremental update (their extent kind says so: levels
    drawn per community, buffers only around levels drawn per community from cases), and
    step-downs only into triggered levels."""
    if metrics is not None and len(metrics):
        return False
    triggered = {lv.id for lv in policy.levels if lv.trigger is not None}
    for lv in policy.levels:
        if lv.geometric or not kind_of(lv).incremental(policy, lv):
            return False
        if lv.step_down is not None and lv.step_down.to not in triggered:
            return False
    return True


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
    if (
        not supports_incremental(policy, metrics)
        or prev.rank_grid is None
        or prev.zone_rank_grid is None
        or any(lv.id not in prev.states for lv in policy.levels)
    ):
        return full()
    at_d = to_day(at)
    rep = to_days(new["reported"]) if len(new) else np.empty(0, np.int64)
    relevant = rep <= at_d
    if not relevant.any():
        return prev
    # the day axis of a full recomputation must be the previous one
    rep_all = to_days(cases["reported"]) if len(cases) else np.empty(0, np.int64)
    axis = day_axis(policy, rep_all, at_d)
    if axis != (prev.day0, prev.day0 + prev.at_index, prev.rank_grid.shape[1]):
        return full()
    comm = new["community"].to_numpy()[relevant]
    seed = np.zeros(len(layer), dtype=bool)
    seed[comm[comm >= 0]] = True
    if not seed.any():  # outside every community: no level counts them
        return prev
    return _patch(prev, layer, cases, rep_all, seed, with_geometry)


def _unit_rows(layer: CommunityLayer, policy: Policy, seed: Bool1D) -> Bool1D:
    """The communities whose triggered rows a batch in the ``seed`` communities can change:
    the seed, and every community of its parent units for levels drawn per parent unit."""
    rows = seed.copy()
    for lv in policy.levels:
        if lv.trigger is not None:
            rows |= kind_of(lv).unit_rows(layer, lv, seed)
    return rows


def _patch(
    prev: ZoneResult,
    layer: CommunityLayer,
    cases: pd.DataFrame,
    rep_all: Int1D,
    seed: Bool1D,
    with_geometry: bool,
) -> ZoneResult:
    policy, at = prev.policy, prev.at
    assert prev.rank_grid is not None and prev.zone_rank_grid is not None
    n, ndays, at_i, day0 = len(layer), prev.rank_grid.shape[1], prev.at_index, prev.day0
    at_d = to_day(at)
    states = {
        k: LevelState(st.grid.copy(), st.events.copy(), st.last.copy())
        for k, st in prev.states.items()
    }
    dirty = {lv.id: np.zeros(n, dtype=bool) for lv in policy.levels}

    # triggered levels: the rows of the units with new cases, from their cases alone
    rows = _unit_rows(layer, policy, seed)
    idx = np.flatnonzero(rows)
    sub = layer.subset(idx)
    local = np.full(n, -1, dtype=np.int64)
    local[idx] = np.arange(len(idx))
    cc = cases["community"].to_numpy()
    mine = (cc >= 0) & rows[np.maximum(cc, 0)] & (rep_all <= at_d)
    sub_cases = cases.loc[mine].reset_index(drop=True)
    sub_cases["community"] = local[cc[mine]]
    ctx = Context(sub, sub_cases, rep_all[mine] - day0, day0, ndays, at_i, None)
    for lv in policy.levels:
        checkpoint()
        if lv.trigger is not None:
            evaluate_level(ctx, lv)
            _put(states[lv.id], dirty[lv.id], idx, ctx.states[lv.id])

    # derived levels, row by row (the extent kind's patch)
    for lv in policy.levels:
        checkpoint()
        if lv.trigger is not None:
            continue
        src_dirty = np.zeros(n, dtype=bool)
        for a in getattr(lv.extent, "around", ()):
            src_dirty |= dirty[a]
        if not src_dirty.any():
            continue
        got = kind_of(lv).patch(Patching(layer, states, at_i), lv, src_dirty)
        if got is not None:
            _put(states[lv.id], dirty[lv.id], *got)

    return _assemble_patch(prev, layer, states, dirty, with_geometry)


def _put(st: LevelState, dirty: Bool1D, idx: Int1D, got: LevelState) -> None:
    """Write the rows ``idx`` of a level and mark those that changed."""
    diff = (
        (st.grid[idx] != got.grid).any(axis=1)
        | (st.events[idx] != got.events).any(axis=1)
        | (st.last[idx] != got.last)
    )
    st.grid[idx], st.events[idx], st.last[idx] = got.grid, got.events, got.last
    dirty[idx[diff]] = True


def _assemble_patch(
    prev: ZoneResult,
    layer: CommunityLayer,
    states: dict[str, LevelState],
    dirty: dict[str, Bool1D],
    with_geometry: bool,
) -> ZoneResult:
    """Ranks, levels and zones of the patched grids, reusing the previous result elsewhere
    (levels drawn per community: the level shown is the zone's level)."""
    policy = prev.policy
    assert prev.rank_grid is not None and prev.zone_rank_grid is not None
    n, ndays, at_i, day0 = len(layer), prev.rank_grid.shape[1], prev.at_index, prev.day0
    low_first = policy.levels_low_first
    changed = np.zeros(n, dtype=bool)
    for d in dirty.values():
        changed |= d
    rows = np.flatnonzero(changed)
    zr = np.zeros((len(rows), ndays), dtype=np.int8)
    for k, lv in enumerate(low_first, start=1):
        zr[states[lv.id].grid[rows]] = k
    zone_rank = prev.zone_rank_grid.copy()
    zone_rank[rows] = zr
    rank = prev.rank_grid.copy()
    rank[rows] = zr
    zr_at = zone_rank[:, at_i]

    # per-community columns of the changed rows
    ids_by_rank = np.array(policy.ids_by_rank, dtype=object)
    start, end = run_bounds(zr, at_i)
    last = np.full(len(rows), -1, dtype=np.int64)
    r_at = zr[:, at_i]
    for k, lv in enumerate(low_first, start=1):
        m = r_at == k
        st = states[lv.id]
        last[m] = np.where(st.grid[rows, at_i], st.last[rows], -1)[m]
    in_zone = r_at > 0
    zone_of = group_zones(layer, policy, zr_at)
    levels = prev.levels.copy()
    for col, vals in (
        ("level", ids_by_rank[r_at]),
        ("since", dates_or_none(day0, start, in_zone)),
        ("expected_lift", dates_or_none(day0, end, in_zone & (end >= 0))),
        ("last_case", dates_or_none(day0, last, in_zone & (last >= 0))),
    ):
        arr = levels[col].to_numpy(dtype=object).copy()
        arr[rows] = vals
        levels[col] = arr
    old_zone = levels["zone_id"].to_numpy(dtype=object)
    levels["zone_id"] = zone_of

    # zones: those holding a changed row or a community that moved, recomputed
    moved = changed | (old_zone != zone_of)
    redo = {z for z in zone_of[moved] if z is not None}
    redo |= {z for z in old_zone[moved] if z is not None}
    members = pd.Series(zone_of, dtype=object).isin(redo).to_numpy()
    idx = np.flatnonzero(members)
    zr_sub = np.where(members, zr_at, 0).astype(np.int8)
    zstart = np.zeros(n, dtype=np.int64)
    zend = np.zeros(n, dtype=np.int64)
    zlast = np.full(n, -1, dtype=np.int64)
    if len(idx):
        zstart[idx], zend[idx] = run_bounds(zone_rank[idx], at_i)
        for k, lv in enumerate(low_first, start=1):
            m = idx[zr_at[idx] == k]
            st = states[lv.id]
            zlast[m] = np.where(st.grid[m, at_i], st.last[m], -1)
    old_zones = prev.zones
    known = {
        str(z): (list(c), g, cl)
        for z, c, g, cl in zip(
            old_zones["zone_id"],
            old_zones["community_ids"],
            old_zones.geometry,
            old_zones["cells"],
            strict=True,
        )
        if z in redo
    }
    ctx = Context(layer, pd.DataFrame(), np.empty(0, np.int64), day0, ndays, at_i, None)
    fresh = community_zones(
        layer, policy, ctx, zone_of, zr_sub, zstart, zend, zlast, with_geometry, known
    )
    keep = ~old_zones["zone_id"].isin(redo).to_numpy()
    zones = pd.concat([old_zones.loc[keep], fresh], ignore_index=True)[ZONE_COLUMNS]
    if len(zones):
        zones = sort_zones(zones, policy)
    zones = type(old_zones)(zones, geometry="geometry", crs=old_zones.crs)
    return ZoneResult(policy, prev.at, levels, zones, day0, rank, zone_rank, states, at_i)
