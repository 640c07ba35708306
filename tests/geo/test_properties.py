"""Property tests (hypothesis) of the invariants users rely on, on small synthetic cities:

- the status of a point is the highest zone whose published geometry (the GeoJSON of
  ``tiles.geojson``) covers it, on shared edges and vertices of communities, on zone vertices
  and on circle boundaries too; the published zone of the answer covers the point, and the home
  of a case that sets a zone lies in it;
- a buffer contains its source zone (and the distance it is drawn at);
- zones change only on days with a new qualifying case or a scheduled lift;
- an incremental update equals a full computation for random batches.

Status is answered as the service answers it: a :class:`geo.index.PolygonIndex` over the zone
geometries with the rule's ranks as priorities.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.geometry
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from riskmap.data.generator import generate_city
from riskmap.geo.incremental import update_zones
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import CASE_TYPES, ROLES, Policy, load_policy, parse_policy
from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones, to_day, to_days
from riskmap.tiles.geojson import zones_geojson
from tests.helpers import assert_same, squares

D0 = dt.date(2024, 3, 1)
CASE_DAYS = 8  # cases are reported on days 0 .. CASE_DAYS - 1

# small examples, reproducible in CI (derandomize), no deadline on a loaded machine
PROPS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# circles around homes and an exact buffer around them: edges of circles inside communities
CIRCLES = parse_policy(
    """
id: circles
name: Circles around homes
source: property tests
public_precision: {geometry: home, source: property tests}
levels:
  - id: core
    label: Core
    color: "#c0392b"
    extent: {kind: radius, radius_m: 250}
    trigger: {case_types: [confirmed, asymptomatic], roles: [residence]}
    lift_after_days: 6
  - id: ring
    label: Ring
    color: "#f39c12"
    extent: {kind: buffer, around: [core], distance_m: 150, snap: exact}
""",
    "circles.yaml",
)


@functools.cache
def policy(name: str) -> Policy:
    return CIRCLES if name == "circles" else load_policy(name)


# -- cities -------------------------------------------------------------------------------------
@functools.cache
def grid_city() -> CommunityLayer:
    """5 x 4 squares of 300 m in two districts: straight shared edges, vertices shared by four."""
    spec = [
        (f"G{i}{j}", 300.0 * i, 300.0 * j, 300.0, "D1" if i < 2 else "D2")
        for i in range(5)
        for j in range(4)
    ]
    return CommunityLayer(squares(spec), 10)


@functools.cache
def voronoi_city() -> CommunityLayer:
    """40 generated communities (irregular polygons sharing edges, gaps at the rim)."""
    c = generate_city(seed=5, communities=40, cases=0, days=1, end=D0, subdistricts=4, districts=2)
    return CommunityLayer(c.communities, 10)


CITIES: dict[str, Callable[[], CommunityLayer]] = {"grid": grid_city, "voronoi": voronoi_city}


@functools.cache
def outline(city: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every community vertex (lon, lat), the edges as (start, end) pairs, and the bounds."""
    layer = CITIES[city]()
    rings = shapely.get_rings(shapely.get_parts(layer.frame.geometry.to_numpy()))
    starts, ends = [], []
    for r in rings:
        xy = shapely.get_coordinates(r)
        starts.append(xy[:-1])
        ends.append(xy[1:])
    s, e = np.concatenate(starts), np.concatenate(ends)
    return np.unique(s, axis=0), np.stack([s, e], axis=1), layer.frame.total_bounds


# -- strategies -----------------------------------------------------------------------------------
def places(city: str) -> st.SearchStrategy[tuple[float, float]]:
    """A (lon, lat): a community vertex, a point on a community edge or anywhere in the city."""
    verts, edges, (x0, y0, x1, y1) = outline(city)
    vertex = st.integers(0, len(verts) - 1).map(lambda i: (float(verts[i, 0]), float(verts[i, 1])))

    def on_edge(i: int, t: float) -> tuple[float, float]:
        (ax, ay), (bx, by) = edges[i]
        return (float(ax + t * (bx - ax)), float(ay + t * (by - ay)))

    edge = st.builds(on_edge, st.integers(0, len(edges) - 1), st.floats(0, 1))
    anywhere = st.tuples(st.floats(x0, x1), st.floats(y0, y1))
    return st.one_of(vertex, edge, anywhere)


