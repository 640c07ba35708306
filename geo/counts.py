"""Case counts per unit (community, subdistrict, district) over a period, and how the public
sees them: fixed publication tables, perturbed by the cell-key method.

A unit's count is the number of distinct cases with at least one location in the unit reported
in the period (a case with places in two units counts in both); the total is the number of
distinct cases of the period with a location in some unit. Analysts (API keys with role
``analyst`` or ``admin``) see every count exactly, over any period and case type.

The public sees only the publication tables: per unit, the ISO calendar weeks (Monday to
Sunday) and the 14 days ending on a week's Sunday, once the period has ended, all case types
together. Free windows are what beat rounding and withholding: with every window of a month an
integer program recovers daily counts exactly, so the public may not choose them.

Every public count goes through the **cell-key method** of statistical offices (ABS, ONS,
Destatis): each case has a fixed random *record key*, HMAC-SHA256 of its id under a secret;
the *cell key* of a cell is the sum of its cases' record keys modulo 1, and the perturbation
table (:data:`PTABLE`) maps the cell key to a perturbation ``e`` from ``-MAX_PERTURBATION`` to
``+MAX_PERTURBATION`` (probability proportional to ``DECAY ** |e|``). So a cell holding the
same cases always gets the same answer, however it is asked (repeating a request averages
nothing away), while cells holding different cases get their own perturbations; a unit and
its parent, a week and its fortnight, are each perturbed, not summed from published parts. A
cell with no case is 0. A perturbed count from 1 to ``minimum - 1`` is published as 0 when
below half the minimum and as the minimum otherwise, so no published count lies between 1 and
``minimum - 1``.

Why no small count can be pinned down: an attacker knows every public answer, the table above
and how cells nest (units in parents, weeks in fortnights). Raising one community-week's count
by one, and every published cell containing it by one as well, keeps all of that satisfied
unless one of those cells got the extreme perturbation ``-MAX_PERTURBATION`` while holding at
least ``(minimum - 1) // 2 + MAX_PERTURBATION`` cases (probability ``PTABLE[0]``, about 0.0013,
per cell); even then the other cells of the same sums must sit at their own bounds too.
tests/api/test_aggregates.py runs that attack (an integer program over every public table).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskmap.geo.zones import CommunityLayer

UNIT_KINDS = ("community", "subdistrict", "district")
#: the public's period kinds: an ISO week, and the 14 days ending on a week's Sunday
PERIODS = ("week", "14d")
#: largest perturbation of a public count, either way
MAX_PERTURBATION = 5
#: the perturbation e has probability proportional to DECAY ** |e|
DECAY = 0.3
#: probability of each perturbation from -MAX_PERTURBATION to +MAX_PERTURBATION
PTABLE: np.ndarray = DECAY ** np.abs(np.arange(-MAX_PERTURBATION, MAX_PERTURBATION + 1))
PTABLE = PTABLE / PTABLE.sum()
_CUT = np.cumsum(PTABLE)
_CUT[-1] = 1.0
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class CountTable:
    """Exact counts of one period: ``table`` has one row per unit (``unit_id``, ``name``,
    ``population``, ``cases`` and, with a secret, ``key``: the cell key as an unsigned 64-bit
    sum of record keys); ``total`` the distinct cases with a location in some unit."""

    table: pd.DataFrame
    total: int
    total_key: int = 0


def record_keys(case_ids: np.ndarray, secret: bytes) -> np.ndarray:
    """Each case's record key: the first 64 bits of HMAC-SHA256(secret, case id)."""
    return np.fromiter(
        (
            int.from_bytes(hmac.new(secret, str(c).encode(), hashlib.sha256).digest()[:8], "big")
            for c in case_ids
        ),
        dtype=np.uint64,
        count=len(case_ids),
    )


@dataclass(frozen=True)
class DistinctCounts:
    """Distinct cases per cell (unit, H3 cell...) and, with a secret, each cell's key (the
    unsigned 64-bit sum of its cases' record keys, wrapping) and the key of all of them."""

    counts: np.ndarray  # int64, one per cell
    keys: np.ndarray | None  # uint64, one per cell (None without a secret)
    total: int  # distinct cases in some cell
    total_key: int


def distinct_counts(
    case_ids: np.ndarray, cell_of: np.ndarray, n_cells: int, secret: bytes | None = None
) -> DistinctCounts:
    """Distinct cases per cell from (case, cell) pairs (``cell_of`` in ``0 .. n_cells - 1``;
    a case with places in two cells counts in both, twice in one cell once), with the cell
    keys of the cell-key method under ``secret``."""
    pairs = pd.DataFrame({"case": case_ids, "unit": np.asarray(cell_of, dtype=np.int64)})
    pairs = pairs.drop_duplicates()
    distinct = pairs["case"].unique()
    counts = np.bincount(pairs["unit"].to_numpy(), minlength=n_cells)[:n_cells].astype(np.int64)
    if secret is None:
        return DistinctCounts(counts, None, len(distinct), 0)
    keys = record_keys(distinct, secret)
    case_key = dict(zip(distinct, keys, strict=True))
    per_pair = np.fromiter((case_key[c] for c in pairs["case"]), dtype=np.uint64, count=len(pairs))
    cell = np.zeros(n_cells, dtype=np.uint64)
    np.add.at(cell, pairs["unit"].to_numpy(), per_pair)  # wraps modulo 2**64
    total_key = int(keys.sum(dtype=np.uint64)) if len(keys) else 0
    return DistinctCounts(counts, cell, len(distinct), total_key)


