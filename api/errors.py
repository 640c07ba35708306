"""One table from riskmap's error classes to HTTP answers (as tipg's DEFAULT_STATUS_CODES)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from geo._errors import (
    InputFileError,
    NotFoundError,
    PolicyError,
    RiskmapError,
    StoreError,
    UnknownPolicyError,
)

DEFAULT_STATUS_CODES: dict[type[Exception], int] = {
    UnknownPolicyError: 404,
    NotFoundError: 404,
    PolicyError: 422,
    InputFileError: 422,
    StoreError: 503,
    RiskmapError: 400,
}


def add_exception_handlers(app: FastAPI) -> None:
    for exc_type, code in DEFAULT_STATUS_CODES.items():

        async def handler(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            return JSONResponse(status_code=code, content={"detail": str(exc)})

        app.add_exception_handler(exc_type, handler)
