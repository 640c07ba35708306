"""Rate limits on the public status routes and a time limit on every request.

A GET request holds a :class:`api.flights.Claim` while it runs: its deadline (the time limit)
and whether its client is still there. Computations it waits for stop when every request
waiting for them has gone (see :mod:`api.flights`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from riskmap.api.flights import Claim, claiming
from riskmap.api.settings import get_settings

RATE_LIMITED_PREFIXES = ("/v1/status",)


class TokenBuckets:
    """One bucket per client: ``rate`` requests per minute, bursts up to ``rate``."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, rate: int, now: float | None = None) -> float:
        """0 if the request may go, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        per_second = rate / 60.0
        with self._lock:
            tokens, last = self._buckets.get(client, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * per_second)
            if len(self._buckets) > 100_000:  # forget idle clients
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 120}
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / per_second


class Limits:
    """Pure ASGI middleware (it must see the client leave while the answer is computed)."""

    def __init__(self, app: ASGIApp, owner: FastAPI, buckets: TokenBuckets) -> None:
        self.app = app
        self.owner = owner
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.owner.dependency_overrides.get(get_settings, get_settings)()
        rate = settings.rate_limit_per_minute
        if rate > 0 and scope["path"].startswith(RATE_LIMITED_PREFIXES):
            client = scope["client"][0] if scope.get("client") else "unknown"
            wait = self.buckets.take(f"{client}|{rate}", rate)
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


def add_middleware(app: FastAPI) -> None:
    buckets = TokenBuckets()
    app.state.rate_buckets = buckets
    app.add_middleware(Limits, owner=app, buckets=buckets)
