"""Getis-Ord Gi* hotspots: against a hand computation, on a planted cluster, on random
fields, and what the public variant shows."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import sparse

from riskmap.geo.hotspots import ANALYST_COLUMNS, PUBLIC_COLUMNS, gi_star, hotspots
from riskmap.geo.zones import CommunityLayer
from tests.helpers import LOCAL, squares

AT = dt.date(2024, 3, 14)
SIDE = 500.0
N = 16  # a city of 16 x 16 square communities of 500 m


@pytest.fixture(scope="module")
def grid_city() -> CommunityLayer:
    spec = [
        (f"C{i:02d}{j:02d}", i * SIDE, j * SIDE, SIDE, f"D{i // 8}")
        for i in range(N)
        for j in range(N)
    ]
    return CommunityLayer(squares(spec), h3_res=10)


def points(xy: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Confirmed cases at home at metric points (local frame), reported in the last week."""
    ll = gpd.GeoSeries(shapely.points(xy), crs=LOCAL).to_crs(4326)
    n = len(xy)
    return pd.DataFrame(
        {
            "case_id": [f"k{i}" for i in range(n)],
            "reported": [AT - dt.timedelta(days=int(d)) for d in rng.integers(0, 7, n)],
            "type": "confirmed",
            "role": "residence",
            "lat": ll.y.to_numpy(),
            "lon": ll.x.to_numpy(),
        }
    )


