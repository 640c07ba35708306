"""Case counts per unit: exact for analysts over any period; for the public only the
publication tables (ISO weeks, 14 days ending on a week's Sunday), perturbed by the cell-key
method, and an attack on every public table recovers no small count."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.counts import (
    MAX_PERTURBATION,
    last_published_week,
    perturb,
    perturbation,
    published_bounds,
)
from tests.api.helpers import END, copy_store, served

AT = END.isoformat()
URL = "/v1/aggregates/cases"
UNITS = ("community", "subdistrict", "district")
MIN = 5


# -- the route on the default sample city ------------------------------------------------------
def _expected(sample_dir: Path, start: dt.date, end: dt.date, level: str) -> dict[str, int]:
    """Distinct cases per unit from the raw files (geopandas spatial join)."""
    cases = pd.read_csv(sample_dir / "cases.csv")
    cases["reported"] = pd.to_datetime(cases["reported"]).dt.date
    cases = cases[(cases["reported"] >= start) & (cases["reported"] <= end)]
    pts = gpd.GeoDataFrame(cases, geometry=gpd.points_from_xy(cases["lon"], cases["lat"]), crs=4326)
    comm = gpd.read_file(sample_dir / "communities.geojson")
    joined = gpd.sjoin(pts, comm[[f"{level}_id", "geometry"]], predicate="within")
    return joined.groupby(f"{level}_id")["case_id"].nunique().to_dict()


def _keys(sample_db: Path) -> tuple[dict[str, str], str]:
    store = Store.open(sample_db)
    _, analyst = store.create_key("analyst", "epi team")
    _, officer = store.create_key("officer", "lab")
    store.close()
    return {"Authorization": f"Bearer {analyst}"}, officer


def test_analysts_see_exact_counts_of_any_period(
    client: TestClient, sample_db: Path, sample_dir: Path
) -> None:
    analyst, officer = _keys(sample_db)
    start = END - dt.timedelta(days=13)
    r = client.get(URL, params={"to": AT, "unit": "district"}, headers=analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == start.isoformat() and body["period"] == "custom"
    assert body["min_count"] == 1 and body["max_perturbation"] == 0
    got = {u["unit_id"]: u["cases"] for u in body["units"]}
    assert {k: v for k, v in got.items() if v} == _expected(sample_dir, start, END, "district")
    assert r.headers["cache-control"].startswith("private")
    # the publication tables too, exactly
    r = client.get(URL, params={"unit": "subdistrict", "week": "2024-W12"}, headers=analyst)
    body = r.json()
    assert (body["from"], body["to"]) == ("2024-03-18", "2024-03-24")
    got = {u["unit_id"]: u["cases"] for u in body["units"] if u["cases"]}
    want = _expected(sample_dir, dt.date(2024, 3, 18), dt.date(2024, 3, 24), "subdistrict")
    assert got == want and min(want.values()) < MIN  # small counts shown as they are
    # one type, one day
    q = {"unit": "community", "from": AT, "to": AT, "type": "confirmed"}
    one = client.get(URL, params=q, headers=analyst).json()
    assert one["type"] == "confirmed" and 0 < one["total"] < 100

    assert client.get(URL, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.get(URL, headers={"Authorization": f"Bearer {officer}"})
    assert r.status_code == 403 and "public counts only" in r.json()["detail"]
    r = client.get(URL, params={"from": "2024-03-10", "to": "2024-03-01"}, headers=analyst)
    assert r.status_code == 422
    r = client.get(URL, params={"week": "2024-W10", "to": AT}, headers=analyst)
    assert r.status_code == 422 and "either a publication table" in r.text


def test_the_public_sees_perturbed_publication_tables(client: TestClient, sample_db: Path) -> None:
    analyst, _ = _keys(sample_db)
    pairs: list[tuple[int, int]] = []
    for period in ("week", "14d"):
        for unit in UNITS:
            q = {"unit": unit, "period": period, "week": "2024-W13"}
            pub = client.get(URL, params=q)
            assert pub.status_code == 200, pub.text
            assert pub.headers["cache-control"] == "public, max-age=60"
            body = pub.json()
            assert body["min_count"] == MIN and body["max_perturbation"] == MAX_PERTURBATION
            assert body["type"] is None and body["to"] == AT and body["week"] == "2024-W13"
            exact = client.get(URL, params=q, headers=analyst).json()
            n = {u["unit_id"]: u["cases"] for u in exact["units"]}
            shown = [(u["cases"], n[u["unit_id"]]) for u in body["units"]]
            pairs += [*shown, (body["total"], exact["total"])]
            for u in body["units"]:
                if u["population"]:
                    assert u["rate_per_100k"] == round(u["cases"] * 100_000 / u["population"], 2)
            # the same question, the same answer
            assert client.get(URL, params=q).json() == body
    for v, t in pairs:
        assert not 0 < v < MIN
        lo, hi = published_bounds(v, MIN)
        assert lo <= t <= hi
        assert t > 0 or v == 0
    # perturbed, not rounded: most large counts are off by at most one, some are off
    large = [(v, t) for v, t in pairs if t > MIN + MAX_PERTURBATION]
    assert len(large) > 50
    off = np.array([v - t for v, t in large])
    assert (off != 0).any() and (off % MIN != 0).any() and (np.abs(off) <= 1).mean() > 0.7


def test_the_public_may_not_choose_windows_nor_types(client: TestClient) -> None:
    """The attack of issue 8: every window of the last 30 days, per unit. All refused."""
    days = [END - dt.timedelta(days=i) for i in range(30)]
    windows = [(a, b) for a in days for b in days if a <= b]
    assert len(windows) == 465
    for unit in UNITS:
        for a, b in windows if unit == "community" else windows[::50]:
            r = client.get(URL, params={"unit": unit, "from": a.isoformat(), "to": b.isoformat()})
            assert r.status_code == 403, (unit, a, b)
    detail = r.json()["detail"]
    assert "analyst" in detail and "period=week" in detail and "YYYY-Www" in detail
    for q in ({"to": AT}, {"from": AT}, {"type": "confirmed"}, {"type": "confirmed", "week": "x"}):
        assert client.get(URL, params=q).status_code == 403, q
    assert client.get(URL, params={"period": "week", "from": AT}).status_code == 403
    # a week that has not ended, and nonsense
    this_week = dt.date.today().isocalendar()
    r = client.get(URL, params={"week": f"{this_week[0]}-W{this_week[1]:02d}"})
    assert r.status_code == 422 and "has not ended" in r.text
    for q in (
        {"week": "2024-13"},
        {"week": "2023-W53"},
        {"period": "month"},
    ):
        r = client.get(URL, params=q)
        assert r.status_code == 422, q
        assert isinstance(r.json()["detail"], list)
    # the default: the last week that has ended
    body = client.get(URL).json()
    assert body["week"] == last_published_week(dt.date.today()) and body["period"] == "week"


def test_the_secret_is_kept_in_the_store_and_never_shown(
    tmp_path: Path, sample_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.db"
    copy_store(sample_db, db)
    first = RiskService(Store.open(db)).cell_key_secret(None)
    again = RiskService(Store.open(db)).cell_key_secret(None)  # a restart
    assert first == again and len(first) >= 32
    other = tmp_path / "other.db"
    Store.open(other).close()
    assert RiskService(Store.open(other)).cell_key_secret(None) != first
    assert RiskService(Store.open(db)).cell_key_secret("from the setting!") == b"from the setting!"
    s = Settings(cell_key_secret="0123456789abcdef-secret")
    print(s, repr(s), s.model_dump())
    assert "0123456789abcdef-secret" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="at least 16"):
        Settings(cell_key_secret="short")


def test_the_store_keeps_one_secret(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        first = store.meta_secret("cell_key_secret")
        assert len(first) == 64 and store.meta_secret("cell_key_secret") == first
        assert store.meta_secret("another") != first
    finally:
        store.close()
    reopened = Store.open(store_url)
    try:
        assert reopened.meta_secret("cell_key_secret") == first
    finally:
        reopened.close()


# -- the attack on a small city ----------------------------------------------------------------
SMALL_END = dt.date(2024, 3, 31)  # a Sunday


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("small")
    write_city(
        generate_city(
            seed=11,
            communities=48,
            cases=360,
            days=35,
            end=SMALL_END,
            subdistricts=6,
            districts=2,
        ),
        out,
    )
    db = out / "small.db"
    store = Store.open(db)
    ingest_communities(store, out / "communities.geojson")
    assert ingest_cases(store, out / "cases.csv", today=SMALL_END).counts.rejected == 0
    store.close()
    return out, db


@pytest.fixture
def small_client(small_city: tuple[Path, Path]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    _, db = small_city
    store = Store.open(db)
    _, analyst = store.create_key("analyst", "attack test")
    store.close()
    settings = Settings(
        database_url=f"sqlite:///{db}",
        rate_limit_per_minute=0,
        cell_key_secret="attack-test-secret-0001",
    )
    with served(settings) as c:
        yield c, {"Authorization": f"Bearer {analyst}"}


def _tables(
    client: TestClient, weeks: list[str], headers: dict[str, str] | None = None
) -> dict[tuple[str, str, str, str], int]:
    """Every publication table: (period, week, level, unit id or '' for the total) -> count."""
    out: dict[tuple[str, str, str, str], int] = {}
    for period in ("week", "14d"):
        for week in weeks:
            for level in UNITS:
                q = {"unit": level, "period": period, "week": week}
                r = client.get(URL, params=q, headers=headers or {})
                assert r.status_code == 200, (q, r.text)
                body = r.json()
                out[(period, week, level, "")] = body["total"]
                for u in body["units"]:
                    out[(period, week, level, u["unit_id"])] = u["cases"]
    return out


Cell = tuple[str, str, str, str]


def _attack(
    published: dict[Cell, int],
    truth: dict[Cell, int],
    parents: dict[tuple[str, str], tuple[str, str]],
    weeks: list[str],
    max_perturbation: int,
    limit: int | None = None,
) -> tuple[int, list[tuple[Cell, int]]]:
    """The attacker's integer program over every public table: each true count within what
    its published count allows (the published bounds), units in their parents, weeks in their
    fortnights. Where a sum holds exactly in the data (no case in two of the parts) it is an
    equation, else the parent lies between its largest part and the sum of its parts: an
    attacker who knows that much about the cases. Answers (small cells, the small counts it
    pins down) for the first ``limit`` small cells."""
    names = list(published)
    col = {k: i for i, k in enumerate(names)}
    lb = np.zeros(len(names))
    ub = np.zeros(len(names))
    for k, v in published.items():
        lb[col[k]], ub[col[k]] = published_bounds(v, MIN, max_perturbation)
    rows: list[tuple[dict[int, float], float, float]] = []
    wholes: dict[Cell, list[Cell]] = {}
    parts_of: dict[Cell, list[Cell]] = {}

    def nest(whole: Cell, parts: list[Cell]) -> None:
        parts_of[whole] = parts
        for p in parts:
            wholes.setdefault(p, []).append(whole)
        if truth[whole] == sum(truth[p] for p in parts):
            rows.append(({col[whole]: 1.0} | {col[p]: -1.0 for p in parts}, 0, 0))
            return
        rows.append(({col[whole]: 1.0} | {col[p]: -1.0 for p in parts}, -np.inf, 0))
        rows.extend(({col[whole]: 1.0, col[p]: -1.0}, 0, np.inf) for p in parts)

    children: dict[tuple[str, str], list[str]] = {}
    for (_, uid), (plevel, pid) in parents.items():
        children.setdefault((plevel, pid), []).append(uid)
    for period in ("week", "14d"):
        for week in weeks:
            for (plevel, pid), kids in children.items():
                level = {"subdistrict": "community", "district": "subdistrict"}[plevel]
                nest((period, week, plevel, pid), [(period, week, level, k) for k in kids])
            for level in UNITS:
                units = [k for k in published if k[:3] == (period, week, level) and k[3]]
                nest((period, week, level, ""), units)
    for i, week in enumerate(weeks[1:], start=1):
        for k in [k for k in published if k[:2] == ("14d", week)]:
            nest(k, [("week", weeks[i - 1], *k[2:]), ("week", week, *k[2:])])
    a = sparse.lil_matrix((len(rows), len(names)))
    lo, hi = np.empty(len(rows)), np.empty(len(rows))
    for r, (coef, low, high) in enumerate(rows):
        for c, v in coef.items():
            a[r, c] = v
        lo[r], hi[r] = low, high
    a = a.tocsr()
    x = np.array([truth[k] for k in names], dtype=float)

    def feasible(y: np.ndarray) -> bool:
        ay = a @ y
        return bool(((lb <= y) & (y <= ub)).all() and ((lo - 1e-9 <= ay) & (ay <= hi + 1e-9)).all())

    def up(leaf: Cell) -> np.ndarray:
        """One more case in a leaf cell, so one more in every cell containing it."""
        y, todo, seen = x.copy(), [leaf], {leaf}
        while todo:
            k = todo.pop()
            y[col[k]] += 1
            for w in wholes.get(k, []):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return y

    def leaves(k: Cell) -> list[Cell]:
        return [k] if k not in parts_of else [z for p in parts_of[k] for z in leaves(p)]

    assert feasible(x)  # the truth is one answer of the attacker's program: the bounds hold
    cons = LinearConstraint(a, lo, hi)
    small = [k for k in names if 0 < truth[k] < MIN][:limit]
    pinned = []
    for k in small:
        # a quick witness: another count the attacker cannot rule out
        if any(feasible(up(leaf)) for leaf in leaves(k) if truth[leaf] > 0):
            continue
        c = np.zeros(len(names))
        c[col[k]] = -1.0
        top = milp(c, constraints=cons, integrality=np.ones(len(names)), bounds=Bounds(lb, ub))
        assert top.success, top.message
        if round(-top.fun) > truth[k]:
            continue
        c[col[k]] = 1.0
        low = milp(c, constraints=cons, integrality=np.ones(len(names)), bounds=Bounds(lb, ub))
        assert low.success, low.message
        if round(low.fun) == truth[k]:
            pinned.append((k, truth[k]))
    return len(small), pinned


def test_an_attack_on_every_public_table_recovers_no_small_count(
    small_client: tuple[TestClient, dict[str, str]], small_city: tuple[Path, Path]
) -> None:
    client, analyst = small_client
    sample, _ = small_city
    first = SMALL_END - dt.timedelta(days=34)
    # every week holding a case, and one more on each side (their fortnights overlap them)
    weeks = sorted(
        {
            last_published_week(first + dt.timedelta(days=d))
            for d in range(0, (SMALL_END - first).days + 16, 7)
        }
    )
    published = _tables(client, weeks)
    truth = _tables(client, weeks, analyst)
    comm = gpd.read_file(sample / "communities.geojson")
    parents = {
        ("community", r.community_id): ("subdistrict", r.subdistrict_id) for r in comm.itertuples()
    }
    parents |= {
        ("subdistrict", r.subdistrict_id): ("district", r.district_id) for r in comm.itertuples()
    }
    assert not any(0 < v < MIN for v in published.values())
    n_small, pinned = _attack(published, truth, parents, weeks, MAX_PERTURBATION)
    assert n_small >= 50  # the city has many small counts to attack
    assert pinned == []

    # the same attack on counts with the small-count rule but no perturbation pins many down:
    # it is the noise, not the withholding, that protects them
    bare = {
        k: int(perturb(np.array([v]), np.array([2**63], np.uint64), MIN)[0])
        for k, v in truth.items()
    }
    assert perturbation(np.array([2**63], np.uint64))[0] == 0
    n_small, pinned = _attack(bare, truth, parents, weeks, 0, limit=40)
    assert len(pinned) >= n_small // 4
