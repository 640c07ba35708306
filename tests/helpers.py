"""Helpers shared by the tests (imported, never through conftest): paths, the local metric
frame of hand-made scenarios, communities from squares, case rows, and the comparison of two
zone results."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import CRS

from riskmap.geo.zones import ZoneResult

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KOREA = SHARED / "data" / "korea"

# a local metric frame for hand-made scenarios (centred in Wuhan)
LOCAL = CRS.from_proj4("+proj=aeqd +lat_0=30.59 +lon_0=114.30 +datum=WGS84 +units=m")

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from riskmap.api.settings import Settings


def need_shared(path: Path) -> Path:
    """``path`` under ../shared: a test that needs it fails in CI (``CI=true``) when it is
    missing, and skips with the reason elsewhere (a clone without ../shared beside it)."""
    if not path.exists():
        msg = f"shared test data missing at {path} (../shared beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@contextmanager
def running(settings: Settings, **client: Any) -> Iterator[TestClient]:
    """A client of the app (api.main.app) running with ``settings``: its lifespan runs for
    the block (services are opened when first needed and closed at its end); further
    ``TestClient(app)`` made inside share them."""
    from fastapi.testclient import TestClient

    from riskmap.api.main import app
    from riskmap.api.settings import get_settings

    app.dependency_overrides[get_settings] = lambda: settings
    try:
        with TestClient(app, **client) as c:
            yield c
    finally:
        app.dependency_overrides.clear()


def squares(spec: list[tuple[str, float, float, float, str]]) -> gpd.GeoDataFrame:
    """Communities from (id, x_m, y_m, side_m, district) squares in the local metric frame."""
    rows = [
        {
            "community_id": cid,
            "name": f"Community {cid}",
            "population": 1000,
            "subdistrict_id": f"S-{d}",
            "district_id": d,
            "geometry": shapely.box(x, y, x + side, y + side),
        }
        for cid, x, y, side, d in spec
    ]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=LOCAL).to_crs(4326)


def case_rows(spec: list[tuple[str, str, str, str, float, float]]) -> pd.DataFrame:
    """Case locations from (case_id, date, type, role, x_m, y_m) in the local metric frame."""
    pts = gpd.GeoSeries([shapely.Point(x, y) for *_, x, y in spec], crs=LOCAL).to_crs(4326)
    return pd.DataFrame(
        {
            "case_id": [s[0] for s in spec],
            "reported": [dt.date.fromisoformat(s[1]) for s in spec],
            "type": [s[2] for s in spec],
            "role": [s[3] for s in spec],
            "lat": pts.y.to_numpy(),
            "lon": pts.x.to_numpy(),
        }
    )


def assert_same(a: ZoneResult, b: ZoneResult) -> None:
    """Two zone results are equal: levels, rank grids, zones (ids, dates, geometry, cells)."""
    pd.testing.assert_frame_equal(a.levels, b.levels)
    assert a.rank_grid is not None and b.rank_grid is not None
    assert (a.rank_grid == b.rank_grid).all()
    za, zb = a.zones.reset_index(drop=True), b.zones.reset_index(drop=True)
    cols = ["zone_id", "level", "community_ids", "start", "last_case", "expected_lift"]
    assert za[cols].to_dict("records") == zb[cols].to_dict("records")
    for ga, gb in zip(za.geometry, zb.geometry, strict=True):
        assert shapely.equals(ga, gb)
    for ca, cb in zip(za["cells"], zb["cells"], strict=True):
        assert (ca == cb).all()
