"""Incidence, growth, doubling time and population under each zone level, on hand-computed
small data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.geo.measures import (
    case_points,
    doubling_time,
    growth,
    incidence,
    population_under_levels,
    unit_measures,
)
from riskmap.geo.zones import CommunityLayer
from tests.geo.scenario import Scenario, cases, day
from tests.helpers import squares


def town(populations: dict[str, float | None]) -> CommunityLayer:
    frame = squares(
        [
            ("A", 0, 0, 500, "D1"),
            ("B", 500, 0, 500, "D1"),
            ("C", 3000, 0, 500, "D1"),
            ("F", 20000, 0, 500, "D2"),
        ]
    )
    frame["population"] = [populations[c] for c in frame["community_id"]]
    return CommunityLayer(frame, h3_res=10)


POP = {"A": 1000, "B": 2000, "C": 4000, "F": 8000}


def test_incidence_per_community_and_parent_unit() -> None:
    layer = town({"A": 1000, "B": 2000, "C": None, "F": 0})
    cs = cases(
        ("k1", 10, "confirmed", "residence", 100, 100),  # A
        ("k1", 10, "confirmed", "workplace", 600, 100),  # k1 works in B: counted in A only
        ("k2", 12, "confirmed", "residence", 200, 100),  # A
        ("k3", 13, "confirmed", "visit", 700, 100),  # no residence: its first place, B
        ("k4", 13, "asymptomatic", "residence", 100, 100),  # not confirmed: not counted
        ("k5", -1, "confirmed", "residence", 100, 100),  # before the window
        ("k6", 11, "confirmed", "residence", 3100, 100),  # C (population unknown)
        ("k7", 11, "confirmed", "residence", 9000, 9000),  # outside every community
    )
    end = day(13)
    inc = incidence(layer, cs, end, days=14)
    got = inc.set_index("unit_id")
    assert got["cases"].to_dict() == {"A": 2, "B": 1, "C": 1, "F": 0}
    assert got.at["A", "per_100k"] == pytest.approx(200.0)  # 2 / 1000 x 100,000
    assert got.at["B", "per_100k"] == pytest.approx(50.0)
    assert pd.isna(got.at["C", "per_100k"]) and got.at["C", "note"] == "population unknown"
    assert pd.isna(got.at["F", "per_100k"]) and got.at["F", "note"] == "population 0"
    assert inc.attrs["outside"] == 1 and inc.attrs["window"] == (day(0), end)
    d = incidence(layer, cs, end, days=14, unit="district").set_index("unit_id")
    # D1: A + B + C = 4 cases, population 1000 + 2000 (C unknown: not counted)
    assert d.at["D1", "cases"] == 4 and d.at["D1", "population"] == 3000
    assert d.at["D1", "per_100k"] == pytest.approx(4 / 3000 * 1e5)
    s = incidence(layer, cs, end, days=14, unit="subdistrict").set_index("unit_id")
    assert s.at["S-D1", "cases"] == 4
    both = incidence(layer, cs, end, days=14, types=None).set_index("unit_id")
    assert both.at["A", "cases"] == 3  # with the asymptomatic case
    assert incidence(layer, cs, end, days=1, unit="all")["cases"].tolist() == [1]  # k3
    whole = incidence(layer, cs, end, days=14, unit="all")
    assert whole["cases"].tolist() == [4] and whole["population"].tolist() == [3000]
    assert case_points(cs, layer)["case_id"].tolist() == ["k1", "k2", "k3", "k5", "k6", "k7"]


def test_bad_arguments_are_named() -> None:
    layer = town(POP)
    cs = cases(("k1", 0, "confirmed", "residence", 100, 100))
    with pytest.raises(ValueError, match="unit: 'county'"):
        incidence(layer, cs, day(0), unit="county")
    with pytest.raises(ValueError, match="days"):
        growth(layer, cs, day(0), days=0)
    with pytest.raises(ValueError, match="unknown case type"):
        incidence(layer, cs, day(0), types=["rumoured"])
    with pytest.raises(ValueError, match="missing column"):
        incidence(layer, cs.drop(columns="lat"), day(0))


def test_doubling_time_by_hand() -> None:
    assert doubling_time(6, 3) == (pytest.approx(7.0), "")  # doubled in a week
    assert doubling_time(8, 2)[0] == pytest.approx(3.5)  # x4 in a week: doubles in 3.5 days
    assert doubling_time(3, 2, days=7)[0] == pytest.approx(7 * math.log(2) / math.log(1.5))
    assert doubling_time(0, 0) == (None, "no cases in either period")
    assert doubling_time(5, 0) == (None, "no cases in the previous period")
    assert doubling_time(4, 4) == (None, "not growing")
    assert doubling_time(1, 4) == (None, "declining")


def test_growth_against_the_previous_week() -> None:
    layer = town(POP)
    rows = []
    # A: 3 cases in the previous week (days 0-6), 6 in the last one (days 7-13)
    rows += [(f"a{i}", i, "confirmed", "residence", 100, 100) for i in range(3)]
    rows += [(f"a{i}", 4 + i, "confirmed", "residence", 100, 100) for i in range(3, 9)]
    # B: 6 then 3
    rows += [(f"b{i}", i, "confirmed", "residence", 600, 100) for i in range(6)]
    rows += [(f"b{i}", 13, "confirmed", "residence", 600, 100) for i in range(6, 9)]
    # C: none then 2; F: none at all
    rows += [(f"c{i}", 12, "confirmed", "residence", 3100, 100) for i in range(2)]
    g = growth(layer, cases(*rows), day(13)).set_index("unit_id")
    assert g["cases"].to_dict() == {"A": 6, "B": 3, "C": 2, "F": 0}
    assert g["previous"].to_dict() == {"A": 3, "B": 6, "C": 0, "F": 0}
    assert g.at["A", "growth"] == pytest.approx(1.0)
    assert g.at["A", "doubling_days"] == pytest.approx(7.0)
    assert g.at["B", "growth"] == pytest.approx(-0.5)
    assert pd.isna(g.at["B", "doubling_days"]) and g.at["B", "note"] == "declining"
    assert pd.isna(g.at["C", "growth"]) and g.at["C", "note"] == "no cases in the previous period"
    assert g.at["F", "note"] == "no cases in either period"
    d = growth(layer, cases(*rows), day(13), unit="district").set_index("unit_id")
    assert (d.at["D1", "cases"], d.at["D1", "previous"]) == (11, 9)
    assert d.at["D1", "doubling_days"] == pytest.approx(7 * math.log(2) / math.log(11 / 9))
    m = unit_measures(layer, cases(*rows), day(13), unit="community").set_index("unit_id")
    assert m.at["A", "cases"] == 9 and m.at["A", "cases_last"] == 6  # 14 days; 7 days
    assert m.at["C", "note"] == "no cases in the previous period"


def test_population_under_community_levels_is_the_sum_of_their_communities() -> None:
    layer = town(POP)
    s = Scenario(
        layer,
        "cn-three-zone",
        cases(
            ("k1", 0, "confirmed", "residence", 250, 250),  # A sealed, B controlled, C precaution
            ("k2", 5, "confirmed", "residence", 20250, 250),  # F sealed (alone in D2)
        ),
    )
    r = s.at(25)
    got = population_under_levels(r, layer, day(-1), day(20))
    table = got.pivot(index="date", columns="level", values="population")

    def expect(n: int) -> tuple[float, float, float]:
        sealed = (POP["A"] if 0 <= n <= 13 else 0) + (POP["F"] if 5 <= n <= 18 else 0)
        on = 0 <= n <= 13
        return sealed, POP["B"] if on else 0, POP["C"] if on else 0

    for n in range(-1, 21):
        row = table.loc[day(n)]
        assert (row["sealed"], row["controlled"], row["precaution"]) == expect(n), n
    assert not got["area_weighted"].any()
    with pytest.raises(ValueError, match="after the result's as-of date"):
        population_under_levels(r, layer, day(0), day(26))


def test_population_under_circles_is_area_weighted() -> None:
    frame = squares([("Big", -10000, -10000, 20000, "D1"), ("Far", 40000, 0, 500, "D2")])
    frame["population"] = [400_000, 1000]
    layer = CommunityLayer(frame, h3_res=10)
    s = Scenario(layer, "india-containment", cases(("k1", 0, "confirmed", "residence", 0, 0)))
    r = s.at(2)
    got = population_under_levels(r, layer, day(1), day(1)).set_index("level")
    big = float(shapely.area(layer.metric[0]))  # the community's area, in the same projection

    def disc(radius: float) -> float:  # the engine's circles: 128-gons
        return float(shapely.area(shapely.Point(0, 0).buffer(radius, quad_segs=32)))

    assert got.at["containment", "population"] == pytest.approx(400_000 * disc(3000) / big)
    assert got.at["buffer", "population"] == pytest.approx(
        400_000 * (disc(8000) - disc(3000)) / big
    )
    assert got["area_weighted"].all()
    assert np.isclose(got["population"].sum(), 400_000 * disc(8000) / big)
