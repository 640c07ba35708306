"""API keys (admin): ``POST /v1/keys``, ``GET /v1/keys``, ``DELETE /v1/keys/{key_id}``, and
``GET /v1/audit``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from riskmap.api.auth import Admin
from riskmap.api.deps import ServiceDep

router = APIRouter(prefix="/v1", tags=["keys"])


class NewKey(BaseModel):
    role: Literal["officer", "analyst", "admin"]
    name: str = Field("", max_length=200, description="who or what uses the key")


@router.post("/keys", operation_id="create_key", status_code=201)
def create_key(body: NewKey, caller: Admin, service: ServiceDep) -> dict[str, Any]:
    """A new key; the key itself is shown only in this answer."""
    key_id, key = service.store.create_key(body.role, body.name, by=caller.key_id)
    return {"key_id": key_id, "role": body.role, "name": body.name, "key": key}


@router.get("/keys", operation_id="list_keys")
def list_keys(caller: Admin, service: ServiceDep) -> list[dict[str, Any]]:
    return service.store.api_keys()


@router.delete("/keys/{key_id}", operation_id="revoke_key", status_code=204)
def revoke_key(key_id: str, caller: Admin, service: ServiceDep) -> None:
    if not service.store.revoke_key(key_id, by=caller.key_id):
        raise HTTPException(404, f"no active key {key_id}")


@router.get("/audit", operation_id="audit_log")
def audit_log(caller: Admin, service: ServiceDep) -> list[dict[str, Any]]:
    """Every write (ingest batches, key changes) with its actor (the key that made it, or
    ``cli:<os user>`` for the command line), and every failed authentication (actor
    ``client:<address>``, or the key for a wrong role; the route and the reason in
    ``detail``)."""
    return service.store.audit_log()
