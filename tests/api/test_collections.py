"""The OGC API routes: collections, paged GeoJSON items, vector tiles and TileJSON (public
and exact views, 204, 304, gzip, bad parameters), paging of /v1/zones and /v1/communities,
the PMTiles export command, and the API documentation served offline."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient
from pmtiles.reader import MmapSource, Reader, all_tiles
from typer.testing import CliRunner

from riskmap.api.cli import app as cli
from riskmap.api.deps import service_of
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from tests.api.helpers import END, served

AT = END.isoformat()
TMS = morecantile.tms.get("WebMercatorQuad")
TILES = "/collections/{}/tiles/WebMercatorQuad"


def _settings(db: Path, **kw: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{db}", rate_limit_per_minute=0, **kw)


@pytest.fixture(scope="module")
def officer(sample_db: Path) -> dict[str, str]:
    store = Store.open(sample_db)
    try:
        return {"Authorization": f"Bearer {store.create_key('officer', 'tiles test')[1]}"}
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(sample_db: Path) -> Iterator[TestClient]:
    """One service for the module (its zone snapshots computed once; the app is shared, so
    one client at a time); hk-building (zones finer than a community) is public on it."""
    with served(_settings(sample_db, policies="hk-building")) as c:
        yield c


def _tile_of(geom: dict[str, Any], z: int) -> morecantile.Tile:
    p = shapely.geometry.shape(geom).representative_point()
    return TMS.tile(p.x, p.y, z)


def _decode(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return mapbox_vector_tile.decode(r.content)  # type: ignore[no-any-return]


def test_collections_and_conformance(client: TestClient) -> None:
    r = client.get("/collections")
    assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=60"
    body = r.json()
    ids = [c["id"] for c in body["collections"]]
    assert ids == ["zones", "communities", "districts", "counts"]  # counts: H3 cells only
    bounds = client.get(f"{TILES.format('communities')}/tilejson.json", params={"at": AT})
    for c in body["collections"]:
        assert c["extent"]["spatial"]["bbox"] == [bounds.json()["bounds"]]
        if c["id"] == "counts":
            continue
        rels = {ln["rel"]: ln["href"] for ln in c["links"]}
        assert rels["items"].endswith(f"/collections/{c['id']}/items")
        assert client.get(rels["items"], params={"at": AT}).status_code == 200
        assert client.get(rels["describedby"], params={"at": AT}).status_code == 200
    one = client.get("/collections/zones").json()
    assert one["id"] == "zones" and one["itemType"] == "feature"
    conf = client.get("/conformance").json()
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf["conformsTo"]


def test_items_are_paged_with_links(client: TestClient) -> None:
    every = client.get("/v1/communities", params={"at": AT}).json()["features"]
    by_id = {f["id"]: f for f in every}
    url = f"/collections/communities/items?at={AT}&limit=700"
    seen: list[str] = []
    pages = 0
    first = None
    while url:
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        page = r.json()
        first = first or page
        assert page["numberMatched"] == len(every)
        assert page["numberReturned"] == len(page["features"]) <= 700
        seen += [f["id"] for f in page["features"]]
        links = {ln["rel"]: ln["href"] for ln in page["links"]}
        if pages:
            assert "offset=" in links["prev"]
        url = links.get("next", "")
        pages += 1
    assert pages == -(-len(every) // 700) and seen == [f["id"] for f in every]
    assert first is not None and "prev" not in {ln["rel"] for ln in first["links"]}
    # properties as the layer publishes them, geometry as /v1/communities
    f = first["features"][0]
    ref = by_id[f["id"]]
    for k in ("name", "population", "district_id", "level", "label", "zone_id"):
        assert f["properties"][k] == ref["properties"][k], k
    assert shapely.geometry.shape(f["geometry"]).equals(shapely.geometry.shape(ref["geometry"]))
    # the default page and an offset past the end
    assert client.get(url or "/collections/zones/items").json()["numberReturned"] <= 100
    past = client.get("/collections/zones/items", params={"offset": 10**6}).json()
    assert past["features"] == [] and "next" not in {ln["rel"] for ln in past["links"]}


def test_bbox_selects_what_meets_the_box(client: TestClient) -> None:
    every = client.get("/v1/communities", params={"at": AT}).json()["features"]
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in every}
    w, s, e, n = shapely.union_all(list(shapes.values())).bounds
    box = (w + (e - w) * 0.4, s + (n - s) * 0.4, w + (e - w) * 0.55, s + (n - s) * 0.5)
    want = {i for i, g in shapes.items() if g.intersects(shapely.box(*box))}
    bbox = ",".join(map(str, box))
    got = client.get(
        "/collections/communities/items", params={"bbox": bbox, "limit": 10_000, "at": AT}
    ).json()
    assert 0 < got["numberMatched"] < len(every)
    # the Web Mercator index may differ from degrees only for a feature grazing the box
    found = {f["id"] for f in got["features"]}
    assert len(found ^ want) <= 2, found ^ want
    # the same on /v1/communities with bbox
    v1 = client.get("/v1/communities", params={"bbox": bbox, "at": AT}).json()
    assert {f["id"] for f in v1["features"]} == found and v1["numberMatched"] == len(found)


def test_v1_layers_keep_their_default_and_gain_paging(client: TestClient) -> None:
    whole = client.get("/v1/zones", params={"at": AT}).json()
    assert "numberMatched" not in whole and "links" not in whole  # unchanged without paging
    page = client.get("/v1/zones", params={"at": AT, "limit": 3}).json()
    assert page["numberMatched"] == len(whole["features"]) and page["numberReturned"] == 3
    assert [f["id"] for f in page["features"]] == [f["id"] for f in whole["features"][:3]]
    assert page["features"][0] == whole["features"][0]  # the same features, cells and all
    nxt = next(ln["href"] for ln in page["links"] if ln["rel"] == "next")
    second = client.get(nxt).json()
    assert [f["id"] for f in second["features"]] == [f["id"] for f in whole["features"][3:6]]
    sealed = client.get("/v1/zones", params={"at": AT, "level": "sealed", "limit": 2}).json()
    n_sealed = sum(f["properties"]["level"] == "sealed" for f in whole["features"])
    assert sealed["numberMatched"] == n_sealed
    assert all(f["properties"]["level"] == "sealed" for f in sealed["features"])
    comms = client.get("/v1/communities", params={"at": AT, "offset": 5, "limit": 2}).json()
    assert comms["numberReturned"] == 2 and {ln["rel"] for ln in comms["links"]} >= {"prev"}


def test_tiles_decode_with_the_layer_properties(client: TestClient) -> None:
    zones = client.get("/v1/zones", params={"at": AT}).json()["features"]
    comms = {
        f["id"]: f for f in client.get("/v1/communities", params={"at": AT}).json()["features"]
    }
    sealed = next(f for f in zones if f["properties"]["level"] == "sealed")
    t = _tile_of(sealed["geometry"], 13)
    for name in ("zones", "communities", "districts"):
        tile = _decode(client.get(f"{TILES.format(name)}/{t.z}/{t.x}/{t.y}", params={"at": AT}))
        assert list(tile) == [name] and tile[name]["extent"] == 4096
    tile = _decode(client.get(f"{TILES.format('zones')}/{t.z}/{t.x}/{t.y}", params={"at": AT}))
    props = {f["properties"]["id"]: f["properties"] for f in tile["zones"]["features"]}
    assert props[sealed["id"]]["level"] == "sealed"
    assert props[sealed["id"]]["community_count"] == sealed["properties"]["community_count"]
    assert "cells" not in props[sealed["id"]] and "community_ids" not in props[sealed["id"]]
    tile = _decode(
        client.get(f"{TILES.format('communities')}/{t.z}/{t.x}/{t.y}", params={"at": AT})
    )
    feats = tile["communities"]["features"]
    # exactly the communities meeting the tile (grown by its 64-unit buffer, give or take one)
    left, bottom, right, top = TMS.bounds(t)
    grow = (right - left) * 64 / 4096
    inner = shapely.box(left, bottom, right, top)
    outer = shapely.box(left - grow, bottom - grow, right + grow, top + grow)
    got = {f["properties"]["id"] for f in feats}
    meets = {i for i, f in comms.items() if shapely.geometry.shape(f["geometry"]).intersects(inner)}
    near = {i for i, f in comms.items() if shapely.geometry.shape(f["geometry"]).intersects(outer)}
    assert got <= near and meets <= got, (meets - got, got - near)
    for f in feats[:50]:
        ref = comms[f["properties"]["id"]]["properties"]
        for k in ("level", "name", "population", "zone_id"):
            assert f["properties"].get(k) == ref[k], k
    in_sealed = [f for f in feats if f["properties"]["level"] == "sealed"]
    assert in_sealed and all(f["properties"]["zone_id"] for f in in_sealed)


def test_empty_tile_304_and_gzip(client: TestClient, sample_db: Path) -> None:
    far = client.get(f"{TILES.format('zones')}/10/0/0", params={"at": AT})  # the Arctic
    assert far.status_code == 204 and far.content == b"" and far.headers["etag"]
    zones = client.get("/v1/zones", params={"at": AT}).json()["features"]
    t = _tile_of(zones[0]["geometry"], 12)
    url = f"{TILES.format('communities')}/{t.z}/{t.x}/{t.y}"
    r = client.get(url, params={"at": AT}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"] and r.headers["cache-control"].startswith(
        "public"
    )
    plain = client.get(url, params={"at": AT}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == r.content
    assert mapbox_vector_tile.decode(plain.content)["communities"]["features"]
    raw = client.get(url, params={"at": AT}, headers={"Accept-Encoding": "gzip"})
    assert int(raw.headers["content-length"]) < len(plain.content)
    etag = r.headers["etag"]
    same = client.get(url, params={"at": AT}, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""
    # another date, another rule, another view: another tag
    day_before = client.get(url, params={"at": "2024-03-30"})
    other_rule = client.get(url, params={"at": AT, "policy": "hk-building"})
    assert day_before.status_code == other_rule.status_code == 200
    assert len({etag, day_before.headers["etag"], other_rule.headers["etag"]}) == 3
    stale = client.get(url, params={"at": "2024-03-30"}, headers={"If-None-Match": etag})
    assert stale.status_code == 200
    # JSON answers are compressed too
    j = client.get("/v1/communities", params={"at": AT}, headers={"Accept-Encoding": "gzip"})
    assert j.headers["content-encoding"] == "gzip"
    items = client.get(
        "/collections/communities/items", params={"limit": 500}, headers={"Accept-Encoding": "br"}
    )
    assert "content-encoding" not in items.headers
    # the tiles came from the service's bounded cache the second time
    # the client's own service (its settings: the policies are part of a service's key)
    settings = _settings(sample_db, policies="hk-building")
    service = service_of(client.app, settings)  # type: ignore[arg-type]
    assert service.tiles.hits > 0 and 0 < service.tiles.nbytes <= service.tiles.max_bytes
    assert service.tiles.max_bytes == 64 * 2**20


def test_public_tiles_and_items_show_what_v1_zones_shows(
    client: TestClient, officer: dict[str, str]
) -> None:
    """Under a building-level rule the public sees coarser zones: tiles and items show the
    public ones to anonymous callers, the exact ones to a key, as /v1/zones does."""
    c = client
    q = {"at": AT, "policy": "hk-building"}
    views = {}
    for who, headers in (("public", {}), ("officer", officer)):
        v1 = c.get("/v1/zones", params=q, headers=headers).json()["features"]
        items = c.get(
            "/collections/zones/items", params=q | {"limit": 10_000}, headers=headers
        ).json()
        assert [f["id"] for f in items["features"]] == [f["id"] for f in v1]
        for a, b in zip(items["features"], v1, strict=True):
            assert shapely.geometry.shape(a["geometry"]).equals(
                shapely.geometry.shape(b["geometry"])
            )
            assert a["properties"]["start"] == b["properties"]["start"]
        seen: set[str] = set()
        for f in v1[:10]:
            t = _tile_of(f["geometry"], 14)
            r = c.get(f"{TILES.format('zones')}/{t.z}/{t.x}/{t.y}", params=q, headers=headers)
            tile = _decode(r)
            ids = {g["properties"]["id"] for g in tile["zones"]["features"]}
            assert f["id"] in ids
            seen |= ids
        assert seen <= {f["id"] for f in v1}
        views[who] = {f["id"]: f for f in v1}
    assert views["public"].keys() != views["officer"].keys()
    # the keyed answers are private, the public ones public
    r = c.get(f"{TILES.format('zones')}/10/0/0", params=q, headers=officer)
    assert r.headers["cache-control"].startswith("private")
    pub = c.get("/collections/zones/items", params=q).headers["etag"]
    assert c.get("/collections/zones/items", params=q, headers=officer).headers["etag"] != pub


def test_tilejson_describes_the_tiles(client: TestClient) -> None:
    r = client.get(f"{TILES.format('zones')}/tilejson.json", params={"at": AT})
    assert r.status_code == 200
    tj = r.json()
    assert tj["tilejson"] == "3.0.0" and tj["minzoom"] == 0 and tj["maxzoom"] == 14
    assert [v["id"] for v in tj["vector_layers"]] == ["zones"]
    assert tj["vector_layers"][0]["fields"]["level"] == "String"
    (template,) = tj["tiles"]
    assert template.startswith("http://testserver/collections/zones/tiles/WebMercatorQuad/")
    assert "policy=cn-three-zone" in template and f"at={AT}" in template
    w, s, e, n = tj["bounds"]
    assert w < tj["center"][0] < e and s < tj["center"][1] < n
    zones = client.get("/v1/zones", params={"at": AT}).json()["features"]
    t = _tile_of(zones[0]["geometry"], 12)
    url = template.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))
    assert zones[0]["id"] in {
        f["properties"]["id"] for f in _decode(client.get(url))["zones"]["features"]
    }
    d = client.get(f"{TILES.format('districts')}/tilejson.json").json()
    assert "?" not in d["tiles"][0]  # districts follow no rule or date


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/collections/cases", 404, "unknown collection 'cases'"),
        ("/collections/cases/items", 404, "expected one of zones, communities, districts"),
        (f"{TILES.format('zones')}/23/0/0", 404, "zoom 23 is outside 0..22"),
        (f"{TILES.format('zones')}/-1/0/0", 404, "zoom -1"),
        (f"{TILES.format('zones')}/3/8/0", 404, "x and y must be in 0..7"),
        (f"{TILES.format('zones')}/3/0/-1", 404, "x and y must be in 0..7"),
        (f"{TILES.format('zones')}/3/0/99999999999999999999", 404, "x and y must be in"),
        ("/collections/zones/tiles/WorldCRS84Quad/3/0/0", 404, "unknown tile matrix set"),
        ("/collections/zones/tiles/WorldCRS84Quad/tilejson.json", 404, "WebMercatorQuad"),
        (f"{TILES.format('zones')}/a/0/0", 422, "integer"),
        ("/collections/zones/items?bbox=1,2,3", 422, "bbox must be 4 numbers"),
        ("/collections/zones/items?bbox=a,b,c,d", 422, "bbox must be 4 numbers"),
        ("/collections/zones/items?bbox=10,0,0,1", 422, "min <= max"),
        ("/collections/zones/items?bbox=0,0,1,nan", 422, "finite"),
        ("/collections/zones/items?bbox=0,-91,1,1", 422, "latitudes"),
        ("/collections/zones/items?bbox=-200,0,1,1", 422, "longitudes"),
        ("/collections/zones/items?limit=0", 422, "greater than or equal to 1"),
        ("/collections/zones/items?limit=10001", 422, "at most 10000 (RISKMAP_MAX_ITEMS)"),
        ("/collections/zones/items?offset=-1", 422, "greater than or equal to 0"),
        ("/v1/zones?limit=99999", 422, "RISKMAP_MAX_ITEMS"),
        ("/v1/communities?bbox=1,1", 422, "bbox"),
        ("/collections/zones/items?at=1999-01-01", 422, "at"),
        ("/collections/zones/items?policy=india-containment", 401, "not public"),
        ("/collections/zones/items?policy=nope", 404, "unknown policy"),
    ],
)
def test_bad_parameters_are_clear_4xx(client: TestClient, path: str, code: int, words: str) -> None:
    r = client.get(path)
    assert r.status_code == code, (path, r.text)
    assert words in r.text, (path, r.text)
    assert r.headers["cache-control"] == "no-store"


def test_tile_cache_setting(client: TestClient, sample_db: Path) -> None:
    """RISKMAP_TILE_CACHE_MB bounds the service's tile cache."""
    small = service_of(client.app, _settings(sample_db, tile_cache_mb=0.5))  # type: ignore[arg-type]
    assert small.tiles.max_bytes == 2**19
    assert service_of(client.app, _settings(sample_db)).tiles.max_bytes == 64 * 2**20  # type: ignore[arg-type]


