"""Edge cases found in review: counting a case once, lift-1 rules, late cases, split zones."""

from __future__ import annotations

import pandas as pd

from riskmap.geo.incremental import update_zones
from riskmap.geo.policy import load_policy, parse_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from tests.conftest import squares
from tests.geo.scenario import Scenario, cases, day

HEAD = "id: t\nname: t\nsource: t\nlevels:\n"


def _row(districts: int) -> CommunityLayer:
    spec = [
        (f"D{d}C{j}", d * 10000 + j * 1000, 0, 1000, f"D{d}")
        for d in range(districts)
        for j in range(2)
    ]
    return CommunityLayer(squares(spec), 10)


def test_a_case_with_places_on_two_days_counts_once() -> None:
    layer = _row(2)
    pol = parse_policy(
        HEAD + "  - id: two\n    label: T\n    color: '#00ff00'\n    extent: {kind: community}\n"
        "    trigger:\n      roles: [residence, frequent_activity]\n      window_days: 14\n"
        "      any_of: [{cases: {min: 2}}, {cluster: {min_cases: 2, window_days: 14}},"
        " {cumulative: {min: 2}}]\n"
    )
    one = cases(
        ("k1", 0, "confirmed", "residence", 500, 500),
        ("k1", 2, "confirmed", "frequent_activity", 700, 300),
    )
    assert set(Scenario(layer, pol, one).levels(3).values()) == {"none"}
    two = cases(
        ("k1", 0, "confirmed", "residence", 500, 500),
        ("k2", 2, "confirmed", "frequent_activity", 700, 300),
    )
    assert Scenario(layer, pol, two).level(3, "D0C0") == "two"


def test_lift_1_rules_know_their_last_case_and_lift_date() -> None:
    layer = _row(3)
    s = Scenario(layer, "cn-2020-county", cases(("k1", 0, "confirmed", "residence", 500, 500)))
    r = s.at(5)
    row = r.levels.set_index("community_id").loc["D0C0"]
    assert row["level"] == "medium"
    assert row["last_case"] == day(0)  # not the as-of date
    assert row["expected_lift"] == day(14)  # the 14-day window ends
    from riskmap.geo.history import zone_events

    ev = zone_events(s.at(20), layer, day(0), day(20))
    mine = ev[ev["unit_id"] == "D0C0"]
    assert list(mine["kind"]) == ["created", "stepped_down"]  # no daily "extended"


def test_cluster_window_longer_than_the_trigger_window() -> None:
    layer = _row(2)
    pol = parse_policy(
        HEAD + "  - id: high\n    label: H\n    color: '#ff0000'\n    extent: {kind: community}\n"
        "    trigger:\n      any_of: [{cluster: {min_cases: 2, window_days: 30}}]\n"
    )
    s = Scenario(
        layer,
        pol,
        cases(
            ("k1", 0, "confirmed", "residence", 500, 500),
            ("k2", 0, "confirmed", "residence", 600, 500),
        ),
    )
    assert [s.level(n, "D0C0") for n in (0, 29, 30, 100)] == ["high", "high", "none", "none"]


def test_late_reported_case_in_a_quiet_district_updates_incrementally() -> None:
    layer = _row(10)
    pol = load_policy("cn-three-zone")
    base = cases(
        ("k1", 0, "confirmed", "residence", 500, 500),
        ("k2", 40, "confirmed", "residence", 90500, 500),
    )
    base["community"] = layer.locate(base["lon"].to_numpy(), base["lat"].to_numpy())
    prev = compute_zones(layer, base, pol, day(45))
    new = cases(("k3", 5, "confirmed", "residence", 40500, 500))
    new["community"] = layer.locate(new["lon"].to_numpy(), new["lat"].to_numpy())
    both = pd.concat([base, new], ignore_index=True)
    got = update_zones(prev, layer, both, new)
    full = compute_zones(layer, both, pol, day(45))
    pd.testing.assert_frame_equal(got.levels, full.levels)


def test_buffer_around_a_whole_district_updates_like_a_full_recompute() -> None:
    spec = [
        ("A1", 0, 0, 1000, "DA"), ("A2", 1000, 0, 1000, "DA"),
        ("B1", 2000, 0, 1000, "DB"), ("B2", 3000, 0, 1000, "DB"),
        ("C1", 10000, 0, 1000, "DC"), ("C2", 11000, 0, 1000, "DC"),
    ]  # fmt: skip
    layer = CommunityLayer(squares(spec), 10)
    pol = parse_policy(
        HEAD + "  - id: high\n    label: H\n    color: '#ff0000'\n"
        "    extent: {kind: parent, parent: district}\n    trigger: {}\n    lift_after_days: 14\n"
        "  - id: near\n    label: N\n    color: '#00ff00'\n"
        "    extent: {kind: buffer, around: [high], distance_m: 500}\n"
    )
    base = cases(("k1", 0, "confirmed", "residence", 10500, 500))
    base["community"] = layer.locate(base["lon"].to_numpy(), base["lat"].to_numpy())
    prev = compute_zones(layer, base, pol, day(3))
    new = cases(("k2", 2, "confirmed", "residence", 500, 500))
    new["community"] = layer.locate(new["lon"].to_numpy(), new["lat"].to_numpy())
    both = pd.concat([base, new], ignore_index=True)
    got = update_zones(prev, layer, both, new)
    assert got.levels.set_index("community_id")["level"]["B1"] == "near"


def test_split_zone_parts_have_distinct_ids() -> None:
    import geopandas as gpd
    import numpy as np

    from riskmap.geo import cells as h3c
    from tests.conftest import LOCAL

    spec = [(f"C{i}{j}", i * 1000, j * 1000, 1000, "D") for i in range(-2, 2) for j in range(-2, 2)]
    layer = CommunityLayer(squares(spec), 10)
    # a case at the centre of a res-9 cell: the circle of 165 m cuts the cell (edge ~200 m)
    # into corner pieces, all of one zone of the lower level
    lat, lng = h3c.cell_centres(h3c.points_to_cells(np.array([114.30]), np.array([30.59]), 9))
    pt = gpd.GeoSeries(gpd.points_from_xy(lng, lat), crs=4326).to_crs(LOCAL)
    pol = parse_policy(
        HEAD + "  - id: high\n    label: H\n    color: '#ff0000'\n"
        "    extent: {kind: radius, radius_m: 165}\n    trigger: {}\n    lift_after_days: 5\n"
        "  - id: low\n    label: L\n    color: '#00ff00'\n"
        "    extent: {kind: grid_disk, res: 9, k: 0}\n    trigger: {}\n    lift_after_days: 5\n"
        "public_precision: {geometry: home, source: a test}\n"
    )
    s = Scenario(
        layer, pol, cases(("k1", 0, "confirmed", "residence", float(pt.x[0]), float(pt.y[0])))
    )
    z = s.at(1).zones
    assert (z["level"] == "low").sum() >= 2
    assert z["zone_id"].is_unique
