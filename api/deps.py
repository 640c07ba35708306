"""Dependencies shared by the routers (``Annotated`` aliases)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Query

from riskmap.api.bounds import DateRange, date_range
from riskmap.api.flights import WorkLimits, machine_memory
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo._errors import UnknownPolicyError
from riskmap.geo.policy import Policy, load_policy, preset_names


@lru_cache(maxsize=4)
def _service_for(
    database_url: str, h3_res: int, cache_size: int, limits: WorkLimits | None = None
) -> RiskService:
    return RiskService(Store.open(database_url), h3_res, cache_size, limits)


def work_limits(settings: Settings) -> WorkLimits:
    """The limits of computations (RISKMAP_MAX_COMPUTATIONS, _MAX_QUEUED, _MAX_MEMORY_MB)."""
    if settings.max_memory_mb is not None:
        memory: int | None = int(settings.max_memory_mb * 2**20)
    else:
        total = machine_memory()
        memory = None if total is None else total // 2
    return WorkLimits(settings.max_computations, settings.max_queued, memory)


def get_service(settings: Annotated[Settings, Depends(get_settings)]) -> RiskService:
    return _service_for(
        settings.database_url, settings.h3_resolution, settings.cache_size, work_limits(settings)
    )


def preset(policy_id: str) -> Policy:
    """A preset by name (requests may name presets, never files on the server)."""
    if policy_id not in preset_names():
        raise UnknownPolicyError(
            f"unknown policy {policy_id!r}: expected one of {', '.join(preset_names())}"
        )
    return load_policy(policy_id)


def get_default_policy(settings: Annotated[Settings, Depends(get_settings)]) -> Policy:
    """The service's rule (``RISKMAP_POLICY``)."""
    return load_policy(settings.policy)


ServiceDep = Annotated[RiskService, Depends(get_service)]


def get_service_dates(
    service: ServiceDep,
    policy: Annotated[Policy, Depends(get_default_policy)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> DateRange:
    """The dates a request may ask about under the service's rule (aggregates)."""
    return date_range(service, policy, settings.max_history_days)


LatQ = Annotated[float, Query(ge=-90, le=90, description="latitude, WGS84 degrees")]
LonQ = Annotated[float, Query(ge=-180, le=180, description="longitude, WGS84 degrees")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DefaultPolicyDep = Annotated[Policy, Depends(get_default_policy)]
ServiceDatesDep = Annotated[DateRange, Depends(get_service_dates)]
