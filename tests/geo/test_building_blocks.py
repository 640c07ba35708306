"""Building blocks of rule files on hand-made scenarios: snapping, H3 disks, conditions."""

from __future__ import annotations

import pytest

from riskmap.geo._errors import PolicyError
from riskmap.geo.policy import parse_policy
from riskmap.geo.zones import CommunityLayer
from tests.conftest import squares
from tests.geo.scenario import Scenario, cases

HEAD = "id: t\nname: test\nsource: test\nlevels:\n"


def rule(level: str) -> object:
    return parse_policy(HEAD + level)


@pytest.fixture
def row() -> CommunityLayer:
    # ten 1 km squares in a row, two districts of five
    return CommunityLayer(
        squares([(f"C{i}", i * 1000, 0, 1000, "D1" if i < 5 else "D2") for i in range(10)]), 10
    )


def _radius(snap: str, extra: str = "") -> object:
    return rule(
        "  - id: hot\n    label: Hot\n    color: '#ff0000'\n"
        f"    extent: {{kind: radius, radius_m: 900, snap: {snap}{extra}}}\n"
        "    trigger: {roles: [residence]}\n    lift_after_days: 3\n"
    )


def test_radius_snapped_to_communities(row: CommunityLayer) -> None:
    # a case at (2500, 500), the centre of C2: the 900 m circle spans x 1600..3400 and covers
    # all of C2 and about 38% of C1 and of C3 (a circular segment 500 m from the centre, less
    # its ends beyond the squares)
    cs = cases(("k", 0, "confirmed", "residence", 2500, 500))
    hot = lambda snap, extra="": [  # noqa: E731
        c for c, lv in Scenario(row, _radius(snap, extra), cs).levels(0).items() if lv == "hot"
    ]
    assert hot("intersects") == ["C1", "C2", "C3"]
    assert hot("centroid") == ["C2"]  # the centroids of C1 and C3 are 1,000 m away
    assert hot("area", ", min_area_fraction: 0.5") == ["C2"]
    assert hot("area", ", min_area_fraction: 0.3") == ["C1", "C2", "C3"]


def test_grid_disk_exact(row: CommunityLayer) -> None:
    r = rule(
        "  - id: ring\n    label: Ring\n    color: '#00ff00'\n"
        "    extent: {kind: grid_disk, res: 9, k: 1}\n"
        "    trigger: {roles: [residence]}\n    lift_after_days: 2\n"
    )
    s = Scenario(row, r, cases(("k", 0, "confirmed", "residence", 2500, 500)))
    # res-9 cells have ~200 m edges: a disk of k=1 reaches at least ~170 m beyond the case's cell
    assert s.points(0, [(2500, 500), (2500, 650), (2500 + 2000, 500)]) == ["ring", "ring", "none"]
    assert s.points(2, [(2500, 500)]) == ["none"]
    z = s.at(0).zones
    assert len(z) == 1 and len(z["cells"].iat[0]) >= 1


def test_min_locations_and_rate_conditions(row: CommunityLayer) -> None:
    frame = row.frame.copy()
    frame["population"] = 10_000
    layer = CommunityLayer(frame, 10)
    by_locations = rule(
        "  - id: hot\n    label: Hot\n    color: '#ff0000'\n    extent: {kind: community}\n"
        "    trigger:\n      roles: [residence, visit]\n      window_days: 7\n"
        "      any_of: [{locations: {min: 2}}]\n    lift_after_days: 1\n"
    )
    same_place = cases(
        ("a", 0, "confirmed", "residence", 500, 500), ("b", 1, "confirmed", "residence", 500, 500)
    )
    two_places = cases(
        ("a", 0, "confirmed", "residence", 500, 500), ("b", 1, "confirmed", "visit", 100, 900)
    )
    assert Scenario(layer, by_locations, same_place).level(1, "C0") == "none"
    got = [Scenario(layer, by_locations, two_places).level(d, "C0") for d in range(0, 9)]
    assert got == ["none"] + ["hot"] * 6 + ["none"] * 2  # both in the 7-day window: days 1..6
    by_rate = rule(
        "  - id: hot\n    label: Hot\n    color: '#ff0000'\n"
        "    extent: {kind: parent, parent: district}\n"
        "    trigger:\n      roles: [residence]\n      window_days: 7\n"
        "      any_of: [{rate_per_100k: {min: 10}}]\n    lift_after_days: 1\n    grouping: parent\n"
    )
    # D1 has 50,000 people: 5 cases = 10 per 100k
    four = cases(*[(f"k{i}", 0, "confirmed", "residence", 500, 500) for i in range(4)])
    five = cases(*[(f"k{i}", 0, "confirmed", "residence", 500, 500) for i in range(5)])
    assert set(Scenario(layer, by_rate, four).levels(0).values()) == {"none"}
    lv = Scenario(layer, by_rate, five).levels(0)
    assert [lv[f"C{i}"] for i in range(10)] == ["hot"] * 5 + ["none"] * 5


def test_rule_file_errors_name_key_value_and_expectation() -> None:
    with pytest.raises(PolicyError) as e:
        rule(
            "  - id: a\n    label: A\n    color: '#ff0000'\n"
            "    extent: {kind: buffer, around: [zz], distance_m: 100}\n"
        )
    assert "'around' names 'zz'" in str(e.value)
    with pytest.raises(PolicyError) as e:
        rule("  - id: a\n    label: A\n    color: red\n    extent: {kind: all}\n")
    assert "color 'red'" in str(e.value) and "#rrggbb" in str(e.value)
    with pytest.raises(PolicyError) as e:
        rule("  - id: a\n    label: A\n    color: '#ff0000'\n    extent: {kind: community}\n")
    assert "needs a 'trigger'" in str(e.value)
    with pytest.raises(PolicyError) as e:
        rule("  - id: a\n    label: A\n    color: '#ff0000'\n    extent: {kind: circle}\n")
    assert "levels.0.extent" in str(e.value) and "'circle'" in str(e.value)
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("id: [")
