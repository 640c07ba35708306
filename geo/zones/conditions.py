"""Triggers: which case locations qualify for a level, and on which days a unit qualifies.

The tests of a condition (``cases``, ``locations``, ``rate_per_100k``, ``cumulative``,
``cluster``, ``admissions_per_100k``, ``beds_pct``) are one table, :data:`CONDITIONS`: a test
takes the per-unit statistics (:class:`Stats`, each computed when first asked for) and the value
given in the rule file, and returns a (units x days) grid of the days it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo import cells as h3c
from riskmap.geo.policy import Cluster, Condition, Level, Trigger
from riskmap.geo.zones.days import to_days
from riskmap.geo.zones.grids import Bool2D, Int1D, in_range, spread
from riskmap.geo.zones.registry import kind_of
from riskmap.geo.zones.state import Context, Units


def qualifying(ctx: Context, tr: Trigger) -> NDArray[np.bool_]:
    """The case locations of the trigger's case types and roles."""
    c = ctx.cases
    if len(c) == 0:
        return np.zeros(0, dtype=bool)
    return (c["type"].isin(tr.case_types) & c["role"].isin(tr.roles)).to_numpy()


class Stats:
    """Per-unit and per-day statistics of a level's qualifying case locations."""

    def __init__(self, ctx: Context, lv: Level, units: Units) -> None:
        assert lv.trigger is not None
        self.ctx, self.lv, self.units = ctx, lv, units
        self.window = lv.trigger.window_days
        self.day = ctx.rep[units.rows]
        self.case_ids = ctx.case_codes[units.rows]
        self._metrics: dict[str, NDArray[np.float64]] = {}

    @cached_property
    def new(self) -> NDArray[np.int32]:
        """Distinct qualifying cases reported on the day."""
        u = self.units
        return distinct_in_window(u.of_row, self.day, self.case_ids, u.count, 1, self.ctx.ndays)

    @cached_property
    def cases(self) -> NDArray[np.int32]:
        """Distinct qualifying cases in the window."""
        if self.window == 1:
            return self.new
        u = self.units
        return distinct_in_window(
            u.of_row, self.day, self.case_ids, u.count, self.window, self.ctx.ndays
        )

    @cached_property
    def locations(self) -> NDArray[np.float64]:
        """Distinct qualifying locations (res-12 cells) in the window."""
        c, u = self.ctx.cases, self.units
        cells = h3c.points_to_cells(c["lon"].to_numpy()[u.rows], c["lat"].to_numpy()[u.rows], 12)
        return distinct_in_window(
            u.of_row, self.day, cells, u.count, self.window, self.ctx.ndays
        ).astype(np.float64)

    @cached_property
    def rate_per_100k(self) -> NDArray[np.float64]:
        """Cases in the window per 100,000 population of the unit (NaN where unknown)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            pop = self.units.population[:, None]
            return np.where(pop > 0, self.cases * 1e5 / pop, np.nan)

    @cached_property
    def cumulative(self) -> NDArray[np.float64]:
        """Qualifying cases reported up to the day."""
        u = self.units
        first = first_seen(u.of_row, self.day, self.case_ids, u.count, self.ctx.ndays)
        return np.cumsum(first, axis=1).astype(np.float64)

    def metric(self, column: str) -> NDArray[np.float64]:
        """A hospital figure per unit and day (see :func:`metric_grid`)."""
        if column not in self._metrics:
            self._metrics[column] = metric_grid(self.ctx, self.units.ids, column)
        return self._metrics[column]


ConditionTest = Callable[[Stats, Any], Bool2D]

# one test per field of :class:`geo.policy.Condition` (integer counts compare exactly)
CONDITIONS: dict[str, ConditionTest] = {
    "cases": lambda s, r: in_range(s.cases, r),
    "locations": lambda s, r: in_range(s.locations, r),
    "rate_per_100k": lambda s, r: in_range(s.rate_per_100k, r),
    "cumulative": lambda s, r: in_range(s.cumulative, r),
    "cluster": lambda s, c: cluster(s, c),
    "admissions_per_100k": lambda s, r: in_range(s.metric("admissions_per_100k"), r),
    "beds_pct": lambda s, r: in_range(s.metric("beds_pct"), r),
}
_UNTESTED = set(Condition.model_fields) - set(CONDITIONS)
if _UNTESTED:
    raise RuntimeError(f"conditions without a test in CONDITIONS: {sorted(_UNTESTED)}")


def qualifying_days(ctx: Context, lv: Level, units: Units) -> tuple[Bool2D, Bool2D]:
    """(q, new): the condition holds on the day / a qualifying case was reported that day."""
    assert lv.trigger is not None
    stats = Stats(ctx, lv, units)
    holds = np.zeros((units.count, ctx.ndays), dtype=bool)
    for cond in lv.trigger.any_of:
        ok = np.ones((units.count, ctx.ndays), dtype=bool)
        for name, test in CONDITIONS.items():
            value = getattr(cond, name)
            if value is not None:
                ok &= test(stats, value)
        holds |= ok
    return holds, stats.new > 0


def distinct_in_window(
    unit: Int1D, day: Int1D, ident: NDArray[np.generic], count: int, w: int, ndays: int
) -> NDArray[np.int32]:
    """Distinct ``ident`` per unit seen in the window [t-w+1, t] (a case with places on
    several days counts once).

    Each (unit, ident) pair is counted on the union of the intervals [t, t+w-1] of its days:
    +1 where such an interval starts and -1 after it ends, then a running sum per unit (no
    (pairs x days) grid)."""
    out_shape = (count, ndays)
    if len(unit) == 0 or count == 0 or ndays == 0:
        return np.zeros(out_shape, dtype=np.int32)
    c = pd.factorize(np.asarray(ident))[0].astype(np.int64)
    n_id = int(c.max()) + 1
    # one sortable key per (unit, ident, day), distinct
    key = h3c.unique((np.asarray(unit, np.int64) * n_id + c) * ndays + np.asarray(day, np.int64))
    pair, t = np.divmod(key, ndays)
    u = pair // n_id
    out = np.zeros((count, ndays + 1), dtype=np.int32)
    flat = out.reshape(-1)
    width = ndays + 1
    if w == 1:  # each distinct (unit, ident, day) counts on its day
        np.add.at(flat, u * width + t, 1)
        return out[:, :ndays]
    end = np.minimum(t + w, ndays)
    start = t.copy()
    # intervals of one pair are sorted and of equal width: the previous one ends the latest
    same_pair = pair[1:] == pair[:-1]
    start[1:] = np.where(same_pair, np.maximum(t[1:], end[:-1]), t[1:])
    ok = start < end
    np.add.at(flat, u[ok] * width + start[ok], 1)
    np.add.at(flat, u[ok] * width + end[ok], -1)
    np.cumsum(out, axis=1, out=out)
    return out[:, :ndays]


def first_seen(
    unit: Int1D, day: Int1D, ident: NDArray[np.generic], count: int, ndays: int
) -> NDArray[np.int64]:
    """Per unit and day, the ``ident`` seen for the first time (cumulative counts)."""
    first = pd.DataFrame({"u": unit, "c": ident, "t": day}).groupby(["u", "c"])["t"].min()
    out = np.zeros((count, ndays), dtype=np.int64)
    if len(first):
        u = first.index.get_level_values("u").to_numpy(np.int64)
        np.add.at(out, (u, first.to_numpy(np.int64)), 1)
    return out


def cluster(s: Stats, cond: Cluster) -> Bool2D:
    """Some community of the unit has >= min_cases qualifying cases within the window."""
    ctx, lv, units = s.ctx, s.lv, s.units
    layer, c = ctx.layer, ctx.cases
    comm = c["community"].to_numpy()[units.rows]
    ok = comm >= 0
    in_window = distinct_in_window(
        comm[ok],
        ctx.rep[units.rows][ok],
        ctx.case_codes[units.rows][ok],
        len(layer),
        cond.window_days,
        ctx.ndays,
    )
    hot = in_window >= cond.min_cases
    # community -> unit
    sel = kind_of(lv).cluster_members(layer, lv)
    if sel is None:
        pairs = pd.DataFrame({"c": comm[ok], "u": units.of_row[ok]}).drop_duplicates()
        sel = sparse.csr_matrix(
            (np.ones(len(pairs), np.int8), (pairs["c"].to_numpy(), pairs["u"].to_numpy())),
            shape=(len(layer), units.count),
        )
    return spread(sel, hot)


def metric_grid(ctx: Context, ids: NDArray[np.object_], column: str) -> NDArray[np.float64]:
    """Hospital figure per unit and day: the latest figure dated on or before the day."""
    out = np.full((len(ids), ctx.ndays), np.nan)
    m = ctx.metrics
    if m is None or len(m) == 0 or column not in m:
        return out
    pos = {str(k): i for i, k in enumerate(ids)}
    for uid, grp in m.dropna(subset=[column]).groupby("unit_id"):
        i = pos.get(str(uid))
        if i is None:
            continue
        days = to_days(grp["date"]) - ctx.day0
        order = np.argsort(days)
        days, vals = days[order], grp[column].to_numpy(np.float64)[order]
        idx = np.searchsorted(days, np.arange(ctx.ndays), side="right") - 1
        ok = idx >= 0
        out[i, ok] = vals[idx[ok]]
    return out


def longest_window(lv: Level) -> int:
    """The longest look-back of a level's conditions (trigger window, cluster windows)."""
    tr = lv.trigger
    if tr is None:
        return 1
    cluster = [c.cluster.window_days for c in tr.any_of if c.cluster is not None]
    return max([tr.window_days, *cluster])
