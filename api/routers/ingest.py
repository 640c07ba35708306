"""Ingest over HTTP: ``POST /v1/cases``, ``/v1/communities``, ``/v1/units``, ``/v1/metrics``
and the reports.

Bodies are sent raw, their format given by ``Content-Type``; they go through the same code as
``riskmap ingest`` (a temporary file of the right kind, named ``upload.<ext>`` in every
message), in one atomic batch. The query parameters are the CLI's options.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from riskmap.api import schemas
from riskmap.api.auth import Caller, Officer, Reader
from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.errors import unprocessable
from riskmap.api.ingest import (
    IngestReport,
    ingest_cases,
    ingest_communities,
    ingest_metrics,
    ingest_units,
    input_limits,
)
from riskmap.geo._errors import InputFileError
from riskmap.geo.io import (
    CASES,
    COMMUNITIES,
    METRICS,
    ROLES,
    UNITS,
    check_date_format,
    check_encoding,
    media_types,
    parse_column_map,
)

router = APIRouter(prefix="/v1", tags=["ingest"])

# Content-Type -> the extension a body is read as, per kind: from the readers' format table
CASE_TYPES = media_types(CASES)
COMMUNITY_TYPES = media_types(COMMUNITIES)
METRIC_TYPES = media_types(METRICS)
UNIT_TYPES = media_types(UNITS)


async def read_body(request: Request, limit_mb: float) -> bytes:
    """The request body, at most ``limit_mb`` (413 beyond; 422 when empty)."""
    limit = int(limit_mb * 1024 * 1024)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit_mb:g} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit_mb:g} MB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise unprocessable("empty request body")
    return body


def _kind(request: Request, types: dict[str, str]) -> str:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in types:
        raise HTTPException(
            415, f"unsupported Content-Type {ctype or '(none)'!r}: expected one of {sorted(types)}"
        )
    return types[ctype]


def _report(rep: IngestReport) -> dict[str, Any]:
    c = rep.counts
    return {
        "batch_id": rep.batch_id,
        "kind": rep.kind,
        "rows_read": c.rows_read,
        "accepted": c.accepted,
        "inserted": c.inserted,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "rejected": c.rejected,
        "rejects": [{"row": r.row, "field": r.field, "reason": r.reason} for r in rep.rejects],
        "warnings": rep.warnings,
    }


ColumnsQ = Annotated[
    str | None,
    Query(
        description="map our field names to the body's columns, as the CLI's --columns, e.g. "
        "case_id=patient_id,reported=date,lat=latitude,lon=longitude,type="
    ),
]
EncodingQ = Annotated[
    str | None, Query(description="text encoding of a shapefile's .dbf, e.g. cp949")
]
DateFormatQ = Annotated[
    str | None,
    Query(
        description="how the dates are written, a strftime pattern such as %d/%m/%Y or "
        "%m/%d/%Y (YYYY-MM-DD is always read)"
    ),
]


def _options(
    columns: str | None = None,
    role: str | None = None,
    encoding: str | None = None,
    date_format: str | None = None,
) -> dict[str, Any]:
    """The query parameters checked as the CLI checks its options (422 naming the parameter)."""
    out: dict[str, Any] = {}
    try:
        out["columns"] = parse_column_map(columns) or None
    except ValueError as e:
        raise unprocessable(str(e), "query", "columns") from None
    if role is not None:
        if role.strip().lower().replace(" ", "_") not in ROLES:
            raise unprocessable(
                f"unknown role {role!r} (expected one of {', '.join(ROLES)})", "query", "role"
            )
        out["default_role"] = role
    if encoding is not None:
        try:
            check_encoding(encoding)
        except ValueError as e:
            raise unprocessable(str(e), "query", "encoding") from None
        out["encoding"] = encoding
    if date_format is not None:
        try:
            out["date_format"] = check_date_format(date_format)
        except ValueError as e:
            raise unprocessable(str(e), "query", "date_format") from None
    return out


async def _ingest(
    request: Request,
    types: dict[str, str],
    settings: Any,
    caller: Caller,
    run: Any,
    *,
    changed: Any = None,
    **kw: Any,
) -> dict[str, Any]:
    """Read the body into a temporary file of its kind and run ``run(path, **kw)`` on it, as
    the CLI does, on behalf of the caller's key. Messages name the file ``upload.<ext>``,
    never a path on the server."""
    suffix = _kind(request, types)
    body = await read_body(request, settings.max_upload_mb)
    name = f"upload{suffix}"
    with tempfile.TemporaryDirectory(prefix="riskmap-ingest-") as d:
        path = Path(d) / name
        path.write_bytes(body)
        del body
        try:
            rep = await run_in_threadpool(
                lambda: run(
                    path,
                    key_id=caller.key_id,
                    source=f"POST by key {caller.key_id}",
                    name=name,
                    limits=input_limits(settings),
                    **kw,
                )
            )
        except (InputFileError, ValueError) as e:
            message = str(e)
            for p in {d, str(Path(d).resolve())}:
                message = message.replace(p + "/", "").replace(p, "")
            raise unprocessable(message) from None
    if changed is not None:  # the served status snapshots catch up now (api.snapshots)
        changed()
    return _report(rep)


@router.post("/cases", operation_id="ingest_cases", response_model=schemas.IngestReport)
async def post_cases(
    request: Request,
    caller: Officer,
    service: ServiceDep,
    settings: SettingsDep,
    columns: ColumnsQ = None,
    role: Annotated[
        str | None,
        Query(description="role of rows with no role column or an empty role, e.g. residence"),
    ] = None,
    date_format: DateFormatQ = None,
) -> dict[str, Any]:
    """Case locations as a JSON array of objects (fields of the CSV), NDJSON, CSV, GeoJSON or
    GeoParquet; answers the validation report, also kept at ``GET /v1/ingest/{batch_id}``."""
    opts = _options(columns=columns, role=role, date_format=date_format)
    return await _ingest(
        request,
        CASE_TYPES,
        settings,
        caller,
        partial(ingest_cases, service.store),
        changed=service.data_changed,
        h3_res=settings.h3_resolution,
        layer=await run_in_threadpool(service.known_layer),
        **opts,
    )


@router.post("/communities", operation_id="ingest_communities", response_model=schemas.IngestReport)
async def post_communities(
    request: Request,
    caller: Officer,
    service: ServiceDep,
    settings: SettingsDep,
    columns: ColumnsQ = None,
    encoding: EncodingQ = None,
) -> dict[str, Any]:
    """Community polygons as GeoJSON, GeoPackage, a zipped shapefile or GeoParquet."""
    opts = _options(columns=columns, encoding=encoding)
    return await _ingest(
        request,
        COMMUNITY_TYPES,
        settings,
        caller,
        partial(ingest_communities, service.store),
        changed=service.data_changed,
        h3_res=settings.h3_resolution,
        **opts,
    )


@router.post("/metrics", operation_id="ingest_metrics", response_model=schemas.IngestReport)
async def post_metrics(
    request: Request,
    caller: Officer,
    service: ServiceDep,
    settings: SettingsDep,
    columns: ColumnsQ = None,
    date_format: DateFormatQ = None,
) -> dict[str, Any]:
    """Hospital figures per district and date (CSV)."""
    opts = _options(columns=columns, date_format=date_format)
    return await _ingest(
        request,
        METRIC_TYPES,
        settings,
        caller,
        partial(ingest_metrics, service.store),
        changed=service.data_changed,
        **opts,
    )


@router.post("/units", operation_id="ingest_units", response_model=schemas.IngestReport)
async def post_units(
    request: Request,
    caller: Officer,
    service: ServiceDep,
    settings: SettingsDep,
    level: Annotated[
        Literal["subdistrict", "district"] | None,
        Query(description="default: from the id column (subdistrict_id or district_id)"),
    ] = None,
    columns: ColumnsQ = None,
    encoding: EncodingQ = None,
) -> dict[str, Any]:
    """Names and populations of parent units (subdistricts, districts): GeoJSON, GeoPackage,
    zipped Shapefile, GeoParquet or CSV."""
    opts = _options(columns=columns, encoding=encoding)
    return await _ingest(
        request,
        UNIT_TYPES,
        settings,
        caller,
        partial(ingest_units, service.store),
        changed=service.data_changed,
        level=level,
        **opts,
    )


@router.get(
    "/ingest/{batch_id}",
    operation_id="get_ingest_report",
    response_model=schemas.StoredIngestReport,
)
def get_ingest_report(
    batch_id: Annotated[int, PathParam(ge=1, le=2**63 - 1, description="a batch id")],
    caller: Reader,
    service: ServiceDep,
) -> dict[str, Any]:
    """The validation report of a batch (counts, rejected rows, warnings)."""
    rep = service.store.batch_report(batch_id)
    if rep is None:
        raise HTTPException(404, f"no batch {batch_id}")
    return rep
