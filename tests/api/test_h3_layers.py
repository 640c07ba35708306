"""The H3 layers of ``/collections/{layerId}/h3`` (deck.gl's H3HexagonLayer rows): zone levels
per cell agree with ``GET /v1/status`` at the cells' centres; case counts per cell equal a
count of the sample's case file, aggregate across resolutions, and reach the public perturbed
by the cell-key method exactly as the case counts do; bounds and bad parameters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from riskmap.api.main import app
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo.counts import perturb, record_keys, week_period
from tests.api.helpers import END, served

AT = END.isoformat()
MIN = 5  # RISKMAP_MIN_PUBLIC_COUNT's default
WEEK = "2024-W12"  # a week of the sample city that has ended
H3 = "/collections/{}/h3"


@pytest.fixture(scope="module")
def db_keys(sample_db: Path) -> tuple[dict[str, str], bytes]:
    """A key of each role, and the store's secret of the record keys."""
    store = Store.open(sample_db)
    try:
        keys = {r: store.create_key(r, "h3 test")[1] for r in ("officer", "analyst")}
        return keys, store.meta_secret("cell_key_secret").encode()
    finally:
        store.close()


@pytest.fixture(scope="module")
def h3client(sample_db: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0)
    with served(settings) as c:
        yield c


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _rows(client: TestClient, layer: str, **params: object) -> list[dict]:  # type: ignore[type-arg]
    r = client.get(H3.format(layer), params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# -- zones -----------------------------------------------------------------------------------
def test_zone_levels_are_the_status_at_each_cell_centre(h3client: TestClient) -> None:
    client = h3client
    rows = _rows(client, "zones", res=9, at=AT)
    assert rows and all(set(r) == {"hex", "level", "rank", "color", "rgb"} for r in rows)
    listed = {r["hex"]: r for r in rows}
    assert len(listed) == len(rows) and all(h3.get_resolution(h) == 9 for h in listed)
    levels = {r["level"] for r in rows}
    assert {"sealed", "controlled", "precaution"} <= levels  # the sample city has each
    rng = np.random.default_rng(3)
    sample = []
    for lv in sorted(levels):  # cells of every level, and the cells just outside the zones
        mine = sorted(h for h, r in listed.items() if r["level"] == lv)
        sample += list(rng.choice(mine, size=min(12, len(mine)), replace=False))
    ring = sorted({n for h in sample for n in h3.grid_ring(h, 1)} - set(listed))
    assert ring
    outside = list(rng.choice(ring, size=min(30, len(ring)), replace=False))
    for h in sample + outside:
        lat, lon = h3.cell_to_latlng(h)
        s = client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT}).json()
        if h in listed:
            r = listed[h]
            assert s["level"] == r["level"] and s["color"] == r["color"], (h, s, r)
            assert r["rgb"] == [int(r["color"][i : i + 2], 16) for i in (1, 3, 5)]
        else:
            assert s["level"] == "none", (h, s)
    # ranks follow the rule: sealed above controlled above precaution
    rank = {r["level"]: r["rank"] for r in rows}
    assert rank["sealed"] > rank["controlled"] > rank["precaution"] > 0


