"""No public route shows a case id, a case location or a count of cases below the minimum."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
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
from riskmap.geo.hotspots import PUBLIC_MAX_RES
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
    "/v1/zones/cells",
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
    if path == "/v1/communities/search":  # by id and by name
        return [{"q": "C0"}, {"q": "a"}]
    if path == "/v1/aggregates/population":
        return [
            {"at": AT, "days": "14"},
            {"at": AT, "days": "14", "step": "7", "policy": "india-containment"},
            {"at": AT, "days": "14", "policy": "hk-building"},
        ]
    if path.startswith("/v1/aggregates"):
        return [
            {"unit": u, "period": p, "week": w}
            for u in ("community", "subdistrict", "district")
            for p in ("week", "14d")
            for w in ("2024-W13", "2024-W09")
        ]
    if path.endswith("/h3"):  # zones and counts take different parameters: res for both
        return [{"res": "8"}]
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
    if path.endswith("/h3"):
        return [path.replace("{layerId}", c) for c in ("zones", "counts")]
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
            if concrete.startswith("/v1/aggregates/cases"):  # counts: none below the minimum
                _check_counts(concrete, r.json(), 5)
                continue
            # no other route publishes a count of cases
            if not concrete.startswith("/v1/policies"):  # rule conditions say "cases": {min}
                assert '"cases"' not in text and "case_count" not in text, concrete
    # the routes that need a key do refuse without one (from a client address of its own:
    # these refusals count as failed authentications, limited per client a minute, and must
    # not lock the module's other requests out)
    stranger = TestClient(client.app, client=("192.0.2.9", 50000))
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if _needs_key(op):
                url = re.sub(r"\{[^}]+\}", "1", path)
                assert stranger.request(method.upper(), url).status_code == 401, (method, path)


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
    r = client.get("/v1/zones", params=q, headers=key)
    assert r.status_code == 200, r.text
    exact = r.json()["features"]
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
    config = json.loads(page.split('id="map-config">', 1)[1].split("</script>", 1)[0])
    assert config["rule"] == policy and config["at"] == AT and config["source"] == "tiles"
    assert config["tiles"]["zones"].startswith("/collections/zones/tiles/")
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


# ------------------------------------------------------- public precision, route by route
# Every geometry a caller without a key gets is at least as coarse as a community or a res-10
# H3 cell: each polygon of it, and each hole, is at least the size of a res-10 cell or is
# made of whole communities; each H3 cell named is of resolution 10 or coarser (counts: 8); no
# point. A rule whose public_precision states building precision with a source may show its
# fine levels at that precision (each building cell then holds at least the minimum of cases:
# test_public_view_route_by_route). Every public operation of the app must have a probe
# below: a new route without one fails test_every_public_route_has_a_precision_probe.

TO_M = Transformer.from_crs(4326, 32650, always_xy=True)  # UTM 50N: the sample city
MERC_TO_M = Transformer.from_crs(3857, 32650, always_xy=True)
POLYGONS = ("Polygon", "MultiPolygon")
_H3_INDEX = re.compile(r"(?<![0-9a-fA-F])8[0-9a-fA-F]{14}(?![0-9a-fA-F])")
WEEK = "2024-W12"


@dataclass(frozen=True)
class Probe:
    """How to ask a public route and what its answer is: ``json`` (every GeoJSON geometry and
    H3 index in it is checked), ``mvt`` (the tile's features decoded and checked), ``page``
    (HTML: no geometry in it). ``layers``: the values of ``{layerId}``; ``per_policy``: asked
    under each preset (else once, under the service's rule)."""

    kind: str = "json"
    layers: tuple[str, ...] = ()
    per_policy: bool = True


PROBES: dict[str, Probe] = {
    "GET /v1/status": Probe(),
    "GET /v1/status/history": Probe(),
    "POST /v1/status/batch": Probe(),
    "GET /v1/status/cell/{cell}": Probe(),
    "GET /v1/zones": Probe(),
    "GET /v1/communities": Probe(),
    "GET /v1/districts": Probe(per_policy=False),
    "GET /v1/zones/history": Probe(),
    "GET /v1/zones/cells": Probe(),
    "GET /v1/aggregates/cases": Probe(per_policy=False),
    "GET /v1/aggregates/population": Probe(),
    "GET /v1/communities/search": Probe(per_policy=False),
    "GET /v1/alerts": Probe(per_policy=False),
    "GET /v1/hotspots": Probe(per_policy=False),
    "GET /v1/policies": Probe(per_policy=False),
    "GET /v1/policies/{policy_id}": Probe(per_policy=False),
    "GET /healthz": Probe(per_policy=False),
    "GET /": Probe("page"),
    "GET /conformance": Probe(per_policy=False),
    "GET /collections": Probe(per_policy=False),
    "GET /collections/{layerId}": Probe(
        layers=("zones", "communities", "districts", "counts"), per_policy=False
    ),
    "GET /collections/{layerId}/items": Probe(layers=("zones", "communities", "districts")),
    "GET /collections/{layerId}/tiles/{tileMatrixSetId}/{z}/{x}/{y}": Probe(
        "mvt", layers=("zones", "communities", "districts")
    ),
    "GET /collections/{layerId}/tiles/{tileMatrixSetId}/tilejson.json": Probe(
        layers=("zones", "communities", "districts")
    ),
    "GET /collections/{layerId}/h3": Probe(layers=("zones", "counts")),
}


def _public_operations(spec: dict) -> set[str]:  # type: ignore[type-arg]
    return {
        f"{method.upper()} {path}"
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if not _needs_key(op)
    }


def test_every_public_route_has_a_precision_probe(open_client: TestClient) -> None:
    """A route a caller without a key may ask, missing from PROBES, fails here: add its probe
    (how to ask it, what its answer is) so that its geometry is checked below."""
    public = _public_operations(open_client.get("/openapi.json").json())
    assert {"GET /v1/zones", "GET /collections/{layerId}/h3", "POST /v1/status/batch"} <= public
    missing = sorted(public - set(PROBES))
    assert not missing, f"public routes without a precision probe in PROBES: {missing}"
    gone = sorted(set(PROBES) - public)
    assert not gone, f"PROBES names routes the app does not have (or that need a key): {gone}"


@dataclass
class Coarseness:
    """The communities of the sample city (metric) and the size of a res-10 cell there."""

    communities: np.ndarray
    tree: shapely.STRtree
    cell_m2: float

    def whole_communities(self, g: shapely.Geometry) -> bool:
        """``g`` is (within 2%) the union of the communities it overlaps."""
        idx = self.tree.query(g)
        if len(idx) == 0:
            return False
        own = shapely.area(self.communities[idx])
        inside = shapely.area(shapely.intersection(self.communities[idx], g))
        touched = inside > 0.01 * own
        return bool(
            touched.any()
            and (inside[touched] >= 0.98 * own[touched]).all()
            and abs(inside[touched].sum() - g.area) <= 0.02 * g.area
        )

    def check(self, g: shapely.Geometry, where: str, clip: shapely.Geometry | None = None) -> None:
        """Every polygon of ``g`` (metric) and every hole is coarse; with ``clip`` (a tile's
        buffered box) the pieces cut by it are not judged by their size."""
        for part in shapely.get_parts(g):
            pieces = [part] + [shapely.Polygon(r) for r in part.interiors]
            for piece in pieces:
                if clip is not None and piece.distance(clip.exterior) < 1.0:
                    continue
                if piece.area >= 0.9 * self.cell_m2 or self.whole_communities(piece):
                    continue
                raise AssertionError(
                    f"{where}: a polygon or hole of {piece.area:.0f} m2, smaller than a res-10 "
                    f"cell ({self.cell_m2:.0f} m2) and not whole communities"
                )


@pytest.fixture(scope="module")
def coarseness(sample_dir: Path) -> Coarseness:
    comm = gpd.read_file(sample_dir / "communities.geojson")
    metric = shapely.transform(
        comm.geometry.to_numpy(), lambda c: np.column_stack(TO_M.transform(c[:, 0], c[:, 1]))
    )
    centre = comm.geometry.union_all().centroid
    cell = h3.latlng_to_cell(centre.y, centre.x, 10)
    return Coarseness(metric, shapely.STRtree(metric), h3.cell_area(cell, "m^2"))


def _walk(doc: object) -> Iterator[dict]:  # type: ignore[type-arg]
    """Every GeoJSON geometry object in a JSON document."""
    if isinstance(doc, dict):
        if isinstance(doc.get("type"), str) and "coordinates" in doc:
            yield doc
        for v in doc.values():
            yield from _walk(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _walk(v)


def _building_ok(rule: Policy) -> bool:
    pp = rule.public_precision
    return pp is not None and pp.geometry == "building" and bool(pp.source.strip())


def _check_cells(text: str, where: str, finest: int) -> None:
    for h in {m.lower() for m in _H3_INDEX.findall(text)}:
        if h3.is_valid_cell(h):
            assert h3.get_resolution(h) <= finest, f"{where}: H3 cell {h} finer than res {finest}"


def _check_json(
    doc: object, text: str, where: str, rule: Policy, coarse: Coarseness, finest: int = 10
) -> int:
    """Checks every geometry and cell of an answer; the number of geometries."""
    building = _building_ok(rule)
    n = 0
    for geom in _walk(doc):
        n += 1
        assert geom["type"] in POLYGONS, f"{where}: a {geom['type']} geometry"
        g = shapely.geometry.shape(geom)
        props = next(
            (f.get("properties") or {} for f in _features(doc) if f.get("geometry") is geom), {}
        )
        if building and props.get("level") in rule.fine_levels:
            continue  # building precision stated, with its source
        coarse.check(
            shapely.transform(g, lambda c: np.column_stack(TO_M.transform(c[:, 0], c[:, 1]))),
            where,
        )
    _check_cells(text, where, 12 if building else finest)
    return n


def _features(doc: object) -> list[dict]:  # type: ignore[type-arg]
    if isinstance(doc, dict) and isinstance(doc.get("features"), list):
        return doc["features"]  # type: ignore[no-any-return]
    return []


def _check_tile(
    body: bytes, tile: morecantile.Tile, where: str, rule: Policy, coarse: Coarseness
) -> int:
    import mapbox_vector_tile

    tms = morecantile.tms.get("WebMercatorQuad")
    b = tms.xy_bounds(tile)
    size = b.right - b.left
    extent = 4096

    def to_m(c: np.ndarray) -> np.ndarray:
        x = b.left + c[:, 0] / extent * size
        y = b.top - c[:, 1] / extent * size
        return np.column_stack(MERC_TO_M.transform(x, y))

    grown = shapely.box(-64, -64, extent + 64, extent + 64)
    clip = shapely.transform(grown, to_m)
    building = _building_ok(rule)
    n = 0
    decoded = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})
    for name, layer in decoded.items():
        for f in layer["features"]:
            n += 1
            geom = f["geometry"]
            assert geom["type"] in POLYGONS, f"{where} {name}: a {geom['type']}"
            if building and f["properties"].get("level") in rule.fine_levels:
                continue
            g = shapely.transform(shapely.geometry.shape(geom), to_m)
            coarse.check(g, f"{where} {name} {f['properties'].get('id')}", clip)
    return n


def _ask(
    client: TestClient, op: str, probe: Probe, policy: str | None, point: tuple[float, float]
) -> Iterator[tuple[str, object]]:
    """(what was asked, the answer) of each request a probe makes."""
    method, path = op.split(" ", 1)
    lon, lat = point
    q: dict[str, str] = {"at": AT} | ({"policy": policy} if policy else {})
    period = {"from": (END - dt.timedelta(days=20)).isoformat(), "to": AT}
    layers = probe.layers or ("",)
    for layer in layers:
        url = path.replace("{layerId}", layer)
        params: dict[str, str] = dict(q)
        extra: dict[str, object] = {}
        if path.startswith("/v1/status"):
            params |= {"lat": str(lat), "lon": str(lon)}
            if path == "/v1/status/history":
                params |= period
            if path == "/v1/status/batch":
                params.pop("lat"), params.pop("lon")
                extra["json"] = {"points": [{"lat": lat, "lon": lon}]}
        elif path == "/v1/zones/history":
            params = {k: v for k, v in q.items() if k != "at"} | period
        elif path == "/v1/aggregates/cases":
            params = {"unit": "community", "period": "week", "week": WEEK}
        elif path == "/v1/hotspots":
            params |= {"res": "8"}
        elif path == "/v1/communities/search":
            params = {"q": "a"}
        elif path == "/v1/aggregates/population":
            params |= {"days": "7"}
        elif path.endswith("/h3"):
            box = ",".join(f"{v:.6f}" for v in (lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))
            if layer == "zones":  # the finest public resolution, around the place
                params |= {"res": "10", "bbox": box}
            else:
                params = {"res": "8", "week": WEEK}
        elif path in ("/v1/districts", "/v1/policies", "/healthz", "/conformance", "/collections"):
            params = {}
        elif path.endswith("/items"):
            params |= {"limit": "10000"}
        url = url.replace("{cell}", h3.latlng_to_cell(lat, lon, 9))
        url = url.replace("{policy_id}", policy or "cn-three-zone")
        url = url.replace("{tileMatrixSetId}", "WebMercatorQuad")
        if "{z}" in url:
            tms = morecantile.tms.get("WebMercatorQuad")
            for z in (12, 14):
                t = tms.tile(lon, lat, z)
                r = client.get(url.format(z=t.z, x=t.x, y=t.y), params=params)
                assert r.status_code in (200, 204), (url, r.text)
                yield f"{url} {t}", (t, r)
            continue
        r = client.request(method, url, params=params, **extra)  # type: ignore[arg-type]
        assert r.status_code == 200, (op, url, params, r.status_code, r.text[:300])
        yield url, r


@pytest.mark.parametrize("policy", PRESETS)
def test_public_geometry_is_coarse_route_by_route(  # type: ignore[no-untyped-def]
    policy: str, open_client: TestClient, keys: dict[str, str], coarseness: Coarseness
) -> None:
    client, rule = open_client, load_policy(policy)
    q = {"policy": policy, "at": AT}
    exact = client.get("/v1/zones", params=q, headers=_bearer(keys["analyst"])).json()["features"]
    fine = [f for f in exact if f["properties"]["level"] in rule.fine_levels]
    where = shapely.geometry.shape((fine or exact)[0]["geometry"]).representative_point()
    point = (where.x, where.y)  # a place in a fine zone (else the highest zone)
    geometries = 0
    for op, probe in PROBES.items():
        if not probe.per_policy and policy != PRESETS[0]:
            continue
        asked = policy if probe.per_policy else None
        for what, answer in _ask(client, op, probe, asked, point):
            if probe.kind == "mvt":
                tile, r = answer  # type: ignore[misc]
                if r.status_code == 200:
                    geometries += _check_tile(r.content, tile, what, rule, coarseness)
                continue
            r = answer  # type: ignore[assignment]
            text = r.text  # type: ignore[attr-defined]
            if probe.kind == "page":
                assert '"coordinates"' not in text, what
                _check_cells(text, what, 10)
                continue
            doc = r.json()  # type: ignore[attr-defined]
            finest = PUBLIC_MAX_RES if "/collections/counts/h3" in what else 10
            geometries += _check_json(doc, text, what, rule, coarseness, finest)
            if op == "GET /v1/status/cell/{cell}":
                assert doc["cell"] == h3.latlng_to_cell(point[1], point[0], 9)
            if op == "GET /collections/{layerId}/h3":
                res = {h3.get_resolution(row["hex"]) for row in doc}
                assert res <= {finest}, (what, res)
    assert geometries > 0


def test_the_precision_probes_catch_fine_geometry(coarseness: Coarseness) -> None:
    """The checks above do fail: a building cell, a building-sized hole, a point and a res-11
    cell are refused; a res-10 cell and a community pass; a route missing from PROBES is
    named."""
    centre = shapely.union_all(coarseness.communities).centroid
    lon, lat = TO_M.transform(centre.x, centre.y, direction="INVERSE")

    def cell_m(res: int) -> shapely.Geometry:
        ring = [
            TO_M.transform(x, y) for y, x in h3.cell_to_boundary(h3.latlng_to_cell(lat, lon, res))
        ]
        return shapely.Polygon(ring)

    with pytest.raises(AssertionError, match="smaller than a res-10 cell"):
        coarseness.check(cell_m(12), "building")
    coarseness.check(cell_m(10), "res-10 cell")
    coarseness.check(coarseness.communities[0], "a community")
    holed = shapely.Polygon(cell_m(8).exterior, [cell_m(12).exterior])
    with pytest.raises(AssertionError, match="a polygon or hole"):
        coarseness.check(holed, "a building-sized hole")
    rule = load_policy("cn-three-zone")
    point = {"type": "Point", "coordinates": [lon, lat]}
    with pytest.raises(AssertionError, match="a Point geometry"):
        _check_json({"geometry": point}, "", "point", rule, coarseness)
    fine = h3.latlng_to_cell(lat, lon, 11)
    with pytest.raises(AssertionError, match="finer than res 10"):
        _check_json({"cell": fine}, f'{{"cell": "{fine}"}}', "cell", rule, coarseness)
    # a new public route without a probe is found (a made-up one: every real one has its probe)
    spec = {"paths": {"/v1/zones/new-layer": {"get": {"parameters": []}}}}
    assert _public_operations(spec) - set(PROBES) == {"GET /v1/zones/new-layer"}
