"""Shared fixtures and helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from pyproj import CRS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KOREA = SHARED / "data" / "korea"

# a local metric frame for hand-made scenarios (centred in Wuhan)
LOCAL = CRS.from_proj4("+proj=aeqd +lat_0=30.59 +lon_0=114.30 +datum=WGS84 +units=m")


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


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared test data missing at {SHARED}")
    return SHARED
