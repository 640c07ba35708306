"""The hot paths, answered in the outermost middleware before routing, validation and the
other middleware (which cost several times the answer itself):

- an anonymous ``GET /v1/status?lat=..&lon=..`` (the service's rule, today), from the served
  snapshot: exactly the two parameters, as plain decimal numbers in range, no rate limit
  configured, a served snapshot of today ready, and an answer small enough that the gzip
  middleware leaves it alone;
- an anonymous ``GET /collections/{zones|communities}/tiles/WebMercatorQuad/{z}/{x}/{y}``
  with no parameter (the service's rule, today) of the snapshot the service serves: from the
  tile cache (rendered ahead, or by an earlier request), or, when the snapshot's public layer
  is in memory already, rendered into the cache in the worker threads the route's rendering
  uses (never computing zones or layers: those go through the route).

Neither takes a request with ``Authorization`` (a key: the exact view) or ``If-None-Match``
(a 304). The answers are the routes' own, byte for byte, with the same
headers (``Content-Type``, ``X-Data-Version``, ``ETag``, ``Cache-Control``, the security
headers); everything else (errors, 503 before the first snapshot, other rules and dates, keys,
tiles outside the matrix, a layer not prepared yet) goes through the application as usual.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from riskmap.api.access import public_rules
from riskmap.api.deps import service_of
from riskmap.api.geojson_answers import source_etag
from riskmap.api.middleware import cache_control
from riskmap.api.security import API_CSP, COMMON_HEADERS
from riskmap.api.settings import get_settings_of
from riskmap.tiles.mvt import MAX_ZOOM, MVT_MEDIA_TYPE, TILE_MATRIX_SET

if TYPE_CHECKING:
    from fastapi import FastAPI

PATH = "/v1/status"
#: a plain decimal number (what apps send); anything else is validated by the route
_NUMBER = re.compile(rb"-?\d{1,3}(?:\.\d{1,17})?")
#: the gzip middleware's minimum size (api.main): larger answers go through it
GZIP_MIN = 500
_SKIP = (b"authorization", b"if-none-match")
_TILE = re.compile(
    r"/collections/(zones|communities)/tiles/" + TILE_MATRIX_SET + r"/(\d{1,2})/(\d{1,9})/(\d{1,9})"
)
#: the tile route's headers besides the ETag and X-Data-Version (api.routers.collections)
_TILE_HEADERS = {
    "vary": "Accept-Encoding, Authorization",
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "ETag",
}

__all__ = ["FastPaths", "accepts_gzip"]

_Answer = tuple[int, list[Any], bytes]  # status, headers, body


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


class FastPaths:
    """Pure ASGI middleware, outermost (see the module's docstring)."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner
        common = dict(COMMON_HEADERS) | {"content-security-policy": API_CSP}
        status = {"content-type": "application/json"}
        status["cache-control"] = cache_control("GET", PATH, False, 200)
        self._status = _encoded(status | common)
        self._tile = _encoded(_TILE_HEADERS | {"cache-control": ""} | common)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            got: _Answer | _Render | None = None
            if path == PATH:
                got = self._status_answer(scope)
            elif path.startswith("/collections/"):
                got = self._tile_answer(scope, path)
                if isinstance(got, _Render):  # not in the cache: rendered off the event loop
                    try:
                        got = got.answer(await run_in_threadpool(got.render))
                    except Exception:  # the route answers, with the application's errors
                        got = None
            if got is not None:
                code, headers, body = got
                await send({"type": "http.response.start", "status": code, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _plain(self, scope: Scope) -> tuple[bool, bool]:
        """(the request may take a fast path, it accepts gzip)."""
        gzip = False
        for name, value in scope["headers"]:
            if name in _SKIP:
                return False, False
            if name == b"accept-encoding":
                gzip = accepts_gzip(value)
        return True, gzip

    def _served(self, settings: Any) -> tuple[Any, Any] | None:
        """(settings, today's served snapshot of the service's rule), or None."""
        service = service_of(self.owner, settings)
        rule = public_rules(settings)[0]
        if not service.serves(rule):
            return None
        served = service.served_status(rule)
        return None if served is None else (settings, served)

    def _status_answer(self, scope: Scope) -> _Answer | None:
        place = _lat_lon(scope.get("query_string", b""))
        if place is None:
            return None
        plain, gzip = self._plain(scope)
        settings = get_settings_of(self.owner)
        if not plain or settings.rate_limit_per_minute > 0:
            return None
        got = self._served(settings)
        if got is None:  # no snapshot of today yet: the route answers 503
            return None
        served = got[1]
        lat, lon = place
        body = served.answer(lon, lat, public=True)
        if len(body) >= GZIP_MIN:  # the gzip middleware compresses it or adds a Vary
            return None
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"x-data-version", str(served.data_version).encode()),
            *self._status,
        ]
        return 200, headers, body

    def _tile_answer(self, scope: Scope, path: str) -> _Answer | _Render | None:
        m = _TILE.fullmatch(path)
        if m is None or scope.get("query_string"):
            return None
        plain, gzip = self._plain(scope)
        if not plain:
            return None
        got = self._served(get_settings_of(self.owner))
        if got is None:
            return None
        settings, served = got
        service = service_of(self.owner, settings)
        if served.at != service.today():  # yesterday's, before today's is ready: the route
            return None
        name, z, x, y = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        if z > MAX_ZOOM or x >= 2**z or y >= 2**z:  # the route's 404
            return None
        key = (
            served.data_version,
            served.key,
            served.at.isoformat(),
            f"public-{settings.min_public_count}",
        )
        found, tile = service.tiles.peek((*key, name, z, x, y), gzip=gzip)
        reply = _Render(self._tile, served.data_version, key, path, gzip)
        if found:
            return reply.answer(tile)
        built = service.built_public_layer(
            served.policy, served.at, served.data_version, settings.min_public_count, name
        )
        if built is None:  # the route prepares the layer (or computes the zones)
            return None
        reply.render = lambda: service.tile(key, built.tiles, z, x, y, gzip=gzip)
        return reply


class _Render:
    """A fast tile answer: its headers (the route's) around a tile from the cache, or rendered
    by ``render`` (set when the tile is not in the cache yet)."""

    def __init__(
        self, common: list[Any], version: int, key: tuple[Any, ...], path: str, gzip: bool
    ) -> None:
        self.common = common
        self.version = version
        self.key = key
        self.path = path
        self.gzip = gzip
        self.render: Any = None

    def answer(self, tile: bytes | None) -> _Answer:
        etag = source_etag(self.key, self.path, [])  # the route's tag: no query
        cache = cache_control("GET", self.path, False, 200 if tile is not None else 204)
        headers = [
            (b"etag", etag.encode()),
            (b"x-data-version", str(self.version).encode()),
            *((k, cache.encode() if k == b"cache-control" else v) for k, v in self.common),
        ]
        if tile is None:
            return 204, headers, b""
        headers += [
            (b"content-length", str(len(tile)).encode()),
            (b"content-type", MVT_MEDIA_TYPE.encode()),
        ]
        if self.gzip:
            headers.append((b"content-encoding", b"gzip"))
        return 200, headers, tile


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def accepts_gzip(value: bytes) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (as the tile route reads it)."""
    for part in value.decode("latin-1").split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
