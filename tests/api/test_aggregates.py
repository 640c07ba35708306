"""Case counts per unit: exact for analysts, small counts withheld from the public."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.aggregates import suppress
from api.store import Store
from tests.api.conftest import END

AT = END.isoformat()


@pytest.mark.parametrize(
    ("counts", "hidden"),
    [
        ([0, 10, 20], []),
        ([0, 3, 10, 7], [1, 3]),  # 3 alone could be worked out from the total: 7 goes too
        ([4, 3, 100], [0, 1]),  # 4 + 3 >= 5: nothing more
        ([2, 2, 0, 100], [0, 1, 3]),
        ([1, 0, 0], [0]),  # nothing else to hide (the total is withheld by `published`)
    ],
)
def test_small_counts_and_their_complement_are_withheld(
    counts: list[int], hidden: list[int]
) -> None:
    assert np.flatnonzero(suppress(pd.Series(counts), 5)).tolist() == hidden


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
            withheld = 0
            for u in pub["units"]:
                if u["suppressed"]:
                    assert u["cases"] is None and u["rate_per_100k"] is None
                    withheld += exact[u["unit_id"]]
                else:
                    assert u["cases"] == exact[u["unit_id"]]
                    assert u["cases"] == 0 or u["cases"] >= 5
            assert withheld == 0 or withheld >= 5
            assert pub["total"] is None or pub["total"] == 0 or pub["total"] >= 5
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
