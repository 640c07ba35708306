"""The planner map in a real browser (Debian's Chromium driven by playwright) against a real
``riskmap serve``: hostile names from the data and from the rule file run no script, show as
text, and the page draws under its Content-Security-Policy with nothing loaded from outside.

`make test` installs Chromium (.ci/chromium); without it this test skips, except in CI
(CI=true), where it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.store import Store
from tests.browser import ARTIFACTS, CHROMIUM
from tests.browser import free_port as _free_port
from tests.browser import playwright as _browser
from tests.helpers import REPO, squares

RISKMAP = Path(sys.executable).with_name("riskmap")
AT = "2024-03-10"

# names that run script if they reach the page as HTML or close its <script> blocks
IMG_NAME = '<img src=x onerror="window.__xss=1">'
SCRIPT_NAME = "</script><script>window.__xss=2</script>"
HOSTILE_ID = "'\"><svg onload=window.__xss=3>"
RULE_NAME = "</script><script>window.__xss=4</script><!--"
LEVEL_LABEL = "<img src=y onerror=window.__xss=5> Sealed"


@pytest.fixture(scope="module")
def hostile_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, tuple[float, float]]]:
    """``riskmap serve`` on a store whose communities have hostile names and ids, one of them
    sealed by a case, under a rule file whose name and level label are hostile too. Yields the
    base URL and a point (lon, lat) inside the sealed hostile community."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    gdf = squares([("A", 0, 0, 800, "D1"), ("B", 800, 0, 800, "D1"), ("C", 0, 800, 800, "D2")])
    gdf["community_id"] = [HOSTILE_ID, "B", "C"]
    gdf["name"] = [IMG_NAME, SCRIPT_NAME, "Plain"]
    gdf["district_id"] = ["D<b>1", "D<b>1", "D2"]
    gdf.to_file(tmp_path / "c.geojson", driver="GeoJSON")
    db = tmp_path / "r.db"
    store = Store.open(db)
    ingest_communities(store, tmp_path / "c.geojson")
    inside = gdf.geometry.iloc[0].representative_point()
    (tmp_path / "cases.csv").write_text(
        "case_id,reported,type,role,lat,lon\n"
        f"k1,2024-03-09,confirmed,residence,{inside.y:.6f},{inside.x:.6f}\n"
    )
    rep = ingest_cases(store, tmp_path / "cases.csv")
    assert rep.counts.accepted == 1
    store.close()
    rule = yaml.safe_load((REPO / "data" / "policies" / "cn-three-zone.yaml").read_text())
    rule["id"], rule["name"] = "hostile-rule", RULE_NAME
    rule["levels"][0]["label"] = LEVEL_LABEL
    (tmp_path / "rule.yaml").write_text(yaml.safe_dump(rule))

    port = _free_port()
    env = os.environ | {
        "RISKMAP_DATABASE_URL": f"sqlite:///{db}",
        "RISKMAP_POLICY": str(tmp_path / "rule.yaml"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(RISKMAP), "serve", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"riskmap serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url, (inside.x, inside.y)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, for the module's tests."""
    sync_playwright = _browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def test_hostile_names_run_no_script_in_the_map(
    chromium: Any, hostile_server: tuple[str, tuple[float, float]]
) -> None:
    url, (lon, lat) = hostile_server
    requests: list[str] = []
    dialogs: list[str] = []
    console: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1000, "height": 800})
    try:
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: console.append(m.text))

        def on_dialog(d: Any) -> None:
            dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        answer = page.goto(f"{url}/?at={AT}")
        assert answer is not None and answer.status == 200
        headers = answer.headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"

        # the map draws: deck.gl loaded the communities' GeoJSON and can pick the sealed one
        page.wait_for_function(
            "() => window.riskmapDeck && riskmapDeck.isInitialized &&"
            " riskmapDeck.layerManager.getLayers().length > 0 &&"
            " riskmapDeck.layerManager.getLayers().every(l => l.isLoaded)",
            timeout=60_000,
        )
        x, y = page.evaluate(
            "([lon, lat]) => riskmapDeck.getViewports()[0].project([lon, lat])", [lon, lat]
        )
        picked = page.evaluate(
            "([x, y]) => { const o = riskmapDeck.pickObject({x, y, layerIds: ['communities']});"
            " return o && o.object.properties; }",
            [x, y],
        )
        assert picked["name"] == IMG_NAME and picked["level"] == "sealed", picked
        page.mouse.move(x, y)
        tooltip = page.locator(".deck-tooltip")
        tooltip.wait_for(state="visible", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "map-hostile-names.png"))

        # the name, its zone id and the level label show as text, not as elements
        text = tooltip.inner_text()
        assert IMG_NAME in text and HOSTILE_ID in text and LEVEL_LABEL in text, text
        assert tooltip.evaluate("el => el.querySelectorAll('*:not(br)').length") == 0
        # the legend and title show the rule's hostile name and label as text
        assert page.locator("#legend h1").inner_text() == f"riskmap: {RULE_NAME}"
        assert LEVEL_LABEL in page.locator("#legend").inner_text()
        assert page.title() == f"riskmap: {RULE_NAME}"
        # no injected script ran, no dialog
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        assert dialogs == []
        # nothing was refused by the page's policy (the map needs nothing it forbids)
        blocked = [m for m in console if "Content Security Policy" in m]
        assert blocked == []
        # and the policy holds: an inline script the server did not send does not run
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__xss = 7'; document.body.appendChild(s); }"
        )
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        assert any("Content Security Policy" in m for m in console)
    finally:
        page.close()
    # no request left the server
    hosts = {urlsplit(u).hostname for u in requests if urlsplit(u).scheme in ("http", "https")}
    assert hosts == {"127.0.0.1"}, requests
    assert any(u.endswith("/static/deckgl.js") for u in requests)
    assert any("/v1/communities" in u for u in requests)


def test_docs_pages_render_offline_within_their_policy(
    chromium: Any, hostile_server: tuple[str, tuple[float, float]]
) -> None:
    """/docs and /redoc render with Swagger UI and ReDoc from the server's own files, under
    their policy (the page's inline script by hash, nothing from elsewhere): no request
    leaves the server, no policy violation, and a script the server did not send is refused."""
    url, _ = hostile_server
    console: list[str] = []
    elsewhere: list[str] = []
    page = chromium.new_page()
    try:
        page.on("console", lambda m: console.append(m.text))
        # answers from anywhere but the server (a request the policy blocks gets none)
        page.on(
            "response",
            lambda r: (
                None if r.url.startswith((url, "data:", "blob:")) else elsewhere.append(r.url)
            ),
        )
        answer = page.goto(f"{url}/docs")
        assert answer is not None and "sha256-" in answer.headers["content-security-policy"]
        # Swagger UI drew the API's title and its operations from /openapi.json
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        assert "riskmap" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("#operations-collections-get_tile", timeout=20_000)
        assert [m for m in console if "Content Security Policy" in m] == []
        # a script the server did not send is refused
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__xss = 6'; document.body.appendChild(s); }"
        )
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        console.clear()
        page.goto(f"{url}/redoc")
        page.wait_for_selector("h1", timeout=20_000)  # ReDoc drew the API's title
        assert "riskmap" in page.inner_text("h1")
        # ReDoc's "API docs by Redocly" logo is remote: the policy blocks it, nothing else
        blocked = [m for m in console if "Content Security Policy" in m]
        assert all("https://cdn.redoc.ly/redoc/logo-mini.svg" in m for m in blocked), blocked
        assert elsewhere == []
    finally:
        page.close()