@st.composite
def case_sets(draw: st.DrawFn, city: str, max_cases: int = 8) -> pd.DataFrame:
    """Case locations (most of them qualifying) at vertices, on edges or anywhere."""
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, CASE_DAYS - 1),
                st.sampled_from(["confirmed"] * 6 + list(CASE_TYPES)),
                st.sampled_from(["residence"] * 6 + list(ROLES)),
                places(city),
            ),
            min_size=1,
            max_size=max_cases,
        )
    )
    layer = CITIES[city]()
    df = pd.DataFrame(
        {
            "case_id": [f"k{i}" for i in range(len(rows))],
            "reported": [D0 + dt.timedelta(days=d) for d, *_ in rows],
            "type": [t for _, t, _, _ in rows],
            "role": [r for _, _, r, _ in rows],
            "lat": [p[1] for *_, p in rows],
            "lon": [p[0] for *_, p in rows],
        }
    )
    df["community"] = layer.locate(df["lon"].to_numpy(), df["lat"].to_numpy())
    return df


def as_of(data: st.DataObject, cases: pd.DataFrame, spread: int = 4) -> dt.date:
    """A date a few days after one of the cases (zones are mostly active then)."""
    i = data.draw(st.integers(0, len(cases) - 1), label="date after case")
    return cases["reported"].iat[i] + dt.timedelta(days=data.draw(st.integers(0, spread), "+days"))


# -- status and the published zones --------------------------------------------------------------
def status_zone(result: ZoneResult, layer: CommunityLayer, pts: np.ndarray) -> np.ndarray:
    """The zone (row of ``result.zones``) each point's status names, -1 for none: a
    PolygonIndex over the zones with the levels' ranks as priorities, as the service asks."""
    z = result.zones
    if len(z) == 0:
        return np.full(len(pts), -1, dtype=np.int64)
    prio = [result.policy.rank(lv) for lv in z["level"]]
    idx = PolygonIndex(z.geometry.to_numpy(), layer.h3_res, priority=prio)
    return idx.lookup(pts[:, 0], pts[:, 1]).index


