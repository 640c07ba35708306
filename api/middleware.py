"""Rate limits on the public status routes and a time limit on every request."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.settings import get_settings

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


def add_middleware(app: FastAPI) -> None:
    buckets = TokenBuckets()
    app.state.rate_buckets = buckets

    @app.middleware("http")
    async def limits(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        settings = app.dependency_overrides.get(get_settings, get_settings)()
        rate = settings.rate_limit_per_minute
        if rate > 0 and request.url.path.startswith(RATE_LIMITED_PREFIXES):
            client = request.client.host if request.client else "unknown"
            wait = buckets.take(f"{client}|{rate}", rate)
            if wait > 0:
                return JSONResponse(
                    {"detail": f"too many requests: at most {rate} a minute"},
                    status_code=429,
                    headers={"Retry-After": str(math.ceil(wait))},
                )
        if request.method != "GET":  # a write must finish: its batch is atomic either way
            return await call_next(request)
        try:
            return await asyncio.wait_for(call_next(request), settings.request_timeout_s)
        except TimeoutError:
            return JSONResponse(
                {"detail": f"the request took longer than {settings.request_timeout_s:g} s"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
