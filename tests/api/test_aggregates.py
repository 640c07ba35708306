"""Case counts per unit: exact for analysts; for the public, small counts withheld and the
others rounded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.aggregates import public_count, published
from api.store import Store
from tests.api.conftest import END

AT = END.isoformat()


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, 0), (1, None), (4, None), (5, 5), (7, 5), (8, 10), (12, 10), (13, 15), (1002, 1000)],
)
def test_public_counts_are_withheld_or_rounded(n: int, shown: int | None) -> None:
    assert public_count(n, 5) == shown


def test_subtracting_published_counts_gives_no_small_count() -> None:
    """The review's case: district D1 = 7 cases, its subdistrict S1 = 6, so S2 = 1; a
    community-level total of 29 against a district-level 27 gives the 2 cases outside every
    district. Published counts hide both differences."""
    district = pd.DataFrame(
        {"unit_id": ["D1", "D2"], "name": None, "population": [1000, 1000], "cases": [7, 20]}
    )
    sub = pd.DataFrame(
        {"unit_id": ["S1", "S2"], "name": None, "population": [500, 500], "cases": [6, 1]}
    )
    d_rows, d_total = published(district, 27, 5)
    s_rows, c_total = published(sub, 29, 5)
    assert [r["cases"] for r in d_rows] == [5, 20] and [r["cases"] for r in s_rows] == [5, None]
    assert d_rows[0]["cases"] - s_rows[0]["cases"] == 0  # not S2's 1
    assert (d_total, c_total) == (25, 30)  # 5 apart, not 2
    exact, _ = published(sub, 29, 1)
    assert [r["cases"] for r in exact] == [6, 1] and exact[1]["suppressed"] is False


def _expected(sample_dir: Path, start: dt.date, end: dt.date) -> dict[str, int]:
    """Distinct cases per district from the raw files (geopandas spatial join)."""
    cases = pd.read_csv(sample_dir / "cases.csv")
    cases["reported"] = pd.to_datetime(cases["reported"]).dt.date
    cases = cases[(cases["reported"] >= start) & (cases["reported"] <= end)]
    pts = gpd.GeoDataFrame(cases, geometry=gpd.points_from_xy(cases["lon"], cases["lat"]), crs=4326)
    comm = gpd.read_file(sample_dir / "communities.geojson")[["district_id", "geometry"]]
    joined = gpd.sjoin(pts, comm, predicate="within")
    return joined.groupby("district_id")["case_id"].nunique().to_dict()


def test_analysts_see_exact_counts_the_public_no_small_ones(
    client: TestClient, sample_db: Path, sample_dir: Path
) -> None:
    store = Store.open(sample_db)
    _, analyst = store.create_key("analyst", "epi team")
    _, officer = store.create_key("officer", "lab")
    store.close()
    start = END - dt.timedelta(days=13)
    want = _expected(sample_dir, start, END)
    q = {"to": AT, "unit": "district"}
    r = client.get("/v1/aggregates/cases", params=q, headers={"Authorization": f"Bearer {analyst}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == start.isoformat() and body["min_count"] == 1
    got = {u["unit_id"]: u["cases"] for u in body["units"]}
    assert {k: v for k, v in got.items() if v} == want
    assert r.headers["cache-control"].startswith("private")

    # small windows make small counts: the public sees none of them
    for days in (0, 1, 2, 6):
        q = {"from": (END - dt.timedelta(days=days)).isoformat(), "to": AT}
        for unit in ("district", "subdistrict", "community"):
            q["unit"] = unit
            pub = client.get("/v1/aggregates/cases", params=q).json()
            full = client.get(
                "/v1/aggregates/cases", params=q, headers={"Authorization": f"Bearer {analyst}"}
            ).json()
            exact = {u["unit_id"]: u["cases"] for u in full["units"]}
            for u in pub["units"]:
                n = exact[u["unit_id"]]
                if u["suppressed"]:
                    assert u["cases"] is None and u["rate_per_100k"] is None and 0 < n < 5
                else:
                    assert u["cases"] == public_count(n, 5)
                    assert u["cases"] % 5 == 0 and abs(u["cases"] - n) <= 2.5
            assert pub["total"] == public_count(full["total"], 5)
            if any(0 < v < 5 for v in exact.values()):
                assert any(u["suppressed"] for u in pub["units"])

    assert (
        client.get("/v1/aggregates/cases", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    r = client.get("/v1/aggregates/cases", headers={"Authorization": f"Bearer {officer}"})
    assert r.status_code == 403
    r = client.get("/v1/aggregates/cases", params={"from": "2024-03-10", "to": "2024-03-01"})
    assert r.status_code == 422
