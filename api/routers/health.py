"""``GET /healthz``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from riskmap.api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz(service: ServiceDep, response: Response) -> dict[str, object]:
    response.headers["Cache-Control"] = "no-store"
    service.store.check()  # a damaged or unreachable store answers 503 (api/errors.py)
    # counts of cases would be case-level data below the public minimum: not shown here
    return {"status": "ok", "data_version": service.store.data_version}
