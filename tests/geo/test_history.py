"""Zone history: events, and the history of a place, against day-by-day recomputation."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pytest
import shapely

from riskmap.data.generator import generate_city
from riskmap.geo.history import base_rank, intervals, point_ranks, zone_events
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from tests.conftest import LOCAL, squares
from tests.geo.scenario import Scenario, cases, day


@pytest.fixture
def town() -> CommunityLayer:
    return CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 20000, 0, 500, "D2")]),
        h3_res=10,
    )


def test_events_of_a_high_area_that_steps_down(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "cn-2022-9th",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k2", 5, "confirmed", "residence", 250, 250),
        ),
    )
    ev = zone_events(s.at(30), town, day(-5), day(30))
    got = [(r.date, r.kind, r.unit_id, r.level_from, r.level_to) for r in ev.itertuples()]
    assert got == [
        (day(0), "created", "A", "none", "high"),
        (day(0), "created", "B", "none", "low"),
        (day(5), "extended", "A", "high", "high"),
        (day(5), "extended", "B", "low", "low"),
        (day(12), "stepped_down", "A", "high", "medium"),
        (day(15), "lifted", "A", "medium", "none"),
        (day(15), "lifted", "B", "low", "none"),
    ]


def test_escalation_event(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "cn-three-zone",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k2", 3, "confirmed", "residence", 750, 250),  # in B, controlled until then
        ),
    )
    ev = zone_events(s.at(20), town, day(3), day(3))
    assert ("escalated", "B", "controlled", "sealed") in [
        (r.kind, r.unit_id, r.level_from, r.level_to) for r in ev.itertuples()
    ]


def test_area_events_hide_case_locations(town: CommunityLayer) -> None:
    s = Scenario(town, "india-containment", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    ev = zone_events(s.at(40), town, day(0), day(40))
    areas = ev[ev["unit_type"] == "area"]
    assert sorted(areas["kind"]) == ["created", "created", "lifted", "lifted"]
    assert set(areas[areas["kind"] == "lifted"]["date"]) == {day(28)}
    assert not any("," in u or "." in u for u in areas["unit_id"])  # no coordinates


@pytest.fixture(scope="module")
def city() -> tuple[CommunityLayer, object]:
    c = generate_city(seed=5, communities=300, cases=900, days=40, end=dt.date(2024, 3, 31))
    layer = CommunityLayer(c.communities, 10)
    cs = c.cases.copy()
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    return layer, cs


@pytest.mark.parametrize("preset", ["cn-three-zone", "cn-2022-9th", "india-containment"])
def test_history_equals_the_zones_known_each_day(city, preset: str) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy(preset)
    end = dt.date(2024, 3, 31)
    hist = compute_zones(layer, cs, policy, end)
    ids = np.array(["none"] + [lv.id for lv in reversed(policy.levels)], dtype=object)
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = layer.frame.total_bounds
    lon, lat = rng.uniform(minx, maxx, 25), rng.uniform(miny, maxy, 25)
    ranks = [point_ranks(hist, layer, x, y) for x, y in zip(lon, lat, strict=True)]
    for back in (0, 3, 11, 20):
        d = end - dt.timedelta(days=back)
        then = compute_zones(layer, cs, policy, d)
        t = hist.at_index - back
        assert list(ids[hist.rank_grid[:, t]]) == list(then.levels["level"]), d
        z = then.zones
        idx = PolygonIndex(z.geometry.to_numpy(), 10, [policy.rank(v) for v in z["level"]])
        hit = idx.lookup(lon, lat).index
        expect = [z["level"].iat[i] if i >= 0 else "none" for i in hit]
        assert [ids[r[t]] for r in ranks] == expect, d


def test_intervals_of_a_place(town: CommunityLayer) -> None:
    s = Scenario(town, "cn-three-zone", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    r = s.at(30)
    pt = gpd.GeoSeries([shapely.Point(750, 250)], crs=LOCAL).to_crs(4326).iloc[0]
    runs = intervals(r, point_ranks(r, town, pt.x, pt.y), day(-2), day(20))
    assert runs == [
        {"level": "none", "from": day(-2), "to": day(-1)},
        {"level": "controlled", "from": day(0), "to": day(13)},
        {"level": "none", "from": day(14), "to": day(20)},
    ]


def test_far_future_dates_need_no_huge_grid(town: CommunityLayer) -> None:
    s = Scenario(town, "shanghai-2022-04", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    far = compute_zones(town, s.cases, s.policy, dt.date(9000, 1, 1))
    assert far.rank_grid is not None and far.rank_grid.shape[1] < 100
    assert set(far.levels["level"]) == {"precaution"}  # every community, forever
    pt = gpd.GeoSeries([shapely.Point(250, 250)], crs=LOCAL).to_crs(4326).iloc[0]
    runs = intervals(
        far, point_ranks(far, town, pt.x, pt.y), day(-1), day(30), base_rank(far, True)
    )
    assert [r["level"] for r in runs] == ["precaution", "sealed", "controlled", "precaution"]
    assert runs[-1]["to"] == day(30)
