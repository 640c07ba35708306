"""Ingest over HTTP with API keys: formats, reports, limits, roles, audit (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from riskmap.api.ingest import ingest_communities
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from tests.helpers import running, squares

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
    with running(settings) as client:
        yield client, keys, store


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


def _table(db: str, sql: str) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


def test_real_ds4c_files_over_http_as_through_the_cli(shared_dir: Path, tmp_path: Path) -> None:
    """Seoul neighbourhoods (a zipped EUC-KR shapefile) and DS4C's PatientRoute.csv with the
    CLI's options as query parameters store exactly what the CLI stores; the same routes
    re-written with month-first dates (as Excel re-saves them) are the same records."""
    import csv
    import io
    import zipfile

    from typer.testing import CliRunner

    from riskmap.api.cli import app as cli_app

    korea = shared_dir / "data/korea"
    seoul = korea / "boundaries/seoul_neighborhoods_2015"
    route = korea / "ds4c/PatientRoute.csv"
    hood_cols = "community_id=EMD_CD,name=EMD_KOR_NM"
    route_cols = "case_id=patient_id,reported=date,lat=latitude,lon=longitude,type="

    cli_db = str(tmp_path / "cli.db")
    runner = CliRunner()
    for args in (
        ["communities", f"{seoul}.shp", "--encoding", "cp949", "--columns", hood_cols],
        ["cases", str(route), "--role", "frequent_activity", "--columns", route_cols],
    ):
        r = runner.invoke(cli_app, ["--db", cli_db, "ingest", *args])
        assert r.exit_code == 0, r.output

    http_db = str(tmp_path / "http.db")
    key = Store.open(http_db).create_key("officer", "ds4c")[1]
    with running(Settings(database_url=f"sqlite:///{http_db}", rate_limit_per_minute=0)) as client:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for ext in (".shp", ".shx", ".dbf", ".prj"):
                z.write(f"{seoul}{ext}", f"seoul{ext}")
        r = client.post(
            "/v1/communities",
            content=buf.getvalue(),
            params={"encoding": "cp949", "columns": hood_cols},
            headers={**auth(key), "Content-Type": "application/zip"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 467 and r.json()["rejected"] == 0
        r = client.post(
            "/v1/cases",
            content=route.read_bytes(),
            params={"role": "frequent_activity", "columns": route_cols},
            headers={**auth(key), "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["rows_read"] == 8092 and rep["accepted"] > 8000
        assert "/tmp" not in r.text and "riskmap-ingest" not in r.text

        # month-first dates, read with date_format: the same records, nothing new
        rows = list(csv.reader(io.StringIO(route.read_text(encoding="utf-8"))))
        for r_ in rows[1:]:
            y, m, d = r_[2].split("-")
            r_[2] = f"{int(m)}/{int(d)}/{y}"
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        again = client.post(
            "/v1/cases",
            content=out.getvalue().encode(),
            params={
                "role": "frequent_activity",
                "columns": route_cols,
                "date_format": "%m/%d/%Y",
            },
            headers={**auth(key), "Content-Type": "text/csv"},
        ).json()
        assert again["accepted"] == rep["accepted"] and again["rejected"] == rep["rejected"]
        assert again["inserted"] == 0 and again["updated"] == 0

    for sql in (
        "SELECT community_id, name, population, geometry FROM communities",
        "SELECT res, community_id, cell FROM community_cells",
        "SELECT case_id, reported, type, version FROM cases",
        "SELECT case_id, role, lat, lon, reported, cell FROM case_locations",
        "SELECT b.kind, r.row, r.field, r.reason FROM rejects r JOIN batches b USING (batch_id)"
        " WHERE b.batch_id <= 2",
        "SELECT b.kind, w.message FROM batch_warnings w JOIN batches b USING (batch_id)"
        " WHERE b.batch_id <= 2",
    ):
        cli_rows, http_rows = _table(cli_db, sql), _table(http_db, sql)
        assert cli_rows == http_rows, sql
        assert cli_rows or "rejects" in sql, sql
    names = {r[1] for r in _table(http_db, "SELECT community_id, name FROM communities")}
    assert "대방동" in names  # decoded with the encoding given as a query parameter


def test_cases_are_flagged_with_the_communities_the_server_has(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A POST of cases flags its rows with the communities the server holds in memory (no
    reading and preparing them again: seconds on a large city) while only cases came since,
    and reads them again once communities changed."""
    from riskmap.api.store import Store as StoreClass

    client, keys, store = env
    lat, lon = point_in(store, "A")
    assert client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT}).status_code == 200
    reads: list[int] = []
    real = StoreClass.communities

    def counted(self: StoreClass) -> object:
        reads.append(1)
        return real(self)

    monkeypatch.setattr(StoreClass, "communities", counted)
    row = {"reported": "2024-03-09", "type": "confirmed", "role": "residence"}
    far = {"lat": 10.0, "lon": 10.0}  # outside every community: flagged
    for i in range(2):
        body = [
            {"case_id": f"m{i}", **row, "lat": lat, "lon": lon},
            {"case_id": f"o{i}", **row, **far},
        ]
        r = client.post("/v1/cases", json=body, headers=auth(keys["officer"]))
        assert r.status_code == 200, r.text
        assert any("row 2:" in w and "outside every community" in w for w in r.json()["warnings"])
        client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT})  # the new version
    assert reads == []  # the server's prepared communities flagged both batches
    # a batch of communities: the next batch of cases reads them again
    gdf = squares([("G", 20000, 0, 500, "D3")])
    r = client.post(
        "/v1/communities",
        content=gdf.to_json(),
        headers=auth(keys["officer"]) | {"Content-Type": "application/geo+json"},
    )
    assert r.status_code == 200, r.text
    body = [{"case_id": "m9", **row, "lat": lat, "lon": lon}]
    assert client.post("/v1/cases", json=body, headers=auth(keys["officer"])).status_code == 200
    assert reads