def hand_gi_star(x: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Ord and Getis (1995), Gi* with binary weights (the place itself included)."""
    n = len(x)
    w = adj + np.eye(n)
    mean = x.mean()
    s = np.sqrt((x**2).mean() - mean**2)
    wi = w.sum(axis=1)
    num = w @ x - mean * wi
    den = s * np.sqrt((n * (w**2).sum(axis=1) - wi**2) / (n - 1))
    return num / den


def rook(k: int) -> np.ndarray:
    adj = np.zeros((k * k, k * k))
    for i in range(k):
        for j in range(k):
            for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                if 0 <= i + di < k and 0 <= j + dj < k:
                    adj[i * k + j, (i + di) * k + j + dj] = 1
    return adj


def test_gi_star_equals_the_hand_computation() -> None:
    x = np.array([0, 1, 0, 2, 9, 4, 0, 3, 1], dtype=float)
    adj = rook(3)
    z, p = gi_star(x, sparse.csr_matrix(adj))
    want = hand_gi_star(x, adj)
    np.testing.assert_allclose(z, want, rtol=1e-10)
    # the centre by hand: w* row = centre + 4 neighbours, sum 1+2+9+4+3 = 19
    mean, s = 20 / 9, np.sqrt((x**2).sum() / 9 - (20 / 9) ** 2)
    centre = (19 - mean * 5) / (s * np.sqrt((9 * 5 - 25) / 8))
    assert z[4] == pytest.approx(centre)
    assert p[4] == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(abs(centre))))
    zero_z, zero_p = gi_star(np.zeros(9), sparse.csr_matrix(adj))
    assert np.isnan(zero_z).all() and (zero_p == 1).all()  # no cases: undefined, no signal


def test_community_hotspots_use_touching_neighbours() -> None:
    # 4 x 4 communities; queen neighbours (corners touch)
    layer = CommunityLayer(
        squares([(f"Q{i}{j}", i * SIDE, j * SIDE, SIDE, "D") for i in range(4) for j in range(4)]),
        h3_res=10,
    )
    counts = np.array([0, 1, 0, 2, 9, 4, 0, 3, 1, 0, 0, 5, 2, 0, 1, 0])
    xy = np.repeat(shapely.get_coordinates(shapely.centroid(layer.metric)), counts, axis=0)
    # centroids are metric in the layer's projection: back to the local frame through lon/lat
    ll = gpd.GeoSeries(shapely.points(xy), crs=layer.metric_crs).to_crs(LOCAL)
    cs = points(shapely.get_coordinates(ll.to_numpy()), np.random.default_rng(0))
    got = hotspots(layer, cs, AT, on="communities", public=False).set_index("id")
    ids = [f"Q{i}{j}" for i in range(4) for j in range(4)]
    queen = np.array(
        [
            [
                float(a != b and abs(a // 4 - b // 4) <= 1 and abs(a % 4 - b % 4) <= 1)
                for b in range(16)
            ]
            for a in range(16)
        ]
    )
    assert got.loc[ids, "cases"].tolist() == counts.tolist()
    np.testing.assert_allclose(got.loc[ids, "z"], hand_gi_star(counts.astype(float), queen))


def test_a_planted_cluster_is_found(grid_city: CommunityLayer) -> None:
    rng = np.random.default_rng(7)
    centre = np.array([4000.0, 4000.0])
    background = rng.uniform(0, N * SIDE, size=(120, 2))
    angle, radius = rng.uniform(0, 2 * np.pi, 40), 300 * np.sqrt(rng.uniform(0, 1, 40))
    cluster = centre + np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    cs = points(np.vstack([background, cluster]), rng)
    got = hotspots(grid_city, cs, AT, res=8, public=False)
    hot = got[got["class"] == "hot"]
    assert len(hot) >= 1
    c_ll = gpd.GeoSeries([shapely.Point(centre)], crs=LOCAL).to_crs(4326).iloc[0]
    assert (got[got.geometry.contains(c_ll)]["class"] == "hot").all()  # the centre's cell
    # every hot cell near the cluster (its cells and their neighbours: within 1.5 km)
    d = hot.to_crs(LOCAL).geometry.centroid.distance(shapely.Point(centre))
    assert (d < 1500).all()
    assert (got["p_fdr"] >= got["p"] - 1e-15).all()
    communities = hotspots(grid_city, cs, AT, on="communities", public=False)
    near = communities[communities["class"] == "hot"]
    assert len(near) >= 1
    dc = near.to_crs(LOCAL).geometry.centroid.distance(shapely.Point(centre))
    assert (dc < 1500).all()


def test_a_random_field_finds_almost_nothing(grid_city: CommunityLayer) -> None:
    signalled = 0
    flagged = 0
    cells = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        cs = points(rng.uniform(0, N * SIDE, size=(200, 2)), rng)
        got = hotspots(grid_city, cs, AT, res=8, public=False)
        sig = got["class"] != "not significant"
        signalled += bool(sig.any())
        flagged += int(sig.sum())
        cells += len(got)
    # under no clustering, Benjamini-Hochberg at 5% keeps the chance of any signal near 5%
    assert signalled <= 2 and flagged <= 0.01 * cells, (signalled, flagged, cells)


def test_the_public_variant_shows_classes_only(grid_city: CommunityLayer) -> None:
    rng = np.random.default_rng(1)
    cs = points(np.array([[4100.0, 4100.0]] * 3), rng)  # three cases in one place, no others
    analysts = hotspots(grid_city, cs, AT, res=8, public=False)
    assert list(analysts.columns) == ANALYST_COLUMNS
    assert (analysts["class"] == "hot").any()  # significant: but only three cases
    public = hotspots(grid_city, cs, AT)  # the default: public, resolution 8, min_count 5
    assert list(public.columns) == PUBLIC_COLUMNS
    assert (public["class"] == "not significant").all()
    shown = hotspots(grid_city, cs, AT, min_count=3)
    assert shown["class"].tolist() == analysts["class"].tolist()
    doc = json.loads(public.to_json())
    assert set(doc["features"][0]["properties"]) == {"id", "class"}
    with pytest.raises(ValueError, match="resolution 8 or coarser"):
        hotspots(grid_city, cs, AT, res=9)
    assert len(hotspots(grid_city, cs, AT, res=9, public=False)) > len(analysts)
    nothing = hotspots(grid_city, cs.iloc[:0], AT, public=False)
    assert (nothing["class"] == "not significant").all() and (nothing["cases"] == 0).all()


def test_permutation_p_values_find_the_cluster_and_repeat(grid_city: CommunityLayer) -> None:
    rng = np.random.default_rng(7)
    centre = np.array([4000.0, 4000.0])
    angle, radius = rng.uniform(0, 2 * np.pi, 60), 500 * np.sqrt(rng.uniform(0, 1, 60))
    cluster = centre + np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    cs = points(np.vstack([rng.uniform(0, N * SIDE, size=(120, 2)), cluster]), rng)
    a = hotspots(grid_city, cs, AT, public=False, permutations=4999, seed=3)
    b = hotspots(grid_city, cs, AT, public=False, permutations=4999, seed=3)
    assert a["p"].tolist() == b["p"].tolist()
    assert (a["p"] >= 1 / 5000).all()  # the smallest permutation p
    hot = a[a["class"] == "hot"]
    assert len(hot) >= 1 and (a.loc[a["class"] == "cold", "z"] < -2).all()
    assert (hot.to_crs(LOCAL).geometry.centroid.distance(shapely.Point(centre)) < 1500).all()
