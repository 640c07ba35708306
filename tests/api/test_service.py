"""The service keeps its zone snapshots up to date incrementally after a batch of new cases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.service import RiskService
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.policy import load_policy
from tests.geo.test_incremental import assert_same

END = dt.date(2024, 3, 31)


def test_new_batch_updates_snapshots_incrementally(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import riskmap.api.service as svc

    city = generate_city(
        seed=4, communities=400, cases=900, days=40, end=END, subdistricts=20, districts=10
    )
    write_city(city, tmp_path / "city")
    cases = pd.read_csv(tmp_path / "city" / "cases.csv", dtype=str)
    late = cases["case_id"].isin(cases["case_id"].unique()[-5:])
    cases[~late].to_csv(tmp_path / "base.csv", index=False)
    cases[late].to_csv(tmp_path / "batch.csv", index=False)

    store = Store.open(tmp_path / "r.db")
    ingest_communities(store, tmp_path / "city" / "communities.geojson")
    ingest_cases(store, tmp_path / "base.csv", today=END)
    service = RiskService(store)
    policy = load_policy("cn-three-zone")
    before = service.snapshot(policy, END)

    calls: list[int] = []
    real = svc.update_zones

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(svc, "update_zones", spy)
    ingest_cases(store, tmp_path / "batch.csv", today=END)
    after = service.snapshot(policy, END)
    assert calls == [1]
    assert after.data_version == before.data_version + 1
    fresh = RiskService(Store.open(tmp_path / "r.db")).snapshot(policy, END)
    assert_same(after.result, fresh.result)

    # a changed community reloads everything
    ingest_communities(store, tmp_path / "city" / "communities.geojson")  # unchanged: no-op
    assert service.snapshot(policy, END) is after


def test_history_reaches_past_windows_of_lift_1_rules(tmp_path: Path) -> None:
    """cn-2020-county lifts 1 day after its 14-day window ends: the history must see it."""
    from tests.conftest import squares

    store = Store.open(tmp_path / "r.db")
    squares([("A", 0, 0, 500, "D1"), ("F", 9000, 0, 500, "D2")]).to_file(
        tmp_path / "c.geojson", driver="GeoJSON"
    )
    ingest_communities(store, tmp_path / "c.geojson")
    a = store.communities().geometry[0].representative_point()
    (tmp_path / "k.csv").write_text(
        f"case_id,reported,type,role,lat,lon\nk1,2024-03-01,confirmed,residence,{a.y},{a.x}\n"
    )
    ingest_cases(store, tmp_path / "k.csv", today=END)
    service = RiskService(store)
    policy = load_policy("cn-2020-county")
    ev = service.zone_history(policy, dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    mine = ev[ev["unit_id"] == "A"]
    assert [(d.isoformat(), k) for d, k in zip(mine["date"], mine["kind"], strict=True)] == [
        ("2024-03-01", "created"),
        ("2024-03-15", "stepped_down"),  # medium -> low when the 14-day window is empty
    ]
    runs = service.status_history(a.x, a.y, policy, dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    assert [(r["level"], r["days"]) for r in runs["intervals"]] == [("medium", 14), ("low", 17)]


def test_computed_zones_are_kept_in_the_store(tmp_path: Path, store_url: str) -> None:
    """Every snapshot the service computes is stored (table ``zones``; PostGIS geometries in
    PostgreSQL), the latest data version per rule and date."""
    import shapely

    from riskmap.api.service import policy_key

    today = dt.date.today()  # the zones in force today are kept (other dates are not)
    city = generate_city(seed=4, communities=300, cases=600, days=40, end=today)
    write_city(city, tmp_path / "city")
    cases = pd.read_csv(tmp_path / "city" / "cases.csv", dtype=str)
    late = cases["case_id"].isin(cases["case_id"].unique()[-5:])
    cases[~late].to_csv(tmp_path / "base.csv", index=False)
    cases[late].to_csv(tmp_path / "batch.csv", index=False)
    store = Store.open(store_url)
    ingest_communities(store, tmp_path / "city" / "communities.geojson")
    ingest_cases(store, tmp_path / "base.csv", today=today)
    service = RiskService(store)
    policy = load_policy("cn-three-zone")
    key = policy_key(policy)

    def check(snap) -> None:  # type: ignore[no-untyped-def]
        service.flush()
        kept = store.zone_snapshot(key, snap.data_version, today)
        assert kept is not None
        z = snap.result.zones.sort_values("zone_id").reset_index(drop=True)
        assert kept["zone_id"].tolist() == z["zone_id"].tolist()
        assert kept["level"].tolist() == z["level"].tolist()
        assert kept["community_ids"].tolist() == [list(c) for c in z["community_ids"]]
        assert kept["expected_lift"].tolist() == z["expected_lift"].tolist()
        same = shapely.equals_exact(kept.geometry.to_numpy(), z.geometry.to_numpy(), 1e-9)
        assert same.all()

    first = service.snapshot(policy, today)
    assert len(first.result.zones) > 0
    check(first)
    ingest_cases(store, tmp_path / "batch.csv", today=today)
    second = service.snapshot(policy, today)
    assert second.data_version == first.data_version + 1
    check(second)
    assert store.zone_snapshot(key, first.data_version, today) is None  # superseded
    # another date is answered but not kept (anyone may ask for any date)
    service.snapshot(policy, today - dt.timedelta(days=3))
    service.flush()
    assert store.zone_snapshot(key, second.data_version, today - dt.timedelta(days=3)) is None
    # a replica lagging behind does not put an older version back
    assert not store.save_zone_snapshot(
        key, policy.id, first.data_version, today, first.result.zones
    )