def published(result: ZoneResult) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids, ranks and geometries of the zones as published (the GeoJSON read back)."""
    feats = zones_geojson(result)["features"]
    ids = [f["id"] for f in feats]
    ranks = np.array([result.policy.rank(f["properties"]["level"]) for f in feats], np.int64)
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in feats], dtype=object)
    return ids, ranks, geoms


def zone_points(result: ZoneResult) -> np.ndarray:
    """Every vertex of every zone and the midpoint of every edge."""
    if len(result.zones) == 0:
        return np.empty((0, 2))
    rings = shapely.get_rings(shapely.get_parts(result.zones.geometry.to_numpy()))
    xy = [shapely.get_coordinates(r) for r in rings]
    mids = [(a[:-1] + a[1:]) / 2 for a in xy]
    return np.concatenate(xy + mids)


def circle_points(layer: CommunityLayer, lon: np.ndarray, lat: np.ndarray, r: float) -> np.ndarray:
    """Points on the circles of radius ``r`` metres around (lon, lat), 24 per circle."""
    if len(lon) == 0:
        return np.empty((0, 2))
    x, y = layer.to_metric.transform(lon, lat)
    a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cx = (np.asarray(x)[:, None] + r * np.cos(a)).ravel()
    cy = (np.asarray(y)[:, None] + r * np.sin(a)).ravel()
    return np.column_stack(layer.to_lonlat.transform(cx, cy))


def qualifying(pol: Policy, level: str, cases: pd.DataFrame) -> np.ndarray:
    trig = pol.level(level).trigger
    assert trig is not None
    return (cases["type"].isin(trig.case_types) & cases["role"].isin(trig.roles)).to_numpy()


# the level drawn at the home of each qualifying case (no condition beyond one case)
HOME_LEVEL = {"cn-three-zone": "sealed", "hk-building": "testing-notice", "circles": "core"}


@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize(
    "name",
    ["cn-three-zone", "cn-2022-9th", "cn-2020-county", "cn-2022-nov", "hk-building", "circles"],
)
@settings(PROPS, max_examples=6)
@given(data=st.data())
def test_status_is_the_highest_published_zone(city: str, name: str, data: st.DataObject) -> None:
    layer, pol = CITIES[city](), policy(name)
    cases = data.draw(case_sets(city), label="cases")
    at = as_of(data, cases)
    result = compute_zones(layer, cases, pol, at)

    verts, _, _ = outline(city)
    homes = cases[["lon", "lat"]].to_numpy()
    extra = np.array(data.draw(st.lists(places(city), min_size=20, max_size=40)), dtype=float)
    radius = [250.0, 400.0] if name == "circles" else []
    circles = [circle_points(layer, homes[:, 0], homes[:, 1], r) for r in radius]
    pts = np.concatenate([verts, homes, extra, zone_points(result), *circles])

    got = status_zone(result, layer, pts)
    event(f"{name}: zones" if len(result.zones) else f"{name}: no zone")
    ids, ranks, geoms = published(result)
    assert ids == result.zones["zone_id"].tolist()
    status_rank = np.append(ranks, 0)[got]  # -1 (no zone): rank 0
    # the highest published zone covering each point (a point on an edge is in the zone)
    covers = (
        shapely.intersects(geoms[:, None], shapely.points(pts)[None, :])
        if len(geoms)
        else np.zeros((0, len(pts)), dtype=bool)
    )
    pub_rank = np.where(covers, ranks[:, None], 0).max(axis=0, initial=0)
    bad = np.flatnonzero(status_rank != pub_rank)
    assert not len(bad), (
        f"{len(bad)} points whose status differs from the published zones, e.g. "
        f"{pts[bad[:3]].tolist()}: status ranks {status_rank[bad[:3]].tolist()}, "
        f"published {pub_rank[bad[:3]].tolist()}"
    )
    # the published zone named by the status answer contains the point
    named = np.flatnonzero(got >= 0)
    assert covers[got[named], named].all()

    # the home of a case that sets a zone lies in that zone (or a higher one)
    level = HOME_LEVEL.get(name)
    if level is not None:
        lv = pol.level(level)
        recent = (cases["reported"] <= at) & (
            cases["reported"] > at - dt.timedelta(days=lv.lift_after_days)
        )
        sets = qualifying(pol, level, cases) & recent.to_numpy()
        if lv.extent.kind == "community":  # a home outside every community sets nothing
            sets = sets & (cases["community"].to_numpy() >= 0)
        home_rank = status_rank[len(verts) : len(verts) + len(homes)]
        assert (home_rank[sets] >= pol.rank(level)).all()


# -- buffers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("city", sorted(CITIES))
@settings(PROPS, max_examples=12)
@given(data=st.data())
def test_an_exact_buffer_contains_its_source_and_its_distance(
    city: str, data: st.DataObject
) -> None:
    layer, pol = CITIES[city](), CIRCLES
    cases = data.draw(case_sets(city), label="cases")
    at = as_of(data, cases)
    result = compute_zones(layer, cases, pol, at)
    z = result.zones
    metric = layer.to_metric_geoms(z.geometry.to_numpy())
    core = metric[(z["level"] == "core").to_numpy()]
    event("core zones" if len(core) else "no core zone")
    at_least_ring = shapely.union_all(metric)  # ring zones and the core zones above them
    ring = shapely.union_all(metric[(z["level"] == "ring").to_numpy()])
    for c in core:
        # the buffer contains its source, and everything within its distance of it (less the
        # error of drawing circles as polygons of 128 sides: under 0.1 m here)
        assert shapely.covers(at_least_ring, c)
        assert shapely.difference(c.buffer(150 - 0.5, quad_segs=32), at_least_ring).area < 1e-6
    if len(core):  # and reaches no further than its distance
        assert shapely.difference(ring, shapely.union_all(core).buffer(150.5)).area < 1e-6
    # every point on a circle of 395 m around a home of an active core is at least in the ring
    sets = (
        qualifying(pol, "core", cases)
        & ((cases["reported"] <= at) & (cases["reported"] > at - dt.timedelta(days=6))).to_numpy()
    )
    on = circle_points(layer, cases["lon"].to_numpy()[sets], cases["lat"].to_numpy()[sets], 395)
    got = status_zone(result, layer, on)
    assert (got >= 0).all()


@pytest.mark.parametrize("city", sorted(CITIES))
@settings(PROPS, max_examples=12)
@given(data=st.data())
def test_a_community_buffer_takes_exactly_the_communities_within_its_distance(
    city: str, data: st.DataObject
) -> None:
    """cn-three-zone: controlled = the other communities within 1 km of a sealed one."""
    layer, pol = CITIES[city](), policy("cn-three-zone")
    cases = data.draw(case_sets(city), label="cases")
    at = as_of(data, cases)
    result = compute_zones(layer, cases, pol, at)
    rank = np.array([pol.rank(lv) for lv in result.levels["level"]])
    sealed = rank == pol.rank("sealed")
    event("sealed communities" if sealed.any() else "nothing sealed")
    if not sealed.any():
        assert not (rank == pol.rank("controlled")).any()
        return
    d = shapely.distance(layer.metric, shapely.union_all(layer.metric[sealed]))
    near = d <= 1000.0
    assert (rank[near] >= pol.rank("controlled")).all()
    assert near[rank == pol.rank("controlled")].all()
    # and the published zones: the controlled zones plus the sealed ones cover the buffer
    z = result.zones
    metric = layer.to_metric_geoms(z.geometry.to_numpy())
    high = shapely.union_all(metric[z["level"].isin(["sealed", "controlled"]).to_numpy()])
    assert shapely.covers(high, shapely.union_all(layer.metric[sealed]))


# -- when zones change ---------------------------------------------------------------------------
def change_days(pol: Policy, cases: pd.DataFrame) -> set[int]:
    """Days (from D0) on which zones may change: a qualifying case reported, or a scheduled
    lift (a qualifying case leaving the trigger's window, the level's lift and its step-down)."""
    out: set[int] = set()
    for lv in pol.levels:
        if lv.trigger is None:
            continue
        days = (to_days(cases["reported"]) - to_day(D0))[qualifying(pol, lv.id, cases)]
        lift = lv.trigger.window_days - 1 + lv.lift_after_days
        for d in days.tolist():
            out |= {d, d + lift}
            if lv.step_down is not None:
                out.add(d + lift + lv.step_down.after_days)
    return out


def snapshot(result: ZoneResult) -> tuple[Any, ...]:
    z = result.zones
    return (
        tuple(result.levels["level"]),
        tuple(z["zone_id"]),
        tuple(z["level"]),
        tuple(shapely.normalize(g).wkb for g in z.geometry),
    )


@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize(
    "name", ["cn-three-zone", "cn-2022-9th", "cn-2020-county", "hk-building", "circles"]
)
@settings(PROPS, max_examples=3)
@given(data=st.data())
def test_zones_change_only_on_case_days_and_scheduled_lifts(
    city: str, name: str, data: st.DataObject
) -> None:
    layer, pol = CITIES[city](), policy(name)
    cases = data.draw(case_sets(city, max_cases=5), label="cases")
    allowed = change_days(pol, cases)
    last = max(allowed, default=0) + 2
    prev = snapshot(compute_zones(layer, cases, pol, D0 - dt.timedelta(days=1)))
    changed = []
    for t in range(last + 1):
        now = snapshot(compute_zones(layer, cases, pol, D0 + dt.timedelta(days=t)))
        if now != prev:
            changed.append(t)
        prev = now
    event(f"{name}: {len(changed)} changes")
    assert set(changed) <= allowed, f"zones changed on days {sorted(set(changed) - allowed)}"
    # and the test sees changes: the first case setting the top level changes the zones
    level = HOME_LEVEL.get(name)
    if level is not None:
        sets = qualifying(pol, level, cases)
        if pol.level(level).extent.kind == "community":
            sets = sets & (cases["community"].to_numpy() >= 0)
        if sets.any():
            first = int((to_days(cases["reported"][sets]) - to_day(D0)).min())
            assert first in changed


# -- incremental updates ------------------------------------------------------------------------
@pytest.mark.parametrize("city", sorted(CITIES))
@pytest.mark.parametrize(
    "name", ["cn-three-zone", "cn-2022-9th", "shanghai-2022-04", "cn-2020-county"]
)
@settings(PROPS, max_examples=5)
@given(data=st.data())
def test_incremental_equals_full_on_random_batches(
    city: str, name: str, data: st.DataObject
) -> None:
    layer, pol = CITIES[city](), policy(name)
    cases = data.draw(case_sets(city, max_cases=12), label="cases")
    new = np.array(data.draw(st.lists(st.booleans(), min_size=len(cases), max_size=len(cases))))
    at = as_of(data, cases)
    prev = compute_zones(layer, cases[~new], pol, at)
    got = update_zones(prev, layer, cases, cases[new])
    event(f"{name}: {'changed' if got is not prev else 'unchanged'}")
    assert_same(got, compute_zones(layer, cases, pol, at))
