"""Request dates lie within the data: from the first report date to the last one plus the
rule's longest lift (or today); history periods are bounded; no date ever answers a 500."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from riskmap.api.service import RiskService
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from riskmap.geo.policy import load_policy
from tests.api.helpers import END, copy_store, served

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def span(sample_dir: Path) -> tuple[dt.date, dt.date]:
    reported = pd.to_datetime(pd.read_csv(sample_dir / "cases.csv")["reported"])
    return reported.min().date(), reported.max().date()


@pytest.fixture
def short(sample_db: Path, tmp_path: Path) -> Iterator[TestClient]:
    db, headers = _analyst(sample_db, tmp_path)
    settings = Settings(
        database_url=f"sqlite:///{db}", rate_limit_per_minute=0, max_history_days=10
    )
    with served(settings) as c:
        c.headers.update(headers)
        yield c


def _point(sample_dir: Path) -> dict[str, str]:
    c = pd.read_csv(sample_dir / "cases.csv").iloc[0]
    return {"lat": str(c["lat"]), "lon": str(c["lon"])}


def test_the_range_follows_the_data_and_the_rule(sample_db: Path, span) -> None:  # type: ignore[no-untyped-def]
    first, last = span
    service = RiskService(Store.open(sample_db))
    for preset, lift in (("india-containment", 28), ("hk-building", 15)):
        assert service.date_bounds(load_policy(preset), today=END) == (first, last + lift * DAY)
    # today is always allowed (it is the default date)
    today = last + 400 * DAY
    assert service.date_bounds(load_policy("hk-building"), today=today) == (first, today)


def _analyst(sample_db: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the sample store with an analyst's key (free aggregate periods need one)."""
    db = tmp_path / "bounds.db"
    copy_store(sample_db, db)
    _, key = Store.open(db).create_key("analyst", "bounds test")
    return db, {"Authorization": f"Bearer {key}"}


def test_dates_outside_the_range_are_refused_on_every_route(
    sample_db: Path, sample_dir: Path, tmp_path: Path, span
) -> None:  # type: ignore[no-untyped-def]
    first, _ = span
    db, headers = _analyst(sample_db, tmp_path)
    settings = Settings(
        database_url=f"sqlite:///{db}",
        rate_limit_per_minute=0,
        policies="india-containment,hk-building",  # public here: the bounds, not access, are tested
    )
    today = dt.date.today()
    pt = _point(sample_dir)
    routes: list[tuple[str, dict[str, str], list[str]]] = [
        ("/v1/zones", {}, ["at"]),
        ("/v1/communities", {"policy": "india-containment"}, ["at"]),
        ("/v1/status", pt, ["at"]),
        ("/", {}, ["at"]),
        ("/v1/zones/history", {"policy": "hk-building"}, ["from", "to"]),
        ("/v1/status/history", pt, ["from", "to"]),
        ("/v1/aggregates/cases", {"unit": "community"}, ["from", "to"]),
    ]
    bad = [first - DAY, today + 400 * DAY, dt.date.max, dt.date.min]
    with served(settings) as client:
        _refused_on(client, routes, bad, first, headers)


def _refused_on(client: TestClient, routes, bad, first, headers) -> None:  # type: ignore[no-untyped-def]
    for path, base, names in routes:
        for name in names:
            for d in bad:
                q = base | {name: d.isoformat()}
                if name == "from":
                    q["to"] = (first + 5 * DAY).isoformat()
                r = client.get(path, params=q, headers=headers)
                assert r.status_code == 422, (path, q, r.status_code, r.text[:300])
                detail = r.json()["detail"][0]
                assert detail["loc"] == ["query", name], (path, q, detail)
                assert f"must lie from {first}" in detail["msg"], detail["msg"]
        # the first report date is in range
        q = base | {n: first.isoformat() for n in names}
        assert client.get(path, params=q, headers=headers).status_code == 200, (path, q)


def test_history_periods_are_bounded(short: TestClient, sample_dir: Path, span) -> None:  # type: ignore[no-untyped-def]
    first, last = span
    pt = _point(sample_dir)
    for path, base in (
        ("/v1/zones/history", {}),
        ("/v1/status/history", pt),
        ("/v1/aggregates/cases", {}),
    ):
        q = base | {"from": str(last - 10 * DAY), "to": str(last)}  # 11 days
        r = short.get(path, params=q)
        assert r.status_code == 422 and "spans 11 days: at most 10" in r.text, (path, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", "from"]
        q = base | {"from": str(last - 9 * DAY), "to": str(last)}
        assert short.get(path, params=q).status_code == 200, path
    # a default 'from' never lands before the data
    body = short.get("/v1/zones/history", params={"to": str(first + 3 * DAY)}).json()
    assert body["from"] == str(first)


def test_history_answers_are_bounded(sample_db: Path, span) -> None:  # type: ignore[no-untyped-def]
    first, last = span
    q = {"from": str(last - 9 * DAY), "to": str(last)}
    base = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0)
    with served(base) as c:
        n = len(c.get("/v1/zones/history", params=q).json()["events"])
    assert n > 2
    with served(base.model_copy(update={"max_history_events": n - 1})) as c:
        r = c.get("/v1/zones/history", params=q)
        assert r.status_code == 422 and f"{n} events" in r.text and f"at most {n - 1}" in r.text
    with served(base.model_copy(update={"max_history_events": n})) as c:
        assert len(c.get("/v1/zones/history", params=q).json()["events"]) == n
