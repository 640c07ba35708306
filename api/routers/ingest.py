"""Ingest over HTTP: ``POST /v1/cases``, ``/v1/communities``, ``/v1/units``, ``/v1/metrics``
and the reports.

Bodies are sent raw, their format given by ``Content-Type``; they go through the same code as
``riskmap ingest`` (a temporary file of the right kind), in one atomic batch.
"""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.auth import Caller, Officer, Reader
from api.deps import ServiceDep, SettingsDep
from api.errors import unprocessable
from api.ingest import (
    IngestReport,
    ingest_cases,
    ingest_communities,
    ingest_metrics,
    ingest_units,
)

router = APIRouter(prefix="/v1", tags=["ingest"])

CASE_TYPES = {
    "application/json": ".json-records",
    "application/x-ndjson": ".ndjson",
    "application/ndjson": ".ndjson",
    "text/csv": ".csv",
    "application/geo+json": ".geojson",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
}
COMMUNITY_TYPES = {
    "application/geo+json": ".geojson",
    "application/json": ".geojson",
    "application/geopackage+sqlite3": ".gpkg",
    "application/zip": ".zip",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
}
METRIC_TYPES = {"text/csv": ".csv"}
UNIT_TYPES = {**COMMUNITY_TYPES, "text/csv": ".csv"}


async def _body(request: Request, limit_mb: float) -> bytes:
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


def _records_to_parquet(body: bytes, ndjson: bool, path: Path) -> None:
    """JSON records to a plain Parquet table of strings (row = 1-based record number)."""
    try:
        if ndjson:
            lines = [ln for ln in body.decode("utf-8").splitlines() if ln.strip()]
            records = []
            for i, ln in enumerate(lines, start=1):
                try:
                    records.append(json.loads(ln))
                except json.JSONDecodeError as e:
                    raise unprocessable(f"NDJSON line {i}: not JSON: {e.msg}") from None
        else:
            records = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise unprocessable(f"body is not JSON: {e}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise unprocessable("expected a JSON array of objects (one per case location)")
    if not records:
        raise unprocessable("no records in the body")
    frame = pd.DataFrame.from_records(records)
    frame = frame.map(lambda v: None if v is None else str(v))
    frame.to_parquet(path, index=False)


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


async def _ingest(
    request: Request, types: dict[str, str], limit_mb: float, caller: Caller, run: Any, **kw: Any
) -> dict[str, Any]:
    """Read the body into a temporary file of its kind and run ``run(path, **kw)`` on it, as
    the CLI does, on behalf of the caller's key."""
    suffix = _kind(request, types)
    body = await _body(request, limit_mb)
    with tempfile.TemporaryDirectory(prefix="riskmap-ingest-") as d:
        if suffix in (".json-records", ".ndjson"):
            path = Path(d) / "request.parquet"
            _records_to_parquet(body, suffix == ".ndjson", path)
        else:
            path = Path(d) / f"request{suffix}"
            path.write_bytes(body)
        rep = await run_in_threadpool(
            lambda: run(path, key_id=caller.key_id, source=f"POST by key {caller.key_id}", **kw)
        )
    return _report(rep)


@router.post("/cases", operation_id="ingest_cases")
async def post_cases(
    request: Request, caller: Officer, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """Case locations as a JSON array of objects (fields of the CSV), NDJSON, CSV, GeoJSON or
    GeoParquet; answers the validation report, also kept at ``GET /v1/ingest/{batch_id}``."""
    return await _ingest(
        request,
        CASE_TYPES,
        settings.max_upload_mb,
        caller,
        partial(ingest_cases, service.store),
        h3_res=settings.h3_resolution,
    )


@router.post("/communities", operation_id="ingest_communities")
async def post_communities(
    request: Request, caller: Officer, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """Community polygons as GeoJSON, GeoPackage, a zipped shapefile or GeoParquet."""
    return await _ingest(
        request,
        COMMUNITY_TYPES,
        settings.max_upload_mb,
        caller,
        partial(ingest_communities, service.store),
        h3_res=settings.h3_resolution,
    )


@router.post("/metrics", operation_id="ingest_metrics")
async def post_metrics(
    request: Request, caller: Officer, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """Hospital figures per district and date (CSV)."""
    return await _ingest(
        request,
        METRIC_TYPES,
        settings.max_upload_mb,
        caller,
        partial(ingest_metrics, service.store),
    )


@router.post("/units", operation_id="ingest_units")
async def post_units(
    request: Request,
    caller: Officer,
    service: ServiceDep,
    settings: SettingsDep,
    level: Annotated[
        Literal["subdistrict", "district"] | None,
        Query(description="default: from the id column (subdistrict_id or district_id)"),
    ] = None,
) -> dict[str, Any]:
    """Names and populations of parent units (subdistricts, districts): GeoJSON, GeoPackage,
    zipped Shapefile, GeoParquet or CSV."""
    return await _ingest(
        request,
        UNIT_TYPES,
        settings.max_upload_mb,
        caller,
        partial(ingest_units, service.store),
        level=level,
    )


@router.get("/ingest/{batch_id}", operation_id="get_ingest_report")
def get_ingest_report(batch_id: int, caller: Reader, service: ServiceDep) -> dict[str, Any]:
    """The validation report of a batch (counts, rejected rows, warnings)."""
    rep = service.store.batch_report(batch_id)
    if rep is None:
        raise HTTPException(404, f"no batch {batch_id}")
    return rep
