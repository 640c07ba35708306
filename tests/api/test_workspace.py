"""The Python surface (``import riskmap``): a workspace on a store gives the same zones and
status as the service, status for arrays of points, layers, measures and the scan."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

import riskmap
from riskmap.api.service import RiskService
from riskmap.api.store import Store
from riskmap.geo.policy import load_policy
from tests.api.helpers import END


@pytest.fixture(scope="module")
def rm(tmp_path_factory: pytest.TempPathFactory) -> riskmap.Workspace:
    out = tmp_path_factory.mktemp("city")
    ws = riskmap.open()
    ws.ingest_sample(out, communities=120, cases=400, days=30, end=END, seed=3)
    yield ws
    ws.close()


def test_surface_names_resolve() -> None:
    for name in riskmap.__all__:
        assert getattr(riskmap, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        riskmap.nothing  # noqa: B018


def test_import_riskmap_is_light() -> None:
    code = "import sys, riskmap; print(any(m in sys.modules for m in ('geopandas', 'fastapi')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_zones_equal_the_service(rm: riskmap.Workspace) -> None:
    ours = rm.zones(END, "cn-three-zone")
    other = RiskService(Store.open(rm.url))
    try:
        theirs = other.snapshot(load_policy("cn-three-zone"), END).result
    finally:
        other.shutdown()
    assert len(ours.zones) > 0
    assert list(ours.zones["zone_id"]) == list(theirs.zones["zone_id"])
    assert ours.levels.equals(theirs.levels)


def test_status_for_arrays_is_the_highest_containing_zone(rm: riskmap.Workspace) -> None:
    result = rm.zones(END.isoformat())
    zones = result.zones
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = rm.communities.frame.total_bounds
    lon, lat = rng.uniform(minx, maxx, 500), rng.uniform(miny, maxy, 500)
    # and a point inside each zone
    inner = shapely.point_on_surface(zones.geometry.to_numpy())
    lon = np.concatenate([lon, shapely.get_x(inner)])
    lat = np.concatenate([lat, shapely.get_y(inner)])
    got = rm.status(lon, lat, END)
    assert len(got) == len(lon)
    policy = result.policy
    pts = shapely.points(lon, lat)
    for i, p in enumerate(pts):
        holding = [lv for lv, g in zip(zones["level"], zones.geometry, strict=True) if g.covers(p)]
        want = max(holding, key=policy.rank) if holding else None
        if want is None:
            assert got["zone_id"].isna().iloc[i]
        else:
            assert got["level"].iloc[i] == want


def test_bad_input_is_named(rm: riskmap.Workspace) -> None:
    with pytest.raises(riskmap.RiskmapError, match="point 1"):
        rm.status([114.3, 200.0], [30.5, 30.5], END)
    with pytest.raises(riskmap.RiskmapError, match="not a date"):
        rm.zones("31/03/2024")
    with pytest.raises(riskmap.RiskmapError, match="unknown kind"):
        rm.ingest("people", "x.csv")  # type: ignore[arg-type]


def test_layers_measures_and_scan(rm: riskmap.Workspace) -> None:
    z = rm.zones_geojson(END)
    assert z["type"] == "FeatureCollection" and len(z["features"]) == len(rm.zones(END).zones)
    c = rm.communities_geojson(END)
    assert len(c["features"]) == len(rm.communities.frame)
    inc = rm.incidence(END, days=14, unit="district")
    assert inc["cases"].sum() > 0
    pop = rm.population_under_levels(END - dt.timedelta(days=6), END)
    assert set(pop["date"]) == {END - dt.timedelta(days=i) for i in range(7)}
    over = rm.zones_over(END - dt.timedelta(days=2), END)
    assert list(over.by_date[END].zones["zone_id"]) == list(rm.zones(END).zones["zone_id"])
    res = rm.scan(END, replications=19, seed=1)
    again = rm.scan(END, replications=19, seed=1)
    assert [c.p_value for c in res.clusters] == [c.p_value for c in again.clusters]
    hs = rm.hotspots(END)
    assert set(hs.columns) == {"id", "class", "geometry"}


def test_a_named_store_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    with riskmap.open(db) as ws:
        ws.ingest_sample(tmp_path / "city", communities=40, cases=60, days=10, end=END)
        version = ws.data_version
    assert db.exists()
    with riskmap.open(db) as ws:
        assert ws.data_version == version
        assert len(ws.cases) > 0


def test_zones_over_without_geometry_has_the_same_levels(rm: riskmap.Workspace) -> None:
    start = END - dt.timedelta(days=5)
    full = rm.zones_over(start, END)
    bare = rm.zones_over(start, END, with_geometry=False)
    assert list(bare.by_date) == list(full.by_date)
    assert bare.levels().equals(full.levels())
    for d in full.by_date:
        assert list(bare.by_date[d].zones["zone_id"]) == list(full.by_date[d].zones["zone_id"])
    assert full.by_date[END].zones.geometry.notna().all()
    assert bare.by_date[END].zones.geometry.isna().all()


def test_map_draws_the_zones_hotspots_and_scan_inline(
    rm: riskmap.Workspace, tmp_path: Path
) -> None:
    import html
    import json
    import re

    hot = rm.hotspots(END, public=False, on="communities", min_count=1)
    scan = rm.scan(END, replications=9, seed=1)
    assert scan.clusters and (hot["class"] == "hot").any()
    m = rm.map(END, "cn-three-zone", hotspots=hot, scan=scan, scan_max_p=1, title="t", height=300)
    assert isinstance(m, riskmap.NotebookMap)
    spec = json.loads(m.deck.to_json())
    layers = {la["id"]: la for la in spec["layers"]}
    assert list(layers) == ["communities", "zones", "hotspots", "scan"]
    comm = layers["communities"]["data"]["features"]
    assert len(comm) == len(rm.communities.frame)
    levels = dict(
        zip(rm.zones(END).levels["community_id"], rm.zones(END).levels["level"], strict=True)
    )
    assert all(f["properties"]["level"] == levels[f["properties"]["id"]] for f in comm)
    zones = layers["zones"]["data"]["features"]
    assert [f["properties"]["id"] for f in zones] == list(rm.zones(END).zones["zone_id"])
    assert all("cells" not in f["properties"] for f in zones)  # bulky lists left out
    shown = {f["properties"]["id"] for f in layers["hotspots"]["data"]["features"]}
    assert shown == set(hot.loc[hot["class"].isin(["hot", "cold"]), "id"])
    # only accessors (get_*) are expressions; a string prop made one draws nothing
    for la in spec["layers"]:
        for key, value in la.items():
            if isinstance(value, str) and value.startswith("@@="):
                assert key.startswith("get"), (la["id"], key, value)
    circles = layers["scan"]["data"]
    assert len(circles) == len(scan.clusters)
    inner = rm.communities.frame.set_index("community_id").geometry.representative_point()
    for circle, cluster in zip(circles, scan.clusters, strict=True):
        p = inner[cluster.center]
        assert circle["position"] == pytest.approx([p.x, p.y])
        assert circle["radius"] == pytest.approx(max(cluster.radius_km * 1000, 250))
    # by default only the clusters with p <= 0.05 are drawn (none with 9 replications)
    default = json.loads(rm.map(END, hotspots=hot, scan=scan).deck.to_json())
    assert all(c.p_value > 0.05 for c in scan.clusters)
    assert [la["id"] for la in default["layers"]] == ["communities", "zones", "hotspots"]
    # a page of its own, saved as one file; shown in an iframe's srcdoc
    srcdoc = re.fullmatch(r'<iframe srcdoc="([^"]*)" .*></iframe>', m._repr_html_(), re.S)
    assert srcdoc is not None and html.unescape(srcdoc[1]) == m.html
    assert "height: 300px" in m._repr_html_()
    saved = m.save(tmp_path / "map.html")
    assert saved.read_text(encoding="utf-8") == m.html
