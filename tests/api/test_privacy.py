"""No public route shows a case id, a case location or a count of cases below the minimum."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h3
import morecantile
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer

from riskmap.api.main import app
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo.policy import Policy, load_policy, preset_names
from tests.api.helpers import END, served, wait_ready

AT = END.isoformat()
MIN = 5  # RISKMAP_MIN_PUBLIC_COUNT's default
PRESETS = preset_names()
POLICY_ROUTES = (
    "/v1/status",
    "/v1/status/history",
    "/v1/zones",
    "/v1/communities",
    "/v1/zones/history",
    "/",
)


@pytest.fixture(scope="module")
def keys(sample_db: Path) -> dict[str, str]:
    """A key of each role."""
    store = Store.open(sample_db)
    try:
        return {r: store.create_key(r, "privacy test")[1] for r in ("officer", "analyst", "admin")}
    finally:
        store.close()


@pytest.fixture(scope="module")
def open_client(sample_db: Path) -> Iterator[TestClient]:
    """A service that serves every preset to the public (RISKMAP_POLICIES); one for the
    module, so that its zone snapshots are computed once."""
    settings = Settings(
        database_url=f"sqlite:///{sample_db}",
        rate_limit_per_minute=0,
        policies=",".join(PRESETS),
    )
    with served(settings) as c:
        # today's snapshots of every served rule are computed in the background at start-up:
        # the routes below are tested once that is done, not while it competes with them
        wait_ready(c, settings, timeout=900)
        yield c


@contextmanager
def _settings(settings: Settings) -> Iterator[None]:
    """The same service (and caches) under other settings."""
    old = app.dependency_overrides[get_settings]
    app.dependency_overrides[get_settings] = lambda: settings
    try:
        yield
    finally:
        app.dependency_overrides[get_settings] = old


def _params(path: str, client: TestClient, sample: tuple[float, float]) -> list[dict[str, str]]:
    lat, lon = sample
    if path in ("/v1/status", "/v1/status/history"):
        return [{"lat": str(lat), "lon": str(lon), "at": AT, "from": "2024-02-01", "to": AT}]
    if path.startswith("/v1/aggregates"):
        return [
            {"unit": u, "period": p, "week": w}
            for u in ("community", "subdistrict", "district")
            for p in ("week", "14d")
            for w in ("2024-W13", "2024-W09")
        ]
    return [
        {"at": AT, "from": "2024-02-01", "to": AT},
        {"at": AT, "policy": "india-containment"},
        {"at": AT, "policy": "hk-building"},
    ]


def _concrete(path: str, lon: float, lat: float) -> list[str]:
    """The URLs of a route: each collection, the tile at (lon, lat) at z14."""
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
    for name, value in (
        ("policy_id", "cn-three-zone"),
        ("tileMatrixSetId", "WebMercatorQuad"),
        ("z", t.z),
        ("x", t.x),
        ("y", t.y),
        ("cell", h3.latlng_to_cell(lat, lon, 9)),
    ):
        path = path.replace("{" + name + "}", str(value))
    if "{layerId}" in path:
        return [path.replace("{layerId}", c) for c in ("zones", "communities", "districts")]
    return [path]


def _needs_key(op: dict) -> bool:  # type: ignore[type-arg]
    return any(
        p.get("name") == "authorization" and not p.get("description", "").startswith("optional")
        for p in op.get("parameters", [])
    )


def _check_counts(path: str, body: dict, minimum: int) -> None:  # type: ignore[type-arg]
    """Case counts shown to the public: 0 or at least the minimum, perturbed (checked against
    the analysts' exact view in test_aggregates)."""
    assert body["min_count"] == minimum and body["max_perturbation"] > 0
    for n in [u["cases"] for u in body["units"]] + [body["total"]]:
        assert n == 0 or n >= minimum, (path, n)


def test_public_routes_leak_no_case_data(open_client: TestClient, sample_dir) -> None:  # type: ignore[no-untyped-def]
    client = open_client
    cases = pd.read_csv(sample_dir / "cases.csv", dtype=str)
    ids = set(cases["case_id"])
    coords = set(zip(cases["lat"], cases["lon"], strict=True))
    spec = client.get("/openapi.json").json()
    public = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method != "get":
                continue
            if not _needs_key(op):
                public.append(path)
    assert {
        "/v1/status",
        "/v1/zones",
        "/v1/communities",
        "/v1/zones/history",
        "/v1/aggregates/cases",
    } <= set(public)
    sealed = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"][0]
    pt = shapely.geometry.shape(sealed["geometry"]).representative_point()
    id_pattern = re.compile(r"K\d{7}")
    _number = re.compile(r"-?\d+\.\d+")
    for path, concrete in [(p, c) for p in public for c in _concrete(p, pt.x, pt.y)]:
        for params in _params(path, client, (pt.y, pt.x)):
            r = client.get(concrete, params=params)
            tile = "/tiles/" in concrete and not concrete.endswith(".json")
            assert r.status_code == 200 or (tile and r.status_code == 204), (concrete, r)
            text = r.text
            found = set(id_pattern.findall(text)) & ids
            assert not found, f"{concrete} shows case ids {sorted(found)[:3]}"
            numbers = _number.findall(text)
            pairs = set(zip(numbers, numbers[1:], strict=False))
            leaked = {(la, lo) for la, lo in coords if (lo, la) in pairs or (la, lo) in pairs}
            assert not leaked, f"{concrete} shows case locations {sorted(leaked)[:3]}"
            if concrete.startswith("/v1/aggregates"):  # counts: none below the minimum
                _check_counts(concrete, r.json(), 5)
                continue
            # no other route publishes a count of cases
            if not concrete.startswith("/v1/policies"):  # rule conditions say "cases": {min}
                assert '"cases"' not in text and "case_count" not in text, concrete
    # the routes that need a key do refuse without one
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if _needs_key(op):
                url = re.sub(r"\{[^}]+\}", "1", path)
                assert client.request(method.upper(), url).status_code == 401, (method, path)


# ------------------------------------------------------------- public precision per rule
def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _policy_params(path: str, policy: str, lat: float, lon: float) -> dict[str, str]:
    q = {"policy": policy, "at": AT}
    if path.startswith("/v1/status"):
        q |= {"lat": str(lat), "lon": str(lon)}
    return q


def test_unlisted_presets_need_a_key(
    open_client: TestClient, sample_db: Path, keys: dict[str, str]
) -> None:
    # the service's rule is cn-three-zone and RISKMAP_POLICIES is empty
    # this walk sends many requests without a valid key, from a client address of its own: its
    # failed authentications must not lock the module's other requests out (test_auth.py tests
    # the limit); the limit is raised so that the walk itself is not answered 429
    settings = Settings(
        database_url=f"sqlite:///{sample_db}",
        rate_limit_per_minute=0,
        auth_failures_per_minute=10**6,
    )
    walker = TestClient(open_client.app, client=("192.0.2.8", 50000))
    with _settings(settings):
        _unlisted_presets_need_a_key(walker, keys)


def _unlisted_presets_need_a_key(client: TestClient, keys: dict[str, str]) -> None:
    listed = client.get("/v1/policies").json()
    assert listed["public"] == ["cn-three-zone"]
    assert {p["id"]: p["public"] for p in listed["policies"]} == {
        n: n == "cn-three-zone" for n in PRESETS
    }
    one = client.get("/v1/policies/hk-building").json()
    assert one["public"] is False and one["public_precision"]["geometry"] == "building"
    assert "Centre for Health Protection" in one["public_precision"]["source"]
    lat, lon = 30.6, 114.3
    roles = list(keys)
    for n, policy in enumerate(p for p in PRESETS if p != "cn-three-zone"):
        for path in POLICY_ROUTES:
            q = _policy_params(path, policy, lat, lon)
            r = client.get(path, params=q)
            assert r.status_code == 401, (path, policy, r.status_code)
            assert "not public" in r.json()["detail"] and "API key" in r.json()["detail"]
            bad = client.get(path, params=q, headers=_bearer("not-a-key"))
            assert bad.status_code == 401, (path, policy)
        # any valid key of any role may ask for it (each route for two presets)
        for path in (
            POLICY_ROUTES if policy in ("hk-building", "india-containment") else ["/v1/zones"]
        ):
            key = keys[roles[n % len(roles)]]
            r = client.get(
                path, params=_policy_params(path, policy, lat, lon), headers=_bearer(key)
            )
            assert r.status_code == 200, (path, policy, r.status_code)
    # the public rule needs no key; an unknown preset is unknown to everyone
    assert client.get("/v1/zones", params={"policy": "cn-three-zone", "at": AT}).status_code == 200
    assert client.get("/v1/zones", params={"policy": "nope"}).status_code == 404


def _qualifying(cases: pd.DataFrame, policy: Policy, level: str) -> pd.DataFrame:
    """Case locations that can sustain a level's zones as of AT (read from the sample
    files, independently of riskmap)."""
    lv = policy.level(level)
    assert lv.trigger is not None
    rep = pd.to_datetime(cases["reported"]).dt.date
    lo = END - dt.timedelta(days=lv.lift_after_days - 1)
    ok = (
        cases["type"].isin(lv.trigger.case_types)
        & cases["role"].isin(lv.trigger.roles)
        & (rep >= lo)
        & (rep <= END)
    )
    return cases[ok]


def _homes_in(zone: shapely.Geometry, q: pd.DataFrame) -> pd.DataFrame:
    inside = shapely.intersects_xy(zone, q["lon"].to_numpy(float), q["lat"].to_numpy(float))
    return q[inside]


@pytest.mark.parametrize("policy", PRESETS)
def test_public_view_route_by_route(  # type: ignore[no-untyped-def]
    policy: str, open_client: TestClient, keys: dict[str, str], sample_dir
) -> None:
    client, key = open_client, _bearer(keys["analyst"])
    rule = load_policy(policy)
    fine = rule.fine_levels
    cases = pd.read_csv(sample_dir / "cases.csv", dtype={"case_id": str})
    q = {"policy": policy, "at": AT}
    pub = client.get("/v1/zones", params=q).json()["features"]
    exact = client.get("/v1/zones", params=q, headers=key).json()["features"]
    pub_comm = client.get("/v1/communities", params=q).json()["features"]
    exact_comm = client.get("/v1/communities", params=q, headers=key).json()["features"]
    if not fine:  # drawn per community or at res 10: public as computed
        assert pub == exact and pub_comm == exact_comm
    exact_fine = [f for f in exact if f["properties"]["level"] in fine]
    pub_fine = [f for f in pub if f["properties"]["level"] in fine]
    assert bool(exact_fine) == bool(fine)  # the sample city has such zones under both rules
    # keyed callers get the exact zones: building cells with their report dates
    for f in exact_fine:
        assert f["properties"]["h3_resolution"] == 12 and f["properties"]["last_case"]
    for f in pub_fine:
        p = f["properties"]
        assert p["start"] is None and p["last_case"] is None and p["expected_lift"] is None
        if p["h3_resolution"] > 10:  # published at building precision: enough cases in each
            homes = _homes_in(
                shapely.geometry.shape(f["geometry"]), _qualifying(cases, rule, p["level"])
            )
            cells = [
                h3.latlng_to_cell(la, lo, 12)
                for la, lo in zip(homes["lat"], homes["lon"], strict=True)
            ]
            per_cell = homes.assign(cell=cells).groupby("cell")["case_id"].nunique()
            assert len(per_cell) and per_cell.min() >= MIN, (p["id"], per_cell.to_dict())
    for c in pub_comm:
        if c["properties"]["level"] in fine:
            assert c["properties"]["since"] is None and c["properties"]["expected_lift"] is None
    if fine:  # coarsening only enlarges: the public zones cover the exact ones
        cover = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in pub_fine])
        cover = cover.buffer(1e-6)  # GeoJSON keeps 7 decimals
        for f in exact_fine:
            assert cover.covers(shapely.geometry.shape(f["geometry"])), f["id"]
    # status: computed against the public zones; never none where the exact answer is a zone
    points = [shapely.geometry.shape(f["geometry"]).centroid for f in (exact_fine or exact)[:5]]
    ranked = sorted(pub, key=lambda f: -rule.rank(f["properties"]["level"]))
    shapes = [shapely.geometry.shape(f["geometry"]).buffer(1e-7) for f in ranked]
    for pt in points:
        sq = q | {"lat": pt.y, "lon": pt.x}
        s_pub = client.get("/v1/status", params=sq).json()
        s_exact = client.get("/v1/status", params=sq, headers=key).json()
        if s_exact["level"] != "none":
            assert s_pub["level"] != "none"
            assert rule.rank(s_pub["level"]) >= rule.rank(s_exact["level"])
        holding = [f for f, g in zip(ranked, shapes, strict=True) if g.covers(pt)]
        if holding:
            assert s_pub["level"] == holding[0]["properties"]["level"]
            assert s_pub["zone_id"] in {f["id"] for f in holding}
        if s_pub["level"] in fine:
            assert s_pub["since"] is None and s_pub["expected_lift"] is None
        hq = q | {
            "lat": pt.y,
            "lon": pt.x,
            "from": (END - dt.timedelta(days=29)).isoformat(),
            "to": AT,
        }
        h_pub = client.get("/v1/status/history", params=hq).json()
        if s_exact["level"] != "none":
            assert h_pub["intervals"][-1]["level"] != "none"
    # the planner map shows the public layers
    page = client.get("/", params=q).text
    config = page.split('id="deck-config">', 1)[1].split("</script>", 1)[0]
    assert f"/v1/zones?at={AT}&policy={policy}" in json.dumps(json.loads(config))
    # the zone history: no event of an exact area of a fine level (other rules: as computed)
    hq = q | {"from": (END - dt.timedelta(days=10)).isoformat(), "to": AT}
    r_pub = client.get("/v1/zones/history", params=hq)
    ev_pub = r_pub.json()["events"]
    if not fine:
        assert r_pub.status_code == 200
        return
    ev_exact = client.get("/v1/zones/history", params=hq, headers=key).json()["events"]
    fine_areas = [
        e
        for e in ev_exact
        if e["unit_type"] == "area" and {e["level_from"], e["level_to"]} & set(fine)
    ]
    assert bool(fine_areas) == bool(fine)
    assert not [
        e
        for e in ev_pub
        if e["unit_type"] == "area" and {e["level_from"], e["level_to"]} & set(fine)
    ]
    assert len(ev_pub) == len(ev_exact) - len(fine_areas)


