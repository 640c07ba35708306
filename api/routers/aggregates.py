"""``GET /v1/aggregates/cases``: case counts per unit over a period, small counts withheld
from the public (see :mod:`api.aggregates`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from api.aggregates import published
from api.auth import MaybeCaller
from api.deps import ServiceDatesDep, ServiceDep, SettingsDep
from geo.io import CASE_TYPES

router = APIRouter(prefix="/v1/aggregates", tags=["aggregates"])
FromQ = Annotated[dt.date | None, Query(alias="from", description="first day (default: to - 13)")]
ToQ = Annotated[dt.date | None, Query(alias="to", description="last day (default: today)")]


class UnitCount(BaseModel):
    unit_id: str
    name: str | None
    population: int | None = Field(
        description="stated by the units file, else the communities' sum"
    )
    cases: int | None = Field(
        description="distinct cases with a location here; public: rounded to a multiple of "
        "min_count, null when from 1 to min_count - 1"
    )
    rate_per_100k: float | None
    suppressed: bool = Field(description="the count is withheld (below the public minimum)")


class CaseCounts(BaseModel):
    unit: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    type: str | None
    min_count: int = Field(
        description="smallest count shown, and the base counts are rounded to (1: exact counts, "
        "for analysts)"
    )
    data_version: int
    total: int | None = Field(description="distinct cases of the period (rounded, or withheld)")
    units: list[UnitCount]


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
    start: FromQ = None,
    end: ToQ = None,
    case_type: Annotated[
        Literal[CASE_TYPES] | None,  # type: ignore[valid-type]
        Query(alias="type", description="only cases of this type (default: all)"),
    ] = None,
) -> dict[str, object]:
    """Distinct cases with a location in each unit, reported in the period (default: the last
    14 days up to today). The public sees 0 as 0, counts below RISKMAP_MIN_PUBLIC_COUNT not at
    all and the others rounded to a multiple of it, so that no small count can be worked out
    exactly by subtraction. A key with role analyst or admin sees exact counts."""
    start, end = dates.period(start, end, default_days=14)
    if caller is not None and caller.role not in ("analyst", "admin"):
        raise HTTPException(
            403,
            f"a key with role {caller.role!r} sees the public counts only: "
            "send no key, or an analyst's",
        )
    minimum = 1 if caller is not None else settings.min_public_count
    table, total, version = service.case_counts(unit, start, end, case_type)
    rows, shown_total = published(table, total, minimum)
    response.headers["Cache-Control"] = "private, no-store" if caller else "public, max-age=60"
    response.headers["X-Data-Version"] = str(version)
    return {
        "unit": unit,
        "from": start,
        "to": end,
        "type": case_type,
        "min_count": minimum,
        "data_version": version,
        "total": shown_total,
        "units": rows,
    }
