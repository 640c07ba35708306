"""One table from riskmap's error classes to HTTP answers (as tipg's DEFAULT_STATUS_CODES)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from geo._cancel import Cancelled
from geo._errors import (
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
    StoreError: 503,
    RiskmapError: 400,
}


def unprocessable(msg: str, *loc: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors (``detail`` is a list), so that every
    422 matches the documented schema."""
    return HTTPException(
        422, detail=[{"loc": list(loc) or ["body"], "msg": msg, "type": "value_error"}]
    )


def add_exception_handlers(app: FastAPI) -> None:
    for exc_type, code in DEFAULT_STATUS_CODES.items():

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            if code == 422:
                detail: object = [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
            elif isinstance(exc, StoreError):  # the details (database, host) are for the log
                log.error("store unavailable: %s", exc)
                detail = "the store is unavailable; try again later"
            else:
                detail = str(exc)
            return JSONResponse(status_code=code, content={"detail": detail})

        app.add_exception_handler(exc_type, handler)

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        retry = exc.retry_after if isinstance(exc, Busy) else 5
        return JSONResponse(
            status_code=503, content={"detail": str(exc)}, headers={"Retry-After": str(retry)}
        )

    app.add_exception_handler(Busy, busy)
    app.add_exception_handler(Cancelled, busy)
