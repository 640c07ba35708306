"""Dependencies shared by the routers (``Annotated`` aliases)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Query

from api.service import RiskService
from api.settings import Settings, database_path, get_settings
from api.store import Store
from geo.policy import Policy, load_policy


@lru_cache(maxsize=4)
def _service_for(database_url: str, h3_res: int, cache_size: int) -> RiskService:
    return RiskService(Store.open(database_path(database_url)), h3_res, cache_size)


def get_service(settings: Annotated[Settings, Depends(get_settings)]) -> RiskService:
    return _service_for(settings.database_url, settings.h3_resolution, settings.cache_size)


def get_policy(settings: Annotated[Settings, Depends(get_settings)]) -> Policy:
    return load_policy(settings.policy)


def get_at(
    at: Annotated[
        dt.date | None,
        Query(description="as-of date (YYYY-MM-DD); defaults to today", examples=["2024-03-01"]),
    ] = None,
) -> dt.date:
    return at or dt.date.today()


ServiceDep = Annotated[RiskService, Depends(get_service)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
AtDep = Annotated[dt.date, Depends(get_at)]
