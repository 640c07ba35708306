"""An incremental update equals a full recomputation, on random batches."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely

from data.generator import generate_city
from geo.incremental import update_zones
from geo.policy import load_policy
from geo.zones import CommunityLayer, ZoneResult, compute_zones

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="module")
def city() -> tuple[CommunityLayer, pd.DataFrame]:
    c = generate_city(
        seed=11, communities=1500, cases=3000, days=45, end=END, subdistricts=100, districts=40
    )
    layer = CommunityLayer(c.communities, 10)
    cs = c.cases.copy()
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    return layer, cs


def assert_same(a: ZoneResult, b: ZoneResult) -> None:
    pd.testing.assert_frame_equal(a.levels, b.levels)
    assert a.rank_grid is not None and b.rank_grid is not None
    assert (a.rank_grid == b.rank_grid).all()
    za, zb = a.zones.reset_index(drop=True), b.zones.reset_index(drop=True)
    cols = ["zone_id", "level", "community_ids", "start", "last_case", "expected_lift"]
    assert za[cols].to_dict("records") == zb[cols].to_dict("records")
    for ga, gb in zip(za.geometry, zb.geometry, strict=True):
        assert shapely.equals(ga, gb)
    for ca, cb in zip(za["cells"], zb["cells"], strict=True):
        assert (ca == cb).all()


@pytest.mark.parametrize(
    "preset", ["cn-three-zone", "cn-2022-9th", "shanghai-2022-04", "cn-2020-county"]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_equals_full(city, preset: str, seed: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import geo.incremental as inc

    layer, cs = city
    sizes: list[int] = []
    real = inc.compute_zones

    def spy(lay, *a, **k):  # type: ignore[no-untyped-def]
        sizes.append(len(lay))
        return real(lay, *a, **k)

    monkeypatch.setattr(inc, "compute_zones", spy)
    policy = load_policy(preset)
    rng = np.random.default_rng(seed)
    at = END - dt.timedelta(days=int(rng.integers(0, 10)))
    # new cases known by `at`, in a community, after the first day (older ones: full recompute)
    known = cs[(cs["reported"] <= at) & (cs["reported"] > cs["reported"].min())]
    ids = known.loc[known["community"] >= 0, "case_id"].unique()
    size = [1, 3, 40][seed]
    if size == 1:  # a case with a single place: a local update
        one_place = known.groupby("case_id")["role"].transform("size") == 1
        ids = known.loc[one_place & (known["community"] >= 0), "case_id"].unique()
    batch_ids = set(rng.choice(ids, size=size, replace=False).tolist())
    in_batch = cs["case_id"].isin(batch_ids).to_numpy()
    base = cs[~in_batch]
    prev = compute_zones(layer, base, policy, at)
    got = update_zones(prev, layer, cs, cs[in_batch])
    assert_same(got, compute_zones(layer, cs, policy, at))
    if size == 1:  # one case touches a few of the 40 districts only
        assert sizes and sizes[0] < len(layer), "the update recomputed everything"


def test_batch_after_the_date_changes_nothing(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy("cn-three-zone")
    at = END - dt.timedelta(days=20)
    prev = compute_zones(layer, cs, policy, at)
    late = cs[cs["reported"] > at]
    assert update_zones(prev, layer, cs, late) is prev


def test_exact_geometry_rules_fall_back_to_full(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy("india-containment")
    base, new = cs.iloc[:-30], cs.iloc[-30:]
    prev = compute_zones(layer, base, policy, END)
    got = update_zones(prev, layer, cs, new)
    full = compute_zones(layer, cs, policy, END)
    pd.testing.assert_frame_equal(got.levels, full.levels)