@pytest.mark.parametrize("policy", ["hk-building", "cn-2022-nov"])
def test_homes_attack_no_longer_works(  # type: ignore[no-untyped-def]
    policy: str, open_client: TestClient, keys: dict[str, str], sample_dir
) -> None:
    """The attack of issue 8: zones holding exactly one case, their centre within about
    10 m of the case's home. It works on the exact zones (keyed callers), not on the public
    ones."""
    rule = load_policy(policy)
    level = next(iter(rule.fine_levels))
    cases = pd.read_csv(sample_dir / "cases.csv", dtype={"case_id": str})
    homes = _qualifying(cases, rule, level)
    q = {"policy": policy, "at": AT}

    to_m = Transformer.from_crs(4326, 32650, always_xy=True)  # UTM 50N: the sample city
    hx, hy = to_m.transform(homes["lon"].to_numpy(float), homes["lat"].to_numpy(float))

    def attack(features: list[dict]) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
        found, small = 0, []
        for f in features:
            if f["properties"]["level"] != level:
                continue
            g = shapely.geometry.shape(f["geometry"])
            inside = shapely.intersects_xy(
                g, homes["lon"].to_numpy(float), homes["lat"].to_numpy(float)
            )
            n = homes["case_id"][inside].nunique()
            if n < MIN:
                small.append(f)
            if n == 1:
                cx, cy = to_m.transform(g.centroid.x, g.centroid.y)
                if np.hypot(hx[inside] - cx, hy[inside] - cy).min() <= 10:
                    found += 1
        return found, small

    found, _ = attack(
        open_client.get("/v1/zones", params=q, headers=_bearer(keys["officer"])).json()["features"]
    )
    assert found > 100  # the exact zones do give homes away (to keyed callers only)
    found, small = attack(open_client.get("/v1/zones", params=q).json()["features"])
    assert found == 0
    # a public zone holding fewer than the minimum is whole communities, never a building
    assert small
    for f in small:
        p = f["properties"]
        assert p["h3_resolution"] == 10 and p["last_case"] is None and p["community_ids"]
        area = shapely.area(
            shapely.transform(
                shapely.geometry.shape(f["geometry"]),
                lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])),
            )
        )
        assert area > 5000, (p["id"], area)  # m2; a building cell is about 300
