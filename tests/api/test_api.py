"""The HTTP API through TestClient on the sample city."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from riskmap.api.settings import Settings
from tests.api.helpers import END, served
from tests.helpers import running

AT = END.isoformat()


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["data_version"] >= 2
    assert set(body) == {"status", "data_version"}  # no case counts in public
    assert r.headers["cache-control"] == "no-store"


def test_zones_geojson(client: TestClient) -> None:
    r = client.get("/v1/zones", params={"at": AT})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    levels = {f["properties"]["level"] for f in fc["features"]}
    assert levels == {"sealed", "controlled", "precaution"}
    for f in fc["features"]:
        p = f["properties"]
        assert f["id"] == p["id"]
        assert shapely.geometry.shape(f["geometry"]).is_valid
        assert p["start"] <= AT < p["expected_lift"]
        assert p["community_ids"] and "cells" not in p  # cells: GET /v1/zones/cells
    sealed = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()
    assert {f["properties"]["level"] for f in sealed["features"]} == {"sealed"}
    assert client.get("/v1/zones", params={"at": AT, "level": "bogus"}).status_code == 422
    assert client.get("/v1/zones", params={"at": "2024-13-01"}).status_code == 422


def test_zones_before_the_outbreak_are_refused(client: TestClient) -> None:
    """Dates before the first report are outside the data (see tests/api/test_bounds.py)."""
    r = client.get("/v1/zones", params={"at": "2020-01-01"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "at"]


def test_communities_layer(client: TestClient) -> None:
    fc = client.get("/v1/communities", params={"at": AT}).json()
    assert len(fc["features"]) == 2000
    counts: dict[str, int] = {}
    for f in fc["features"]:
        counts[f["properties"]["level"]] = counts.get(f["properties"]["level"], 0) + 1
    assert counts["sealed"] > 0 and counts["controlled"] > 0
    zones = client.get("/v1/zones", params={"at": AT}).json()["features"]
    in_zones = sum(z["properties"]["community_count"] for z in zones)
    assert in_zones == 2000 - counts.get("none", 0)


def test_status_inside_a_sealed_zone_and_outside(client: TestClient) -> None:
    zones = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"]
    z = zones[0]
    pt = shapely.geometry.shape(z["geometry"]).representative_point()
    r = client.get("/v1/status", params={"lat": pt.y, "lon": pt.x, "at": AT})
    assert r.status_code == 200
    s = r.json()
    assert s["level"] == "sealed" and s["zone_id"] == z["id"]
    assert s["community"]["id"] in z["properties"]["community_ids"]
    assert s["since"] <= AT < s["expected_lift"]
    assert s["policy"] == "cn-three-zone"
    assert r.headers["cache-control"] == "no-store"
    # coverage and freshness: the data version, when the zones were computed, the data's end
    assert s["covered"] is True
    assert r.headers["x-data-version"] == str(s["data_version"]) and s["data_version"] > 0
    assert s["data_through"] == AT  # the sample city's last report date
    assert dt.datetime.fromisoformat(s["computed_at"]) <= dt.datetime.now(dt.UTC)
    far = client.get("/v1/status", params={"lat": 0, "lon": 0, "at": AT}).json()
    assert far["level"] == "none" and far["community"] is None and far["zone_id"] is None
    assert far["covered"] is False  # no data there: not the same as "no risk"


def test_bad_coordinates_are_422(client: TestClient) -> None:
    for params in (
        {"lat": 91, "lon": 0},
        {"lat": 0, "lon": 181},
        {"lat": "x", "lon": 0},
        {"lon": 0},
    ):
        assert client.get("/v1/status", params=params).status_code == 422


def test_map_page_is_offline(client: TestClient) -> None:
    r = client.get("/", params={"at": AT})
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    page = r.text
    assert "/static/map.js" in page and "/static/deckgl.js" in page
    assert "http://" not in page and "https://" not in page  # nothing from outside
    js = client.get("/static/deckgl.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    script = client.get("/static/map.js")
    assert script.status_code == 200 and "deck.MVTLayer" in script.text
    assert "javascript" in script.headers["content-type"]
    assert "text/css" in client.get("/static/map.css").headers["content-type"]
    assert client.get("/v1/districts").json()["features"]


def test_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/status", "/v1/zones", "/v1/communities", "/healthz", "/"} <= set(spec["paths"])


@pytest.mark.parametrize(
    "preset", ["cn-three-zone", "india-containment", "hk-building", "cn-2022-nov", "cn-2022-9th"]
)
def test_status_is_exact_for_10000_random_points(client: TestClient, preset: str) -> None:
    """The fast look-up equals a brute-force test of every point against every zone."""
    from riskmap.api.deps import service_of
    from riskmap.api.settings import get_settings
    from riskmap.geo.policy import load_policy

    app = client.app
    service = service_of(app, app.dependency_overrides[get_settings]())  # type: ignore[attr-defined]
    policy = load_policy(preset)
    snap = service.snapshot(policy, END)
    zones = snap.result.zones.reset_index(drop=True)
    assert len(zones) > 0
    rng = np.random.default_rng(1)
    minx, miny, maxx, maxy = snap.layer.frame.total_bounds
    lon = rng.uniform(minx, maxx, 10_000)
    lat = rng.uniform(miny, maxy, 10_000)
    # points inside the zones too (small building cells are rarely hit at random)
    inner = shapely.get_coordinates(shapely.point_on_surface(zones.geometry.to_numpy()))
    lon, lat = np.r_[lon, inner[:, 0]], np.r_[lat, inner[:, 1]]
    # add points on zone boundaries and in H3 cells that cross them
    edge = shapely.get_coordinates(shapely.boundary(zones.geometry.to_numpy()))[:500]
    lon = np.r_[lon, edge[:, 0]]
    lat = np.r_[lat, edge[:, 1]]
    got = [s["level"] for s in snap.status(lon, lat)]
    ranks = np.array([policy.rank(lv) for lv in zones["level"]])
    pts = shapely.points(lon, lat)
    # brute force: every point against every zone geometry (no index, no H3)
    hits = np.array([shapely.intersects(g, pts) for g in zones.geometry])  # zones x points
    best = np.where(hits, ranks[:, None], -1)
    levels = zones["level"].to_numpy()
    expect = [
        levels[int(np.argmax(best[:, j]))] if hits[:, j].any() else "none" for j in range(len(pts))
    ]
    assert got == expect
    if preset not in ("hk-building", "cn-2022-nov"):  # building cells are smaller than res 10
        assert snap.zone_index.lookup(lon, lat).resolved_by_cell > 0  # H3 did part of the work
    if preset != "cn-three-zone":
        return
    # the same through HTTP for a few of them
    for i in range(0, len(lon), 997):
        s = client.get("/v1/status", params={"lat": lat[i], "lon": lon[i], "at": AT}).json()
        assert s["level"] == expect[i]


def test_policies(client: TestClient) -> None:
    body = client.get("/v1/policies").json()
    assert body["default"] == "cn-three-zone"
    ids = [p["id"] for p in body["policies"]]
    assert len(ids) == 8 and "india-containment" in ids
    assert [p["id"] for p in body["policies"] if p["active"]] == ["cn-three-zone"]
    one = client.get("/v1/policies/india-containment").json()
    assert one["levels"][0]["extent"] == {
        "kind": "radius",
        "radius_m": 3000.0,
        "rural_radius_m": None,
        "centre_res": 10,
        "snap": "exact",
        "min_area_fraction": 0.5,
    }
    assert one["source"] and one["notes"]
    assert client.get("/v1/policies/nope").status_code == 404


def test_policy_query_parameter(sample_db) -> None:  # type: ignore[no-untyped-def]
    # the public may name the rules the service serves (RISKMAP_POLICIES), no other
    listed = "shanghai-2022-04, india-containment,cn-2022-9th"
    settings = Settings(database_url=f"sqlite:///{sample_db}", policies=listed)
    with served(settings) as client:
        _policy_query_parameter(client)
        refused = client.get("/v1/zones", params={"at": AT, "policy": "cdc-community"})
        assert refused.status_code == 401 and "not public" in refused.json()["detail"]


def _policy_query_parameter(client: TestClient) -> None:
    fc = client.get("/v1/zones", params={"at": AT, "policy": "shanghai-2022-04"}).json()
    levels = {f["properties"]["level"] for f in fc["features"]}
    assert levels <= {"sealed", "controlled", "precaution"} and "precaution" in levels
    assert {f["properties"]["policy"] for f in fc["features"]} == {"shanghai-2022-04"}
    s = client.get(
        "/v1/status", params={"lat": 0, "lon": 0, "at": AT, "policy": "india-containment"}
    ).json()
    assert s["level"] == "none" and s["policy"] == "india-containment"
    bad = client.get("/v1/zones", params={"policy": "../etc/passwd.yaml"})
    assert bad.status_code == 404
    page = client.get("/", params={"at": AT, "policy": "cn-2022-9th"}).text
    assert '"rule":"cn-2022-9th"' in page and "High-risk area" in page


def test_service_with_a_custom_rule_file(sample_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from riskmap.api.settings import Settings

    rule = tmp_path / "rule.yaml"
    rule.write_text(
        "id: buildings-7d\nname: Buildings for 7 days\nsource: a test\nlevels:\n"
        "  - id: notice\n    label: Notice\n    color: '#123456'\n"
        "    extent: {kind: cell, res: 12}\n    trigger: {roles: [residence]}\n"
        "    lift_after_days: 7\n"
        "public_precision: {geometry: building, source: a test}\n"
    )
    settings = Settings(database_url=f"sqlite:///{sample_db}", policy=str(rule))
    with running(settings) as c:
        fc = c.get("/v1/zones", params={"at": AT}).json()
        assert fc["features"]
        assert {f["properties"]["color"] for f in fc["features"]} == {"#123456"}
        body = c.get("/v1/policies").json()
        assert body["default"] == "buildings-7d" and body["policies"][-1]["active"]
        assert c.get("/v1/policies/buildings-7d").json()["levels"][0]["id"] == "notice"
        legend = c.get("/", params={"at": AT}).text
        assert "Notice" in legend


def test_a_listed_rule_file_is_served_by_its_id(sample_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # RISKMAP_POLICIES may list rule files: the public names them by id on every policy route,
    # and their dates are bounded by that rule (not looked up again as a preset)
    rule = tmp_path / "weekly.yaml"
    rule.write_text(
        "id: weekly-sealed\nname: Sealed for a week\nsource: a test\nlevels:\n"
        "  - id: sealed\n    label: Sealed\n    color: '#654321'\n"
        "    extent: {kind: community}\n    trigger: {roles: [residence]}\n"
        "    lift_after_days: 7\n"
    )
    settings = Settings(database_url=f"sqlite:///{sample_db}", policies=str(rule))
    with served(settings) as client:
        q = {"at": AT, "policy": "weekly-sealed"}
        fc = client.get("/v1/zones", params=q)
        assert fc.status_code == 200, fc.text
        assert {f["properties"]["policy"] for f in fc.json()["features"]} == {"weekly-sealed"}
        s = client.get("/v1/status", params=q | {"lat": 0, "lon": 0})
        assert s.status_code == 200 and s.json()["policy"] == "weekly-sealed"
        h = client.get("/v1/zones/history", params={"policy": "weekly-sealed", "to": AT})
        assert h.status_code == 200 and h.json()["policy"] == "weekly-sealed"
        assert client.get("/", params=q).status_code == 200
        # one `policy` parameter per route in the API's description
        spec = client.get("/openapi.json").json()
        params = spec["paths"]["/v1/zones"]["get"]["parameters"]
        assert [p["name"] for p in params].count("policy") == 1


def test_zone_history_endpoint_is_kept_in_the_store(client: TestClient, sample_db) -> None:  # type: ignore[no-untyped-def]
    from riskmap.api.store import Store

    r = client.get("/v1/zones/history", params={"from": "2024-03-20", "to": AT})
    assert r.status_code == 200
    body = r.json()
    assert body["from"] == "2024-03-20" and body["to"] == AT
    kinds = {e["kind"] for e in body["events"]}
    assert "created" in kinds
    assert all("2024-03-20" <= e["date"] <= AT for e in body["events"])
    stored = Store.open(sample_db).conn.execute("SELECT COUNT(*) FROM zone_events").fetchone()[0]
    assert stored > len(body["events"])  # the whole period is kept
    only = client.get(
        "/v1/zones/history", params={"from": "2024-03-20", "to": AT, "kind": "lifted"}
    ).json()
    assert {e["kind"] for e in only["events"]} <= {"lifted"}
    assert (
        client.get("/v1/zones/history", params={"from": AT, "to": "2024-01-01"}).status_code == 422
    )
    assert client.get("/v1/zones/history", params={"kind": "exploded"}).status_code == 422


def test_status_history_endpoint(client: TestClient) -> None:
    zones = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"]
    pt = shapely.geometry.shape(zones[0]["geometry"]).representative_point()
    params = {"lat": pt.y, "lon": pt.x, "from": "2024-03-01", "to": AT}
    body = client.get("/v1/status/history", params=params).json()
    assert body["in_zone"] is True and body["days_in_zone"] > 0
    runs = body["intervals"]
    assert runs[0]["from"] == "2024-03-01" and runs[-1]["to"] == AT
    assert runs[-1]["level"] == "sealed"
    assert sum(r["days"] for r in runs) == 31
    # each interval agrees with the status of its first and last day
    for r in runs:
        for d in (r["from"], r["to"]):
            s = client.get("/v1/status", params={"lat": pt.y, "lon": pt.x, "at": d}).json()
            assert s["level"] == r["level"], d
    far = client.get("/v1/status/history", params={"lat": 0, "lon": 0}).json()
    assert far["in_zone"] is False and far["intervals"][0]["level"] == "none"
    assert client.get("/v1/status/history", params={"lat": 99, "lon": 0}).status_code == 422


def test_layers_have_etags_and_answer_304(client: TestClient) -> None:
    for path in ("/v1/zones", "/v1/communities", "/v1/districts"):
        r = client.get(path, params={"at": AT})
        etag = r.headers["etag"]
        assert etag.startswith('W/"') and r.headers["cache-control"].startswith("public")
        again = client.get(path, params={"at": AT}, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        other = client.get(path, params={"at": "2024-03-01"}, headers={"If-None-Match": etag})
        assert other.status_code == 200  # another query, another tag
    zones = client.get("/v1/zones", params={"at": AT}).headers["etag"]
    sealed = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).headers["etag"]
    assert zones != sealed


def test_communities_name_a_zone_of_their_level_under_circles(sample_db) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=f"sqlite:///{sample_db}", policy="india-containment")
    with served(settings) as client:
        _communities_name_a_zone(client)


def _communities_name_a_zone(client: TestClient) -> None:
    params = {"at": AT, "policy": "india-containment"}
    zones = {f["id"]: f for f in client.get("/v1/zones", params=params).json()["features"]}
    comms = client.get("/v1/communities", params=params).json()["features"]
    shown = [c for c in comms if c["properties"]["level"] != "none"]
    assert shown
    for c in shown[::25]:
        z = zones[c["properties"]["zone_id"]]
        assert z["properties"]["level"] == c["properties"]["level"]
        assert shapely.geometry.shape(z["geometry"]).intersects(
            shapely.geometry.shape(c["geometry"])
        )
