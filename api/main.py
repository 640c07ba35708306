"""Assembles the FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from riskmap.api.errors import add_exception_handlers
from riskmap.api.middleware import add_middleware
from riskmap.api.routers import (
    aggregates,
    health,
    history,
    ingest,
    keys,
    layers,
    map,
    policies,
    status,
)
from riskmap.api.security import add_security_headers


def create_app() -> FastAPI:
    app = FastAPI(
        title="riskmap",
        version="0.1.0",
        description="Risk zones for community-based epidemic prevention and control.",
    )
    add_exception_handlers(app)
    add_middleware(app)
    for r in (
        aggregates.router,
        history.router,
        ingest.router,
        keys.router,
        status.router,
        layers.router,
        policies.router,
        health.router,
        map.router,
    ):
        app.include_router(r)
    add_security_headers(app)  # last: wraps every other middleware
    return app


app = create_app()
