"""Cooperative cancellation: the engine stops at its checkpoints when its token says so, and
gives the same results with a token as without."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest
import shapely

from riskmap.data.generator import generate_city
from riskmap.geo._cancel import Cancelled, CancelToken, cancellable, checkpoint, rss_bytes
from riskmap.geo.history import zone_events
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones, from_day

END = dt.date(2024, 3, 31)


@pytest.fixture(scope="module")
def city() -> tuple[CommunityLayer, pd.DataFrame]:
    c = generate_city(seed=5, communities=300, cases=600, days=40, end=END)
    layer = CommunityLayer(c.communities, 10)
    cs = c.cases.copy()
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    return layer, cs


class Counting(CancelToken):
    """Cancels itself at its ``stop_at``-th checkpoint (never with 0); counts checkpoints."""

    def __init__(self, stop_at: int = 0) -> None:
        super().__init__()
        self.calls = 0
        self.stop_at = stop_at

    def check(self, need_bytes: int = 0) -> None:
        self.calls += 1
        if self.calls == self.stop_at:
            self.cancel("test")
        super().check(need_bytes)


def test_checkpoints_do_nothing_outside_a_token() -> None:
    checkpoint(need_bytes=2**62)  # no token: no limit


@pytest.mark.parametrize("preset", ["india-containment", "hk-building", "cn-three-zone"])
def test_same_results_with_a_token_and_stops_at_any_checkpoint(city, preset: str) -> None:  # type: ignore[no-untyped-def]
    layer, cases = city
    policy = load_policy(preset)
    plain = compute_zones(layer, cases, policy, END)
    token = Counting()
    with cancellable(token):
        tokened = compute_zones(layer, cases, policy, END)
    assert token.calls > len(policy.levels)  # loop points inside the levels too
    pd.testing.assert_frame_equal(plain.levels, tokened.levels)
    assert (plain.rank_grid == tokened.rank_grid).all()  # type: ignore[operator]
    assert plain.zones["zone_id"].tolist() == tokened.zones["zone_id"].tolist()
    assert all(shapely.equals_exact(plain.zones.geometry, tokened.zones.geometry, 0))
    # cancelled at the first, a middle and the last checkpoint: it stops there
    for stop in sorted({1, token.calls // 2, token.calls}):
        stopper = Counting(stop)
        with pytest.raises(Cancelled) as e, cancellable(stopper):
            compute_zones(layer, cases, policy, END)
        assert e.value.reason == "cancelled" and stopper.calls == stop


def test_deadline_and_memory_stop_the_engine(city) -> None:  # type: ignore[no-untyped-def]
    layer, cases = city
    policy = load_policy("india-containment")
    with pytest.raises(Cancelled) as e, cancellable(CancelToken(deadline=time.monotonic() - 1)):
        compute_zones(layer, cases, policy, END)
    assert e.value.reason == "deadline"
    with pytest.raises(Cancelled) as e, cancellable(CancelToken(memory_limit=rss_bytes() // 2)):
        compute_zones(layer, cases, policy, END)
    assert e.value.reason == "memory" and "short of memory" in str(e.value)


def test_history_stops_too(city) -> None:  # type: ignore[no-untyped-def]
    layer, cases = city
    result = compute_zones(layer, cases, load_policy("india-containment"), END)
    token = CancelToken()
    token.cancel("the request left")
    with pytest.raises(Cancelled, match="the request left"), cancellable(token):
        zone_events(result, layer, from_day(result.day0), END)
