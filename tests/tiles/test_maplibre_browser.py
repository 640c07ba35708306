"""riskmap's layers in other web maps, in a real browser (Debian's Chromium driven by
playwright) against a real ``riskmap serve``:

* another web map, on a site of its own, consumes the zones through TileJSON alone: the test
  reads ``/collections/zones/tiles/WebMercatorQuad/tilejson.json``, builds a MapLibre GL JS
  style from it (a vector source whose ``url`` is that TileJSON, a fill layer per level of the
  rule), serves a page with MapLibre GL JS from disk (.ci/npm installs it; no CDN) on another
  port, and checks the pixels: the sealed community has the sealed colour, a community in no
  zone is not filled; no request leaves 127.0.0.1;
* ``/docs`` renders offline: Swagger UI shows every operation of the API from the server's own
  files while every request elsewhere is refused (and none is made).

Without Chromium or the npm package the tests skip, except in CI (CI=true), where they fail.
Screenshots are kept in var/test-artifacts.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.store import Store
from tests.api.helpers import Server
from tests.browser import ARTIFACTS, chromium_browser, free_port, hosts, npm_file
from tests.helpers import squares

AT = "2024-03-10"
RULE = "cn-three-zone"


@pytest.fixture(scope="module")
def city_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, Any]]]:
    """``riskmap serve`` on a small city: community A sealed by a case on the day before AT,
    community Far 30 km away in a district of its own (in no zone). Yields the server and the
    points (lon, lat) inside A and Far."""
    tmp = tmp_path_factory.mktemp("maplibre")
    gdf = squares(
        [
            ("A", 0, 0, 800, "D1"),
            ("B", 800, 0, 800, "D1"),
            ("C", 0, 800, 800, "D1"),
            ("Far", 30_000, 0, 800, "D9"),
        ]
    )
    gdf.to_file(tmp / "c.geojson", driver="GeoJSON")
    store = Store.open(tmp / "r.db")
    ingest_communities(store, tmp / "c.geojson")
    inside = gdf.geometry.iloc[0].representative_point()
    far = gdf.geometry.iloc[3].representative_point()
    (tmp / "cases.csv").write_text(
        "case_id,reported,type,role,lat,lon\n"
        f"k1,2024-03-09,confirmed,residence,{inside.y:.6f},{inside.x:.6f}\n"
    )
    assert ingest_cases(store, tmp / "cases.csv").counts.accepted == 1
    store.close()
    server = Server(f"sqlite:///{tmp / 'r.db'}", tmp / "serve.log", env={"RISKMAP_POLICY": RULE})
    server.start()
    try:
        yield server, {"sealed": (inside.x, inside.y), "none": (far.x, far.y)}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with chromium_browser() as browser:
        yield browser


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static web site of its own on 127.0.0.1 (another port than riskmap's), serving the
    files of a folder: the "other web map"."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", site
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def maplibre_style(
    tilejson_url: str, tilejson: dict[str, Any], levels: list[dict[str, Any]]
) -> dict[str, Any]:
    """A MapLibre style from riskmap's TileJSON alone: one vector source whose ``url`` is the
    TileJSON, a white background and one fill layer per level of the rule."""
    layer = tilejson["vector_layers"][0]["id"]
    assert "level" in tilejson["vector_layers"][0]["fields"]
    return {
        "version": 8,
        "sources": {"riskmap": {"type": "vector", "url": tilejson_url}},
        "layers": [
            {"id": "background", "type": "background", "paint": {"background-color": "#ffffff"}},
            *(
                {
                    "id": f"{layer}-{lv['id']}",
                    "type": "fill",
                    "source": "riskmap",
                    "source-layer": layer,
                    "filter": ["==", ["get", "level"], lv["id"]],
                    "paint": {"fill-color": lv["color"], "fill-antialias": False},
                }
                for lv in reversed(levels)  # the highest level drawn last, on top
            ),
        ],
    }


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>another web map</title>
<link rel="stylesheet" href="maplibre-gl.css">
<style>html, body, #map {{ margin: 0; width: 100%; height: 100%; }}</style>
<script src="maplibre-gl.js"></script></head>
<body><div id="map"></div>
<script>
window.mapErrors = [];
fetch("style.json").then(r => r.json()).then(style => {{
  window.map = new maplibregl.Map({{
    container: "map", style, center: {center}, zoom: {zoom}, fadeDuration: 0,
    attributionControl: false, canvasContextAttributes: {{preserveDrawingBuffer: true}},
  }});
  map.on("error", e => mapErrors.push(String((e.error && e.error.message) || e)));
}});
window.pixelAt = ([lon, lat]) => {{
  const p = map.project([lon, lat]), c = map.getCanvas(), r = window.devicePixelRatio || 1;
  const copy = document.createElement("canvas");
  copy.width = c.width; copy.height = c.height;
  const ctx = copy.getContext("2d");
  ctx.drawImage(c, 0, 0);
  return Array.from(ctx.getImageData(Math.round(p.x * r), Math.round(p.y * r), 1, 1).data);
}};
</script></body></html>
"""


