"""The planner map in a real browser (Debian's Chromium driven by playwright) against a real
``riskmap serve``: hostile names from the data and from the rule file run no script, show as
text, and the page draws under its Content-Security-Policy with nothing loaded from outside.

`make test` installs Chromium (.ci/chromium); without it this test skips, except in CI
(CI=true), where it fails.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import mapbox_vector_tile
import pytest
import yaml
from shapely.geometry import shape
from shapely.ops import polylabel

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.store import Store
from riskmap.geo.policy import hex_to_rgb, load_policy
from tests.api.helpers import Server, copy_store
from tests.browser import ARTIFACTS, chromium_browser
from tests.browser import free_port as _free_port
from tests.helpers import REPO, squares

RISKMAP = Path(sys.executable).with_name("riskmap")
AT = "2024-03-10"

# names that run script if they reach the page as HTML or close its <script> blocks
IMG_NAME = '<img src=x onerror="window.__xss=1">'
SCRIPT_NAME = "</script><script>window.__xss=2</script>"
HOSTILE_ID = "'\"><svg onload=window.__xss=3>"
RULE_NAME = "</script><script>window.__xss=4</script><!--"
LEVEL_LABEL = "<img src=y onerror=window.__xss=5> Sealed"


def _wait_ready(page: Any, key: str, timeout: float = 60_000) -> None:
    """Until the map says the layers of ``key`` (rule/date) have drawn (``data-ready``)."""
    page.wait_for_function(
        "key => window.riskmapDeck && document.body.dataset.ready === key",
        arg=key,
        timeout=timeout,
    )


def _pixel(page: Any, x: float, y: float) -> tuple[int, int, int]:
    """The colour of the screen pixel at (x, y): a 1x1 PNG screenshot (one pixel: whatever
    the row's filter, its bytes are the pixel's)."""
    png = page.screenshot(clip={"x": int(x), "y": int(y), "width": 1, "height": 1})
    pos, data = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + n]
        pos += 12 + n
    row = zlib.decompress(data)
    return row[1], row[2], row[3]


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 3) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b, strict=True))


def _outside_requests(page: Any, allowed: str) -> list[str]:
    """Intercept every request of ``page``: those not starting with ``allowed`` are aborted
    and listed (the list fills as the page runs)."""
    outside: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith((allowed, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", handle)
    return outside


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
    with chromium_browser() as browser:
        yield browser


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

        # the map draws: deck.gl loaded the communities' tiles and can pick the sealed one
        _wait_ready(page, f"hostile-rule/{AT}")
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
    assert any("/collections/communities/tiles/" in u for u in requests)


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


# ---- the planner map of the sample city, and its export ---------------------------------------

SAMPLE_AT = "2024-03-20"  # sealed zones in the sample city (seed 7, ending 2024-03-31)
SAMPLE_BEFORE = "2024-03-13"
SAMPLE_END = "2024-03-31"  # the sample city's last report date
RULE = load_policy("cn-three-zone")
SEALED = hex_to_rgb(RULE.level("sealed").color)
NONE = hex_to_rgb(RULE.none_color)


@pytest.fixture(scope="module")
def sample_server(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``riskmap serve`` on a copy of the sample city (the service writes into its store)."""
    tmp = tmp_path_factory.mktemp("map-sample")
    copy_store(sample_db, tmp / "r.db")
    # the map's scan alerts: a few replications (the scan is tested in tests/geo/test_scan.py)
    env = {"RISKMAP_SCAN_REPLICATIONS": "19"}
    server = Server(f"sqlite:///{tmp / 'r.db'}", tmp / "serve.log", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _levels(url: str, at: str) -> dict[str, tuple[str, Any]]:
    """community id -> (level, geometry) from the server's GeoJSON items."""
    answer = httpx.get(f"{url}/collections/communities/items?at={at}&limit=5000", timeout=60)
    assert answer.status_code == 200, answer.text
    return {
        f["properties"]["id"]: (f["properties"]["level"], shape(f["geometry"]))
        for f in answer.json()["features"]
    }


def _places(page: Any, url: str) -> dict[str, dict[str, Any]]:
    """A community sealed on SAMPLE_AT but not on SAMPLE_BEFORE, and one in no zone on
    SAMPLE_AT, each with a point well inside it on the screen (clear of the panel)."""
    now, before = _levels(url, SAMPLE_AT), _levels(url, SAMPLE_BEFORE)

    def candidates(keep: Any) -> Iterator[dict[str, Any]]:
        rows = [(cid, g) for cid, (lv, g) in now.items() if keep(cid, lv)]
        for cid, g in sorted(rows, key=lambda r: -r[1].area):
            poly = max(getattr(g, "geoms", [g]), key=lambda p: p.area)
            p = polylabel(poly, tolerance=1e-6)
            x, y = page.evaluate(
                "([lon, lat]) => riskmapDeck.getViewports()[0].project([lon, lat])", [p.x, p.y]
            )
            if 420 < x < 1180 and 20 < y < 780:
                yield {"id": cid, "lon": p.x, "lat": p.y, "x": x, "y": y}

    sealed = next(candidates(lambda c, lv: lv == "sealed" and before[c][0] != "sealed"))
    sealed["before"] = before[sealed["id"]][0]
    free = next(candidates(lambda c, lv: lv == "none"))
    return {"sealed": sealed, "none": free}


def _fill(level: str) -> tuple[int, int, int]:
    return NONE if level == "none" else hex_to_rgb(RULE.level(level).color)


def test_planner_map_draws_replays_searches_and_stays_on_the_server(
    chromium: Any, sample_server: Server
) -> None:
    url = sample_server.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    console: list[str] = []
    try:
        outside = _outside_requests(page, url)
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.on("console", lambda m: console.append(m.text))
        page.goto(f"{url}/?at={SAMPLE_AT}")
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        page.screenshot(path=str(ARTIFACTS / "map-sample.png"))
        # district outlines and names off (a name could lie over a place below)
        page.locator("#layer-districts").uncheck()
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        places = _places(page, url)
        sealed, free = places["sealed"], places["none"]

        # the pixels: the sealed community in the sealed colour, the one in no zone not
        got = _pixel(page, sealed["x"], sealed["y"])
        assert _close(got, SEALED), (got, SEALED, sealed)
        got_free = _pixel(page, free["x"], free["y"])
        assert not _close(got_free, SEALED) and _close(got_free, NONE), (got_free, free)
        # the legend's swatches are the colours drawn
        swatches = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('#levels .swatch')]"
            ".map(s => [s.dataset.level, getComputedStyle(s).backgroundColor]))"
        )
        assert swatches["sealed"] == "rgb({}, {}, {})".format(*SEALED)
        assert swatches["none"] == "rgb({}, {}, {})".format(*NONE)
        assert list(swatches) == [*RULE.level_ids, "none"]

        # the tooltip names the community, without empty fields
        page.mouse.move(sealed["x"], sealed["y"])
        tip = page.locator(".deck-tooltip")
        tip.wait_for(state="visible", timeout=10_000)
        text = tip.inner_text()
        assert RULE.level("sealed").label in text and "null" not in text
        assert "undefined" not in text and not any(ln.endswith(": ") for ln in text.split("\n"))
        page.mouse.move(5, 795)

        # residents under each level: today's figure as the route answers it
        pop = httpx.get(f"{url}/v1/aggregates/population?at={SAMPLE_AT}&days=14", timeout=60).json()
        sealed_today = round(pop["levels"][0]["population"][-1])
        row = page.locator("#population tr[data-level=sealed]")
        assert f"{sealed_today:,}" in row.inner_text()

        # the date slider: back to SAMPLE_BEFORE, the community shows its level of that day
        first = page.evaluate(
            "() => JSON.parse(document.getElementById('map-config').textContent).rules[0].first"
        )
        days = (dt.date.fromisoformat(SAMPLE_BEFORE) - dt.date.fromisoformat(first)).days
        page.locator("#date").fill(str(days))
        _wait_ready(page, f"{RULE.id}/{SAMPLE_BEFORE}")
        assert page.locator("#date-label").inner_text() == SAMPLE_BEFORE
        got = _pixel(page, sealed["x"], sealed["y"])
        assert not _close(got, SEALED) and _close(got, _fill(sealed["before"])), (got, sealed)
        assert f"at={SAMPLE_BEFORE}" in page.url

        # replay: the next day draws
        page.locator("#play").dispatch_event("click")
        after = (dt.date.fromisoformat(SAMPLE_BEFORE) + dt.timedelta(days=1)).isoformat()
        _wait_ready(page, f"{RULE.id}/{after}")
        page.locator("#play").dispatch_event("click")
        # the next days' tiles were fetched ahead of being shown
        ahead = (dt.date.fromisoformat(after) + dt.timedelta(days=1)).isoformat()
        assert any("/collections/communities/tiles/" in u and f"at={ahead}" in u for u in asked), [
            u for u in asked if "tiles" in u
        ][-5:]

        # early warning: the hotspots of the date shown, as /v1/hotspots answers them
        at = page.locator("#date-label").inner_text()
        page.locator("#layer-hotspots").check()
        page.wait_for_function(
            "at => (document.body.dataset.hotspotsReady || '').startsWith(at + ':')",
            arg=at,
            timeout=120_000,
        )
        hot = httpx.get(f"{url}/v1/hotspots", params={"at": at}, timeout=120).json()
        drawn = [f for f in hot["features"] if f["properties"]["class"] != "not significant"]
        shown = page.evaluate("() => document.body.dataset.hotspotsReady")
        assert shown == f"{at}:{len(drawn)}", (shown, len(drawn))
        # scan alerts: without a key only for today and the last report date; another date
        # says so in a sentence
        page.locator("#layer-alerts").check()
        message = page.locator("#message")
        page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('API key')",
            timeout=60_000,
        )
        shown = message.inner_text()
        assert f"scan alerts of {at}" in shown and "401" in shown and "{" not in shown, shown
        page.locator("#message").click()  # dismissed
        # the last report date: the alerts drawn are those of /v1/alerts
        days = (dt.date.fromisoformat(SAMPLE_END) - dt.date.fromisoformat(first)).days
        page.locator("#date").fill(str(days))
        _wait_ready(page, f"{RULE.id}/{SAMPLE_END}")
        page.wait_for_function(
            "at => (document.body.dataset.alertsReady || '').startsWith(at + ':')",
            arg=SAMPLE_END,
            timeout=300_000,
        )
        alerts = httpx.get(f"{url}/v1/alerts", params={"at": SAMPLE_END}, timeout=300).json()
        shown = page.evaluate("() => document.body.dataset.alertsReady")
        assert shown == f"{SAMPLE_END}:{len(alerts['alerts'])}", (shown, alerts)
        page.locator("#layer-alerts").uncheck()
        page.locator("#layer-hotspots").uncheck()

        # search a coordinate: the status answer as text
        page.locator("#q").fill(f"{sealed['lat']:.6f}, {sealed['lon']:.6f}")
        page.locator("#search button").click()
        answer = page.locator("#answer")
        answer.wait_for(state="visible", timeout=10_000)
        page.wait_for_function("() => document.getElementById('answer').dataset.level")
        at = page.locator("#date-label").inner_text()
        status = httpx.get(
            f"{url}/v1/status",
            params={"lat": sealed["lat"], "lon": sealed["lon"], "at": at},
            timeout=60,
        ).json()
        shown = answer.inner_text()
        assert status["label"] in shown and sealed["id"] in shown, shown
        assert f"as of {at}" in shown and "{" not in shown
        # a name finds its community
        name = status["community"]["name"]
        page.locator("#q").fill(name)
        page.locator("#search button").click()
        page.wait_for_function(
            "id => document.getElementById('answer').textContent.includes('(' + id + ')')",
            arg=sealed["id"],
            timeout=10_000,
        )
        # a community that is not there, and an error of the server (a query too long: 422),
        # as sentences, not JSON
        page.locator("#q").fill("not a place at all")
        page.locator("#search button").click()
        page.wait_for_function("() => document.getElementById('answer').textContent !== ''")
        assert "no community matches" in answer.inner_text()
        page.locator("#q").fill("x" * 101)
        page.locator("#search button").click()
        message = page.locator("#message")
        message.wait_for(state="visible", timeout=10_000)
        shown = message.inner_text()
        assert "422" in shown and "q: " in shown and "100 characters" in shown, shown
        assert "{" not in shown and "detail" not in shown
    finally:
        page.close()
    assert outside == [], outside
    assert [m for m in console if "Content Security Policy" in m] == []


