"""The public view of rules drawn finer than a community (geo.precision) and the declaration
of such rules (public_precision)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from riskmap.geo._errors import PolicyError
from riskmap.geo.history import point_ranks, zone_events
from riskmap.geo.policy import load_policy, parse_policy
from riskmap.geo.precision import public_events, public_point_ranks, public_result
from riskmap.geo.zones import CommunityLayer, from_day
from tests.conftest import LOCAL, squares
from tests.geo.scenario import Scenario, cases, day

RULE = """
id: fine
name: fine
source: a test
levels:
  - id: notice
    label: Notice
    color: "#112233"
    extent: {extent}
    trigger: {{roles: [residence]}}
    lift_after_days: 10
"""


@pytest.mark.parametrize(
    ("extent", "why"),
    [
        ("{kind: cell, res: 11}", "H3 cells of resolution 11"),
        ("{kind: grid_disk, res: 12, k: 1}", "rings of H3 cells of resolution 12"),
        ("{kind: radius, radius_m: 500}", "circles centred on case locations"),
        ("{kind: radius, radius_m: 500, centre_res: 12}", "circles centred on H3 cells"),
    ],
)
def test_a_rule_finer_than_a_community_must_declare_it(extent: str, why: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(RULE.format(extent=extent), "fine.yaml")
    msg = str(e.value)
    assert "fine.yaml" in msg and "level 'notice'" in msg and why in msg
    assert "public_precision" in msg
    declared = RULE.format(extent=extent) + "public_precision: {geometry: building, source: x}\n"
    assert why in parse_policy(declared).fine_levels["notice"]


def test_coarse_geometry_needs_no_declaration() -> None:
    for extent in (
        "{kind: cell, res: 10}",
        "{kind: cell, res: 12, snap: intersects}",  # whole communities
        "{kind: radius, radius_m: 500, centre_res: 10}",
        "{kind: community}",
    ):
        assert parse_policy(RULE.format(extent=extent)).fine_levels == {}


def test_an_exact_buffer_around_home_circles_is_fine_too() -> None:
    text = RULE.format(extent="{kind: radius, radius_m: 500}") + (
        "  - id: ring\n    label: Ring\n    color: '#445566'\n"
        "    extent: {kind: buffer, around: [notice], distance_m: 500, snap: exact}\n"
        "public_precision: {geometry: home, source: x}\n"
    )
    assert set(parse_policy(text).fine_levels) == {"notice", "ring"}


@pytest.fixture
def town() -> CommunityLayer:
    # A and B touch; C far away; nothing between x = 1000 and 5000
    return CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("C", 5000, 0, 500, "D1")]),
        h3_res=10,
    )


def _public(s: Scenario, n: int, min_count: int = 5):  # type: ignore[no-untyped-def]
    r = s.at(n)
    return r, public_result(r, s.layer, s.cases, min_count)


def test_single_case_building_becomes_its_community(town: CommunityLayer) -> None:
    s = Scenario(town, "hk-building", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    exact, pub = _public(s, 3)
    assert len(exact.zones) == 1 and exact.zones["last_case"].iat[0] == day(0)
    z = pub.zones
    assert len(z) == 1 and z["community_ids"].iat[0] == ["A"] and z["drawn"].iat[0] == "community"
    assert z.geometry.iat[0].symmetric_difference(town.geoms[0]).area < 1e-12
    assert z.geometry.iat[0].covers(exact.zones.geometry.iat[0])  # only enlarged
    assert z[["start", "last_case", "expected_lift"]].isna().all().all()
    assert z["h3_resolution"].iat[0] == 10 and z["zone_id"].iat[0] == "testing-notice-A"
    lv = pub.levels.set_index("community_id")
    assert lv.loc["A", "level"] == "testing-notice" and lv.loc["A", "zone_id"] == "testing-notice-A"
    assert lv.loc["A", ["since", "expected_lift", "last_case"]].isna().all()
    assert lv.loc["B", "level"] == "none"
    # lifted as the exact zone: public from day 0 to day 14
    assert len(_public(s, 14)[1].zones) == 1 and len(_public(s, 15)[1].zones) == 0


def test_building_with_enough_cases_stays_exact_without_dates(town: CommunityLayer) -> None:
    rows = [(f"k{i}", i, "confirmed", "residence", 250.0, 250.0) for i in range(5)]
    rows.append(("k9", 4, "confirmed", "residence", 260.0, 60.0))  # another building, 1 case
    s = Scenario(town, "hk-building", cases(*rows))
    exact, pub = _public(s, 4)
    assert len(exact.zones) == 2
    kept = pub.zones[pub.zones["drawn"] == "geometry"]
    home = gpd.GeoSeries([shapely.Point(250, 250)], crs=LOCAL).to_crs(4326).iat[0]
    assert len(kept) == 1 and kept.geometry.iat[0].contains(home)
    assert kept.geometry.iat[0].area < 1e-7 and kept["h3_resolution"].iat[0] == 12
    assert kept[["start", "last_case", "expected_lift"]].isna().all().all()
    assert (pub.zones["drawn"] == "community").sum() == 1
    # with a minimum of 6 the building of 5 cases is coarsened too: one zone for community A
    _, six = _public(s, 4, 6)
    assert six.zones["zone_id"].tolist() == ["testing-notice-A"]
    # a case expiring brings the count under the minimum: coarsened again (days 0..4 +15)
    _, later = _public(s, 15)  # k0 lifted: 4 cases left in the building
    assert (later.zones["drawn"] == "geometry").sum() == 0


def test_outside_every_community_coarse_cells_cover_the_zone(town: CommunityLayer) -> None:
    s = Scenario(town, "hk-building", cases(("k1", 0, "confirmed", "residence", 3000, 250)))
    exact, pub = _public(s, 0)
    z = pub.zones
    assert len(z) == 1 and z["community_ids"].iat[0] == []
    g = z.geometry.iat[0]
    assert g.covers(exact.zones.geometry.iat[0])
    area_km2 = gpd.GeoSeries([g], crs=4326).to_crs(LOCAL).area.iat[0] / 1e6
    assert 0.5 < area_km2 < 5  # res-8 cells, not the building
    assert z[["start", "last_case", "expected_lift"]].isna().all().all()


def test_rules_drawn_per_community_are_public_as_computed(town: CommunityLayer) -> None:
    s = Scenario(town, "cn-three-zone", cases(("k1", 0, "confirmed", "residence", 250, 250)))
    r, pub = _public(s, 2)
    assert pub is r


def test_history_of_a_place_is_at_community_precision(town: CommunityLayer) -> None:
    s = Scenario(
        town,
        "hk-building",
        cases(("k1", 0, "confirmed", "residence", 250, 250)),
    )
    r = s.at(20)
    x, y = 400.0, 400.0  # in community A, not in the building
    lon, lat = gpd.GeoSeries([shapely.Point(x, y)], crs=LOCAL).to_crs(4326).iat[0].coords[0]
    exact = point_ranks(r, town, lon, lat)
    public = public_point_ranks(r, town, lon, lat)
    assert exact.max() == 0
    first = (day(0) - from_day(r.day0)).days
    # days 0..14: the community's public zone
    assert np.flatnonzero(public > 0).tolist() == list(range(first, first + 15))
    # the area events of the building are not public; the community's are
    ev = zone_events(r, town, day(0), day(20))
    assert (ev["unit_type"] == "area").any()
    pub_ev = public_events(ev, r.policy)
    assert not (pub_ev["unit_type"] == "area").any()
    assert set(pub_ev["unit_id"]) == {"A"}
    assert public_events(ev, load_policy("cn-three-zone")) is ev
