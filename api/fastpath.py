"""The apps' hot path: an anonymous ``GET /v1/status?lat=..&lon=..`` (the service's rule,
today) answered from the served snapshot in the outermost middleware, before routing,
validation and the other middleware, which cost several times the look-up itself.

Only the plainest request takes it: exactly the two parameters, as plain decimal numbers in
range, no ``Authorization`` (a key: the exact view), no ``Origin`` (CORS), no rate limit
configured, a served snapshot of today ready, and an answer small enough that the gzip
middleware would not compress it. Its answer is the one the route gives, byte for byte, with
the same headers (``Content-Type``, ``X-Data-Version``, ``Cache-Control`` and the security
headers); everything else (errors, 503 before the first snapshot, other rules and dates,
keys) goes through the application as usual.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from riskmap.api.access import public_rules
from riskmap.api.deps import service_of
from riskmap.api.middleware import cache_control
from riskmap.api.security import API_CSP, COMMON_HEADERS
from riskmap.api.settings import get_settings_of

if TYPE_CHECKING:
    from fastapi import FastAPI

PATH = "/v1/status"
#: a plain decimal number (what apps send); anything else is validated by the route
_NUMBER = re.compile(rb"-?\d{1,3}(?:\.\d{1,17})?")
#: the gzip middleware's minimum size (api.main): larger answers go through it
GZIP_MIN = 500
_SKIP = (b"authorization", b"origin")

__all__ = ["StatusFastPath"]


def _lat_lon(query: bytes) -> tuple[float, float] | None:
    """``(lat, lon)`` of a query string of exactly ``lat=`` and ``lon=`` (either order), plain
    decimals in range; None for anything else."""
    if len(query) > 80:
        return None
    parts = query.split(b"&")
    if len(parts) != 2:
        return None
    got: dict[bytes, float] = {}
    for part in parts:
        name, eq, value = part.partition(b"=")
        if not eq or name not in (b"lat", b"lon") or name in got or not _NUMBER.fullmatch(value):
            return None
        got[name] = float(value)
    lat, lon = got[b"lat"], got[b"lon"]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


class StatusFastPath:
    """Pure ASGI middleware, outermost (see the module's docstring)."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner
        headers = {"content-type": "application/json"}
        headers["cache-control"] = cache_control("GET", PATH, False, 200)
        headers |= dict(COMMON_HEADERS)
        headers["content-security-policy"] = API_CSP
        self._headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "GET":
            got = self._answer(scope)
            if got is not None:
                body, version = got
                headers = [
                    (b"content-length", str(len(body)).encode()),
                    (b"x-data-version", str(version).encode()),
                    *self._headers,
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[bytes, int] | None:
        place = _lat_lon(scope.get("query_string", b""))
        if place is None:
            return None
        gzip = False
        for name, value in scope["headers"]:
            if name in _SKIP:
                return None
            if name == b"accept-encoding" and b"gzip" in value:
                gzip = True
        settings = get_settings_of(self.owner)
        if settings.rate_limit_per_minute > 0:
            return None
        service = service_of(self.owner, settings)
        rule = public_rules(settings)[0]
        if not service.serves(rule):
            return None
        served = service.served_status(rule)
        if served is None:  # no snapshot of today yet: the route answers 503
            return None
        lat, lon = place
        body = served.answer(lon, lat, public=True)
        if gzip and len(body) >= GZIP_MIN:
            return None
        return body, served.data_version
