"""POST /v1/status/batch (JSON, CSV, GeoParquet; in order; bad rows named) and
GET /v1/status/cell/{h3} (the levels meeting a cell) against the single-point answers."""

from __future__ import annotations

import io

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.api.helpers import END

AT = END.isoformat()
URL = f"/v1/status/batch?at={AT}"


def _points(client: TestClient, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the city, a point inside each sealed zone, and one far away."""
    comms = client.get("/v1/communities", params={"at": AT}).json()["features"]
    bounds = shapely.total_bounds([shapely.geometry.shape(f["geometry"]) for f in comms[:300]])
    rng = np.random.default_rng(5)
    lon = rng.uniform(bounds[0], bounds[2], n)
    lat = rng.uniform(bounds[1], bounds[3], n)
    zones = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"]
    inner = [shapely.geometry.shape(z["geometry"]).representative_point() for z in zones[:10]]
    lon = np.concatenate([lon, [p.x for p in inner], [0.0]])
    lat = np.concatenate([lat, [p.y for p in inner], [0.0]])
    return lon, lat


def _single(client: TestClient, lon: float, lat: float) -> dict:  # type: ignore[type-arg]
    r = client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT})
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def _same(row: dict, one: dict) -> None:  # type: ignore[type-arg]
    assert row["level"] == one["level"]
    assert row["zone_id"] == one["zone_id"]
    assert row["community_id"] == (one["community"] or {}).get("id")
    assert row["covered"] == one["covered"]
    assert row["since"] == one["since"] and row["expected_lift"] == one["expected_lift"]


def test_json_batch_answers_in_order_as_single_look_ups(client: TestClient) -> None:
    lon, lat = _points(client)
    body = {
        "points": [
            {"lat": y, "lon": x, "id": f"p{i}"}
            for i, (x, y) in enumerate(zip(lon, lat, strict=True))
        ]
    }
    r = client.post(URL, json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert r.headers["x-data-version"] == str(doc["data_version"])
    assert doc["policy"] == "cn-three-zone" and doc["at"] == AT and doc["data_through"] == AT
    assert doc["levels"]["sealed"]["label"] and "none" in doc["levels"]
    rows = doc["results"]
    assert [row["id"] for row in rows] == [f"p{i}" for i in range(len(lon))]
    assert any(row["level"] == "sealed" for row in rows)
    assert rows[-1]["covered"] is False and rows[-1]["level"] == "none"
    for i in range(0, len(lon), 7):
        _same(rows[i], _single(client, lon[i], lat[i]))
    for i in range(len(lon) - 11, len(lon)):  # the zone points and the far one
        _same(rows[i], _single(client, lon[i], lat[i]))


def test_csv_and_geoparquet_batches_give_the_same_answers(client: TestClient) -> None:
    lon, lat = _points(client, 30)
    frame = pd.DataFrame({"lat": lat, "lon": lon})
    want = client.post(URL, json={"points": frame.to_dict("records")}).json()["results"]
    csv = client.post(URL, content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert csv.status_code == 200 and csv.json()["results"] == want
    buf = io.BytesIO()
    gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326).to_parquet(buf)
    pq = client.post(
        URL, content=buf.getvalue(), headers={"Content-Type": "application/vnd.apache.parquet"}
    )
    assert pq.status_code == 200 and pq.json()["results"] == want
    # a CSV answer when asked for
    r = client.post(
        URL,
        content=frame.to_csv(index=False),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    back = pd.read_csv(io.StringIO(r.text), keep_default_na=False)
    assert list(back["level"]) == [row["level"] for row in want]


@pytest.mark.parametrize(
    ("ctype", "body", "status", "detail"),
    [
        (
            "application/json",
            b'{"points": [{"lat": 30.5, "lon": 114.3}, {"lat": 95, "lon": 1}]}',
            422,
            "points[1]: lat: 95 is not a number from -90 to 90",
        ),
        ("application/json", b'{"points": [{"lat": "x", "lon": 1}]}', 422, "points[0]: lat: 'x'"),
        ("application/json", b'{"pts": []}', 422, 'expected {"points"'),
        ("application/json", b"not json", 422, "body: not JSON"),
        ("application/json", b'{"points": []}', 422, "body: no point"),
        ("text/csv", b"lat,lon\n30.5,114.3\n30.5,abc\n", 422, "row 2: lon: 'abc'"),
        ("text/csv", b"y,x\n30.5,114.3\n", 422, "missing column(s) lat, lon"),
        ("application/vnd.apache.parquet", b"PAR1 nope", 422, "not a Parquet file"),
        ("application/xml", b"<a/>", 415, "unsupported Content-Type 'application/xml'"),
        ("text/csv", b"", 422, "empty request body"),
    ],
)
def test_bad_batches_are_named(
    client: TestClient, ctype: str, body: bytes, status: int, detail: str
) -> None:
    r = client.post(URL, content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert detail in str(r.json()["detail"])


def test_batches_are_bounded(sample_db) -> None:  # type: ignore[no-untyped-def]
    from riskmap.api.settings import Settings
    from tests.api.helpers import served

    settings = Settings(database_url=f"sqlite:///{sample_db}", max_batch_points=5)
    with served(settings) as c:
        pts = [{"lat": 30.5, "lon": 114.3}] * 6
        r = c.post(URL, json={"points": pts})
        assert r.status_code == 422 and "at most 5 in one batch" in str(r.json()["detail"])
        assert c.post(URL, json={"points": pts[:5]}).status_code == 200


def test_cell_status(client: TestClient) -> None:
    zones = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"]
    zone = shapely.geometry.shape(zones[0]["geometry"])
    p = zone.representative_point()
    # a fine cell deep inside: the whole cell is sealed
    inner = h3.latlng_to_cell(p.y, p.x, 13)
    r = client.get(f"/v1/status/cell/{inner}", params={"at": AT})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["level"] == "sealed" and doc["resolution"] == 13 and doc["cell"] == inner
    assert doc["uniform"] is True and doc["levels"][0] == "sealed"
    # a coarse cell holding the zone and more: sealed somewhere, not everywhere
    coarse = h3.latlng_to_cell(p.y, p.x, 6)
    doc = client.get(f"/v1/status/cell/{coarse}", params={"at": AT}).json()
    assert doc["level"] == "sealed" and doc["uniform"] is False
    # far away: nothing
    far = client.get(f"/v1/status/cell/{h3.latlng_to_cell(0, 0, 9)}", params={"at": AT}).json()
    assert far["level"] == "none" and far["levels"] == [] and far["uniform"] is True
    for bad in ("zzz", "8a2a1072b59ffff0", "0"):
        r = client.get(f"/v1/status/cell/{bad}", params={"at": AT})
        assert r.status_code == 422 and "is not an H3 cell index" in str(r.json()["detail"])