def test_zone_cells_in_a_bbox_and_coarser(h3client: TestClient) -> None:
    client = h3client
    rows = _rows(client, "zones", res=9, at=AT)
    lats = sorted(h3.cell_to_latlng(r["hex"])[0] for r in rows)
    lons = sorted(h3.cell_to_latlng(r["hex"])[1] for r in rows)
    box = (lons[len(lons) // 4], lats[len(lats) // 4], lons[3 * len(lons) // 4], lats[-1])
    part = _rows(client, "zones", res=9, at=AT, bbox=",".join(map(str, box)))
    expected = {
        r["hex"]: r
        for r in rows
        if box[0] <= h3.cell_to_latlng(r["hex"])[1] <= box[2]
        and box[1] <= h3.cell_to_latlng(r["hex"])[0] <= box[3]
    }
    assert 0 < len(part) < len(rows)
    assert {r["hex"]: r for r in part} == expected
    # a coarser resolution: fewer, larger cells, each the level at its centre (the status)
    coarse = _rows(client, "zones", res=7, at=AT)
    assert 0 < len(coarse) < len(rows)
    for r in coarse[:10]:
        lat, lon = h3.cell_to_latlng(r["hex"])
        s = client.get("/v1/status", params={"lat": lat, "lon": lon, "at": AT}).json()
        assert s["level"] == r["level"]


# -- counts ----------------------------------------------------------------------------------
def _exact(cases: pd.DataFrame, res: int) -> dict[str, set[str]]:
    """Case ids per cell of ``res`` of the cases reported in WEEK (from the case file)."""
    start, end = week_period("week", WEEK)
    rep = pd.to_datetime(cases["reported"]).dt.date
    c = cases[(rep >= start) & (rep <= end)]
    out: dict[str, set[str]] = {}
    for cid, la, lo in zip(
        c["case_id"], c["lat"].astype(float), c["lon"].astype(float), strict=True
    ):
        # a location counts in the ancestors of its res-15 cell (H3's hierarchy)
        out.setdefault(h3.cell_to_parent(h3.latlng_to_cell(la, lo, 15), res), set()).add(cid)
    return out


def test_analysts_counts_per_cell_aggregate_across_resolutions(  # type: ignore[no-untyped-def]
    h3client: TestClient, db_keys, sample_dir
) -> None:
    keys, _ = db_keys
    cases = pd.read_csv(sample_dir / "cases.csv", dtype={"case_id": str})
    key = _bearer(keys["analyst"])
    got = {}
    for res in (6, 7, 8, 9):
        r = h3client.get(H3.format("counts"), params={"res": res, "week": WEEK}, headers=key)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"].startswith("private")
        got[res] = {row["hex"]: row["count"] for row in r.json()}
        exact = _exact(cases, res)
        assert got[res] == {h: len(ids) for h, ids in exact.items()}, res
    # a cell's count is the distinct cases of its children: the sum of the children's counts
    # less the cases counted in two children (a case with locations in both)
    fine = _exact(cases, 9)
    for res in (6, 7, 8):
        children: dict[str, list[str]] = {}
        for h in got[res + 1]:
            children.setdefault(h3.cell_to_parent(h, res), []).append(h)
        assert set(children) == set(got[res])
        for parent, kids in children.items():
            total = sum(got[res + 1][k] for k in kids)
            assert got[res][parent] <= total
            distinct = set().union(
                *(ids for h, ids in fine.items() if h3.cell_to_parent(h, res) == parent)
            )
            assert got[res][parent] == len(distinct)
        one_place = cases.groupby("case_id")["lat"].transform("size") == 1
        if one_place.all():
            assert sum(got[res].values()) == sum(got[res + 1].values())
    assert sum(got[6].values()) >= len({c for ids in fine.values() for c in ids})


def test_public_counts_are_perturbed_and_suppressed_as_the_case_counts(  # type: ignore[no-untyped-def]
    h3client: TestClient, db_keys, sample_dir
) -> None:
    _, secret = db_keys
    cases = pd.read_csv(sample_dir / "cases.csv", dtype={"case_id": str})
    for res in (7, 8):
        r = h3client.get(H3.format("counts"), params={"res": res, "week": WEEK})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "public, max-age=60"
        public = {row["hex"]: row["count"] for row in r.json()}
        assert all(set(row) == {"hex", "count"} for row in r.json())
        exact = _exact(cases, res)
        cells = sorted(exact)
        counts = np.array([len(exact[h]) for h in cells])
        keys = np.array(
            [
                int(record_keys(np.array(sorted(exact[h])), secret).sum(dtype=np.uint64))
                for h in cells
            ],
            dtype=np.uint64,
        )
        shown = perturb(counts, keys, MIN)
        # every cell the cell-key method publishes above 0, with that count; none below MIN
        assert public == {h: int(n) for h, n in zip(cells, shown, strict=True) if n > 0}
        assert all(n >= MIN for n in public.values())
        assert any(len(exact[h]) < MIN for h in cells)  # small cells exist, and are hidden...
        hidden = [h for h in cells if len(exact[h]) < MIN and h not in public]
        assert hidden  # ...or rounded up to MIN, never shown as they are
        # the same table always gives the same answer
        again = h3client.get(H3.format("counts"), params={"res": res, "week": WEEK}).json()
        assert {row["hex"]: row["count"] for row in again} == public
    # the period is the same publication table as GET /v1/aggregates/cases: 14 days too
    r = h3client.get(H3.format("counts"), params={"res": 8, "week": WEEK, "period": "14d"})
    assert r.status_code == 200 and all(row["count"] >= MIN for row in r.json())


# -- bounds, caching, errors -----------------------------------------------------------------
def test_h3_answers_have_etag_gzip_and_are_listed(h3client: TestClient, db_keys) -> None:  # type: ignore[no-untyped-def]
    keys, _ = db_keys
    c = h3client
    r = c.get(H3.format("zones"), params={"res": 9, "at": AT}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"].startswith("application/json")
    assert (
        r.headers["cache-control"] == "public, max-age=60" and r.headers["x-h3-resolution"] == "9"
    )
    tag = r.headers["etag"]
    again = c.get(H3.format("zones"), params={"res": 9, "at": AT}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    other = c.get(H3.format("zones"), params={"res": 8, "at": AT}, headers={"If-None-Match": tag})
    assert other.status_code == 200
    officer = c.get(
        H3.format("zones"), params={"res": 9, "at": AT}, headers=_bearer(keys["officer"])
    )
    assert officer.headers["etag"] != tag and officer.headers["cache-control"].startswith("private")
    raw = c.get(
        H3.format("counts"), params={"res": 8, "week": WEEK}, headers={"Accept-Encoding": "gzip"}
    )
    assert (
        c.get(
            H3.format("counts"),
            params={"res": 8, "week": WEEK},
            headers={"If-None-Match": raw.headers["etag"]},
        ).status_code
        == 304
    )
    assert isinstance(r.json(), list)  # httpx decoded the gzip body
    listed = c.get("/collections").json()["collections"]
    h3_links = {col["id"]: ln["href"] for col in listed for ln in col["links"] if ln["rel"] == "h3"}
    assert set(h3_links) == {"zones", "counts"}
    assert h3_links["counts"].endswith("/collections/counts/h3")
    assert c.get("/collections/counts").json()["itemType"] == "h3-cell"
    items = c.get("/collections/counts/items")
    assert items.status_code == 404 and "only H3 cells" in items.text


def test_h3_cells_are_bounded(h3client: TestClient, sample_db: Path) -> None:
    """At most RISKMAP_MAX_H3_CELLS cells per answer (the same service under that setting)."""
    settings = Settings(
        database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0, max_h3_cells=40
    )
    old = app.dependency_overrides[get_settings]
    app.dependency_overrides[get_settings] = lambda: settings
    try:
        c = h3client
        assert c.get(H3.format("zones"), params={"res": 5, "at": AT}).status_code == 200
        for layer, q in (("zones", {"res": 10, "at": AT}), ("counts", {"res": 8, "week": WEEK})):
            r = c.get(H3.format(layer), params=q)
            assert r.status_code == 422, (layer, r.text)
            detail = r.json()["detail"][0]
            assert detail["loc"] == ["query", "res"], detail
            assert "RISKMAP_MAX_H3_CELLS" in detail["msg"] and "at most 40" in detail["msg"]
    finally:
        app.dependency_overrides[get_settings] = old


@pytest.mark.parametrize(
    ("path", "params", "code", "name", "words"),
    [
        ("zones", {"res": -1}, 422, "res", "greater than or equal to 0"),
        ("zones", {"res": 16}, 422, "res", "less than or equal to 15"),
        ("zones", {"res": "a"}, 422, "res", "integer"),
        ("zones", {}, 422, "res", "required"),
        ("zones", {"res": 11}, 422, "res", "without an API key"),
        ("counts", {"res": 9}, 422, "res", "resolution 8 at finest"),
        ("zones", {"res": 8, "bbox": "1,2,3"}, 422, "bbox", "4 numbers"),
        ("zones", {"res": 8, "bbox": "114.3,30.6,114.3,30.6"}, 200, None, None),  # a point
        ("zones", {"res": 8, "week": WEEK}, 422, "week", "does not take it"),
        ("counts", {"res": 8, "at": AT}, 422, "at", "does not take it"),
        ("counts", {"res": 8, "policy": "cn-three-zone"}, 422, "policy", "does not take it"),
        ("counts", {"res": 8, "week": "2024-13"}, 422, "week", "ISO week"),
        ("zones", {"res": 8, "at": "2099-01-01"}, 422, "at", "at"),
        ("zones", {"res": 8, "policy": "nope"}, 404, None, "nope"),
        ("zones", {"res": 8, "policy": "hk-building"}, 401, None, "not public"),
        ("communities", {"res": 8}, 404, None, "has no H3 layer"),
        ("nope", {"res": 8}, 404, None, "has no H3 layer"),
    ],
)
def test_bad_h3_parameters_are_named(  # type: ignore[no-untyped-def]
    h3client: TestClient, path, params, code, name, words
) -> None:
    r = h3client.get(H3.format(path), params=params)
    assert r.status_code == code, (params, r.text)
    text = r.text
    if name is not None and code == 422:
        locs = (
            [d["loc"][-1] for d in r.json()["detail"]]
            if isinstance(r.json()["detail"], list)
            else []
        )
        assert name in locs or name in text, (name, text)
    if words:
        assert words in text, text


def test_counts_need_an_analyst_for_more_than_the_public(h3client: TestClient, db_keys) -> None:  # type: ignore[no-untyped-def]
    keys, _ = db_keys
    free = {"res": 8, "from": "2024-03-01", "to": AT}
    assert h3client.get(H3.format("counts"), params=free).status_code == 403
    r = h3client.get(H3.format("counts"), params={"res": 8}, headers=_bearer(keys["officer"]))
    assert r.status_code == 403 and "analyst" in r.text, r.text
    r = h3client.get(
        H3.format("counts"), params=free | {"res": 10}, headers=_bearer(keys["analyst"])
    )
    assert r.status_code == 200 and r.json()
    week_now = dt.date.today().isocalendar()
    this_week = f"{week_now[0]:04d}-W{week_now[1]:02d}"
    r = h3client.get(H3.format("counts"), params={"res": 8, "week": this_week})
    assert r.status_code == 422 and "has not ended" in r.text
