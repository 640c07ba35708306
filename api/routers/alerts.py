"""Early warning: ``GET /v1/alerts`` (signals of the prospective space-time scan over the
communities) and ``GET /v1/hotspots`` (Gi* hotspot classes). Both are computed through the
service's bounded computations, once per (data version, date, options), and kept."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import shapely
import shapely.geometry
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.geojson_answers import FC_RESPONSES, GeoJSONResponse, etag, layer_response
from riskmap.api.schemas import Alerts
from riskmap.geo.warning import DEFAULT_SIGNAL_DAYS

router = APIRouter(prefix="/v1", tags=["early warning"])

#: the scan of /v1/alerts: NYC's daily surveillance (../shared/docs/policies.md); only the
#: number of replications is a setting (RISKMAP_SCAN_REPLICATIONS)
STUDY_DAYS = 365
SCAN_OPTIONS: dict[str, Any] = {
    "prospective": True,
    "max_share": 0.5,
    "min_days": 2,
    "max_days": 30,
    "seed": 0,
}


def alerts_document(
    result: Any, layer: Any, version: int, exact: bool, min_count: int
) -> dict[str, Any]:
    """The signals of a scan as ``Alerts``: for the public, the communities, window,
    p-value and recurrence interval of each signal with at least ``min_count`` cases; with a
    key (``exact``), every signal with its counts and statistics."""
    frame = layer.frame
    index = {cid: i for i, cid in enumerate(frame["community_id"])}
    names = frame["name"].tolist() if "name" in frame.columns else [None] * len(frame)

    def place(cid: Any) -> dict[str, Any]:
        name = names[index[cid]]
        return {"id": str(cid), "name": None if name is None or name != name else str(name)}

    alerts, withheld = [], 0
    for c in result.signals(DEFAULT_SIGNAL_DAYS):
        if not exact and c.observed < min_count:
            withheld += 1
            continue
        area = shapely.union_all(frame.geometry.to_numpy()[[index[x] for x in c.locations]])
        a: dict[str, Any] = {
            "id": f"alert-{c.center}-{c.start.isoformat()}",
            "center": place(c.center),
            "communities": [place(x) for x in c.locations],
            "start": c.start,
            "end": c.end,
            "p_value": c.p_value,
            "recurrence_days": round(c.recurrence_days, 1),
            "geometry": shapely.geometry.mapping(area),
        }
        if exact:
            a |= {
                "observed": c.observed,
                "expected": round(c.expected, 3),
                "llr": round(c.llr, 6),
                "radius_km": round(c.radius_km, 3),
            }
        alerts.append(a)
    return {
        "at": result.end,
        "study_start": result.start,
        "data_version": version,
        "replications": result.replications,
        "min_recurrence_days": DEFAULT_SIGNAL_DAYS,
        "exact": exact,
        "withheld": withheld,
        "alerts": alerts,
    }


def public_dates(service: Any, at: dt.date) -> None:
    """Without a key, alerts are answered for today and for the last report date only: each
    other date is a scan of its own (about a minute of CPU on a city of 2,000 communities),
    and an anonymous caller walking through every date would keep a core busy for hours."""
    _, span = service.report_span()
    allowed = {dt.date.today()} | ({span[1]} if span else set())
    if at not in allowed:
        shown = " or ".join(sorted(d.isoformat() for d in allowed))
        raise HTTPException(
            401,
            f"at: alerts for {at.isoformat()} need an API key; without one, alerts are "
            f"answered for {shown} (today and the last report date)",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/alerts",
    operation_id="list_alerts",
    response_model=Alerts,
    responses={304: {"description": "not modified (If-None-Match matched the ETag)"}},
)
def list_alerts(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    settings: SettingsDep,
) -> Response:
    """Signals of the prospective space-time permutation scan (365-day study period, windows
    of 2 to 30 days ending on ``at``, circles of at most 50% of the cases, a signal at a
    recurrence interval of 100 days or more) over the communities. Without an API key: the
    communities, window, p-value and recurrence interval of signals with at least
    RISKMAP_MIN_PUBLIC_COUNT cases; with a key, every signal with its counts. The scan runs
    once per data version and date, whoever asks."""
    if not access.keyed:
        public_dates(service, at)
    options = SCAN_OPTIONS | {"replications": settings.scan_replications}
    version, layer, result = service.scan(at, STUDY_DAYS, **options)
    tag = etag(request, version, access.keyed)
    headers = {"Vary": "Authorization", "X-Data-Version": str(version), "ETag": tag}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    doc = alerts_document(result, layer, version, access.keyed, settings.min_public_count)
    return JSONResponse(Alerts.model_validate(doc).model_dump(mode="json"), headers=headers)


@router.get(
    "/hotspots",
    operation_id="list_hotspots",
    responses=FC_RESPONSES,
    response_class=GeoJSONResponse,
)
def list_hotspots(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: AtDep,
    settings: SettingsDep,
    res: Annotated[
        int, Query(ge=0, le=8, description="H3 resolution of the cells (8 or coarser)")
    ] = 8,
    on: Annotated[
        Literal["cells", "communities"], Query(description="H3 cells or communities")
    ] = "cells",
) -> Response:
    """Getis-Ord Gi* hotspots of the cases reported in the 14 days ending on ``at`` as
    GeoJSON: each cell or community with its class only (hot, cold, not significant; hot
    only where the place and its neighbours hold at least RISKMAP_MIN_PUBLIC_COUNT cases),
    for every caller."""
    version, frame = service.hotspots(
        at, res=res, on=on, days=14, public=True, min_count=settings.min_public_count
    )

    def build() -> dict[str, Any]:
        features = [
            {
                "type": "Feature",
                "id": str(r.id),
                "geometry": shapely.geometry.mapping(r.geometry),
                "properties": {"id": str(r.id), "class": str(cls)},
            }
            for r, cls in zip(frame.itertuples(index=False), frame["class"], strict=True)
        ]
        return {"type": "FeatureCollection", "features": features}

    return layer_response(request, version, build, keyed=access.keyed)
