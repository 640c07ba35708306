"""``GET /v1/aggregates/cases``: case counts per unit. The public sees fixed publication tables
(ISO weeks, 14 days ending on a week's Sunday) perturbed by the cell-key method; analysts see
exact counts of any period and case type (see :mod:`geo.counts`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from riskmap.api.auth import Caller, MaybeCaller
from riskmap.api.bounds import DateRange
from riskmap.api.deps import ServiceDatesDep, ServiceDep, SettingsDep
from riskmap.api.errors import unprocessable
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings
from riskmap.geo.counts import MAX_PERTURBATION, last_published_week, perturb, week_period
from riskmap.geo.io import CASE_TYPES

router = APIRouter(prefix="/v1/aggregates", tags=["aggregates"])
FromQ = Annotated[
    dt.date | None,
    Query(alias="from", description="analysts only: first day of a free period (default: to - 13)"),
]
ToQ = Annotated[
    dt.date | None,
    Query(alias="to", description="analysts only: last day of a free period (default: today)"),
]
TABLES = (
    "the public tables are period=week (an ISO week, Monday to Sunday) or period=14d (the 14 "
    "days ending on the week's Sunday), with week=YYYY-Www of a week that has ended, all case "
    "types together"
)


class UnitCount(BaseModel):
    unit_id: str
    name: str | None
    population: int | None = Field(
        description="stated by the units file, else the communities' sum"
    )
    cases: int = Field(
        description="distinct cases with a location here; public: perturbed (never from 1 to "
        "min_count - 1)"
    )
    rate_per_100k: float | None = Field(description="from the published count")


class CaseCounts(BaseModel):
    unit: str
    period: Literal["week", "14d", "custom"] = Field(
        description="a publication table (week, 14d) or an analyst's free period (custom)"
    )
    week: str | None = Field(description="ISO week of a publication table (YYYY-Www)")
    from_: dt.date = Field(alias="from")
    to: dt.date
    type: str | None
    min_count: int = Field(
        description="smallest nonzero count shown (1: exact counts, for analysts)"
    )
    max_perturbation: int = Field(
        description="largest perturbation of a count (0: exact); a result from 1 to "
        "min_count - 1 is then shown as 0 below half of min_count, else as min_count"
    )
    data_version: int
    total: int = Field(description="distinct cases of the period (perturbed for the public)")
    units: list[UnitCount]


PeriodQ = Annotated[
    Literal["week", "14d"] | None,
    Query(description="publication table: an ISO week, or the 14 days ending on its Sunday"),
]
WeekQ = Annotated[
    str | None,
    Query(
        description="ISO week of the table, YYYY-Www (default: the last week that has ended)",
        examples=["2024-W13"],
        max_length=8,
    ),
]
TypeQ = Annotated[
    Literal[CASE_TYPES] | None,  # type: ignore[valid-type]
    Query(alias="type", description="analysts only: cases of this type (default: all)"),
]


@dataclass(frozen=True)
class CountView:
    """The counts a caller may see: the period (a publication table for the public), the case
    type, and for the public the secret of the record keys and the minimum count."""

    kind: Literal["week", "14d", "custom"]
    week: str | None
    start: dt.date
    end: dt.date
    case_type: str | None
    secret: bytes | None  # None: exact counts (analysts)
    minimum: int

    @property
    def public(self) -> bool:
        return self.secret is not None

    def shown(self, counts: np.ndarray, keys: np.ndarray | None) -> np.ndarray:
        """The counts as this caller sees them: perturbed by the cell-key method for the
        public, exact for analysts."""
        if self.secret is None:
            return np.asarray(counts, dtype=np.int64)
        assert keys is not None
        return perturb(counts, keys, self.minimum)


def count_view(
    service: RiskService,
    settings: Settings,
    caller: Caller | None,
    dates: DateRange,
    period: str | None,
    week: str | None,
    start: dt.date | None,
    end: dt.date | None,
    case_type: str | None,
) -> CountView:
    """Which counts a request may see (``GET /v1/aggregates/cases`` and the counts layer of
    ``/collections/counts/h3``): the public only publication tables that have ended; keys
    other than analyst or admin nothing more than the public (403); analysts any period."""
    if caller is not None and caller.role not in ("analyst", "admin"):
        raise HTTPException(
            403,
            f"a key with role {caller.role!r} sees the public counts only: "
            "send no key, or an analyst's",
        )
    free = start is not None or end is not None or case_type is not None
    if free and caller is None:
        raise HTTPException(
            403,
            "free periods (from, to) and case types (type) need an analyst's key: " + TABLES,
        )
    if free and (period is not None or week is not None):
        raise unprocessable(
            "ask either a publication table (period, week) or a free period (from, to)",
            "query",
            "period" if period is not None else "week",
        )
    today = dt.date.today()
    kind: Literal["week", "14d", "custom"]
    if free:
        start, end = dates.period(start, end, default_days=14)
        kind, table_week = "custom", None
    else:
        kind = "14d" if period == "14d" else "week"
        table_week = week or last_published_week(today)
        try:
            start, end = week_period(kind, table_week)
        except ValueError as e:
            raise unprocessable(str(e), "query", "week") from None
        if caller is None and end >= today:
            raise unprocessable(
                f"week {table_week} has not ended: the latest public week is "
                f"{last_published_week(today)}",
                "query",
                "week",
            )
    if caller is not None:
        return CountView(kind, table_week, start, end, case_type, None, 1)
    configured = settings.cell_key_secret
    secret = service.cell_key_secret(configured.get_secret_value() if configured else None)
    return CountView(kind, table_week, start, end, case_type, secret, settings.min_public_count)


@router.get(
    "/cases",
    operation_id="case_counts",
    response_model=CaseCounts,
    response_model_by_alias=True,
)
def get_case_counts(
    service: ServiceDep,
    settings: SettingsDep,
    caller: MaybeCaller,
    dates: ServiceDatesDep,
    response: Response,
    unit: Annotated[
        Literal["community", "subdistrict", "district"], Query(description="unit of the counts")
    ] = "district",
    period: PeriodQ = None,
    week: WeekQ = None,
    start: FromQ = None,
    end: ToQ = None,
    case_type: TypeQ = None,
) -> dict[str, object]:
    """Distinct cases with a location in each unit. The public asks for a publication table
    (period=week or 14d, week=YYYY-Www; default the last week that has ended) and sees counts
    perturbed by the cell-key method: the same table always gives the same answer, and no
    count from 1 to RISKMAP_MIN_PUBLIC_COUNT - 1 is shown. A key with role analyst or admin
    sees exact counts, also of any period (from, to) and case type (type)."""
    view = count_view(service, settings, caller, dates, period, week, start, end, case_type)
    counts, version = service.case_counts(
        unit, view.start, view.end, view.case_type, secret=view.secret
    )
    table, minimum = counts.table, view.minimum
    keys = table["key"].to_numpy() if view.public else None
    shown = view.shown(table["cases"].to_numpy(), keys)
    total = int(view.shown(np.array([counts.total]), np.array([counts.total_key], np.uint64))[0])
    rows = []
    for (uid, name, pop), n in zip(
        table[["unit_id", "name", "population"]].itertuples(index=False), shown, strict=True
    ):
        pop_i = None if pd.isna(pop) else int(pop)
        rows.append(
            {
                "unit_id": uid,
                "name": name,
                "population": pop_i,
                "cases": int(n),
                "rate_per_100k": round(int(n) * 100_000 / pop_i, 2) if pop_i else None,
            }
        )
    response.headers["X-Data-Version"] = str(version)
    return {
        "unit": unit,
        "period": view.kind,
        "week": view.week,
        "from": view.start,
        "to": view.end,
        "type": view.case_type,
        "min_count": minimum,
        "max_perturbation": MAX_PERTURBATION if view.public else 0,
        "data_version": version,
        "total": total,
        "units": rows,
    }
