"""``GET /v1/status``: the zone status of a place."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Annotated, Any

import h3
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from riskmap.api.access import Access, AccessDep, get_access, public_rules
from riskmap.api.answers import StatusParts, iso, iso_time
from riskmap.api.auth import optional_caller
from riskmap.api.bounds import date_range
from riskmap.api.deps import LatQ, LonQ, ServiceDep, SettingsDep, service_of
from riskmap.api.errors import Busy, unprocessable
from riskmap.api.routers.ingest import read_body
from riskmap.api.service import RiskService
from riskmap.api.settings import get_settings_of
from riskmap.api.snapshots import Served
from riskmap.geo.policy import NONE_LEVEL, Policy

router = APIRouter(prefix="/v1", tags=["status"])

# the parameters GET /v1/status reads itself (as api.access and api.auth describe them)
POLICY_DESCRIPTION = (
    "a preset id (GET /v1/policies); default: the service's rule. Without an API key only "
    "the rules GET /v1/policies marks public"
)
AT_DESCRIPTION = (
    "as-of date (YYYY-MM-DD); defaults to today (RISKMAP_TIMEZONE); from the first report "
    "date to the last plus the rule's longest lift (or today)"
)
AUTH_DESCRIPTION = "optional: Bearer <API key> of an analyst (or admin) sees every count"
AtQ = Annotated[dt.date | None, Query(description=AT_DESCRIPTION, examples=["2024-03-01"])]


class CommunityRef(BaseModel):
    id: str
    name: str | None


class Status(BaseModel):
    level: str = Field(description="a level id of the policy, or 'none'")
    label: str
    color: str
    zone_id: str | None
    community: CommunityRef | None = Field(description="the community containing the place")
    covered: bool = Field(
        description="the place lies in a community of the data; false: riskmap has no data "
        "there, so 'none' does not mean the place is safe"
    )
    since: dt.date | None = Field(description="first day of the place's current level")
    expected_lift: dt.date | None = Field(
        description="the day the level ends if no new qualifying case is reported"
    )
    policy: str
    at: dt.date
    data_version: int = Field(description="the data version the zones were computed from")
    computed_at: dt.datetime = Field(description="when the zones were computed (UTC)")
    data_through: dt.date | None = Field(
        description="the last report date of that data: an app can tell stale data from a "
        "safe place"
    )


# -- where an answer comes from --------------------------------------------------------------


def not_ready(policy: Policy, service: RiskService) -> Busy:
    """The 503 of a served rule whose first snapshot is not ready yet."""
    return Busy(
        f"the zones of {policy.id} for today ({service.today()}) are being computed (the "
        "server has no snapshot of them yet); try again in a few seconds",
        NOT_READY_RETRY_S,
    )


#: Retry-After (seconds) of a status read before the first snapshot of its rule
NOT_READY_RETRY_S = 5


def served_today(service: RiskService, policy: Policy, at: dt.date) -> Served | None:
    """The served snapshot answering ``policy`` at ``at`` when that is today under a served
    rule (raises the 503 of :func:`not_ready` when there is none yet); None: on demand."""
    if at != service.today() or not service.serves(policy):
        return None
    got = service.served_status(policy)
    if got is None:
        raise not_ready(policy, service)
    return got


def status_parts(
    service: RiskService, access: Access, at: dt.date
) -> tuple[StatusParts, dt.date, dict[str, Any]]:
    """The answer parts a caller's status look-ups come from, the date they are of and their
    freshness: today under a served rule, the served snapshot (never waits); else the
    snapshot of that date, computed once on demand (:meth:`RiskService.status_snapshot`)."""
    served = served_today(service, access.policy, at)
    if served is not None:
        return served.parts(access.public_min is not None), served.at, served.fresh
    snap, fresh = service.status_snapshot(access.policy, at, access.public_min)
    return service.status_parts(snap), snap.result.at, fresh


def get_status_at(
    service: ServiceDep,
    access: AccessDep,
    settings: SettingsDep,
    at: AtQ = None,
) -> dt.date:
    """The as-of date of a status request: today needs no bound (nor the data loaded)."""
    today = service.today()
    if at is None or at == today:
        return today
    return date_range(service, access.policy, settings.max_history_days).check(at, "at")


StatusAtDep = Annotated[dt.date, Depends(get_status_at)]


def _json(body: bytes, version: int) -> Response:
    return Response(body, media_type="application/json", headers={"X-Data-Version": str(version)})


@router.get("/status", operation_id="get_status", response_model=Status)
async def get_status(
    request: Request,
    lat: LatQ,
    lon: LonQ,
    policy: Annotated[str | None, Query(description=POLICY_DESCRIPTION)] = None,
    at: AtQ = None,
    authorization: Annotated[str | None, Header(description=AUTH_DESCRIPTION)] = None,
) -> Response:
    """The level of a place; without an API key against the public zones (see README,
    "Privacy"). Today's status under a rule the service serves comes from the snapshot
    computed ahead (503 with Retry-After until the first one is ready); other dates and rules
    are computed on demand."""
    settings = get_settings_of(request.app)
    service = service_of(request.app, settings)
    if authorization is None and (at is None or at == service.today()):
        # the lean path: no thread, no store, no pandas, no pydantic
        rules = public_rules(settings)
        chosen = rules[0] if policy is None else next((r for r in rules if r.id == policy), None)
        if chosen is not None:
            served = served_today(service, chosen, service.today())
            if served is not None:
                return _json(served.answer(lon, lat, public=True), served.data_version)

    def answer() -> Response:
        caller = optional_caller(request, service, settings, authorization)
        access = get_access(settings, caller, policy)
        day = get_status_at(service, access, settings, at)
        public = access.public_min is not None
        served = served_today(service, access.policy, day)
        if served is not None:
            return _json(served.answer(lon, lat, public), served.data_version)
        snap, fresh = service.status_snapshot(access.policy, day, access.public_min)
        head = {
            "policy": access.policy.id,
            "at": snap.result.at.isoformat(),
            "data_version": fresh["data_version"],
            "computed_at": iso_time(fresh["computed_at"]),
            "data_through": iso(fresh["data_through"]),
        }
        body = orjson.dumps(service.status_parts(snap).one(lon, lat) | head)
        return _json(body, fresh["data_version"])

    return await run_in_threadpool(answer)


# -- batches -------------------------------------------------------------------------------

BATCH_TYPES = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


class LevelInfo(BaseModel):
    label: str
    color: str


class BatchRow(BaseModel):
    level: str
    zone_id: str | None
    community_id: str | None
    covered: bool
    since: dt.date | None
    expected_lift: dt.date | None
    id: str | None = Field(None, description="the point's id, when the request gave one")


class BatchStatus(BaseModel):
    policy: str
    at: dt.date
    data_version: int
    computed_at: dt.datetime
    data_through: dt.date | None
    levels: dict[str, LevelInfo] = Field(description="label and colour of each level id")
    results: list[BatchRow] = Field(description="one answer per point, in the request's order")


def _points(kind: str, body: bytes, limit: int) -> pd.DataFrame:
    """lat, lon (and id when given) of each point of a batch body; 422 naming the row and
    field of the first bad value."""
    if kind == "json":
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise unprocessable(f"body: not JSON ({e})") from None
        pts = doc.get("points") if isinstance(doc, dict) else None
        if not isinstance(pts, list):
            raise unprocessable('body: expected {"points": [{"lat": ..., "lon": ...}, ...]}')
        if len(pts) > limit:
            raise unprocessable(f"points: {len(pts):,} points; at most {limit:,} in one batch")
        for i, p in enumerate(pts):
            if not isinstance(p, dict):
                raise unprocessable(f"points[{i}]: expected an object with lat and lon")
        frame = pd.DataFrame(
            {
                "lat": [p.get("lat") for p in pts],
                "lon": [p.get("lon") for p in pts],
                "id": [p.get("id") for p in pts],
            }
        )
        where = "points[{i}]"
    elif kind == "csv":
        try:
            frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise unprocessable(f"body: not a CSV table ({e})") from None
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        where = "row {row}"
    else:
        try:
            table = pq.read_table(io.BytesIO(body))
        except (pa.ArrowException, OSError, ValueError) as e:
            raise unprocessable(f"body: not a Parquet file ({e})") from None
        frame = table.to_pandas()
        if "geometry" in frame and not {"lat", "lon"} <= set(frame.columns):
            try:
                geoms = shapely.from_wkb(frame["geometry"].to_numpy())
            except (shapely.errors.GEOSException, TypeError, ValueError) as e:
                raise unprocessable(f"geometry: not WKB points ({e})") from None
            if len(geoms) and not (shapely.get_type_id(geoms) == 0).all():
                i = int(np.flatnonzero(shapely.get_type_id(geoms) != 0)[0])
                raise unprocessable(f"row {i + 1}: geometry: not a point")
            frame = frame.assign(lon=shapely.get_x(geoms), lat=shapely.get_y(geoms))
        where = "row {row}"
    missing = [c for c in ("lat", "lon") if c not in frame.columns]
    if missing:
        raise unprocessable(f"body: missing column(s) {', '.join(missing)}")
    if len(frame) > limit:
        raise unprocessable(f"body: {len(frame):,} points; at most {limit:,} in one batch")
    if len(frame) == 0:
        raise unprocessable("body: no point")
    out = {}
    for col, bound in (("lat", 90.0), ("lon", 180.0)):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (np.abs(values) > bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            place = where.format(i=i, row=i + 1)
            raw = frame[col].iat[i]
            shown = repr(raw) if isinstance(raw, str) or raw is None else f"{float(raw):g}"
            raise unprocessable(
                f"{place}: {col}: {shown} is not a number from {-bound:g} to {bound:g}"
            )
        out[col] = values
    ids = frame["id"] if "id" in frame.columns else None
    return pd.DataFrame(
        {
            "lat": out["lat"],
            "lon": out["lon"],
            "id": None if ids is None else [None if v is None else str(v) for v in ids],
        }
    )


@router.post(
    "/status/batch",
    operation_id="post_status_batch",
    response_model=BatchStatus,
)
async def post_status_batch(
    request: Request,
    service: ServiceDep,
    access: AccessDep,
    at: StatusAtDep,
    settings: SettingsDep,
) -> Response:
    """The status of many points at once, in order: JSON ``{"points": [{"lat", "lon",
    "id"?}, ...]}``, CSV with ``lat``, ``lon`` (and ``id``) columns, or Parquet / GeoParquet
    (``lat``, ``lon`` columns or point geometries); at most RISKMAP_MAX_BATCH_POINTS points.
    The answer is JSON, or CSV when the request asks for ``Accept: text/csv``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = BATCH_TYPES.get(ctype)
    if kind is None:
        raise HTTPException(
            415,
            f"unsupported Content-Type {ctype or '(none)'!r}: expected one of "
            f"{sorted(BATCH_TYPES)}",
        )
    body = await read_body(request, settings.max_upload_mb)
    points = await run_in_threadpool(_points, kind, body, settings.max_batch_points)

    def answer() -> tuple[pd.DataFrame, StatusParts, dt.date, dict[str, Any]]:
        parts, day, fresh = status_parts(service, access, at)
        table = parts.table(points["lon"].to_numpy(), points["lat"].to_numpy())
        table["id"] = points["id"]
        return table.astype(object).where(table.notna(), None), parts, day, fresh

    table, parts, day, fresh = await run_in_threadpool(answer)
    headers = {"X-Data-Version": str(fresh["data_version"])}
    if "text/csv" in request.headers.get("accept", ""):
        buf = io.StringIO()
        cols = [c for c in table.columns if c != "id" or table["id"].notna().any()]
        table[cols].to_csv(buf, index=False)
        return Response(buf.getvalue(), media_type="text/csv", headers=headers)
    doc = {
        "policy": access.policy.id,
        "at": day.isoformat(),
        "data_version": fresh["data_version"],
        "computed_at": fresh["computed_at"].isoformat(),
        "data_through": iso(fresh["data_through"]),
        "levels": {k: {"label": parts.label[k], "color": parts.color[k]} for k in parts.label},
        "results": table.to_dict("records"),
    }
    return Response(orjson.dumps(doc), media_type="application/json", headers=headers)


