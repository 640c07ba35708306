"""Ingest over HTTP with API keys: formats, reports, limits, roles, audit (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.deps import _service_for
from api.ingest import ingest_communities
from api.main import app
from api.settings import Settings, get_settings
from api.store import Store
from tests.conftest import squares

AT = "2024-03-10"


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> Iterator[tuple[TestClient, dict[str, str], Store]]:
    """A client of the API on an empty store of each backend, with one key of each role."""
    store = Store.open(store_url)
    gdf = squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 9000, 0, 500, "D2")])
    gdf.to_file(tmp_path / "c.geojson", driver="GeoJSON")
    ingest_communities(store, tmp_path / "c.geojson")
    keys = {
        role: store.create_key(role, f"test {role}")[1] for role in ("officer", "analyst", "admin")
    }
    settings = Settings(database_url=store_url, max_upload_mb=0.01)
    app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield TestClient(app), keys, store
    finally:
        app.dependency_overrides.clear()
        _service_for.cache_clear()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def point_in(store: Store, cid: str) -> tuple[float, float]:
    c = store.communities().set_index("community_id").geometry[cid].representative_point()
    return round(c.y, 6), round(c.x, 6)


def test_post_json_cases_updates_zones(env) -> None:  # type: ignore[no-untyped-def]
    client, keys, store = env
    lat, lon = point_in(store, "A")
    before = client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT}).json()
    assert before["level"] == "none"
    body = [
        {
            "case_id": "k1",
            "reported": "2024-03-09",
            "type": "confirmed",
            "role": "residence",
            "lat": lat,
            "lon": lon,
        },
        {
            "case_id": "k2",
            "reported": "not a date",
            "type": "confirmed",
            "role": "residence",
            "lat": lat,
            "lon": lon,
        },
        {
            "case_id": "k3",
            "reported": "2024-03-09",
            "type": "zombie",
            "role": "residence",
            "lat": lat,
            "lon": lon,
        },
    ]
    r = client.post("/v1/cases", json=body, headers=auth(keys["officer"]))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["accepted"] == 1 and rep["rejected"] == 2
    assert [(x["row"], x["field"]) for x in rep["rejects"]] == [(2, "reported"), (3, "type")]
    after = client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT}).json()
    assert after["level"] == "sealed"
    # the report is kept
    got = client.get(f"/v1/ingest/{rep['batch_id']}", headers=auth(keys["analyst"])).json()
    assert got["accepted"] == 1 and len(got["rejects"]) == 2 and got["kind"] == "cases"
    assert client.get(f"/v1/ingest/{rep['batch_id']}").status_code == 401
    assert client.get("/v1/ingest/9999", headers=auth(keys["analyst"])).status_code == 404
    # re-sending changes nothing
    again = client.post("/v1/cases", json=body, headers=auth(keys["officer"])).json()
    assert again["inserted"] == 0 and again["unchanged"] == 1


def test_ndjson_and_csv_bodies(env) -> None:  # type: ignore[no-untyped-def]
    client, keys, store = env
    lat, lon = point_in(store, "F")
    nd = "\n".join(
        json.dumps(
            {
                "case_id": f"n{i}",
                "reported": "2024-03-01",
                "type": "confirmed",
                "role": "residence",
                "lat": lat,
                "lon": lon,
            }
        )
        for i in range(3)
    )
    r = client.post(
        "/v1/cases",
        content=nd,
        headers={**auth(keys["officer"]), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 3
    csv = f"case_id,reported,type,role,lat,lon\nc1,2024-03-02,confirmed,residence,{lat},{lon}\n"
    r = client.post(
        "/v1/cases", content=csv, headers={**auth(keys["officer"]), "Content-Type": "text/csv"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = client.post(
        "/v1/cases", content="x", headers={**auth(keys["officer"]), "Content-Type": "image/png"}
    )
    assert r.status_code == 415
    r = client.post(
        "/v1/cases",
        content="[1, 2",
        headers={**auth(keys["officer"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    r = client.post(
        "/v1/cases",
        content="case_id,reported\n",
        headers={**auth(keys["officer"]), "Content-Type": "text/csv"},
    )
    assert r.status_code == 422 and "detail" in r.json()


def test_size_limit_is_413(env) -> None:  # type: ignore[no-untyped-def]
    client, keys, _ = env
    big = "case_id,reported,type,role,lat,lon\n" + "x,2024-03-01,confirmed,residence,1,1\n" * 1000
    r = client.post(
        "/v1/cases", content=big, headers={**auth(keys["officer"]), "Content-Type": "text/csv"}
    )
    assert r.status_code == 413


def test_roles_and_audit(env) -> None:  # type: ignore[no-untyped-def]
    client, keys, store = env
    csv = "case_id,reported,type,role,lat,lon\nc1,2024-03-02,confirmed,residence,30.59,114.3\n"
    h = {"Content-Type": "text/csv"}
    assert client.post("/v1/cases", content=csv, headers=h).status_code == 401
    bad = client.post("/v1/cases", content=csv, headers={**h, **auth("rk_nope_nope")})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert (
        client.post("/v1/cases", content=csv, headers={**h, **auth(keys["analyst"])}).status_code
        == 403
    )
    assert (
        client.post("/v1/cases", content=csv, headers={**h, **auth(keys["admin"])}).status_code
        == 200
    )
    assert client.get("/v1/keys", headers=auth(keys["officer"])).status_code == 403
    made = client.post(
        "/v1/keys", json={"role": "officer", "name": "lab"}, headers=auth(keys["admin"])
    )
    assert made.status_code == 201 and made.json()["key"].startswith("rk_")
    listed = client.get("/v1/keys", headers=auth(keys["admin"])).json()
    assert {k["name"] for k in listed} >= {"lab", "test officer"}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    kid = made.json()["key_id"]
    assert client.delete(f"/v1/keys/{kid}", headers=auth(keys["admin"])).status_code == 204
    assert (
        client.post("/v1/cases", content=csv, headers={**h, **auth(made.json()["key"])}).status_code
        == 401
    )
    log = client.get("/v1/audit", headers=auth(keys["admin"])).json()
    actions = [e["action"] for e in log]
    assert "ingest.cases" in actions and "keys.create" in actions and "keys.revoke" in actions
    # every ingest made over HTTP names the key that made it
    assert all(e["key_id"] for e in log if e["action"] == "ingest.cases")