def case_counts(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    unit: str,
    start: dt.date,
    end: dt.date,
    units: pd.DataFrame | None = None,
    case_type: str | None = None,
    secret: bytes | None = None,
) -> CountTable:
    """Exact counts per unit of the cases reported from ``start`` to ``end``, and with a
    ``secret`` each unit's cell key (see :func:`perturb`).

    ``units`` (the store's parent units) gives names and stated populations; without them a
    parent unit's population is the sum of its communities'.
    """
    if unit not in UNIT_KINDS:
        raise ValueError(f"unknown unit {unit!r}: expected one of {', '.join(UNIT_KINDS)}")
    if unit == "community":
        codes = np.arange(len(layer), dtype=np.int64)
        ids = np.asarray(layer.ids, dtype=object)
        names = layer.frame["name"].to_numpy(dtype=object) if "name" in layer.frame else None
        pop = layer.population
    else:
        codes, ids = layer.parent_codes(unit)
        names = None
        pop = layer.parent_population(unit)
    day = cases["reported"].to_numpy().astype("datetime64[D]")
    comm = cases["community"].to_numpy()
    sel = (day >= np.datetime64(start)) & (day <= np.datetime64(end)) & (comm >= 0)
    if case_type is not None:
        sel &= (cases["type"] == case_type).to_numpy()
    unit_of = codes[comm[sel]]
    ok = unit_of >= 0
    counted = distinct_counts(cases["case_id"].to_numpy()[sel][ok], unit_of[ok], len(ids), secret)
    out = pd.DataFrame(
        {
            "unit_id": ids.astype(str) if len(ids) else np.empty(0, dtype=object),
            "name": names if names is not None else [None] * len(ids),
            "population": pd.array([None if np.isnan(p) else int(p) for p in pop], dtype="Int64"),
            "cases": counted.counts,
        }
    )
    total, total_key = counted.total, counted.total_key
    if counted.keys is not None:
        out["key"] = counted.keys
    if units is not None and unit != "community" and len(units):
        own = units[units["level"] == unit].set_index("unit_id")
        stated = out["unit_id"].map(own["population"]) if len(own) else None
        if stated is not None:
            out["population"] = stated.astype("Int64").fillna(out["population"])
            out["name"] = out["unit_id"].map(own["name"]).astype(object)
    out["name"] = out["name"].astype(object).where(out["name"].notna(), None)
    out = out.sort_values("unit_id", kind="stable").reset_index(drop=True)
    return CountTable(out, total, total_key)


def perturbation(keys: np.ndarray) -> np.ndarray:
    """The perturbation table's answer for cell keys (unsigned 64-bit sums of record keys,
    read as fractions of 2**64, i.e. the cell key modulo 1)."""
    u = (np.asarray(keys, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    row = np.minimum(np.searchsorted(_CUT, u, side="right"), len(PTABLE) - 1)
    return row.astype(np.int64) - MAX_PERTURBATION


def perturb(counts: np.ndarray, keys: np.ndarray, minimum: int) -> np.ndarray:
    """Published counts: 0 stays 0; others get their cell's perturbation, then a result from
    1 to ``minimum - 1`` becomes 0 below half the minimum and the minimum from there."""
    n = np.asarray(counts, dtype=np.int64)
    p = np.maximum(n + perturbation(keys), 0)
    small = (p > 0) & (p < minimum)
    p = np.where(small, np.where(2 * p >= minimum, minimum, 0), p)
    return np.where(n == 0, 0, p)


def published_bounds(
    value: int, minimum: int, max_perturbation: int = MAX_PERTURBATION
) -> tuple[int, int]:
    """What a published count tells about the true one, knowing the largest perturbation and
    the small-count rule: the least and the largest true count that can give it."""
    d = max_perturbation
    if value == 0:
        return 0, (minimum - 1) // 2 + d
    low_p = (minimum + 1) // 2 if value == minimum and minimum > 1 else value
    return max(1, low_p - d), value + d


def week_period(period: str, week: str) -> tuple[dt.date, dt.date]:
    """First and last day of a publication period: ``week`` (``YYYY-Www``, ISO 8601, Monday to
    Sunday) or ``14d`` (the 14 days ending on that week's Sunday). ``ValueError`` names what
    is wrong."""
    m = _WEEK.match(week)
    if m is None:
        raise ValueError(f"week {week!r} is not an ISO week such as 2024-W09 (YYYY-Www)")
    try:
        monday = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
    except ValueError:
        raise ValueError(f"week {week!r} does not exist (weeks 01 to 52 or 53)") from None
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")
    sunday = monday + dt.timedelta(days=6)
    return (monday if period == "week" else sunday - dt.timedelta(days=13)), sunday


def iso_week(day: dt.date) -> str:
    """The ISO week of a day, as ``YYYY-Www``."""
    y, w, _ = day.isocalendar()
    return f"{y:04d}-W{w:02d}"


def last_published_week(today: dt.date) -> str:
    """The latest week that has ended (its Sunday is before today)."""
    return iso_week(today - dt.timedelta(days=today.isoweekday()))
