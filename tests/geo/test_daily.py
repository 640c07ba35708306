"""Zones over a range of dates from one engine computation, against per-date computations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.data.generator import generate_city
from riskmap.geo.daily import area_history, date_range, zones_over
from riskmap.geo.history import zone_events
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from riskmap.geo.zones.assemble import ZONE_COLUMNS
from tests.geo.scenario import Scenario, cases, day
from tests.helpers import squares

END = dt.date(2024, 3, 20)
PRESETS = sorted(p.stem for p in (Path(__file__).parents[2] / "data" / "policies").glob("*.yaml"))
# every zone column but those that look forward from a date or hold its geometry
SAME_ZONE_COLUMNS = [
    c for c in ZONE_COLUMNS if c not in ("last_case", "expected_lift", "cells", "geometry")
]


@pytest.fixture(scope="module")
def city() -> tuple[CommunityLayer, pd.DataFrame]:
    c = generate_city(seed=3, communities=120, cases=260, days=16, end=END)
    layer = CommunityLayer(c.communities, 10)
    cs = c.cases.copy()
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    return layer, cs


def _same_zones(got: pd.DataFrame, want: pd.DataFrame, where: str) -> None:
    assert list(got["zone_id"]) == list(want["zone_id"]), where
    for col in SAME_ZONE_COLUMNS:
        assert got[col].tolist() == want[col].tolist(), f"{where}: {col}"
    for a, b in zip(got["cells"], want["cells"], strict=True):
        assert np.array_equal(a, b), f"{where}: cells"
    for a, b in zip(got.geometry, want.geometry, strict=True):
        assert shapely.equals_exact(a, b, tolerance=1e-9) or shapely.equals(a, b), where


@pytest.mark.parametrize("preset", PRESETS)
def test_a_range_equals_the_zones_of_each_date(city, preset: str) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy(preset)
    start = dt.date(2024, 3, 3)  # before the first case (2024-03-05)
    # every other date, the first days and the last one: keeps the test short
    dates = [d for i, d in enumerate(date_range(start, END)) if i % 4 == 0 or d >= END]
    got = zones_over(layer, cs, policy, start, END)
    assert list(got.by_date) == date_range(start, END)
    for d in dates:
        want = compute_zones(layer, cs, policy, d)
        r = got.by_date[d]
        where = f"{preset} {d}"
        _same_zones(r.zones, want.zones, where)
        for col in ("community_id", "level", "since", "zone_id"):
            assert r.levels[col].tolist() == want.levels[col].tolist(), f"{where}: {col}"
        assert r.zones["expected_lift"].isna().all() and r.levels["last_case"].isna().all()


def test_forecast_fills_the_forward_columns(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy("cn-2022-9th")
    start = END - dt.timedelta(days=2)
    got = zones_over(layer, cs, policy, start, END, forecast=True, with_geometry=False)
    for d, r in got:
        want = compute_zones(layer, cs, policy, d, with_geometry=False)
        assert r.zones["zone_id"].tolist() == want.zones["zone_id"].tolist()
        for col in ("expected_lift", "last_case"):
            assert r.zones[col].tolist() == want.zones[col].tolist(), (d, col)
            assert r.levels[col].tolist() == want.levels[col].tolist(), (d, col)
    frame = got.zones()
    assert frame["date"].nunique() == 3 and len(frame) == sum(len(r.zones) for _, r in got)


def test_a_range_rejects_reversed_dates(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    with pytest.raises(ValueError, match="is after the last date"):
        zones_over(layer, cs, load_policy("cn-three-zone"), END, END - dt.timedelta(days=1))


def test_area_history_names_the_areas_of_the_events(city) -> None:  # type: ignore[no-untyped-def]
    layer, cs = city
    policy = load_policy("india-containment")
    start = END - dt.timedelta(days=10)
    r = compute_zones(layer, cs, policy, END)
    areas = area_history(r, layer, start, END)
    ev = zone_events(r, layer, start, END)
    ev_areas = set(ev.loc[ev["unit_type"] == "area", "unit_id"])
    assert ev_areas and ev_areas <= set(areas["unit_id"])
    assert areas["unit_id"].is_unique
    assert (areas.geometry.is_valid & ~areas.geometry.is_empty).all()
    assert all(len(c) > 0 for c in areas["cells"])
    # a containment circle as drawn on a day it is active: inside that day's zones
    day = END - dt.timedelta(days=3)
    zones = compute_zones(layer, cs, policy, day).zones
    cont = shapely.union_all(zones[zones["level"] == "containment"].geometry.to_numpy())
    on = area_history(r, layer, day, day)  # the areas active that day
    on = on[on["level"] == "containment"]
    assert len(on) and set(on["unit_id"]) <= set(areas["unit_id"])
    assert all(cont.buffer(1e-7).contains(g) for g in on.geometry)
    assert all(
        f <= la and 1 <= n <= (la - f).days + 1
        for f, la, n in zip(
            areas["first_day"], areas["last_day"], areas["days_active"], strict=True
        )
    )


@pytest.mark.parametrize("preset", ["cn-three-zone", "shanghai-2022-04", "hk-building"])
def test_every_date_of_a_long_quiet_range(preset: str) -> None:
    # one case, then nothing for two months: the grid stops long before the last date
    town = CommunityLayer(
        squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1"), ("F", 20000, 0, 500, "D2")]),
        h3_res=10,
    )
    s = Scenario(town, preset, cases(("k1", 0, "confirmed", "residence", 250, 250)))
    got = zones_over(town, s.cases, s.policy, day(-3), day(60), with_geometry=False)
    assert got.result.at_index < (day(60) - day(0)).days  # the grid was cut short
    for n in [*range(-3, 20), *range(20, 61, 8)]:
        want = compute_zones(town, s.cases, s.policy, day(n), with_geometry=False)
        r = got.by_date[day(n)]
        assert r.zones["zone_id"].tolist() == want.zones["zone_id"].tolist(), n
        assert r.zones["start"].tolist() == want.zones["start"].tolist(), n
        assert r.levels["level"].tolist() == want.levels["level"].tolist(), n
        assert r.levels["since"].tolist() == want.levels["since"].tolist(), n
