"""Measures for analysts and reports: incidence per 100,000, growth and doubling time per
community, subdistrict or district, and the population living under each zone level per day.

Cases are counted once each, where they live: a case's ``residence`` location if it has one,
else its first location (:func:`case_points`); by default only ``confirmed`` cases count
(``types``). A case is dated by its report date. A case outside every community counts for
no unit (the frame's ``attrs["outside"]`` says how many there were).

Nothing here divides by zero: a value that cannot be computed is None (NaN in a float
column) and the row's ``note`` says why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from riskmap.geo.history import base_rank
from riskmap.geo.policy import Level
from riskmap.geo.zones import CommunityLayer, Features, ZoneResult, from_day, to_day, to_days

UNITS = ("community", "subdistrict", "district", "all")
DEFAULT_TYPES: tuple[str, ...] = ("confirmed",)
PER = 100_000

__all__ = [
    "DEFAULT_TYPES",
    "UNITS",
    "case_points",
    "doubling_time",
    "growth",
    "incidence",
    "population_under_levels",
    "unit_measures",
]


def case_points(
    cases: pd.DataFrame, layer: CommunityLayer, types: Sequence[str] | None = DEFAULT_TYPES
) -> pd.DataFrame:
    """One row per case (case_id, reported, type, lon, lat, community): its residence
    location if it has one, else its first location; only cases of ``types`` (all when None).
    ``community`` is taken from the frame when present, else located in ``layer``."""
    need = {"case_id", "reported", "lon", "lat"} - set(cases.columns)
    if need:
        raise ValueError(f"cases: missing column(s) {', '.join(sorted(need))}")
    cs = cases
    if types is not None and "type" in cs:
        unknown = set(types) - set(_case_types())
        if unknown:
            raise ValueError(
                f"types: unknown case type(s) {', '.join(sorted(unknown))} "
                f"(expected some of {', '.join(_case_types())})"
            )
        cs = cs[cs["type"].isin(list(types))]
    cs = cs.reset_index(drop=True)
    if "community" not in cs:
        cs = cs.assign(
            community=layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
            if len(cs)
            else np.empty(0, np.int64)
        )
    home = (cs["role"] == "residence").to_numpy() if "role" in cs else np.zeros(len(cs), bool)
    order = np.lexsort((np.arange(len(cs)), ~home))  # residence rows first, then file order
    first = cs.iloc[order].drop_duplicates("case_id", keep="first")
    out = first.sort_index()[["case_id", "reported", "lon", "lat", "community"]].copy()
    out["type"] = first.sort_index()["type"] if "type" in first else "confirmed"
    out["community"] = out["community"].astype(np.int64)
    return out.reset_index(drop=True)


def _case_types() -> tuple[str, ...]:
    from riskmap.geo.policy import CASE_TYPES

    return CASE_TYPES


def _unit_codes(layer: CommunityLayer, unit: str) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """Code of each community's unit (-1 where unknown) and the units' ids."""
    if unit not in UNITS:
        raise ValueError(f"unit: {unit!r} is not one of {', '.join(UNITS)}")
    if unit == "community":
        return np.arange(len(layer), dtype=np.int64), layer.ids.astype(object)
    if unit == "all":
        return np.zeros(len(layer), dtype=np.int64), np.array(["all"], dtype=object)
    return layer.parent_codes(unit)


def _unit_population(layer: CommunityLayer, unit: str) -> NDArray[np.float64]:
    if unit == "community":
        return layer.population.copy()
    if unit == "all":
        pop = layer.population
        return np.array([np.nansum(pop) if (~np.isnan(pop)).any() else np.nan])
    return layer.parent_population(unit)


def _counts(
    points: pd.DataFrame, codes: NDArray[np.int64], n_units: int, first: int, last: int
) -> NDArray[np.int64]:
    """Cases per unit reported on days ``first`` .. ``last``."""
    if len(points) == 0:
        return np.zeros(n_units, dtype=np.int64)
    rep = to_days(points["reported"])
    comm = points["community"].to_numpy()
    keep = (rep >= first) & (rep <= last) & (comm >= 0)
    unit = codes[comm[keep]]
    unit = unit[unit >= 0]
    return np.bincount(unit, minlength=n_units).astype(np.int64)


def _window(end: dt.date, days: int, what: str) -> tuple[int, int]:
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"{what}: the number of days must be a positive integer, got {days!r}")
    last = to_day(end)
    return last - days + 1, last


def incidence(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    end: dt.date,
    *,
    days: int = 14,
    unit: str = "community",
    types: Sequence[str] | None = DEFAULT_TYPES,
) -> pd.DataFrame:
    """Cases per 100,000 residents per unit over the ``days`` days ending on ``end``
    (inclusive).

    ``unit``: ``community``, ``subdistrict``, ``district`` (the communities' parent units) or
    ``all`` (the whole area). Columns: unit_type, unit_id, population, cases, per_100k, note.
    ``per_100k`` = 100,000 x cases / population; None when the population is unknown or 0
    (``note`` says which). A parent unit's population is the sum of its communities' (unknown
    when none of them has one)."""
    first, last = _window(end, days, "days")
    codes, ids = _unit_codes(layer, unit)
    pts = case_points(cases, layer, types)
    counts = _counts(pts, codes, len(ids), first, last)
    pop = _unit_population(layer, unit)
    per: list[float | None] = []
    note: list[str] = []
    for c, p in zip(counts.tolist(), pop.tolist(), strict=True):
        if math.isnan(p):
            per.append(None)
            note.append("population unknown")
        elif p <= 0:
            per.append(None)
            note.append("population 0")
        else:
            per.append(PER * c / p)
            note.append("")
    out = pd.DataFrame(
        {
            "unit_type": unit,
            "unit_id": ids.astype(str),
            "population": [None if math.isnan(p) else int(p) for p in pop.tolist()],
            "cases": counts,
            "per_100k": pd.array(per, dtype="Float64"),
            "note": note,
        }
    )
    out.attrs["outside"] = int(_outside(pts, first, last))
    out.attrs["window"] = (from_day(first), from_day(last))
    return out


def _outside(points: pd.DataFrame, first: int, last: int) -> int:
    if len(points) == 0:
        return 0
    rep = to_days(points["reported"])
    return int(((rep >= first) & (rep <= last) & (points["community"].to_numpy() < 0)).sum())


def doubling_time(current: int, previous: int, days: int = 7) -> tuple[float | None, str]:
    """(doubling time in days, note) from the cases of two consecutive periods of ``days``
    days, assuming exponential growth between them: ``days x ln 2 / ln(current / previous)``.

    Defined only when the cases grow from a nonzero count (``current > previous > 0``);
    otherwise None with the reason: ``no cases in either period``, ``no cases in the previous
    period`` (growth from zero has no rate), ``not growing`` (equal counts) or ``declining``.
    """
    if previous == 0:
        return None, "no cases in either period" if current == 0 else (
            "no cases in the previous period"
        )
    if current == previous:
        return None, "not growing"
    if current < previous:
        return None, "declining"
    return days * math.log(2) / math.log(current / previous), ""


def growth(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    end: dt.date,
    *,
    days: int = 7,
    unit: str = "community",
    types: Sequence[str] | None = DEFAULT_TYPES,
) -> pd.DataFrame:
    """Growth of the cases of the ``days`` days ending on ``end`` against the ``days`` days
    before them, per unit.

    Columns: unit_type, unit_id, cases (the last period), previous (the period before),
    growth (``cases / previous - 1``: 0.5 is +50%; None when ``previous`` is 0),
    doubling_days (see :func:`doubling_time`; None unless the cases grow from a nonzero count)
    and note (why a value is None)."""
    first, last = _window(end, days, "days")
    codes, ids = _unit_codes(layer, unit)
    pts = case_points(cases, layer, types)
    now = _counts(pts, codes, len(ids), first, last)
    before = _counts(pts, codes, len(ids), first - days, first - 1)
    g, dbl, note = [], [], []
    for c, p in zip(now.tolist(), before.tolist(), strict=True):
        g.append(None if p == 0 else c / p - 1)
        t, why = doubling_time(c, p, days)
        dbl.append(t)
        note.append(why)
    out = pd.DataFrame(
        {
            "unit_type": unit,
            "unit_id": ids.astype(str),
            "cases": now,
            "previous": before,
            "growth": pd.array(g, dtype="Float64"),
            "doubling_days": pd.array(dbl, dtype="Float64"),
            "note": note,
        }
    )
    out.attrs["window"] = (from_day(first), from_day(last))
    out.attrs["previous_window"] = (from_day(first - days), from_day(first - 1))
    return out


def unit_measures(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    end: dt.date,
    *,
    unit: str = "district",
    incidence_days: int = 14,
    growth_days: int = 7,
    types: Sequence[str] | None = DEFAULT_TYPES,
) -> pd.DataFrame:
    """Incidence (over ``incidence_days``) and growth (``growth_days`` against the ones
    before) per unit in one frame: unit_type, unit_id, population, cases, per_100k,
    cases_last, cases_previous, growth, doubling_days, note (the notes of both, joined)."""
    inc = incidence(layer, cases, end, days=incidence_days, unit=unit, types=types)
    gr = growth(layer, cases, end, days=growth_days, unit=unit, types=types)
    out = inc.drop(columns="note").copy()
    out["cases_last"] = gr["cases"].to_numpy()
    out["cases_previous"] = gr["previous"].to_numpy()
    out["growth"] = gr["growth"].to_numpy()
    out["doubling_days"] = gr["doubling_days"].to_numpy()
    out["note"] = [
        "; ".join(x for x in (a, b) if x)
        for a, b in zip(inc["note"].tolist(), gr["note"].tolist(), strict=True)
    ]
    out.attrs.update(inc.attrs)
    out.attrs["growth_window"] = gr.attrs["window"]
    return out


# ---- population under each zone level -------------------------------------------------------


def population_under_levels(
    result: ZoneResult, layer: CommunityLayer, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Residents living under each zone level on each day ``start`` .. ``end`` (at most the
    result's as-of date), from one :class:`~geo.zones.ZoneResult` (its grids hold the history:
    a result as of ``end`` answers every earlier day as it was known that day).

    A resident counts once, under the highest level covering where they live. Levels drawn
    as whole communities count their communities' population. Levels drawn as exact
    geometry (circles, H3 cells, buffers) cover parts of communities: the population of
    their area is *estimated* by area weighting (each community's residents spread evenly
    over its area, areas measured in the layer's metric projection): population x the share
    of the community's area under the level and under no higher level. Communities without a
    population count as 0.

    Columns: date, level, label, population (float: estimates are not whole numbers),
    area_weighted (True when some of it comes from exact geometry). Every level of the rule
    has a row per day (0 when nothing is drawn), the highest first."""
    if end > result.at:
        raise ValueError(f"end {end} is after the result's as-of date {result.at}")
    if start > end:
        raise ValueError(f"the first date {start} is after the last date {end}")
    assert result.zone_rank_grid is not None
    policy = result.policy
    levels = policy.levels  # highest first
    pop = np.nan_to_num(layer.population)
    area = shapely.area(layer.metric)
    exact = [lv for lv in levels if _features(result, lv.id) is not None]
    cache: dict[tuple[int, bytes], tuple[NDArray[np.float64], shapely.Geometry]] = {}
    base = base_rank(result, True)
    ids_by_rank = policy.ids_by_rank
    rows = []
    day = start
    while day <= end:
        t = to_day(day) - result.day0
        if t < 0:  # before the grid: only the levels drawn over every community
            for lv in levels:
                everyone = float(pop.sum()) if base and ids_by_rank[base] == lv.id else 0.0
                rows.append((day, lv.id, lv.label, everyone, False))
            day += dt.timedelta(days=1)
            continue
        t = min(t, result.at_index)
        zr = result.zone_rank_grid[:, t]
        free = np.ones(len(layer))  # share of each community under no higher level yet
        higher_exact: shapely.Geometry | None = None
        for lv in levels:
            k = policy.rank(lv.id)
            whole = zr == k
            total = float((pop * free)[whole].sum())
            free[whole] = 0.0
            weighted = False
            f = _features(result, lv.id)
            if f is not None:
                act = f.active[:, t]
                if act.any():
                    key = (k, act.tobytes() + _exact_key(result, exact, lv.id, t))
                    if key not in cache:
                        region = shapely.union_all(f.metric[act])
                        cache[key] = (_area_shares(layer, region, higher_exact, area), region)
                    shares, region = cache[key]
                    share = np.minimum(shares, free)
                    total += float((pop * share).sum())
                    free = free - share
                    weighted = True
                    higher_exact = (
                        region if higher_exact is None else shapely.union(higher_exact, region)
                    )
            rows.append((day, lv.id, lv.label, total, weighted))
        day += dt.timedelta(days=1)
    return pd.DataFrame(rows, columns=["date", "level", "label", "population", "area_weighted"])


def _features(result: ZoneResult, level: str) -> Features | None:
    f = result.states[level].features
    return f if f is not None and len(f) else None


def _exact_key(result: ZoneResult, exact: list[Level], level: str, t: int) -> bytes:
    """The active features of the exact levels above ``level`` on column ``t``."""
    out = b""
    for lv in exact:
        if lv.id == level:
            break
        f = _features(result, lv.id)
        if f is not None:
            out += f.active[:, t].tobytes()
    return out


def _area_shares(
    layer: CommunityLayer,
    region: shapely.Geometry,
    higher: shapely.Geometry | None,
    area: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Share of each community's area inside ``region`` and outside ``higher`` (metric)."""
    own = region if higher is None else shapely.difference(region, higher)
    out = np.zeros(len(layer))
    if own.is_empty:
        return out
    ci = layer.metric_tree.query(own, predicate="intersects")
    if len(ci):
        part = shapely.area(shapely.intersection(layer.metric[ci], own))
        out[ci] = np.where(area[ci] > 0, part / np.where(area[ci] > 0, area[ci], 1.0), 0.0)
    return np.clip(out, 0.0, 1.0)
