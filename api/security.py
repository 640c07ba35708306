"""Security headers on every answer (an ASGI middleware, outside the others).

* every answer: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``X-Frame-Options: DENY``;
* HTML answers (the planner map): :data:`PAGE_CSP`: scripts, styles, data and workers only from
  the server itself, no inline script or style, no plugins, no framing; with
  ``RISKMAP_BASEMAP_URL`` set, the map page (api/routers/map.py) also allows images and fetches
  from the base map's origin (:func:`page_csp`);
* the API documentation pages (``/docs``, ``/redoc``, Swagger's OAuth2 redirect page): Swagger
  UI and ReDoc are served by riskmap itself (``/docs-assets``, api/routers/docs.py) and the
  pages have one inline script, so their policy (:data:`DOCS_CSP`) allows the server's own
  files and exactly the inline scripts of the page as served (by their SHA-256 hashes,
  computed from the answer), inline styles (ReDoc writes its styles at run time), and nothing
  from elsewhere;
* every other answer (JSON, GeoJSON, scripts): ``default-src 'none'; frame-ancestors 'none'``
  (nothing may load, should a browser render one).

A header a route sets itself is kept.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from riskmap.api.middleware import HTTPMiddleware, editing_start

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def page_csp(basemap_url: str | None = None) -> str:
    """:data:`PAGE_CSP`, and with RISKMAP_BASEMAP_URL set, its origin allowed for images and
    fetches (the base map's tiles) and nothing more."""
    if not basemap_url:
        return PAGE_CSP
    from riskmap.tiles.deck import basemap_origin

    origin = basemap_origin(basemap_url)
    return PAGE_CSP.replace("img-src 'self'", f"img-src 'self' {origin}").replace(
        "connect-src 'self'", f"connect-src 'self' {origin}"
    )


DOCS_PATHS = ("/docs", "/redoc")  # and what lies under them (/docs/oauth2-redirect)
# {hashes}: " 'sha256-...'" of each of the page's own inline scripts
DOCS_CSP = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def inline_script_hashes(body: bytes) -> str:
    """The CSP sources (`` 'sha256-...'``, each after a space) of the inline scripts of an
    HTML page."""
    found = (
        " 'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(body)
    )
    return "".join(dict.fromkeys(found))


def _is_docs(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DOCS_PATHS)


def _add_headers(message: Message, csp_for_html: str) -> None:
    headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
    message["headers"] = headers
    have = {k.lower() for k, _ in headers}
    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    wanted = dict(COMMON_HEADERS)
    wanted["content-security-policy"] = (
        csp_for_html if ctype.lower().startswith(b"text/html") else API_CSP
    )
    for name, value in wanted.items():
        if name.encode() not in have:
            headers.append((name.encode(), value.encode()))


class SecurityHeaders(HTTPMiddleware):
    """The headers above on every HTTP answer of the wrapped application."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _is_docs(scope.get("path", "")):
            await self._docs(scope, receive, send)
            return

        await editing_start(self.app, scope, receive, send, lambda m: _add_headers(m, PAGE_CSP))

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The documentation pages are small: held until whole, to hash their scripts."""
        start: Message | None = None
        body: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None:
                    whole = b"".join(body)
                    _add_headers(start, DOCS_CSP.format(hashes=inline_script_hashes(whole)))
                    await send(start)
                    await send({"type": "http.response.body", "body": whole})
            else:
                await send(message)

        await self.app(scope, receive, hold)


def add_security_headers(app: FastAPI) -> None:
    """Add the middleware; call it last, so that it wraps every other (429s, 503s too)."""
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