# -- cells ---------------------------------------------------------------------------------


class CellStatus(BaseModel):
    cell: str
    resolution: int
    level: str = Field(description="the highest level of any zone meeting the cell, or 'none'")
    uniform: bool = Field(
        description="the whole cell has that level (a device in the cell has it wherever it is)"
    )
    levels: list[str] = Field(description="every level meeting the cell, highest first")
    policy: str
    at: dt.date
    data_version: int
    computed_at: dt.datetime
    data_through: dt.date | None


@router.get("/status/cell/{cell}", operation_id="get_cell_status", response_model=CellStatus)
def get_cell_status(
    cell: str,
    service: ServiceDep,
    access: AccessDep,
    at: StatusAtDep,
) -> CellStatus:
    """The zone levels meeting an H3 cell (hexadecimal index, resolution 0 to 15), so a device
    can ask about its cell without sending its position: the highest level and whether it
    covers the whole cell. Without an API key against the public zones."""
    h = cell.strip().lower()
    try:
        ok = h3.is_valid_cell(h)
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise unprocessable(f"cell: {cell!r} is not an H3 cell index (hexadecimal)")
    parts, day, fresh = status_parts(service, access, at)
    boundary = h3.cell_to_boundary(h)  # (lat, lng) pairs
    poly = shapely.Polygon([(lng, lat) for lat, lng in boundary])
    geoms = parts.zones.geoms
    zone_level = parts.zone_level
    policy = access.policy
    meets = shapely.intersects(geoms, poly) if len(geoms) else np.zeros(0, bool)
    levels = sorted({str(v) for v in zone_level[meets]}, key=policy.rank)[::-1]
    level = levels[0] if levels else NONE_LEVEL
    if levels:
        top = shapely.union_all(geoms[meets & (zone_level == level)])
        uniform = bool(shapely.covers(top, poly))
    else:
        uniform = True
    return CellStatus(
        cell=h,
        resolution=h3.get_resolution(h),
        level=level,
        uniform=uniform,
        levels=levels,
        policy=policy.id,
        at=day,
        **fresh,
    )
