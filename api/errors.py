"""One table from riskmap's error classes to HTTP answers (as tipg's DEFAULT_STATUS_CODES)."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from riskmap.api.store import StoreDamagedError, damage
from riskmap.geo._cancel import Cancelled
from riskmap.geo._errors import (
    InputFileError,
    NotFoundError,
    PolicyError,
    RiskmapError,
    StoreError,
    UnknownPolicyError,
)

log = logging.getLogger("riskmap")


class Busy(RiskmapError):
    """The server cannot do this work now (too many computations, memory short, shutting
    down, time limit): a 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(message)


DEFAULT_STATUS_CODES: dict[type[Exception], int] = {
    UnknownPolicyError: 404,
    NotFoundError: 404,
    PolicyError: 422,
    InputFileError: 422,
    StoreDamagedError: 503,
    StoreError: 503,
    RiskmapError: 400,
    # a body nested deeper than the parser can go (bodies read by riskmap are checked first)
    RecursionError: 422,
    # a date or number of the request beyond what can be computed with (e.g. 9999-12-31 + 1 day)
    OverflowError: 422,
    # SQLite errors that escaped the store: a damaged file or a busy database is a 503
    sqlite3.DatabaseError: 503,
}


def unprocessable(msg: str, *loc: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors (``detail`` is a list), so that every
    422 matches the documented schema."""
    return HTTPException(
        422, detail=[{"loc": list(loc) or ["body"], "msg": msg, "type": "value_error"}]
    )


def _detail(exc: Exception, code: int) -> object:
    if isinstance(exc, sqlite3.DatabaseError):
        damaged = damage(exc)
        if damaged is not None:
            exc = damaged
        elif not isinstance(exc, sqlite3.OperationalError):  # integrity, programming: a bug
            raise exc
    if isinstance(exc, RecursionError):
        return [{"loc": ["body"], "msg": "the body is nested too deeply", "type": "value_error"}]
    if isinstance(exc, OverflowError):
        msg = f"a date or number of the request is out of range ({exc})"
        return [{"loc": ["query"], "msg": msg, "type": "value_error"}]
    if code == 422:
        return [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
    if isinstance(exc, StoreDamagedError):
        log.error("store damaged: %s", exc)
        return exc.public
    if isinstance(exc, StoreError | sqlite3.DatabaseError):  # details (database, host): the log
        log.error("store unavailable: %s", exc)
        return "the store is unavailable; try again later"
    return str(exc)


def add_exception_handlers(app: FastAPI) -> None:
    for exc_type, code in DEFAULT_STATUS_CODES.items():

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            headers = {"Retry-After": "30"} if code == 503 else None
            return JSONResponse(
                status_code=code, content={"detail": _detail(exc, code)}, headers=headers
            )

        app.add_exception_handler(exc_type, handler)

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        retry = exc.retry_after if isinstance(exc, Busy) else 5
        return JSONResponse(
            status_code=503, content={"detail": str(exc)}, headers={"Retry-After": str(retry)}
        )

    app.add_exception_handler(Busy, busy)
    app.add_exception_handler(Cancelled, busy)
