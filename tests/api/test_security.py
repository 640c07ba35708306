"""Security headers: the map page's Content-Security-Policy, the documentation pages' policy,
and the headers every answer carries (tests/api/test_map_browser.py checks the page in a
browser)."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.testclient import TestClient

from riskmap.api.security import API_CSP, PAGE_CSP, inline_script_hashes

AT = "2024-03-31"


def _directives(csp: str) -> dict[str, list[str]]:
    parts = (d.split() for d in csp.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


def _common(headers: object) -> None:
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["referrer-policy"] == "no-referrer"  # type: ignore[index]
    assert headers["x-frame-options"] == "DENY"  # type: ignore[index]


def test_map_page_allows_scripts_only_from_the_server(client: TestClient) -> None:
    r = client.get("/", params={"at": AT})
    assert r.status_code == 200
    _common(r.headers)
    csp = _directives(r.headers["content-security-policy"])
    assert r.headers["content-security-policy"] == PAGE_CSP
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"] and csp["base-uri"] == ["'none'"]
    # the page has nothing inline that the policy would have to allow
    assert inline_script_hashes(r.content) != ""  # the JSON data block (not run as script)
    blocks = re.findall(r"<script([^>]*)>", r.text)
    assert all("src=" in a or 'type="application/json"' in a for a in blocks)


def test_every_answer_has_the_common_headers(client: TestClient) -> None:
    for path in ("/healthz", "/v1/zones?at=" + AT, "/static/map.js", "/v1/keys", "/nowhere"):
        r = client.get(path)
        _common(r.headers)
        assert r.headers["content-security-policy"] == API_CSP, path
    r = client.get("/v1/status", params={"lat": 100, "lon": 0})  # a 422 too
    assert r.status_code == 422
    _common(r.headers)


def test_docs_pages_allow_exactly_their_own_inline_scripts(client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = client.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        _common(r.headers)
        csp = _directives(r.headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"] and "'unsafe-inline'" not in csp["script-src"]
        inline = re.findall(r"<script>(.*?)</script>", r.text, re.S)
        want = {
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in inline
        }
        assert {s for s in csp["script-src"] if s.startswith("'sha256-")} == want, path
        assert (len(want) > 0) == (path != "/redoc")
