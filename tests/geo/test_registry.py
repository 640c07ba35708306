"""The registry of extent kinds is open: a kind defined here (``ring``, a metric annulus around
each qualifying location) is registered, a rule file using it loads, and the engine, incremental
updates and history compute with it, without any change to the engine's files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import geopandas as gpd
import numpy as np
import pytest
import shapely
from numpy.typing import NDArray
from pydantic import Field

from riskmap.geo._errors import PolicyError
from riskmap.geo.history import zone_events
from riskmap.geo.incremental import supports_incremental, update_zones
from riskmap.geo.policy import ExtentSpec, Level, Policy, Snap, SnappableExtent, parse_policy
from riskmap.geo.zones import CommunityLayer, Context, Units, kind_of, kinds, register, unregister
from riskmap.geo.zones.extents import LocationKind
from tests.conftest import LOCAL, squares
from tests.geo.scenario import Scenario, cases


class RingExtent(SnappableExtent):
    kind: Literal["ring"]
    inner_m: float = Field(gt=0)
    outer_m: float = Field(gt=0)
    snap: Snap = "exact"
    min_area_fraction: float = Field(0.5, gt=0, le=1)
    triggered: ClassVar[bool] = True


class RingKind(LocationKind[RingExtent]):
    """Units are the exact locations; each draws the annulus inner_m..outer_m around it."""

    name = "ring"
    spec: ClassVar[type[ExtentSpec]] = RingExtent

    def unit_res(self, lv: Level) -> int | None:
        return None

    def metric_geoms(
        self, ctx: Context, lv: Level, units: Units, which: NDArray[np.int64]
    ) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
        ext = self.extent(lv)
        lon, lat = units.location(ctx.cases)
        x, y = ctx.layer.to_metric.transform(lon[which], lat[which])
        pts = shapely.points(x, y)
        outer = shapely.buffer(pts, ext.outer_m, quad_segs=32)
        inner = shapely.buffer(pts, ext.inner_m, quad_segs=32)
        return shapely.difference(outer, inner), units.community(ctx.cases)[which]


RULE = """
id: ring-test
name: ring test
source: test
levels:
  - id: ring
    label: Ring
    color: '#ff0000'
    extent: {{kind: ring, inner_m: 600, outer_m: 1600, snap: {snap}}}
    trigger: {{roles: [residence]}}
    lift_after_days: 3
"""


@pytest.fixture
def ring() -> Iterator[RingKind]:
    kind = register(RingKind())
    yield kind
    unregister("ring")


@pytest.fixture
def row() -> CommunityLayer:
    # ten 1 km squares in a row, two districts of five
    return CommunityLayer(
        squares([(f"C{i}", i * 1000, 0, 1000, "D1" if i < 5 else "D2") for i in range(10)]), 10
    )


def _rule(snap: str) -> Policy:
    return parse_policy(RULE.format(snap=snap))


def test_unknown_until_registered() -> None:
    assert "ring" not in kinds() and "radius" in kinds()
    with pytest.raises(PolicyError) as e:
        _rule("exact")
    assert "levels.0.extent" in str(e.value) and "'ring'" in str(e.value)


def test_rule_file_with_the_new_kind_loads(ring: RingKind) -> None:
    p = _rule("exact")
    lv = p.levels[0]
    assert isinstance(lv.extent, RingExtent) and lv.extent.outer_m == 1600
    assert lv.geometric and kind_of(lv) is ring
    # its own fields are validated like a built-in kind's, with the place of the error
    with pytest.raises(PolicyError) as e:
        parse_policy(RULE.format(snap="exact").replace("inner_m: 600", "inner_m: -1"))
    assert "key levels.0.extent.ring.inner_m: value -1" in str(e.value)
    # and rule files name it in the JSON of the policy
    assert p.model_dump(mode="json")["levels"][0]["extent"]["inner_m"] == 600


def test_exact_ring_zones(ring: RingKind, row: CommunityLayer) -> None:
    s = Scenario(row, _rule("exact"), cases(("k", 0, "confirmed", "residence", 2500, 500)))
    # the hole, the annulus, beyond it; lifted after three days
    pts = [(2500, 500), (2500, 900), (3500, 500), (1500, 500), (4500, 500)]
    assert s.points(0, pts) == ["none", "none", "ring", "ring", "none"]
    assert s.points(3, [(3500, 500)]) == ["none"]
    z = s.at(0).zones
    assert len(z) == 1 and z["drawn"].iloc[0] == "geometry"
    area = float(gpd.GeoSeries(z.geometry, crs=4326).to_crs(LOCAL).area.iloc[0])
    assert area == pytest.approx(np.pi * (1600**2 - 600**2), rel=0.01)
    # the communities it touches: x 900..4100
    assert z["community_ids"].iloc[0] == ["C0", "C1", "C2", "C3", "C4"]


def test_snapped_ring(ring: RingKind, row: CommunityLayer) -> None:
    cs = cases(("k", 0, "confirmed", "residence", 2500, 500))
    hot = lambda snap: [  # noqa: E731
        c for c, lv in Scenario(row, _rule(snap), cs).levels(0).items() if lv == "ring"
    ]
    assert hot("intersects") == ["C0", "C1", "C2", "C3", "C4"]
    # centroids 1,000 m away are in the annulus; C2's centroid is in the hole
    assert hot("centroid") == ["C1", "C3"]


def test_incremental_and_history_read_the_registry(ring: RingKind, row: CommunityLayer) -> None:
    p = _rule("intersects")
    assert not supports_incremental(p, None)  # the kind does not say it can: full recompute
    first = cases(("a", 0, "confirmed", "residence", 2500, 500))
    both = cases(
        ("a", 0, "confirmed", "residence", 2500, 500),
        ("b", 1, "confirmed", "residence", 7500, 500),
    )
    s0, s1 = Scenario(row, p, first), Scenario(row, p, both)
    prev = s0.at(1)
    new = s1.cases.iloc[[1]].reset_index(drop=True)
    got = update_zones(prev, row, s1.cases, new)
    want = s1.at(1)
    assert got.levels.equals(want.levels)
    assert list(got.zones["zone_id"]) == list(want.zones["zone_id"])
    ev = zone_events(want, row, s1.at(0).at, want.at)
    # day 0: the annulus around a (x 900..4100); day 1: around b (x 5900..9100)
    created = ev[ev["kind"] == "created"]
    assert sorted(created["unit_id"]) == [f"C{i}" for i in range(10)]


def test_a_kind_must_match_its_model() -> None:
    class Misnamed(RingKind):
        name = "annulus"

    with pytest.raises(ValueError, match="'annulus'"):
        register(Misnamed())
    assert "annulus" not in kinds() and "ring" not in kinds()
