"""Assembles the FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from riskmap.api.deps import Services
from riskmap.api.errors import add_exception_handlers
from riskmap.api.fastpath import GZIP_MIN, FastPaths
from riskmap.api.middleware import add_middleware
from riskmap.api.routers import (
    aggregates,
    alerts,
    collections,
    device,
    docs,
    health,
    history,
    ingest,
    keys,
    layers,
    map,
    planner,
    policies,
    report,
    status,
)
from riskmap.api.security import add_security_headers
from riskmap.api.settings import get_settings_of
from riskmap.tiles.mvt import MVT_MEDIA_TYPE

log = logging.getLogger("riskmap")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application owns its services (stores, caches, computations): the one of the
    settings is opened at start-up (its status snapshots start computing in the background,
    api.snapshots), others when first needed; all are closed when the application stops."""
    try:
        app.state.services.get(get_settings_of(app))
    except Exception as e:  # the requests answer the error (e.g. a store that is down)
        log.error("could not open the store at start-up: %s", e)
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
        docs_url=None,  # /docs and /redoc: api.routers.docs, with their own assets
        redoc_url=None,
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
        report.router,
        health.router,
        map.router,
        planner.router,
        collections.router,
        collections.conformance_router,
        device.router,
    ):
        app.include_router(r)
    docs.add_docs(app)
    add_security_headers(app)  # wraps every other middleware but gzip
    # outermost: compresses JSON, GeoJSON, HTML and tiles when the client accepts gzip (tiles
    # come compressed from the tile cache already: an answer with Content-Encoding passes)
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MIN,
        compresslevel=6,
        # tiles come compressed (or not, as asked) from the tile route: passed untouched
        exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, MVT_MEDIA_TYPE),
    )
    # outside even gzip: the apps' plain status read and the map's cached tiles, answered
    # before any routing (the routes' answers, byte for byte; see api.fastpath)
    app.add_middleware(FastPaths, owner=app)
    return app


app = create_app()
