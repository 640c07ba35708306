"""The daily situation report from the store: ``riskmap report`` and ``GET /v1/report``.

The parts come from the service's cached, bounded computations (the zones of the day, the
zone events, the scan of ``GET /v1/alerts`` with the same options, the hotspots of
``GET /v1/hotspots``); the page (measures, plots, map: :mod:`tiles.report`) is then built
through the service's ``Flights`` once per (data version, rule, date, scan replications,
minimum public count) and the last :data:`REPORT_CACHE` pages of each service are kept.

The report holds exact figures (case counts per district and per day, zones as computed):
it is for analysts (the route needs an analyst's or admin's key; the command line reads the
store directly).
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import OrderedDict
from typing import Any

from riskmap.api.routers.alerts import SCAN_OPTIONS, STUDY_DAYS, alerts_document
from riskmap.api.service import RiskService
from riskmap.geo._errors import StoreError
from riskmap.geo.policy import Policy
from riskmap.tiles.report import Page, render_report, report_data

#: report pages kept per service (a page is about half a megabyte)
REPORT_CACHE = 8
#: the hotspots of the report: those of GET /v1/hotspots (its defaults)
HOTSPOT_OPTIONS: dict[str, Any] = {"res": 8, "on": "cells", "days": 14, "public": True}

_pages: weakref.WeakKeyDictionary[RiskService, OrderedDict[tuple[Any, ...], Page]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _cached(service: RiskService, key: tuple[Any, ...]) -> Page | None:
    with _lock:
        pages = _pages.get(service)
        if pages is None or key not in pages:
            return None
        pages.move_to_end(key)
        return pages[key]


def _keep(service: RiskService, key: tuple[Any, ...], page: Page) -> None:
    with _lock:
        pages = _pages.setdefault(service, OrderedDict())
        for k in [k for k in pages if k[1] != key[1]]:  # other data versions
            del pages[k]
        pages[key] = page
        while len(pages) > REPORT_CACHE:
            pages.popitem(last=False)


def situation_report(
    service: RiskService,
    policy: Policy,
    at: dt.date,
    *,
    replications: int = 999,
    min_count: int = 5,
) -> tuple[int, Page]:
    """(data version, the report: one HTML page and its Content-Security-Policy) of the
    zones under ``policy`` as of ``at``: computed once per (data version, rule, date,
    replications, min_count)."""
    for _ in range(5):  # the parts of one data version
        version, layer, cases = service.data()
        key = ("report", version, policy.model_dump_json(), at, replications, min_count)
        page = _cached(service, key)
        if page is not None:
            return version, page
        # the parts, each through its own cached computation (never a flight in a flight)
        snap = service.snapshot(policy, at)
        events = service.zone_history(policy, at - dt.timedelta(days=1), at)
        scan_version, scan_layer, scan = service.scan(
            at, STUDY_DAYS, **(SCAN_OPTIONS | {"replications": replications})
        )
        alerts = alerts_document(scan, scan_layer, scan_version, True, min_count)
        hot_version, hot = service.hotspots(at, min_count=min_count, **HOTSPOT_OPTIONS)
        units = service.units()
        span_version, span = service.report_span()
        if {snap.data_version, scan_version, hot_version, span_version} == {version}:
            break
    else:
        raise StoreError("the data is changing; try again")

    def build() -> Page:
        data = report_data(
            snap.result,
            layer,
            cases,
            data_version=version,
            events=events,
            alerts=alerts,
            hotspots=hot,
            units=units,
            data_through=None if span is None else span[1],
        )
        return render_report(data)

    page = service.flights.run(key, build)
    _keep(service, key, page)
    return version, page