def test_export_tiles_command(sample_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps" / "zones.pmtiles"
    args = ["--db", str(sample_db), "export", "tiles", "--out", str(out), "--at", AT]
    r = CliRunner().invoke(cli, [*args, "--min-zoom", "9", "--max-zoom", "11"])
    assert r.exit_code == 0, r.output
    assert "tiles" in r.output and "public view" in r.output
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        h, meta = reader.header(), reader.metadata()
        assert (h["min_zoom"], h["max_zoom"]) == (9, 11)
        assert meta["view"] == "public" and meta["policy"] == "cn-three-zone"
        assert [v["id"] for v in meta["vector_layers"]] == ["zones", "communities", "districts"]
        layers: set[str] = set()
        n = 0
        for _, data in all_tiles(reader.get_bytes):
            layers |= set(mapbox_vector_tile.decode(gzip.decompress(data)))
            n += 1
        assert n > 0 and layers == {"zones", "communities", "districts"}
    bad = CliRunner().invoke(cli, [*args, "--min-zoom", "12", "--max-zoom", "9"])
    assert bad.exit_code == 1 and "--min-zoom 12 is above --max-zoom 9" in bad.output


def test_docs_are_served_offline(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200
        assert not re.findall(r"https?://", r.text), path  # nothing from elsewhere
        csp = r.headers["content-security-policy"]
        assert "http" not in csp and "script-src 'self'" in csp
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert len(assets) >= (3 if path == "/docs" else 2)
        for url in assets:
            a = client.get(url)
            assert a.status_code == 200 and len(a.content) > 1000, url
            assert a.headers["cache-control"] == "public, max-age=86400"
    assert client.get("/docs-assets/nothing.js").status_code == 404
