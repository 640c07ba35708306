"""Zone history: what changed, day by day, and the levels a place had over a period.

Both come from one zone computation as of the last day of the period: column t of its grids
depends only on cases reported on or before day t, so the grids up to the as-of date are the
history as it was known each day.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from riskmap.geo._cancel import checkpoint
from riskmap.geo.zones import CommunityLayer, ZoneResult, area_id, from_day, kind_of

EVENT_KINDS = ("created", "escalated", "stepped_down", "extended", "lifted")
EVENT_COLUMNS = ["date", "kind", "unit_type", "unit_id", "level_from", "level_to"]

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "area_id",
    "base_rank",
    "intervals",
    "point_ranks",
    "zone_events",
]


def _events_from_ranks(
    ranks: NDArray[np.int8], sustained: NDArray[np.bool_], lo: int, hi: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.str_]]:
    """(unit, day, kind) of the changes in ``ranks`` (units x days) on days lo..hi."""
    lo = max(lo, 0)
    hi = min(hi, ranks.shape[1] - 1)
    if hi < lo:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0, dtype="<U12")
    cur = ranks[:, lo : hi + 1]
    prev = np.zeros_like(cur)
    prev[:, 1:] = cur[:, :-1]
    if lo > 0:
        prev[:, 0] = ranks[:, lo - 1]
    kind = np.full(cur.shape, "", dtype="<U12")
    kind[(prev == 0) & (cur > 0)] = "created"
    kind[(prev > 0) & (cur > prev)] = "escalated"
    kind[(prev > 0) & (cur > 0) & (cur < prev)] = "stepped_down"
    kind[(prev > 0) & (cur == 0)] = "lifted"
    kind[(prev > 0) & (cur == prev) & sustained[:, lo : hi + 1]] = "extended"
    u, t = np.nonzero(kind != "")
    return u.astype(np.int64), (t + lo).astype(np.int64), kind[u, t]


def zone_events(
    result: ZoneResult, layer: CommunityLayer, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Events on days ``start`` .. ``end`` (at most the result's as-of date).

    Communities report the level shown for them (the highest zone on any part of them);
    exact-geometry areas (circles, building cells) report their own level changes.
    """
    assert result.rank_grid is not None
    policy = result.policy
    ids_by_rank = np.array(policy.ids_by_rank, dtype=object)
    lo = (start - from_day(result.day0)).days
    hi = min((end - from_day(result.day0)).days, result.at_index)
    ranks = result.rank_grid
    # a qualifying case sustaining the level shown
    sustained = np.zeros(ranks.shape, dtype=bool)
    for k, lv in enumerate(policy.levels_low_first, start=1):
        checkpoint()
        st = result.states[lv.id]
        ev = st.events.copy()
        if st.features is not None and len(st.features):
            ev |= st.feature_hits(layer)
        sustained |= (ranks == k) & ev
    frames = []
    u, t, kind = _events_from_ranks(ranks, sustained, lo, hi)
    frames.append(
        pd.DataFrame(
            {
                "day": t,
                "kind": kind,
                "unit_type": "community",
                "unit_id": layer.ids[u],
                "level_from": ids_by_rank[np.where(t > 0, ranks[u, np.maximum(t - 1, 0)], 0)],
                "level_to": ids_by_rank[ranks[u, t]],
            }
        )
    )
    for k, lv in enumerate(policy.levels_low_first, start=1):
        checkpoint()
        f = result.states[lv.id].features
        if f is None or len(f) == 0:
            continue
        fr = np.where(f.active, k, 0).astype(np.int8)
        u, t, kind = _events_from_ranks(fr, f.events & f.active, lo, hi)
        prev = np.where(t > 0, fr[u, np.maximum(t - 1, 0)], 0)
        frames.append(
            pd.DataFrame(
                {
                    "day": t,
                    "kind": kind,
                    "unit_type": "area",
                    "unit_id": [area_id(lv.id, key) for key in f.keys[u]],
                    "level_from": ids_by_rank[prev],
                    "level_to": ids_by_rank[fr[u, t]],
                }
            )
        )
    ev = pd.concat(frames, ignore_index=True)
    ev["date"] = [from_day(result.day0 + int(d)) for d in ev["day"]]
    order = {k: i for i, k in enumerate(EVENT_KINDS)}
    ev["_k"] = ev["kind"].map(order)
    ev = ev.sort_values(["day", "_k", "unit_type", "unit_id"]).reset_index(drop=True)
    return ev[EVENT_COLUMNS]


def point_ranks(
    result: ZoneResult, layer: CommunityLayer, lon: float, lat: float
) -> NDArray[np.int8]:
    """Rank of the highest zone covering the point on every day of the result's grid."""
    assert result.zone_rank_grid is not None
    ndays = result.zone_rank_grid.shape[1]
    out = np.zeros(ndays, dtype=np.int8)
    c = int(layer.locate(np.array([lon]), np.array([lat]))[0])
    if c >= 0:
        out = result.zone_rank_grid[c].copy()
    x, y = layer.to_metric.transform(lon, lat)
    for k, lv in enumerate(result.policy.levels_low_first, start=1):
        f = result.states[lv.id].features
        if f is None or len(f) == 0:
            continue
        hit = f.covering(x, y)
        if len(hit):
            on = f.active[hit].any(axis=0)
            out = np.where(on & (out < k), k, out).astype(np.int8)
    return out


def base_rank(result: ZoneResult, in_community: bool) -> int:
    """The rank a place has before any case: that of the highest level drawn over every
    community (an extent kind that ``covers_all``, e.g. ``all``), for places in a community."""
    if not in_community:
        return 0
    policy = result.policy
    ranks = [policy.rank(lv.id) for lv in policy.levels if kind_of(lv).covers_all]
    return max(ranks, default=0)


def intervals(
    result: ZoneResult,
    ranks: NDArray[np.int8],
    start: dt.date,
    end: dt.date,
    before: int = 0,
) -> list[dict[str, object]]:
    """Runs of one level between ``start`` and ``end`` (inclusive), as {level, from, to};
    ``before`` is the rank before the grid starts (see :func:`base_rank`)."""
    policy = result.policy
    ids_by_rank = policy.ids_by_rank
    d0 = from_day(result.day0)
    last_known = (result.at - d0).days  # the grid may stop earlier: nothing changes after it
    out: list[dict[str, object]] = []
    day = start
    while day <= end:
        i = (day - d0).days
        if 0 <= i <= result.at_index:
            r = int(ranks[i])
        elif result.at_index < i <= last_known:
            r = int(ranks[result.at_index])
        elif i < 0:
            r = before
        else:
            r = 0
        level = ids_by_rank[r]
        if out and out[-1]["level"] == level:
            out[-1]["to"] = day
        else:
            out.append({"level": level, "from": day, "to": day})
        day += dt.timedelta(days=1)
    return out
