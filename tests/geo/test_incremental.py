"""An incremental update equals a full recomputation, on random batches."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.data.generator import generate_city
from riskmap.geo.incremental import update_zones
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones

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


INCREMENTAL = ["cn-three-zone", "cn-2022-9th", "shanghai-2022-04", "cn-2020-county"]


def _no_full_recompute(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Record the full recomputations an update falls back to."""
    import riskmap.geo.incremental as inc

    calls: list[int] = []
    real = inc.compute_zones

    def spy(lay, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(len(lay))
        return real(lay, *a, **k)

    monkeypatch.setattr(inc, "compute_zones", spy)
    return calls


@pytest.mark.parametrize("preset", INCREMENTAL)
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_incremental_equals_full(city, preset: str, seed: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    calls = _no_full_recompute(monkeypatch)
    policy = load_policy(preset)
    rng = np.random.default_rng(seed)
    at = END - dt.timedelta(days=int(rng.integers(0, 10)))
    # new cases known by `at`, in a community, after the first day (older ones: full recompute)
    known = cs[(cs["reported"] <= at) & (cs["reported"] > cs["reported"].min())]
    ids = known.loc[known["community"] >= 0, "case_id"].unique()
    # one case, a few, and batches spread over most districts
    size = [1, 3, 40, 300, 1000][seed]
    if size == 1:  # a case with a single place
        one_place = known.groupby("case_id")["role"].transform("size") == 1
        ids = known.loc[one_place & (known["community"] >= 0), "case_id"].unique()
    batch_ids = set(rng.choice(ids, size=size, replace=False).tolist())
    in_batch = cs["case_id"].isin(batch_ids).to_numpy()
    base = cs[~in_batch]
    prev = compute_zones(layer, base, policy, at)
    got = update_zones(prev, layer, cs, cs[in_batch])
    want = compute_zones(layer, cs, policy, at)
    assert want.rank_grid is not None and prev.rank_grid is not None
    if want.rank_grid.shape == prev.rank_grid.shape and want.day0 == prev.day0:
        assert not calls, "the update recomputed everything"
    assert_same(got, want)


@pytest.mark.parametrize("preset", INCREMENTAL)
def test_back_filled_cases(city, preset: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Cases reported weeks before the date, added late, in the middle of the grid."""
    layer, cs = city
    calls = _no_full_recompute(monkeypatch)
    policy = load_policy(preset)
    rng = np.random.default_rng(7)
    days = pd.to_datetime(cs["reported"])
    lo, hi = days.min() + pd.Timedelta(days=5), days.max() - pd.Timedelta(days=15)
    ids = cs.loc[(days > lo) & (days < hi) & (cs["community"] >= 0), "case_id"].unique()
    batch = set(rng.choice(ids, size=150, replace=False).tolist())
    in_batch = cs["case_id"].isin(batch).to_numpy()
    prev = compute_zones(layer, cs[~in_batch], policy, END)
    got = update_zones(prev, layer, cs, cs[in_batch])
    assert not calls
    assert_same(got, compute_zones(layer, cs, policy, END))


def test_successive_batches(city, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Updates applied one after another equal one full computation."""
    layer, cs = city
    calls = _no_full_recompute(monkeypatch)
    policy = load_policy("cn-three-zone")
    rng = np.random.default_rng(3)
    recent = cs.loc[cs["reported"] >= END - dt.timedelta(days=6), "case_id"].unique()
    picked = rng.choice(recent, size=90, replace=False)
    batches = [set(picked[:30].tolist()), set(picked[30:60].tolist()), set(picked[60:].tolist())]
    held = cs["case_id"].isin(set(picked.tolist())).to_numpy()
    res = compute_zones(layer, cs[~held], policy, END)
    seen = ~held
    for b in batches:
        new = cs["case_id"].isin(b).to_numpy()
        seen = seen | new
        res = update_zones(res, layer, cs[seen], cs[new])
    assert not calls
    assert_same(res, compute_zones(layer, cs, policy, END))


def test_batch_moving_the_day_axis_recomputes(city) -> None:  # type: ignore[no-untyped-def]
    """Cases before the first day of the previous grid: a full recomputation, same result."""
    layer, cs = city
    policy = load_policy("cn-three-zone")
    first = cs["reported"].min()
    early = cs["reported"] == first
    prev = compute_zones(layer, cs[~early], policy, END)
    got = update_zones(prev, layer, cs, cs[early])
    assert_same(got, compute_zones(layer, cs, policy, END))


def test_batch_outside_communities_changes_nothing(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy("cn-three-zone")
    prev = compute_zones(layer, cs, policy, END)
    out = cs.iloc[:5].copy()
    out["community"] = -1
    assert update_zones(prev, layer, pd.concat([cs, out]), out) is prev


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
