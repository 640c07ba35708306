"""The shortcuts of the exact-geometry engine against the plain computations they replace:
disc hits by bounds and blocks, the union of discs from edge discs and inner squares, the
communities and cells of a zone part, and distinct counts in a window."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.data.generator import generate_city
from riskmap.geo import cells as h3c
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, Features
from riskmap.geo.zones.assemble import disc_union_inputs, part_cells, part_communities
from riskmap.geo.zones.conditions import distinct_in_window
from riskmap.geo.zones.features import disc_hits

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="module")
def layer() -> CommunityLayer:
    c = generate_city(seed=5, communities=600, cases=10, days=10, end=END)
    return CommunityLayer(c.communities, 10)


def _discs(
    layer: CommunityLayer, n: int, radius: float, ndays: int, seed: int, spread: float
) -> Features:
    rng = np.random.default_rng(seed)
    x, y, _ = layer.rep_points
    cx, cy = float(np.median(x)), float(np.median(y))
    centre = np.column_stack([cx + rng.normal(0, spread, n), cy + rng.normal(0, spread, n)]).astype(
        np.float64
    )
    events = rng.random((n, ndays)) < 0.15
    keys = np.array([f"k{i}" for i in range(n)], dtype=object)
    return Features(
        keys,
        np.full(n, -1, dtype=np.int64),
        events.copy(),
        events,
        np.full(n, -1, dtype=np.int64),
        centre=centre,
        radius=np.full(n, radius),
        lift=1,
    )


def test_disc_hits_equal_brute_force(layer: CommunityLayer) -> None:
    f = _discs(layer, 150, 1500.0, 8, seed=1, spread=3000.0)
    assert f.centre is not None and f.radius is not None
    wide = f.radius + np.where(np.arange(len(f)) % 3 == 0, 2500.0, 1000.0)  # mixed radii
    got = disc_hits(layer, f.centre, f.events, [f.radius, wide])
    for radius, grid in zip([f.radius, wide], got, strict=True):
        want = np.zeros_like(grid)
        for t in range(f.events.shape[1]):
            on = np.flatnonzero(f.events[:, t])
            pts = shapely.points(f.centre[on])
            for c in range(len(layer)):
                want[c, t] = bool(shapely.dwithin(layer.metric[c], pts, radius[on]).any())
        assert (grid == want).all()


def test_union_of_edge_discs_and_inner_squares_is_the_union(layer: CommunityLayer) -> None:
    f = _discs(layer, 400, 1200.0, 1, seed=2, spread=1500.0)
    inputs = disc_union_inputs(f)
    n_discs = int(sum(len(shapely.get_coordinates(g)) > 100 for g in inputs))
    assert n_discs < len(f), "no disc was left out"
    whole = shapely.union_all(f.metric)
    fast = shapely.union_all(inputs)
    assert abs(fast.area - whole.area) <= 1e-9 * whole.area
    assert shapely.symmetric_difference(fast, whole).area <= 1e-6 * whole.area
    assert len(shapely.get_parts(fast)) == len(shapely.get_parts(whole))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_part_communities_and_cells(layer: CommunityLayer, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y, _ = layer.rep_points
    pick = rng.choice(len(layer), size=6, replace=False)
    part = shapely.union_all(shapely.buffer(shapely.points(x[pick], y[pick]), 1800.0))
    part = max(shapely.get_parts(part), key=lambda p: p.area)
    have, inside, edge = part_communities(layer, part)
    want = np.unique(layer.metric_tree.query(part, predicate="intersects"))
    assert (have == want).all()
    assert set(inside) <= set(have) and not set(inside) & set(edge)
    assert len(inside) and len(edge)  # both shortcuts are used
    # cells whose centre lies in the part, from every community cell
    _, cells = layer.cells
    cx, cy = layer.cell_centres
    expect = h3c.compact(cells[shapely.contains_xy(part, cx, cy)])
    lv = load_policy("india-containment").levels[0]
    empty = Features(
        np.empty(0, dtype=object),
        np.empty(0, np.int64),
        np.zeros((0, 1), bool),
        np.zeros((0, 1), bool),
        np.empty(0, np.int64),
    )
    part_ll = shapely.Point(0, 0)  # only used when no cell centre falls inside
    got = part_cells(lv, part_ll, part, layer, empty, np.empty(0, np.int64), inside, edge)
    assert (got == expect).all()


def test_distinct_in_window_equals_a_presence_grid() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        n, count, ndays = int(rng.integers(0, 120)), int(rng.integers(1, 8)), 30
        w = int(rng.integers(1, 12))
        unit = rng.integers(0, count, n)
        day = rng.integers(0, ndays, n)
        ident = np.array([f"c{i}" for i in rng.integers(0, 12, n)], dtype=object)
        want = np.zeros((count, ndays))
        seen = pd.DataFrame({"u": unit, "c": ident, "t": day}).drop_duplicates()
        for (u, _), grp in seen.groupby(["u", "c"]):
            on = np.zeros(ndays, dtype=bool)
            for t in grp["t"]:
                on[t : t + w] = True
            want[u] += on
        assert (distinct_in_window(unit, day, ident, count, w, ndays) == want).all()


def test_zone_cells_of_a_community_in_two_pieces() -> None:
    """A community of two pieces far apart, one of them in a containment zone: the zone's
    cells are the community cells whose centre lies in the zone, not every cell of the
    community (the other piece is 4 km away). Found in review: such cells would tell a phone
    4 km away that it is inside the zone."""
    import h3

    from riskmap.geo.zones import compute_zones

    c = generate_city(seed=0, communities=300, cases=10, days=10, end=END)
    fr = c.communities.copy()
    x, y, _ = CommunityLayer(fr, 10).rep_points
    a = int(np.argmin(np.hypot(x - np.median(x), y - np.median(y))))  # a central community
    b = int(np.argmax(np.hypot(x - x[a], y - y[a])))  # and the farthest from it
    fr.loc[a, "geometry"] = shapely.union(fr.geometry[a], fr.geometry[b])
    fr = fr.drop(index=b).reset_index(drop=True)
    layer = CommunityLayer(fr, 10)
    a = int(np.flatnonzero(layer.ids == c.communities.community_id[a])[0])
    pt = shapely.point_on_surface(layer.geoms[a])
    cases = pd.DataFrame(
        {
            "case_id": ["K1"],
            "reported": [np.datetime64(END, "D")],
            "type": ["confirmed"],
            "role": ["residence"],
            "lat": [pt.y],
            "lon": [pt.x],
        }
    )
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    res = compute_zones(layer, cases, load_policy("india-containment"), END)
    zone = res.zones[res.zones["level"] == "containment"].iloc[0]
    got = {
        child
        for cell in np.asarray(zone["cells"]).tolist()
        for child in h3.cell_to_children(h3.int_to_str(int(cell)), 10)
    }
    _, cells = layer.cells
    lat, lng = np.array([h3.cell_to_latlng(h3.int_to_str(int(v))) for v in cells.tolist()]).T
    inside = shapely.contains_xy(zone.geometry, lng, lat)
    assert got == {h3.int_to_str(int(v)) for v in cells[inside].tolist()}
