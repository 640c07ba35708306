"""Rate limits on the public status routes, a time limit on every request, and the
``Cache-Control`` of every answer (:data:`CACHE_CONTROL`, one row per route family).

A GET request holds a :class:`api.flights.Claim` while it runs: its deadline (the time limit)
and whether its client is still there. Computations it waits for stop when every request
waiting for them has gone (see :mod:`api.flights`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from riskmap.api.auth import client_address
from riskmap.api.flights import Claim, claiming
from riskmap.api.ratelimit import RateLimit
from riskmap.api.settings import get_settings_of

RATE_LIMITED_PREFIXES = ("/v1/status",)


class Limits:
    """Pure ASGI middleware (it must see the client leave while the answer is computed)."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner
        self._limits: dict[str, RateLimit] = {}  # one per storage (settings may change)

    def _rate_limit(self, storage: str) -> RateLimit:
        got = self._limits.get(storage)
        if got is None:
            got = self._limits.setdefault(storage, RateLimit(storage))
        return got

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings_of(self.owner)
        rate = settings.rate_limit_per_minute
        storage = settings.rate_limit_storage or "memory://"
        if rate > 0 and settings.workers > 1 and storage.startswith("memory:"):
            # counters in each worker's memory: the kernel spreads connections over the
            # workers, so each allows its share (riskmap serve --workers shares a file instead)
            rate = max(1, math.ceil(rate / settings.workers))
        if rate > 0 and scope["path"].startswith(RATE_LIMITED_PREFIXES):
            peer = scope["client"][0] if scope.get("client") else "unknown"
            forwarded = Headers(scope=scope).get("x-forwarded-for")
            client = client_address(peer, forwarded, settings.trusted_proxies)
            limit = self._rate_limit(storage)
            if storage.startswith("memory:"):
                wait = limit.take(client, rate)
            else:  # a file or a server: off the event loop
                wait = await asyncio.to_thread(limit.take, client, rate)
            if wait > 0:
                response = JSONResponse(
                    {"detail": f"too many requests: at most {rate} a minute"},
                    status_code=429,
                    headers={"Retry-After": str(math.ceil(wait))},
                )
                await response(scope, receive, send)
                return
        if scope["method"] not in ("GET", "HEAD"):  # a write must finish: its batch is atomic
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, settings.request_timeout_s)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: float) -> None:
        claim = Claim(time.monotonic() + limit)
        state: dict[str, Any] = {"started": False, "answered": False, "gone": False}
        inbox: asyncio.Queue[Message] = asyncio.Queue()

        async def watch() -> None:  # the only reader of `receive`: sees the client leave
            while True:
                message = await receive()
                await inbox.put(message)
                if message["type"] == "http.disconnect":
                    state["gone"] = True
                    claim.leave("the client disconnected")
                    return

        async def app_receive() -> Message:
            if state["gone"] and inbox.empty():
                return {"type": "http.disconnect"}
            return await inbox.get()

        async def app_send(message: Message) -> None:
            if state["answered"]:  # the time limit answered already
                return
            state["started"] = True
            await send(message)

        with claiming(claim):  # the app's task (and its threads) inherit the claim
            task = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        watcher = asyncio.ensure_future(watch())
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
            if task in done:
                task.result()
                return
            claim.leave("time limit")
            if not state["started"]:
                state["answered"] = True
                response = JSONResponse(
                    {"detail": f"the request took longer than {limit:g} s"},
                    status_code=503,
                    headers={"Retry-After": "5"},
                )
                await response(scope, app_receive, send)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        finally:
            if not task.done():  # this request itself was cancelled (server shutting down)
                claim.leave("the server is shutting down")
                task.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


@dataclass(frozen=True)
class CachePolicy:
    """``Cache-Control`` of a route family's answers: to callers without a key, and to
    callers that sent one (``keyed``; default the same)."""

    public: str
    keyed: str | None = None


#: (method or "*", path, policy): the first row whose path is the request's or above it
#: (``/v1/status`` covers ``/v1/status/history``; ``/`` covers everything) is used. Error
#: answers (4xx, 5xx) are never stored. "Keyed": the request sent an Authorization header
#: (a wrong key is a 401, an error).
CACHE_CONTROL: tuple[tuple[str, str, CachePolicy], ...] = (
    ("GET", "/v1/status", CachePolicy("no-store")),  # and /v1/status/history
    ("GET", "/v1/zones/history", CachePolicy("no-store")),
    ("GET", "/v1/zones", CachePolicy("public, max-age=60", "private, max-age=60")),
    ("GET", "/v1/communities", CachePolicy("public, max-age=60", "private, max-age=60")),
    ("GET", "/v1/districts", CachePolicy("public, max-age=300")),
    ("GET", "/v1/aggregates", CachePolicy("public, max-age=60", "private, no-store")),
    ("GET", "/v1/alerts", CachePolicy("public, max-age=60", "private, max-age=60")),
    ("GET", "/v1/hotspots", CachePolicy("public, max-age=60", "private, max-age=60")),
    ("GET", "/v1/policies", CachePolicy("no-cache")),
    ("GET", "/collections", CachePolicy("public, max-age=60", "private, max-age=60")),
    ("GET", "/conformance", CachePolicy("public, max-age=3600")),
    ("GET", "/docs-assets/", CachePolicy("public, max-age=86400")),
    ("GET", "/static/deckgl.js", CachePolicy("public, max-age=86400")),
    ("GET", "/static/", CachePolicy("no-cache")),
    ("GET", "/openapi.json", CachePolicy("no-cache")),
    ("GET", "/docs", CachePolicy("no-cache")),
    ("*", "/", CachePolicy("no-store")),  # everything else: the map page, keys, audit, ingest
)
ERROR_CACHE_CONTROL = "no-store"


def cache_control(method: str, path: str, keyed: bool, status: int) -> str:
    """The ``Cache-Control`` of an answer (see :data:`CACHE_CONTROL`)."""
    if status >= 400:
        return ERROR_CACHE_CONTROL
    method = "GET" if method == "HEAD" else method
    for m, prefix, policy in CACHE_CONTROL:
        if m not in ("*", method):
            continue
        below = path.startswith(prefix if prefix.endswith("/") else prefix + "/")
        if path == prefix or below:
            return policy.keyed if keyed and policy.keyed is not None else policy.public
    return ERROR_CACHE_CONTROL


async def editing_start(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, edit: Callable[[Message], None]
) -> None:
    """Run ``app`` with ``edit`` applied to the start message (status, headers) of its answer."""

    async def send_edited(message: Message) -> None:
        if message["type"] == "http.response.start":
            edit(message)
        await send(message)

    await app(scope, receive, send_edited)


class HTTPMiddleware:
    """Pure ASGI middleware of HTTP requests (:meth:`http`); anything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class CacheHeaders(HTTPMiddleware):
    """Sets ``Cache-Control`` on every answer from the table."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        keyed = any(k == b"authorization" and v.strip() for k, v in scope["headers"])

        def edit(message: Message) -> None:
            MutableHeaders(scope=message)["Cache-Control"] = cache_control(
                scope["method"], scope["path"], keyed, message["status"]
            )

        await editing_start(self.app, scope, receive, send, edit)


def add_middleware(app: FastAPI) -> None:
    app.add_middleware(Limits, owner=app)
    app.add_middleware(CacheHeaders)  # outside Limits: its 429 and 503 answers too
