"""Case counts per unit (community, subdistrict, district) over a period, and the small-count
suppression that lets the public see them.

The total is the number of distinct cases of the period with a location in some unit.

A unit's count is the number of distinct cases with at least one location in the unit reported
in the period (a case with places in two units counts in both). The public sees 0 as 0, a
count below the minimum (``RISKMAP_MIN_PUBLIC_COUNT``, default 5) not at all, and any other
count rounded to the nearest multiple of the minimum: so no small count can be worked out
exactly by subtracting published ones (a unit from its parent, one period from a longer one, a
type from all types, units from the total), which withholding alone does not prevent; such
differences only bound it. Analysts (API keys with role ``analyst`` or ``admin``) see every
count exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from geo.zones import CommunityLayer

UNIT_KINDS = ("community", "subdistrict", "district")


def case_counts(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    unit: str,
    start: dt.date,
    end: dt.date,
    units: pd.DataFrame | None = None,
    case_type: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """One row per unit: ``unit_id``, ``name``, ``population``, ``cases`` (exact counts), and
    the number of distinct cases in the period with a location in a unit.

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
    pairs = pd.DataFrame({"case": cases["case_id"].to_numpy()[sel][ok], "unit": unit_of[ok]})
    pairs = pairs.drop_duplicates()
    total = int(pairs["case"].nunique())
    counts = np.bincount(pairs["unit"].to_numpy(), minlength=len(ids))[: len(ids)]
    out = pd.DataFrame(
        {
            "unit_id": ids.astype(str) if len(ids) else np.empty(0, dtype=object),
            "name": names if names is not None else [None] * len(ids),
            "population": pd.array([None if np.isnan(p) else int(p) for p in pop], dtype="Int64"),
            "cases": counts.astype(np.int64),
        }
    )
    if units is not None and unit != "community" and len(units):
        own = units[units["level"] == unit].set_index("unit_id")
        stated = out["unit_id"].map(own["population"]) if len(own) else None
        if stated is not None:
            out["population"] = stated.astype("Int64").fillna(out["population"])
            out["name"] = out["unit_id"].map(own["name"]).astype(object)
    out["name"] = out["name"].astype(object).where(out["name"].notna(), None)
    return out.sort_values("unit_id", kind="stable").reset_index(drop=True), total


def public_count(n: int, minimum: int) -> int | None:
    """A count as the public sees it: 0 stays 0, 1 .. minimum - 1 is withheld (None), and
    larger counts are rounded to the nearest multiple of ``minimum`` (halves up)."""
    if n <= 0:
        return 0
    if n < minimum:
        return None
    return minimum * math.floor(n / minimum + 0.5)


def published(
    table: pd.DataFrame, total: int, minimum: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Rows and total as the caller may see them: exact for ``minimum`` 1 (analysts), else
    through :func:`public_count` (rates from the published counts)."""

    def shown(n: int) -> int | None:
        return n if minimum <= 1 else public_count(n, minimum)

    rows = []
    for uid, name, pop, n in table[["unit_id", "name", "population", "cases"]].itertuples(
        index=False
    ):
        count = shown(int(n))
        pop_i = None if pd.isna(pop) else int(pop)
        rows.append(
            {
                "unit_id": uid,
                "name": name,
                "population": pop_i,
                "cases": count,
                "rate_per_100k": round(count * 100_000 / pop_i, 2)
                if count is not None and pop_i
                else None,
                "suppressed": count is None,
            }
        )
    return rows, shown(total)
