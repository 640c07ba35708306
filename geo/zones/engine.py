"""The zone engine: levels per community and day, and zones as of a date, from a rule file.

Everything is computed on grids of (units x days) with numpy and scipy.sparse, from the first
case to a few weeks after the as-of date:

1. each *triggered* level counts its qualifying case locations per unit (community, parent unit,
   location or H3 cell: the extent kind's ``units``) and day, evaluates its condition
   (:mod:`geo.zones.conditions`) and keeps a unit at the level on days d .. d+N-1 after a
   qualifying day d (N = ``lift_after_days``), then hands it to its ``step_down`` level for
   some more days;
2. *derived* levels follow the levels they are drawn around (the extent kind's ``derived``:
   buffers, the rest of a parent unit, every community);
3. a level drawn per community fills a (communities x days) grid; a level drawn as exact
   geometry (circles, H3 cells) keeps a set of features with their own activity;
4. where levels overlap, the highest (first listed) wins (:mod:`geo.zones.assemble`).

Only cases reported on or before the as-of date are used, so an answer for a past date is what
was known then; the grid after the as-of date (no new cases) gives each expected lift date, and
the grid before it is the history. What an extent kind does is looked up in the registry
(:mod:`geo.zones.registry`); the engine names no kind.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from riskmap.geo._cancel import checkpoint
from riskmap.geo.policy import Level, Policy
from riskmap.geo.zones.assemble import assemble
from riskmap.geo.zones.conditions import longest_window, qualifying, qualifying_days
from riskmap.geo.zones.days import to_day, to_days
from riskmap.geo.zones.features import Features
from riskmap.geo.zones.grids import Int1D, last_true, rolling_any, spread, spread_max
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import kind_of
from riskmap.geo.zones.state import Activity, Context, LevelState, ZoneResult


def compute_zones(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    policy: Policy,
    at: dt.date,
    *,
    metrics: pd.DataFrame | None = None,
    with_geometry: bool = True,
    horizon_days: int | None = None,
    day0: int | None = None,
    grid_at_day: int | None = None,
) -> ZoneResult:
    """Zones under ``policy`` as of ``at``.

    ``cases`` has one row per case location with columns case_id, reported (date), type, role,
    lat, lon and ``community`` (index into ``layer``, -1 outside every community).
    ``metrics`` (optional hospital figures) has unit_id, date, admissions_per_100k, beds_pct.
    """
    at_d = to_day(at)
    rep_all = to_days(cases["reported"]) if len(cases) else np.empty(0, dtype=np.int64)
    keep = rep_all <= at_d
    cases = cases.loc[keep].reset_index(drop=True) if len(cases) else cases
    rep_all = rep_all[keep]
    day0, grid_at, ndays = day_axis(
        policy, rep_all, at_d, metrics, horizon_days=horizon_days, day0=day0
    )
    if grid_at_day is not None:  # forced (incremental updates keep the previous axis)
        grid_at = grid_at_day
        ndays = grid_at - day0 + 1 + horizon(policy, horizon_days)
    ctx = Context(layer, cases, rep_all - day0, day0, ndays, grid_at - day0, metrics)

    for lv in policy.levels:
        checkpoint(_grid_bytes(ctx.n, ndays))
        evaluate_level(ctx, lv)
    checkpoint(_grid_bytes(ctx.n, ndays))
    result = assemble(ctx, policy, at, with_geometry)
    result.at_index = ctx.at_i
    return result


def _grid_bytes(n: int, ndays: int) -> int:
    """About what one level adds to memory: a few (units x days) grids and their
    temporaries."""
    return 16 * n * ndays


def longest_lift(policy: Policy) -> int:
    """The most days a case keeps any level of the rule in force (its lift and step-down)."""
    return max(
        lv.lift_after_days + (lv.step_down.after_days if lv.step_down else 0)
        for lv in policy.levels
    )


def spans(policy: Policy) -> tuple[int, int]:
    """(the longest a level is kept after a qualifying day, step-down included; the longest
    look-back window of a condition)."""
    longest = longest_lift(policy)
    return longest, max(longest_window(lv) for lv in policy.levels)


def horizon(policy: Policy, horizon_days: int | None = None) -> int:
    """Grid days after the last day with inputs: long enough for every level to lift."""
    longest, window = spans(policy)
    return (horizon_days if horizon_days is not None else longest + window) + 1


def day_axis(
    policy: Policy,
    rep: Int1D,
    at_d: int,
    metrics: pd.DataFrame | None = None,
    *,
    horizon_days: int | None = None,
    day0: int | None = None,
) -> tuple[int, int, int]:
    """(first day, last day with inputs that can still matter, number of grid days) of the
    grids for cases reported on days ``rep`` (those up to ``at_d``) as of day ``at_d``."""
    rep = rep[rep <= at_d]
    longest, window = spans(policy)
    first = int(min(rep.min(), at_d)) if len(rep) else at_d
    if day0 is None or day0 > first:
        day0 = first
    # long after the last input nothing changes any more: the grid stops there
    inputs = [int(rep.max())] if len(rep) else []
    if metrics is not None and len(metrics):
        inputs.append(int(to_days(metrics["date"]).max()))
    grid_at = at_d
    if inputs:
        grid_at = min(at_d, max(max(inputs), day0) + longest + window + 1)
    return day0, grid_at, grid_at - day0 + 1 + horizon(policy, horizon_days)


def merge(into: LevelState, extra: LevelState, at_i: int) -> None:
    """Add a step-down contribution to a level."""
    into.last = np.maximum(
        np.where(into.grid[:, at_i], into.last, -1), np.where(extra.grid[:, at_i], extra.last, -1)
    )
    into.grid = into.grid | extra.grid
    into.events = into.events | extra.events
    if extra.features is not None:
        parts = [p for p in (into.features, extra.features) if p is not None]
        into.features = Features.concat(parts, into.grid.shape[1])
    into.touch_cache = None
    into.sel_cache = None


def evaluate_level(ctx: Context, lv: Level) -> None:
    """Compute a level into ``ctx.states`` (the levels it is drawn around first), with the
    step-down contributions of the levels above it."""
    if lv.trigger is not None:
        triggered(ctx, lv)
    else:
        ctx.states[lv.id] = kind_of(lv).derived(ctx, lv)
    for extra in ctx.pending.pop(lv.id, []):
        merge(ctx.states[lv.id], extra, ctx.at_i)


def triggered(ctx: Context, lv: Level) -> None:
    """A triggered level: its units' qualifying days, kept for ``lift_after_days`` (then
    handed to the ``step_down`` level), drawn as features or whole communities."""
    assert lv.trigger is not None
    kind = kind_of(lv)
    units = kind.units(ctx, lv, qualifying(ctx, lv.trigger))
    holds, new = qualifying_days(ctx, lv, units)
    ev = holds & new  # a new qualifying case while the condition holds
    q = ev if lv.lift_after_days > 1 else holds  # lift 1: recomputed every day
    n_lift = lv.lift_after_days
    active = rolling_any(q, n_lift)
    if n_lift > 1:
        last = last_true(q, ctx.at_i - n_lift + 1, ctx.at_i)
    else:  # the latest qualifying case still counted by the window
        last = last_true(ev, ctx.at_i - longest_window(lv) + 1, ctx.at_i)
    down = None
    if lv.step_down is not None:
        total = n_lift + lv.step_down.after_days
        down_active = rolling_any(q, total) & ~active
        down_last = last_true(q, ctx.at_i - total + 1, ctx.at_i - n_lift)
        down = (lv.step_down.to, down_active, down_last)
    if lv.geometric:
        ctx.states[lv.id] = ctx.blank(kind.features(ctx, lv, units, Activity(active, q, last)))
        if down is not None:
            to, d_active, d_last = down
            d_act = Activity(d_active, q & d_active, d_last)
            feats = kind.features(ctx, lv, units, d_act, discs=False)
            ctx.add_pending(to, ctx.blank(feats))
        return
    sel = kind.selection(ctx, lv, units)  # units x communities
    grid = spread(sel, active)
    ev = spread(sel, ev & active)
    last_c = spread_max(sel, np.where(active[:, ctx.at_i], last, -1))
    ctx.states[lv.id] = LevelState(grid, ev, last_c)
    if down is not None:
        to, d_active, d_last = down
        dg = spread(sel, d_active)
        dl = spread_max(sel, np.where(d_active[:, ctx.at_i], d_last, -1))
        ctx.add_pending(to, LevelState(dg, np.zeros_like(dg), dl))
