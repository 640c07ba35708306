"""``GET /v1/zones/cells``: the zones as H3 cells and exact polygons, so that a device decides
its own status without sending its position (:mod:`geo.device` builds the answer,
:mod:`api.device_client` is the reference client; README, "Status on the device")."""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.geojson_answers import weak_etag
from riskmap.api.schemas import DeviceCells
from riskmap.api.service import RiskService, Snapshot, policy_key
from riskmap.api.settings import Settings
from riskmap.geo.device import device_cells, vertex_count
from riskmap.geo.policy import NONE_LABEL, NONE_LEVEL

router = APIRouter(prefix="/v1", tags=["layers"])

#: the answer's layout: part of the ETag, so that a server with another layout never
#: confirms a device's copy
FORMAT = 1
#: coarsest resolution of the boundary cells when an answer is coarsened to fit
MIN_RES = 5
#: encoded answers kept per service (each a snapshot's cells)
CACHE = 8

_cache: weakref.WeakKeyDictionary[
    RiskService, OrderedDict[tuple[Any, ...], bytes | HTTPException]
] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _etag(snap: Snapshot, public_min: int | None, settings: Settings) -> str:
    """A weak ETag of the data version, the rule (its whole definition), the date, the view
    (exact, or public with its minimum count) and the settings that shape the answer."""
    view = "exact" if public_min is None else f"public-{public_min}"
    key = (
        f"{FORMAT}|{snap.data_version}|{policy_key(snap.result.policy)}|{snap.result.at}|"
        f"{view}|{settings.device_cells_res}|{settings.max_device_items}"
    )
    return weak_etag(key)


def _build(snap: Snapshot, fresh: dict[str, Any], public: bool, settings: Settings) -> bytes:
    """The encoded answer: at RISKMAP_DEVICE_CELLS_RES, coarser while it holds more than
    RISKMAP_MAX_DEVICE_ITEMS items, else 413."""
    result = snap.result
    policy = result.policy
    zones = result.zones
    geoms, levels = zones.geometry.to_numpy(), zones["level"].to_numpy()
    limit = settings.max_device_items
    what = f"the zones of {policy.id} at {result.at}"
    vertices = vertex_count(geoms)
    if vertices > limit:
        raise HTTPException(
            413,
            f"{what} have {vertices:,} polygon vertices; a device answer holds at most "
            f"{limit:,} items (RISKMAP_MAX_DEVICE_ITEMS)",
        )
    res = settings.device_cells_res
    while True:
        cells = device_cells(geoms, levels, policy, res)
        if cells.size <= limit or res <= MIN_RES:
            break
        res -= 1
    if cells.size > limit:
        raise HTTPException(
            413,
            f"{what} need {cells.size:,} items (cells, boundary cells and polygon vertices) "
            f"even at H3 resolution {res}; a device answer holds at most {limit:,} "
            "(RISKMAP_MAX_DEVICE_ITEMS)",
        )
    doc = {
        "policy": policy.id,
        "at": result.at.isoformat(),
        "public": public,
        "data_version": fresh["data_version"],
        "computed_at": fresh["computed_at"].isoformat(),
        "data_through": None if fresh["data_through"] is None else str(fresh["data_through"]),
        "items": cells.size,
        "none": {"id": NONE_LEVEL, "label": NONE_LABEL, "color": policy.none_color},
        **cells.to_dict(),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _answer(
    service: RiskService, snap: Snapshot, fresh: dict[str, Any], tag: str, settings: Settings
) -> bytes:
    """The answer of a snapshot, built once (one computation per key, bounded with the zone
    computations) and kept for the last few snapshots (a 413 too)."""
    key = (tag, id(snap))
    with _cache_lock:
        kept = _cache.setdefault(service, OrderedDict())
        got = kept.get(key)
        if got is not None:
            kept.move_to_end(key)
    if got is None:

        def compute() -> bytes | HTTPException:
            try:
                body: bytes | HTTPException = _build(snap, fresh, fresh["public"], settings)
            except HTTPException as e:  # too large: kept too, never built again
                body = e
            with _cache_lock:
                kept[key] = body
                while len(kept) > CACHE:
                    kept.popitem(last=False)
            return body

        got = service.flights.run(("device-cells", *key), compute)
    if isinstance(got, HTTPException):
        raise HTTPException(got.status_code, got.detail)
    return got


@router.get(
    "/zones/cells",
    operation_id="get_zone_cells",
    responses={
        200: {"model": DeviceCells, "description": "the zones as H3 cells and exact polygons"},
        304: {"description": "not modified (If-None-Match matched the ETag)"},
        413: {"description": "more than RISKMAP_MAX_DEVICE_ITEMS items even at resolution 5"},
    },
)
async def get_zone_cells(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    settings: SettingsDep,
) -> Response:
    """Per level, the compact H3 cells wholly inside its zones and the boundary cells with
    the zone polygons to test, so that a device decides its own status without sending its
    position (algorithm: README, "Status on the device"). Without an API key the public
    zones, as ``GET /v1/status`` answers them."""
    public_min = access.public_min
    snap, fresh = await run_in_threadpool(service.status_snapshot, access.policy, at, public_min)
    tag = _etag(snap, public_min, settings)
    headers = {"ETag": tag, "Vary": "Authorization", "X-Data-Version": str(snap.data_version)}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    body = await run_in_threadpool(
        _answer, service, snap, fresh | {"public": public_min is not None}, tag, settings
    )
    return Response(body, media_type="application/json", headers=headers)
