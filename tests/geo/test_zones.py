"""The cn-three-zone rule on hand-made scenarios whose answers are worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from tests.conftest import case_rows, squares

D0 = dt.date(2024, 3, 1)
POLICY = load_policy("cn-three-zone")


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


@pytest.fixture
def layer() -> CommunityLayer:
    # A is 500 m square at the origin. B starts 999 m east of A (inside the 1 km buffer);
    # C ends 1,001 m west of A (outside it); both in A's district D1. E is in district D2,
    # 999 m north of A (controlled, but D2 has no sealed zone, so no precaution there);
    # F is in D2 far away (none). G touches A (same district): controlled, same zone as B? no:
    # G is adjacent to A only.
    return CommunityLayer(
        squares(
            [
                ("A", 0, 0, 500, "D1"),
                ("B", 1499, 0, 500, "D1"),
                ("C", -1501, 0, 500, "D1"),
                ("E", 0, 1499, 500, "D2"),
                ("F", 0, 9000, 500, "D2"),
                ("G", 0, -500, 500, "D1"),
            ]
        ),
        h3_res=10,
    )


def run(layer: CommunityLayer, cases: pd.DataFrame, at: dt.date) -> dict[str, str]:
    cases = cases.copy()
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    r = compute_zones(layer, cases, POLICY, at)
    return dict(zip(r.levels["community_id"], r.levels["level"], strict=True))


def test_one_case_seals_its_community_for_14_days(layer: CommunityLayer) -> None:
    cases = case_rows([("k1", D0.isoformat(), "confirmed", "residence", 250, 250)])
    expect_on = {
        "A": "sealed",
        "B": "controlled",
        "C": "precaution",
        "E": "controlled",
        "F": "none",
        "G": "controlled",
    }
    assert run(layer, cases, day(-1)) == dict.fromkeys(expect_on, "none")
    for d in (0, 1, 13):
        assert run(layer, cases, day(d)) == expect_on, d
    assert run(layer, cases, day(14)) == dict.fromkeys(expect_on, "none")


def test_window_edges_since_and_expected_lift(layer: CommunityLayer) -> None:
    cases = case_rows(
        [
            ("k1", day(0).isoformat(), "confirmed", "residence", 250, 250),
            ("k2", day(10).isoformat(), "asymptomatic", "frequent_activity", 100, 100),
        ]
    )
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    r = compute_zones(layer, cases, POLICY, day(13))
    a = r.levels.set_index("community_id").loc["A"]
    assert a["level"] == "sealed"
    assert a["since"] == day(0)
    assert a["last_case"] == day(10)
    assert a["expected_lift"] == day(24)  # 10 + 14
    # as of day 5 the second case is not known yet: lift expected on day 14
    r5 = compute_zones(layer, cases, POLICY, day(5))
    assert r5.levels.set_index("community_id").loc["A", "expected_lift"] == day(14)
    assert run(layer, cases, day(23))["A"] == "sealed"
    assert run(layer, cases, day(24))["A"] == "none"
    z = r.zones.set_index("zone_id")
    assert z.loc["sealed-A", "community_ids"] == ["A"]
    assert z.loc["sealed-A", "expected_lift"] == day(24)
    assert z.loc["precaution-D1", "community_ids"] == ["C"]
    # B and G are both controlled and in D1 but do not touch: two zones
    assert set(z.index) == {
        "sealed-A",
        "controlled-B",
        "controlled-G",
        "controlled-E",
        "precaution-D1",
    }


def test_roles_and_types_that_do_not_qualify(layer: CommunityLayer) -> None:
    cases = case_rows(
        [
            ("k1", D0.isoformat(), "confirmed", "workplace", 250, 250),
            ("k2", D0.isoformat(), "confirmed", "visit", 250, 250),
            ("k3", D0.isoformat(), "suspected", "residence", 250, 250),
            ("k4", D0.isoformat(), "confirmed", "residence", 50_000, 50_000),  # outside all
        ]
    )
    assert set(run(layer, cases, D0).values()) == {"none"}


def test_case_in_controlled_community_seals_it_at_once(layer: CommunityLayer) -> None:
    cases = case_rows(
        [
            ("k1", day(0).isoformat(), "confirmed", "residence", 250, 250),
            ("k2", day(3).isoformat(), "confirmed", "residence", 1700, 200),  # in B
        ]
    )
    assert run(layer, cases, day(2))["B"] == "controlled"
    levels = run(layer, cases, day(3))
    assert levels["B"] == "sealed" and levels["A"] == "sealed"
    # day 14: A lifted, but A is within 1 km of B (sealed until day 16): A becomes controlled
    assert run(layer, cases, day(14))["A"] == "controlled"
    assert run(layer, cases, day(17)) == dict.fromkeys("ABCEFG", "none")


def test_zone_geometry_is_union_and_cells_cover(layer: CommunityLayer) -> None:
    cases = case_rows([("k1", D0.isoformat(), "confirmed", "residence", 250, 250)])
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    r = compute_zones(layer, cases, POLICY, D0)
    z = r.zones.set_index("zone_id")
    a = layer.frame.set_index("community_id").geometry["A"]
    assert z.loc["sealed-A", "geometry"].equals(a)
    assert len(z.loc["sealed-A", "cells"]) > 0
    assert z.loc["sealed-A", "cells"].dtype == np.uint64
