"""Every preset of policies.md on hand-built scenarios, day by day.

The expected answers are derived from the rule text (see each preset's notes) by hand.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from riskmap.geo.policy import load_policy, preset_names
from riskmap.geo.zones import CommunityLayer
from tests.conftest import squares
from tests.geo.scenario import Scenario, cases, day

ALL = [
    "cn-2022-9th",
    "cn-2022-nov",
    "cn-three-zone",
    "shanghai-2022-04",
    "india-containment",
    "hk-building",
    "cdc-community",
    "cn-2020-county",
]


def test_all_eight_presets_ship_and_cite_their_source() -> None:
    assert sorted(ALL) == preset_names()
    for name in ALL:
        p = load_policy(name)
        assert p.id == name and p.source and p.notes
        assert "none" not in p.level_ids
        # a rule drawing finer than a community names who published at that precision
        assert bool(p.fine_levels) == (p.public_precision is not None), name
    assert {n for n in ALL if load_policy(n).fine_levels} == {"cn-2022-nov", "hk-building"}


@pytest.fixture
def town() -> CommunityLayer:
    # A row of 500 m squares in district D1: A B C (touching), then E far away in D1,
    # and F in district D2.
    return CommunityLayer(
        squares(
            [
                ("A", 0, 0, 500, "D1"),
                ("B", 500, 0, 500, "D1"),
                ("C", 1000, 0, 500, "D1"),
                ("E", 5000, 0, 500, "D1"),
                ("F", 20000, 0, 500, "D2"),
            ]
        ),
        h3_res=10,
    )


# ---------------------------------------------------------------- cn-2022-9th
def test_cn_2022_9th_one_case_steps_down_then_lifts(town: CommunityLayer) -> None:
    s = Scenario(town, "cn-2022-9th", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    for d in range(0, 7):
        assert s.levels(d) == {"A": "high", "B": "low", "C": "low", "E": "low", "F": "none"}, d
    for d in (7, 8, 9):
        assert s.levels(d) == {"A": "medium", "B": "low", "C": "low", "E": "low", "F": "none"}
    for d in (10, 11, 30):
        assert set(s.levels(d).values()) == {"none"}
    assert set(s.levels(-1).values()) == {"none"}


def test_cn_2022_9th_second_case_restarts_the_count(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "cn-2022-9th",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k2", 5, "asymptomatic", "frequent_activity", 100, 100),
        ),
    )
    got = [s.level(d, "A") for d in range(0, 17)]
    assert got == ["high"] * 12 + ["medium"] * 3 + ["none"] * 2


def test_cn_2022_9th_workplace_is_medium_for_7_days(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "cn-2022-9th",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k1", 0, "confirmed", "workplace", 5250, 250),
        ),
    )
    assert [s.level(d, "E") for d in range(0, 9)] == ["medium"] * 7 + ["low"] * 2 + []
    assert s.level(10, "E") == "none"


# ---------------------------------------------------------------- cn-2022-nov
def test_cn_2022_nov_building_cell_for_5_days(town: CommunityLayer) -> None:
    s = Scenario(town, "cn-2022-nov", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    for d in range(0, 5):
        # the building (res-12 cell, edge ~10 m) is high; 60 m away is the rest of the district
        assert s.points(d, [(250, 250), (250, 310), (5250, 250), (20250, 250)]) == [
            "high",
            "low",
            "low",
            "none",
        ], d
    assert s.points(5, [(250, 250), (250, 310)]) == ["none", "none"]
    z = s.at(0).zones.set_index("level")
    assert len(z.loc[["high"]]) == 1
    assert z.loc["high", "geometry"].area < 1e-7  # one building cell, not the compound


# ---------------------------------------------------------------- cn-three-zone
def test_cn_three_zone_day_by_day(town: CommunityLayer) -> None:
    s = Scenario(town, "cn-three-zone", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    expect = {"A": "sealed", "B": "controlled", "C": "controlled", "E": "precaution", "F": "none"}
    for d in (0, 13):
        assert s.levels(d) == expect
    assert set(s.levels(14).values()) == {"none"}


# ---------------------------------------------------------------- shanghai-2022-04
def test_shanghai_days_since_last_case(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "shanghai-2022-04",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k2", 0, "confirmed", "workplace", 750, 250),  # a workplace does not classify B
        ),
    )
    got = [s.level(d, "A") for d in range(-1, 16)]
    assert got == ["precaution"] + ["sealed"] * 7 + ["controlled"] * 7 + ["precaution"] * 2
    assert s.levels(3) == {
        "A": "sealed",
        "B": "precaution",
        "C": "precaution",
        "E": "precaution",
        "F": "precaution",
    }
    assert s.point(3, -5000, -5000) == "none"  # outside every community


# ---------------------------------------------------------------- india-containment
def test_india_containment_and_buffer_distances(town: CommunityLayer) -> None:
    s = Scenario(town, "india-containment", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    # circles are centred on the epicentre's res-10 cell (within ~76 m): 100 m margins
    pts = [(250 + 2900, 250), (250 + 7900, 250), (250 + 8100, 250), (250, 250 - 2900)]
    for d in (0, 27):
        assert s.points(d, pts) == ["containment", "buffer", "none", "containment"], d
    assert s.points(28, pts) == ["none"] * 4


def test_india_rural_buffer_is_7_km(town: CommunityLayer) -> None:
    frame = town.frame.copy()
    frame["rural"] = frame["community_id"] == "A"
    rural = CommunityLayer(frame, 10)
    s = Scenario(rural, "india-containment", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    assert s.points(0, [(250 + 9900, 250), (250 + 10100, 250)]) == ["buffer", "none"]


def test_india_circles_do_not_give_away_the_home(town: CommunityLayer) -> None:
    import geopandas as gpd
    import shapely

    from riskmap.geo import cells as h3c
    from tests.conftest import LOCAL

    home = (1234.0, 321.0)
    s = Scenario(town, "india-containment", cases(("k1", 0, "confirmed", "residence", *home)))
    zone = s.at(0).zones.set_index("level").geometry["containment"]
    centre = gpd.GeoSeries([zone.centroid], crs=4326).to_crs(LOCAL).iloc[0]
    ll = gpd.GeoSeries([shapely.Point(home)], crs=LOCAL).to_crs(4326).iloc[0]
    lat, lng = h3c.cell_centres(h3c.points_to_cells([ll.x], [ll.y], 10))
    cell_centre = gpd.GeoSeries([shapely.Point(lng[0], lat[0])], crs=4326).to_crs(LOCAL).iloc[0]
    assert centre.distance(cell_centre) < 1.0  # centred on the cell, not on the home
    assert centre.distance(shapely.Point(home)) > 5.0


def test_india_merged_zone_follows_each_epicentre(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "india-containment",
        cases(
            ("k1", 0, "confirmed", "residence", 0, 0),
            ("k2", 10, "confirmed", "residence", 4000, 0),
        ),
    )
    z = s.at(10).zones
    assert (z["level"] == "containment").sum() == 1  # overlapping circles merge
    assert s.points(28, [(-2900, 0), (4000, 0)]) == ["buffer", "containment"]
    assert s.points(38, [(4000, 0), (-2900, 0)]) == ["none", "none"]


# ---------------------------------------------------------------- hk-building
def test_hk_building_notice_for_15_days(town: CommunityLayer) -> None:
    # as Hong Kong's published building lists of 2020: a case reported on day d keeps its
    # building listed on days d..d+14 (15 days), a new case restarts the count
    s = Scenario(
        town,
        "hk-building",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),
            ("k2", 10, "confirmed", "residence", 250, 250),  # same building, day 10
        ),
    )
    assert [s.point(d, 250, 250) for d in (-1, 0, 14, 15, 24, 25)] == [
        "none",
        "testing-notice",
        "testing-notice",
        "testing-notice",
        "testing-notice",
        "none",
    ]
    assert s.point(5, 250, 330) == "none"  # next building
    one = Scenario(town, "hk-building", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    assert [one.point(d, 250, 250) for d in (0, 14, 15)] == ["testing-notice"] * 2 + ["none"]
    z = one.at(0).zones
    assert z["expected_lift"].tolist() == [day(15)] and z["last_case"].tolist() == [day(0)]


# ---------------------------------------------------------------- cdc-community
@pytest.fixture
def county() -> CommunityLayer:
    # district D1 of 10,000 people (two communities), D2 of 100,000
    frame = squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 20000, 0, 500, "D2")])
    frame["population"] = [4000, 6000, 100_000]
    return CommunityLayer(frame, 10)


def test_cdc_case_rate_without_hospital_figures(county: CommunityLayer) -> None:
    # 19 cases in D1 on day 0 = 190 per 100k (low); a 20th on day 3 = 200 (medium) for 7 days
    rows = [(f"k{i}", 0, "confirmed", "residence", 250.0, 250.0) for i in range(19)]
    rows.append(("k19", 3, "confirmed", "residence", 750.0, 250.0))
    s = Scenario(county, "cdc-community", cases(*rows))
    got = [s.level(d, "A") for d in range(0, 11)]
    # window of 7 days: day 3..6 has 20 cases; day 7 drops the 19 of day 0
    assert got == ["low"] * 3 + ["medium"] * 4 + ["low"] * 4
    assert s.level(4, "B") == "medium" and s.level(4, "F") == "low"


def test_cdc_hospital_figures(county: CommunityLayer) -> None:
    rows = [(f"k{i}", 0, "confirmed", "residence", 250.0, 250.0) for i in range(5)]  # 50/100k
    metrics = pd.DataFrame(
        {
            "unit_id": ["D1", "D1", "D1", "D2"],
            "date": [day(0), day(2), day(4), day(0)],
            "admissions_per_100k": [9.9, 10.0, 20.0, math.nan],
            "beds_pct": [5.0, 5.0, 5.0, 15.0],
        }
    )
    s = Scenario(county, "cdc-community", cases(*rows), metrics)
    assert [s.level(d, "A") for d in range(0, 6)] == ["low"] * 2 + ["medium"] * 2 + ["high"] * 2
    assert s.level(0, "F") == "high"  # beds >= 15%
    rows200 = [(f"k{i}", 0, "confirmed", "residence", 250.0, 250.0) for i in range(20)]
    s2 = Scenario(county, "cdc-community", cases(*rows200), metrics)
    assert [s2.level(d, "A") for d in (0, 2)] == ["medium", "high"]  # >= 200: admissions >= 10


# ---------------------------------------------------------------- cn-2020-county
def test_cn_2020_county_levels(town: CommunityLayer) -> None:
    # 50 cases spread over A (one per day, 25 days), C, E... then a cluster
    rows = [(f"a{i}", i * 2, "confirmed", "residence", 250.0, 250.0) for i in range(26)]
    rows += [(f"c{i}", 0, "confirmed", "residence", 1250.0, 250.0) for i in range(25)]
    rows += [("x1", 3, "asymptomatic", "residence", 20250.0, 250.0)]  # not counted in 2020
    s = Scenario(town, "cn-2020-county", cases(*rows))
    # day 0: 26 cases (25 in C + 1 in A), cumulative 26 <= 50: medium
    assert s.level(0, "A") == "medium" and s.level(0, "F") == "low"
    # A gets a case every other day: 2 cases within 14 days in A is a cluster; cumulative > 50
    # from day 50 (the 26th A case): high
    assert s.level(48, "A") == "medium"
    assert s.level(50, "A") == "high"
    # no new case after day 50: medium? no: no case in 14 days -> low from day 64
    assert s.level(63, "E") == "medium"
    assert s.level(64, "E") == "low"