def test_a_dense_city_is_drawn_by_its_zones_until_zoomed_in(
    chromium: Any, sample_db: Path, tmp_path: Path
) -> None:
    """Zoomed out over a city too dense for community tiles (RISKMAP_MAP_TILE_FEATURES made
    small for the sample city), the map asks for no communities tile and fills the zones,
    merged one feature per level (RISKMAP_TILE_MERGE_FEATURES made small): the sealed
    community still shows the sealed colour and its tooltip says how many zones the level
    has; zoomed in past the communities' zoom, their tiles are asked for and drawn."""
    copy_store(sample_db, tmp_path / "r.db")
    server = Server(
        f"sqlite:///{tmp_path / 'r.db'}",
        tmp_path / "serve.log",
        env={
            "RISKMAP_MAP_TILE_FEATURES": "40",
            "RISKMAP_TILE_MERGE_FEATURES": "1",
            "RISKMAP_SCAN_REPLICATIONS": "19",
        },
    )
    server.start()
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    try:
        url = server.url
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{url}/?at={SAMPLE_AT}")
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        config = page.evaluate(
            "() => JSON.parse(document.getElementById('map-config').textContent)"
        )
        minzoom = config["minzoom"]["communities"]
        assert minzoom > config["view"]["zoom"]  # zoomed out below the communities' zoom
        page.locator("#layer-districts").uncheck()
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        assert not [u for u in asked if "/collections/communities/tiles/" in u]
        sealed = _places(page, url)["sealed"]
        got = _pixel(page, sealed["x"], sealed["y"])
        assert _close(got, SEALED), (got, SEALED, sealed)  # the zone's fill
        page.screenshot(path=str(ARTIFACTS / "map-dense-zoomed-out.png"))
        # the zones tiles drawn hold one feature per level, the sealed one under the place
        zone_tiles = [u for u in asked if "/collections/zones/tiles/" in u]
        assert zone_tiles
        for u in zone_tiles:
            r = httpx.get(u)
            if r.status_code == 200:
                feats = mapbox_vector_tile.decode(r.content)["zones"]["features"]
                ids = [f["properties"]["id"] for f in feats]
                assert all(i.startswith("merged:") for i in ids) and len(set(ids)) == len(ids)
        picked = page.evaluate(
            "([x, y]) => { const o = riskmapDeck.pickObject({x, y});"
            " return o && o.object.properties; }",
            [sealed["x"], sealed["y"]],
        )
        assert picked["id"] == "merged:sealed" and picked["zone_count"] >= 1, picked
        page.mouse.move(sealed["x"], sealed["y"])
        tip = page.locator(".deck-tooltip")
        tip.wait_for(state="visible", timeout=10_000)
        assert "zoom in for each zone" in tip.inner_text(), tip.inner_text()
        # zoom in over the sealed place until the communities are drawn
        page.mouse.move(sealed["x"], sealed["y"])
        for _ in range(40):
            zoom = page.evaluate("() => riskmapDeck.getViewports()[0].zoom")
            if zoom >= minzoom + 0.5:
                break
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(150)
        page.wait_for_function(
            "() => window.riskmapDeck && document.body.dataset.ready", timeout=60_000
        )
        assert [u for u in asked if "/collections/communities/tiles/" in u]
        x, y = page.evaluate(
            "([lon, lat]) => riskmapDeck.getViewports()[0].project([lon, lat])",
            [sealed["lon"], sealed["lat"]],
        )
        got = _pixel(page, x, y)
        assert _close(got, SEALED), (got, SEALED)  # the community's own fill now
        page.screenshot(path=str(ARTIFACTS / "map-dense-zoomed-in.png"))
    finally:
        page.close()
        server.stop()


