"""``GET /v1/aggregates/cases``: case counts per unit over a period, small counts withheld
from the public (see :mod:`api.aggregates`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from api.aggregates import published
from api.auth import MaybeCaller
from api.deps import ServiceDep, SettingsDep
from api.routers.history import _period
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
    cases: int | None = Field(description="distinct cases with a location here; null: withheld")
    rate_per_100k: float | None
    suppressed: bool = Field(description="the count is withheld (below the public minimum)")


class CaseCounts(BaseModel):
    unit: str
    from_: dt.date = Field(alias="from")
    to: dt.date
    type: str | None
    min_count: int = Field(description="smallest count shown (1: every count, for analysts)")
    data_version: int
    total: int | None = Field(description="distinct cases of the period; null: withheld")
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
    14 days up to today). The public sees counts of 0 and of at least RISKMAP_MIN_PUBLIC_COUNT;
    smaller ones (and, when needed, the next smallest, so that none can be worked out) are
    withheld. A key with role analyst or admin sees every count."""
    end = end or dt.date.today()
    start, end = _period(start or end - dt.timedelta(days=13), end)
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
