"""``GET /v1/zones/cells`` and the reference client (api.device_client): the status a device
works out from the answer equals the server's status answer on random points and on points
exactly on zone boundaries, for rules of different shapes; ETag and 304; the public view;
the size bound; bad requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient

from riskmap.api.device_client import DeviceZones
from riskmap.api.main import app
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo import cells as h3c
from tests.api.helpers import END, served

AT = END.isoformat()
RULES = "india-containment,hk-building"  # public on the test service beside cn-three-zone


@pytest.fixture(scope="module")
def key(sample_db: Path) -> dict[str, str]:
    store = Store.open(sample_db)
    try:
        return {"Authorization": f"Bearer {store.create_key('analyst', 'device test')[1]}"}
    finally:
        store.close()


@pytest.fixture(scope="module")
def dev(sample_db: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0, policies=RULES
    )
    with served(settings) as c:
        yield c


def _points(
    client: TestClient, q: dict[str, str], headers: dict[str, str], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """1,500 random points around the zones the caller sees (GET /v1/zones), 1,000 of their
    vertices and 1,000 edge midpoints (all of them when fewer)."""
    feats = client.get("/v1/zones", params=q, headers=headers).json()["features"]
    geoms = [shapely.geometry.shape(f["geometry"]) for f in feats]
    assert geoms
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    dx, dy = (x1 - x0) * 0.1, (y1 - y0) * 0.1
    lon = rng.uniform(x0 - dx, x1 + dx, 1500)
    lat = rng.uniform(y0 - dy, y1 + dy, 1500)
    rings = shapely.get_rings(shapely.get_parts(geoms))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    mid = ((xy[:-1] + xy[1:]) / 2)[same]
    vx = xy[rng.choice(len(xy), min(1000, len(xy)), replace=False)]
    mx = mid[rng.choice(len(mid), min(1000, len(mid)), replace=False)]
    return np.r_[lon, vx[:, 0], mx[:, 0]], np.r_[lat, vx[:, 1], mx[:, 1]]


def _server_levels(
    client: TestClient, q: dict[str, str], headers: dict[str, str], lon: np.ndarray, lat: np.ndarray
) -> list[str]:
    """The server's level of each point: POST /v1/status/batch for all (the same answer as
    GET /v1/status, tests/api/test_status_batch.py), and GET /v1/status itself for every
    50th."""
    points = [{"lat": y, "lon": x} for x, y in zip(lon.tolist(), lat.tolist(), strict=True)]
    r = client.post("/v1/status/batch", params=q, json={"points": points}, headers=headers)
    assert r.status_code == 200, r.text
    levels = [row["level"] for row in r.json()["results"]]
    for i in range(0, len(points), 50):
        one = client.get("/v1/status", params=q | points[i], headers=headers)
        assert one.status_code == 200 and one.json()["level"] == levels[i], (i, points[i])
    return levels


@pytest.mark.parametrize(
    ("policy", "keyed"),
    [
        ("cn-three-zone", False),  # whole communities
        ("india-containment", False),  # 3 km circles and their buffer
        ("hk-building", False),  # the public view of building cells (coarsened)
        ("hk-building", True),  # the exact building cells
    ],
)
def test_device_status_equals_the_server(
    dev: TestClient, key: dict[str, str], policy: str, keyed: bool
) -> None:
    q = {"policy": policy, "at": AT}
    headers = key if keyed else {}
    r = dev.get("/v1/zones/cells", params=q, headers=headers)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["policy"] == policy and doc["at"] == AT and doc["public"] is not keyed
    assert doc["data_version"] >= 1 and doc["computed_at"] and doc["data_through"] == AT
    assert r.headers["x-data-version"] == str(doc["data_version"])
    assert doc["none"]["id"] == "none"
    rule = dev.get(f"/v1/policies/{policy}").json()
    assert [(lv["id"], lv["label"], lv["color"]) for lv in doc["levels"]] == [
        (lv["id"], lv["label"], lv["color"]) for lv in rule["levels"]
    ]
    assert [lv["rank"] for lv in doc["levels"]] == list(range(len(doc["levels"]), 0, -1))
    assert doc["items"] == sum(
        len(lv["cells"])
        + len(lv["boundary"])
        + sum(len(ring) for p in lv["polygons"] for ring in p)
        for lv in doc["levels"]
    )
    lon, lat = _points(dev, q, headers, seed=len(policy) + keyed)
    # and the corners of some of the answer's cells, where H3 cells meet
    corners = np.array(
        [
            (lo, la)
            for lv in doc["levels"]
            for c in [*lv["cells"][:25], *list(lv["boundary"])[:25]]
            for la, lo in h3.cell_to_boundary(c)
        ]
    )
    lon, lat = np.r_[lon, corners[:, 0]], np.r_[lat, corners[:, 1]]
    want = _server_levels(dev, q, headers, lon, lat)
    device = DeviceZones(doc)
    got = [device.status(y, x) or "none" for x, y in zip(lon.tolist(), lat.tolist(), strict=True)]
    bad = [
        (i, lon[i], lat[i], g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w
    ]
    assert not bad, bad[:10]
    assert len(want) > 3000 and sum(w != "none" for w in want) > 1000


def test_etag_and_not_modified(dev: TestClient, key: dict[str, str]) -> None:
    q = {"at": AT}
    r = dev.get("/v1/zones/cells", params=q)
    tag = r.headers["etag"]
    assert tag.startswith('W/"') and r.headers["cache-control"] == "public, max-age=60"
    assert "Authorization" in r.headers["vary"]
    again = dev.get("/v1/zones/cells", params=q)
    assert again.headers["etag"] == tag and again.content == r.content
    same = dev.get("/v1/zones/cells", params=q, headers={"If-None-Match": f'"x", {tag}'})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    assert same.headers["x-data-version"] == r.headers["x-data-version"]
    # the rule's default named or not: the same zones, the same tag
    named = dev.get("/v1/zones/cells", params=q | {"policy": "cn-three-zone"})
    assert named.headers["etag"] == tag
    # another date, another rule, the exact view: other tags, and no 304 for the old one
    for params, headers in (
        ({"at": "2024-03-20"}, {}),
        (q | {"policy": "india-containment"}, {}),
        (q, key),
    ):
        other = dev.get("/v1/zones/cells", params=params, headers=headers | {"If-None-Match": tag})
        assert other.status_code == 200 and other.headers["etag"] != tag
    exact = dev.get("/v1/zones/cells", params=q, headers=key)
    assert exact.headers["cache-control"] == "private, max-age=60"
    # gzip when asked for
    gz = dev.get("/v1/zones/cells", params=q, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"


def _parts(features: list[dict[str, Any]]) -> list[shapely.Geometry]:
    """The polygons of GeoJSON features, normalized (ring order and start, orientation)."""
    geoms = shapely.get_parts([shapely.geometry.shape(f["geometry"]) for f in features])
    return list(shapely.normalize(geoms))


def test_public_view_is_no_finer_than_the_public_zones(
    dev: TestClient, key: dict[str, str]
) -> None:
    """Anonymous callers get cells and polygons of the public zones (GET /v1/zones without a
    key): under hk-building the building cells are coarsened to communities, and nothing of
    the exact building cells is in the answer."""
    q = {"policy": "hk-building", "at": AT}
    public = dev.get("/v1/zones", params=q).json()["features"]
    exact = dev.get("/v1/zones", params=q, headers=key).json()["features"]
    doc = dev.get("/v1/zones/cells", params=q).json()
    pub_parts, exact_parts = _parts(public), _parts(exact)
    union = shapely.union_all(pub_parts)
    polygons = [
        shapely.normalize(shapely.Polygon(p[0], p[1:]))
        for lv in doc["levels"]
        for p in lv["polygons"]
    ]
    assert polygons
    for poly in polygons:  # each polygon is a public zone's, unchanged
        assert any(shapely.equals_exact(poly, g, 0) for g in pub_parts)
    only_exact = [
        g for g in exact_parts if not any(shapely.equals_exact(g, p, 0) for p in pub_parts)
    ]
    assert only_exact  # the sample city has building cells the public does not see
    for g in only_exact:
        assert not any(shapely.equals_exact(g, p, 0) for p in polygons)
    # interior cells lie in the public zones (each fine cell under them; a sample)
    rng = np.random.default_rng(5)
    for lv in doc["levels"]:
        fine = h3c.children(h3c.hex_to_cells(lv["cells"]), doc["resolution"])
        pick = (
            fine[rng.choice(len(fine), min(500, len(fine)), replace=False)] if len(fine) else fine
        )
        assert shapely.covers(union, h3c.cell_polygons(pick)).all()
        # no dates, ids or counts: levels, cells and polygons only
        assert set(lv) == {"id", "label", "color", "rank", "cells", "boundary", "polygons"}
    keyed = dev.get("/v1/zones/cells", params=q, headers=key).json()
    assert keyed["public"] is False and keyed["levels"] != doc["levels"]


@contextmanager
def _max_items(items: int) -> Iterator[None]:
    """The running app's settings with RISKMAP_MAX_DEVICE_ITEMS = ``items`` for the block (the
    same service and zone snapshots: services follow the store settings only)."""
    before = app.dependency_overrides[get_settings]
    app.dependency_overrides[get_settings] = lambda: before().model_copy(
        update={"max_device_items": items}
    )
    try:
        yield
    finally:
        app.dependency_overrides[get_settings] = before


def test_size_bound(dev: TestClient) -> None:
    """Over RISKMAP_MAX_DEVICE_ITEMS the answer is coarsened (and stays exact); when even the
    polygons pass it, 413 naming the setting."""
    full = dev.get("/v1/zones/cells", params={"at": AT})  # the default bound
    assert full.json()["resolution"] == 9
    limit = full.json()["items"] - 1
    with _max_items(limit):
        small = dev.get("/v1/zones/cells", params={"at": AT})
        assert small.status_code == 200
        assert small.headers["etag"] != full.headers["etag"]
        doc = small.json()
        assert 5 <= doc["resolution"] < 9 and doc["items"] <= limit
        lon, lat = _points(dev, {"at": AT}, {}, seed=11)
        lon, lat = lon[::3], lat[::3]
        want = _server_levels(dev, {"at": AT}, {}, lon, lat)
        device = DeviceZones(doc)
        got = [device.status(y, x) or "none" for x, y in zip(lon, lat, strict=True)]
        assert got == want and sum(w != "none" for w in want) > 200
    with _max_items(100):
        r = dev.get("/v1/zones/cells", params={"at": AT})
        assert r.status_code == 413
        assert "RISKMAP_MAX_DEVICE_ITEMS" in r.json()["detail"] and "100" in r.json()["detail"]
        assert r.headers["cache-control"] == "no-store"


def test_bad_requests(dev: TestClient) -> None:
    r = dev.get("/v1/zones/cells", params={"policy": "nope"})
    assert r.status_code == 404 and "unknown policy 'nope'" in r.json()["detail"]
    r = dev.get("/v1/zones/cells", params={"policy": "cdc-community"})  # not public here
    assert r.status_code == 401 and "not public" in r.json()["detail"]
    for at in ("2024-13-01", "yesterday", "2020-01-01"):
        r = dev.get("/v1/zones/cells", params={"at": at})
        assert r.status_code == 422, at
        assert r.json()["detail"][0]["loc"] == ["query", "at"]
    assert dev.get("/v1/zones/cells", headers={"Authorization": "Bearer nope"}).status_code == 401
