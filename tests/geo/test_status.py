"""The status of places (geo.status), missing values and ISO dates (geo._values) and the
quality flags of case locations (geo.quality), on hand-made communities."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.geo._values import int_or_none, iso_date, missing, or_none, text_or_none
from riskmap.geo.policy import NONE_LABEL, load_policy
from riskmap.geo.quality import REPEATED_MIN_CASES, location_flags, parent_centroids
from riskmap.geo.status import StatusLookup, community_ref, place_history
from riskmap.geo.zones import CommunityLayer, compute_zones
from tests.helpers import LOCAL, case_rows, squares

D0 = dt.date(2024, 3, 1)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([shapely.Point(x, y)], crs=LOCAL).to_crs(4326).iloc[0]
    return p.x, p.y


@pytest.fixture(scope="module")
def city() -> tuple[CommunityLayer, pd.DataFrame]:
    layer = CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 9000, 0, 500, "D2")]),
        10,
    )
    cases = case_rows([("K1", D0.isoformat(), "confirmed", "residence", 250, 250)])
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    return layer, cases


def test_answers_equal_the_highest_zone_containing_each_point(city) -> None:  # type: ignore[no-untyped-def]
    layer, cases = city
    policy = load_policy("cn-three-zone")
    result = compute_zones(layer, cases, policy, D0 + dt.timedelta(days=2))
    lookup = StatusLookup(result, layer)
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(-300, 1300, 400), rng.uniform(-300, 800, 400)])
    xy = np.vstack([xy, [[500, 250], [500, 500], [250, 250], [50_000, 0]]])  # edge, corner
    pts = gpd.GeoSeries(shapely.points(xy), crs=LOCAL).to_crs(4326)
    lon, lat = pts.x.to_numpy(), pts.y.to_numpy()
    got = lookup.answers(lon, lat)
    zones = result.zones
    ranks = [policy.rank(lv) for lv in zones["level"]]
    for i, answer in enumerate(got):
        p = shapely.Point(lon[i], lat[i])
        inside = [k for k, g in enumerate(zones.geometry) if g.intersects(p)]
        want = zones["level"].iat[max(inside, key=lambda k: ranks[k])] if inside else "none"
        assert answer["level"] == want, (xy[i], answer)
        assert answer["label"] == policy.label(want)
        assert answer["policy"] == policy.id and answer["at"] == result.at
    # the home's community: its own dates; far away: no zone, no community
    home, far = got[-2], got[-1]
    assert home["community"] == {"id": "A", "name": "Community A"} and home["covered"] is True
    row = result.levels.set_index("community_id").loc["A"]
    assert (home["level"], home["since"], home["expected_lift"]) == (
        row["level"],
        row["since"],
        row["expected_lift"],
    )
    assert far == {
        "level": "none",
        "label": NONE_LABEL,
        "color": policy.none_color,
        "zone_id": None,
        "community": None,
        "covered": False,
        "since": None,
        "expected_lift": None,
        "policy": policy.id,
        "at": result.at,
    }
    assert community_ref(layer, -1) is None


def test_place_history_runs_of_days(city) -> None:  # type: ignore[no-untyped-def]
    layer, cases = city
    policy = load_policy("cn-three-zone")
    end = D0 + dt.timedelta(days=3)
    result = compute_zones(layer, cases, policy, end)
    lon, lat = _lonlat(250, 250)
    h = place_history(result, layer, lon, lat, D0 - dt.timedelta(days=2), end)
    runs = h["intervals"]
    assert [r["level"] for r in runs] == ["none", result.levels["level"].iat[0]]
    assert runs[0]["label"] == NONE_LABEL and runs[0]["days"] == 2
    assert h["days_in_zone"] == 4 and h["in_zone"] and h["community"]["id"] == "A"
    away = place_history(result, layer, *_lonlat(50_000, 0), D0, end)
    assert away["community"] is None and not away["in_zone"] and away["days_in_zone"] == 0


@pytest.mark.parametrize("v", [None, float("nan"), np.nan, pd.NA, pd.NaT, np.float64("nan")])
def test_missing_values(v: object) -> None:
    assert missing(v) and or_none(v) is None and iso_date(v) is None
    assert int_or_none(v) is None and text_or_none(v) is None


def test_present_values() -> None:
    for v in ("", "x", 0, 0.0, [1, 2], np.array([np.nan, 1.0])):
        assert not missing(v)
    assert text_or_none("  ") is None and text_or_none(" a ") == "a" and text_or_none(7) == "7"
    assert int_or_none(np.float64(3.0)) == 3 and or_none("C1") == "C1"
    day = dt.date(2024, 3, 1)
    for d in (day, dt.datetime(2024, 3, 1, 23, 59), pd.Timestamp("2024-03-01"), "2024-03-01"):
        assert iso_date(d) == "2024-03-01", d


def test_missing_values_before_pandas_is_imported() -> None:
    """The CLI's status answer never imports pandas: ``missing`` answers the same without it
    (numpy's NaN and NaT; no pandas value can exist yet)."""
    code = (
        "import sys, numpy as np\n"
        "from riskmap.geo._values import missing\n"
        "m = [None, float('nan'), np.float32('nan'), np.float64('nan'), np.datetime64('NaT')]\n"
        "p = ['', 'x', 0, 0.0, [1, 2], np.float64(1.5), np.datetime64('2024-01-02')]\n"
        "assert all(missing(v) for v in m) and not any(missing(v) for v in p)\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_parent_centroids_are_the_centroids_of_the_unions(city) -> None:  # type: ignore[no-untyped-def]
    """The area-weighted centroids of the location flags equal the centroids of the parent
    units' unions (the communities do not overlap), without computing the unions."""
    layer, _ = city
    for parent in ("district", "subdistrict"):
        cx, cy = parent_centroids(layer, parent)
        units = layer.parent_units(parent)
        want = shapely.centroid(units.geometry.to_numpy())
        assert len(cx) == len(units) == len(set(layer.frame[f"{parent}_id"])) > 0
        assert np.allclose(cx, shapely.get_x(want), atol=1e-9)
        assert np.allclose(cy, shapely.get_y(want), atol=1e-9)


def test_location_flags(city) -> None:  # type: ignore[no-untyped-def]
    layer, _ = city
    lon_in, lat_in = _lonlat(250, 123)
    lon_out, lat_out = _lonlat(50_000, 0)
    rows = [("P1", lon_in, lat_in), ("P2", lon_out, lat_out), ("P3", 114.3, 30.59)]
    rows += [(f"H{i}", lon_in, lat_in) for i in range(REPEATED_MIN_CASES)]
    frame = pd.DataFrame(
        {
            "row": range(1, len(rows) + 1),
            "case_id": [r[0] for r in rows],
            "lon": [r[1] for r in rows],
            "lat": [r[2] for r in rows],
        }
    )
    flags = location_flags(frame, layer)
    assert any(f.startswith("row 2:") and "outside every community" in f for f in flags)
    assert any(f.startswith("row 3:") and "2 decimals or fewer" in f for f in flags)
    assert any(f"a location of {REPEATED_MIN_CASES + 1} cases" in f for f in flags)
    assert not any(f.startswith("row 1:") for f in flags)
