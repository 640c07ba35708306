"""Property test (hypothesis) through HTTP: ``GET /v1/status`` of any point names the highest
zone of ``GET /v1/zones`` (same rule, date and caller) whose geometry covers the point, on
zone vertices and community edges and vertices too, and that zone's published geometry holds
the point; for anonymous callers (public zones) and for officers (exact zones)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
import shapely.geometry
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.policy import load_policy
from tests.api.helpers import served

END = dt.date(2024, 3, 31)
DAYS = 30
RULES = ["cn-three-zone", "cn-2022-9th", "hk-building", "cn-2022-nov", "india-containment"]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, np.ndarray]:
    """A client of a store with a small city (every preset public), an officer key, and the
    communities' vertices."""
    out = tmp_path_factory.mktemp("props")
    c = generate_city(
        seed=3, communities=60, cases=400, days=DAYS, end=END, subdistricts=6, districts=2
    )
    write_city(c, out / "city")
    store = Store.open(out / "r.db")
    ingest_communities(store, out / "city" / "communities.geojson")
    assert ingest_cases(store, out / "city" / "cases.csv", today=END).counts.rejected == 0
    key = store.create_key("officer", "property test")[1]
    store.close()
    verts = shapely.get_coordinates(c.communities.geometry.to_numpy())
    return out / "r.db", key, verts


@pytest.fixture(scope="module")
def client(city: tuple[Path, str, np.ndarray]) -> Iterator[TestClient]:
    db, _, _ = city
    settings = Settings(
        database_url=f"sqlite:///{db}", rate_limit_per_minute=0, policies=",".join(RULES)
    )
    with served(settings) as c:
        yield c


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_status_names_the_highest_published_zone(
    client: TestClient, city: tuple[Path, str, np.ndarray], data: st.DataObject
) -> None:
    _, key, verts = city
    rule = data.draw(st.sampled_from(RULES), label="rule")
    at = END - dt.timedelta(days=data.draw(st.integers(0, DAYS - 1), label="days before end"))
    headers = {"Authorization": f"Bearer {key}"} if data.draw(st.booleans(), "officer") else {}
    q = {"policy": rule, "at": at.isoformat()}
    r = client.get("/v1/zones", params=q, headers=headers)
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    policy = load_policy(rule)
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in feats], dtype=object)
    ranks = np.array([policy.rank(f["properties"]["level"]) for f in feats], dtype=np.int64)

    # points: zone vertices, community vertices, points on community edges, anywhere
    zone_xy = shapely.get_coordinates(geoms) if len(geoms) else np.empty((0, 2))
    pick = st.integers(0, len(verts) - 2)
    pts = [tuple(verts[i]) for i in data.draw(st.lists(pick, min_size=3, max_size=3))]
    for i, t in data.draw(st.lists(st.tuples(pick, st.floats(0, 1)), min_size=3, max_size=3)):
        pts.append(tuple(verts[i] + t * (verts[i + 1] - verts[i])))  # on an edge when in a ring
    if len(zone_xy):
        zpick = st.integers(0, len(zone_xy) - 1)
        pts += [tuple(zone_xy[i]) for i in data.draw(st.lists(zpick, min_size=4, max_size=4))]
    x0, y0 = verts.min(axis=0)
    x1, y1 = verts.max(axis=0)
    pts += data.draw(st.lists(st.tuples(st.floats(x0, x1), st.floats(y0, y1)), max_size=3))

    for lon, lat in pts:
        s = client.get(
            "/v1/status",
            params=q | {"lat": repr(float(lat)), "lon": repr(float(lon))},
            headers=headers,
        )
        assert s.status_code == 200, s.text
        got = s.json()
        p = shapely.Point(lon, lat)
        covering = shapely.intersects(geoms, p) if len(geoms) else np.zeros(0, dtype=bool)
        want = int(ranks[covering].max()) if covering.any() else 0
        assert policy.rank(got["level"]) == want, (lon, lat, got, want)
        if got["zone_id"] is not None:
            named = [g for f, g in zip(feats, geoms, strict=True) if f["id"] == got["zone_id"]]
            assert len(named) == 1 and shapely.intersects(named[0], p)
