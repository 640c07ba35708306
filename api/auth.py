"""API keys: ``Authorization: Bearer <key>`` and roles.

* ``officer``: writes cases, communities and hospital figures;
* ``analyst``: reads case-level aggregates below the public minimum count and ingest reports;
* ``admin``: manages keys (and may do everything else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from api.deps import ServiceDep

ROLES = ("officer", "analyst", "admin")


@dataclass(frozen=True)
class Caller:
    key_id: str
    role: str


def _caller(service: ServiceDep, authorization: str | None) -> Caller:
    if not authorization:
        raise HTTPException(
            401,
            "this route needs an API key: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, key = authorization.partition(" ")
    found = service.store.check_key(key.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        raise HTTPException(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return Caller(*found)


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency that admits callers whose key has one of ``roles`` (admin always)."""

    def dep(
        service: ServiceDep,
        authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
    ) -> Caller:
        caller = _caller(service, authorization)
        if caller.role != "admin" and caller.role not in roles:
            raise HTTPException(
                403, f"a key with role {caller.role!r} may not do this (needs {' or '.join(roles)})"
            )
        return caller

    return dep


def optional_caller(
    service: ServiceDep,
    authorization: Annotated[
        str | None,
        Header(description="optional: Bearer <API key> of an analyst (or admin) sees every count"),
    ] = None,
) -> Caller | None:
    """The caller of a public route that shows more to some keys: None without a key."""
    return None if authorization is None else _caller(service, authorization)


Officer = Annotated[Caller, Depends(require("officer"))]
Reader = Annotated[Caller, Depends(require("officer", "analyst"))]
Admin = Annotated[Caller, Depends(require("admin"))]
MaybeCaller = Annotated[Caller | None, Depends(optional_caller)]
