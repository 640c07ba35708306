"""Assembles the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from riskmap.api.deps import Services
from riskmap.api.errors import add_exception_handlers
from riskmap.api.middleware import add_middleware
from riskmap.api.routers import (
    aggregates,
    alerts,
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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application owns its services (stores, caches, computations): they are opened
    when first needed and closed when the application stops."""
    try:
        yield
    finally:
        app.state.services.close()


def create_app() -> FastAPI:
    app = FastAPI(
        title="riskmap",
        version="0.1.0",
        description="Risk zones for community-based epidemic prevention and control.",
        lifespan=lifespan,
    )
    app.state.services = Services()
    add_exception_handlers(app)
    add_middleware(app)
    for r in (
        aggregates.router,
        alerts.router,
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