def test_exported_map_works_from_a_file_with_no_network(
    chromium: Any, sample_server: Server, sample_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    db = tmp_path / "r.db"
    copy_store(sample_db, db)
    done = subprocess.run(
        [
            str(RISKMAP),
            "--db",
            f"sqlite:///{db}",
            "export",
            "map",
            "--out",
            str(out),
            "--from",
            SAMPLE_BEFORE,
            "--to",
            SAMPLE_AT,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "8 days" in done.stderr
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    console: list[str] = []
    try:
        outside = _outside_requests(page, out.as_uri())
        page.on("console", lambda m: console.append(m.text))
        page.goto(out.as_uri())
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        page.screenshot(path=str(ARTIFACTS / "map-exported.png"))
        page.locator("#layer-districts").uncheck()
        _wait_ready(page, f"{RULE.id}/{SAMPLE_AT}")
        places = _places(page, sample_server.url)
        sealed, free = places["sealed"], places["none"]
        assert _close(_pixel(page, sealed["x"], sealed["y"]), SEALED)
        assert _close(_pixel(page, free["x"], free["y"]), NONE)
        assert page.locator("#levels").inner_text().splitlines()[0] == RULE.levels[0].label
        # the tooltip
        page.mouse.move(sealed["x"], sealed["y"])
        tip = page.locator(".deck-tooltip")
        tip.wait_for(state="visible", timeout=10_000)
        assert "zone: " in tip.inner_text() and "null" not in tip.inner_text()
        page.mouse.move(5, 795)
        # the slider: the first day of the file
        page.locator("#date").fill("0")
        _wait_ready(page, f"{RULE.id}/{SAMPLE_BEFORE}")
        got = _pixel(page, sealed["x"], sealed["y"])
        assert not _close(got, SEALED) and _close(got, _fill(sealed["before"])), got
        # replay
        page.locator("#play").dispatch_event("click")
        _wait_ready(page, f"{RULE.id}/2024-03-14")
        page.locator("#play").dispatch_event("click")
    finally:
        page.close()
    assert outside == [], outside
    assert [m for m in console if "Content Security Policy" in m] == []
