"""Dependencies shared by the routers (``Annotated`` aliases)."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request

from riskmap.api.bounds import DateRange, date_range
from riskmap.api.clock import Clock, timezone_of
from riskmap.api.flights import WorkLimits, machine_memory
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo._errors import UnknownPolicyError
from riskmap.geo.policy import Policy, load_policy, preset_names

log = logging.getLogger("riskmap")


class Services:
    """The services of one application, one per store configuration (the settings may be
    overridden while it runs): each opened when first needed, all closed by the
    application's lifespan (:func:`api.main.lifespan`) when it stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[Any, ...], RiskService] = {}

    def get(self, settings: Settings) -> RiskService:
        limits = work_limits(settings)
        key = (
            settings.database_url,
            settings.h3_resolution,
            settings.cache_size,
            limits,
            settings.tile_cache_mb,
            settings.tile_merge_features,
            # the served status snapshots (api.snapshots)
            settings.policy,
            settings.policies,
            settings.min_public_count,
            settings.timezone,
            settings.snapshot_dir,
            settings.prerender_zoom,
        )
        with self._lock:
            service = self._open.get(key)
            if service is None:
                store = Store.open(settings.database_url)
                service = RiskService(
                    store,
                    settings.h3_resolution,
                    settings.cache_size,
                    limits,
                    tile_cache_mb=settings.tile_cache_mb,
                    tile_merge_features=settings.tile_merge_features,
                    clock=Clock(timezone_of(settings.timezone)),
                )
                self._open[key] = service
                _serve(service, settings)
            return service

    def close(self) -> None:
        """Stop every service's computations and close its store."""
        with self._lock:
            services, self._open = list(self._open.values()), {}
        for service in services:
            try:
                service.shutdown()
            except Exception:  # the others are closed all the same
                log.exception("could not close a service")


def _serve(service: RiskService, settings: Settings) -> None:
    """Start keeping today's status snapshots of the public rules (api.snapshots)."""
    from riskmap.api.access import public_rules
    from riskmap.api.snapshots import snapshot_dir

    try:
        rules = public_rules(settings)
    except Exception as e:  # every request naming the rule answers the error
        log.error("no status snapshot is computed ahead: %s", e)
        return
    directory = snapshot_dir(settings.database_url, settings.snapshot_dir)
    service.serve(
        rules, settings.min_public_count, directory, prerender_zoom=settings.prerender_zoom
    )


def service_of(app: FastAPI, settings: Settings) -> RiskService:
    """The application's service for these settings."""
    services: Services = app.state.services
    return services.get(settings)


def work_limits(settings: Settings) -> WorkLimits:
    """The limits of computations (RISKMAP_MAX_COMPUTATIONS, _MAX_QUEUED, _MAX_MEMORY_MB)."""
    if settings.max_memory_mb is not None:
        memory: int | None = int(settings.max_memory_mb * 2**20)
    else:
        total = machine_memory()
        memory = None if total is None else total // 2
    return WorkLimits(settings.max_computations, settings.max_queued, memory)


def get_service(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> RiskService:
    return service_of(request.app, settings)


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