def _rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def test_another_web_map_draws_the_zones_from_tilejson_alone(
    chromium: Any, city_server: tuple[Server, dict[str, Any]], other_site: tuple[str, Path]
) -> None:
    server, points = city_server
    site_url, site = other_site
    tj_url = f"{server.url}/collections/zones/tiles/WebMercatorQuad/tilejson.json?at={AT}"
    tilejson = httpx.get(tj_url).json()
    assert tilejson["tilejson"] == "3.0.0"
    rule = httpx.get(f"{server.url}/v1/policies/{RULE}").json()
    levels = [{"id": lv["id"], "color": lv["color"]} for lv in rule["levels"]]
    colors = {lv["id"]: lv["color"] for lv in levels}
    # the zones the map should show: A sealed, Far in no zone (the status says so)
    for want, (lon, lat) in (("sealed", points["sealed"]), ("none", points["none"])):
        status = httpx.get(f"{server.url}/v1/status", params={"lat": lat, "lon": lon, "at": AT})
        assert status.json()["level"] == want
    (site / "style.json").write_text(json.dumps(maplibre_style(tj_url, tilejson, levels)))
    for name in ("maplibre-gl.js", "maplibre-gl.css"):
        (site / name).write_bytes(npm_file("maplibre-gl", f"dist/{name}").read_bytes())
    sealed, none = points["sealed"], points["none"]
    centre = [(sealed[0] + none[0]) / 2, sealed[1]]
    (site / "index.html").write_text(PAGE.format(center=json.dumps(centre), zoom=11))

    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1000, "height": 600})
    try:
        page.on("request", lambda r: requests.append(r.url))
        answer = page.goto(f"{site_url}/index.html")
        assert answer is not None and answer.status == 200
        page.wait_for_function(
            "() => window.map && map.loaded() && map.isSourceLoaded('riskmap') &&"
            " map.areTilesLoaded() && !map.isMoving()",
            timeout=60_000,
        )
        page.wait_for_timeout(200)  # the frame of the loaded tiles is drawn
        page.screenshot(path=str(ARTIFACTS / "maplibre-tilejson-zones.png"))
        assert page.evaluate("() => mapErrors") == []
        # MapLibre read the tiles through the TileJSON: the sealed community is a zone there
        drawn = page.evaluate(
            "([lon, lat]) => map.queryRenderedFeatures(map.project([lon, lat]))"
            ".map(f => f.properties.level)",
            list(sealed),
        )
        assert "sealed" in drawn, drawn
        got = page.evaluate("p => pixelAt(p)", list(sealed))
        want = _rgb(colors["sealed"])
        assert all(abs(a - b) <= 3 for a, b in zip(got[:3], want, strict=True)), (got, want)
        # the community in no zone is not filled: the background shows
        away = page.evaluate("p => pixelAt(p)", list(none))
        assert away[:3] == [255, 255, 255], away
        assert (
            page.evaluate(
                "([lon, lat]) => map.queryRenderedFeatures(map.project([lon, lat])).length",
                list(none),
            )
            == 0
        )
    finally:
        page.close()
    # the tiles came from riskmap, cross-site, and nothing from anywhere but 127.0.0.1
    assert hosts(requests) == {"127.0.0.1"}, requests
    assert any(u.startswith(tj_url.split("?")[0]) for u in requests)
    assert any(
        u.startswith(f"{server.url}/collections/zones/tiles/WebMercatorQuad/")
        and "tilejson" not in u
        for u in requests
    )
    assert any(u.startswith(f"{site_url}/maplibre-gl.js") for u in requests)


def test_docs_render_offline(chromium: Any, city_server: tuple[Server, dict[str, Any]]) -> None:
    """/docs with the network cut: every request to anywhere but the server is refused (and
    recorded); Swagger UI draws every operation of /openapi.json."""
    server, _ = city_server
    spec = httpx.get(f"{server.url}/openapi.json").json()
    operations = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    elsewhere: list[str] = []
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    try:

        def route(r: Any) -> None:
            if r.request.url.startswith(server.url + "/"):
                r.continue_()
            else:
                elsewhere.append(r.request.url)
                r.abort("internetdisconnected")

        context.route("**/*", route)
        page = context.new_page()
        answer = page.goto(f"{server.url}/docs")
        assert answer is not None and answer.status == 200
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "riskmap" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".opblock", timeout=30_000)
        ids = page.eval_on_selector_all(".opblock", "els => els.map(e => e.id)")
        # an operation's block is #operations-{tag}-{operationId}
        absent = sorted(op for op in operations if not any(i.endswith(f"-{op}") for i in ids))
        assert absent == [], absent
        assert len(ids) == len(operations) and "get_h3_layer" in operations
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
    finally:
        context.close()
    assert elsewhere == []
