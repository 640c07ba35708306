"""What the planner map asks the server besides tiles (residents under each level, community
search), its page's configuration and policy with a base map, and `riskmap export map`'s
bounds. The map itself in a browser: tests/api/test_map_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely.geometry
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.api.settings import Settings
from tests.api.helpers import END, served

AT = END.isoformat()


def test_population_under_levels_is_the_communities_sum(client: TestClient) -> None:
    r = client.get("/v1/aggregates/population", params={"at": AT, "days": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policy"] == "cn-three-zone" and body["at"] == AT and len(body["dates"]) == 5
    assert body["dates"][-1] == AT and body["per_community"] is True
    assert [lv["level"] for lv in body["levels"]] == ["sealed", "controlled", "precaution"]
    communities = client.get("/v1/communities", params={"at": AT}).json()["features"]
    for lv in body["levels"]:
        assert len(lv["population"]) == 5
        want = sum(
            f["properties"]["population"] or 0
            for f in communities
            if f["properties"]["level"] == lv["level"]
        )
        assert lv["population"][-1] == pytest.approx(want), lv["level"]
    assert r.headers["cache-control"].startswith("public")


def test_population_under_levels_weekly(client: TestClient) -> None:
    daily = client.get("/v1/aggregates/population", params={"at": AT, "days": 15}).json()
    weekly = client.get("/v1/aggregates/population", params={"at": AT, "days": 3, "step": 7}).json()
    assert weekly["dates"] == daily["dates"][::7]
    for d, w in zip(daily["levels"], weekly["levels"], strict=True):
        assert w["population"] == d["population"][::7]


def test_population_under_levels_is_bounded(client: TestClient) -> None:
    for days in (0, 63, "x"):
        r = client.get("/v1/aggregates/population", params={"at": AT, "days": days})
        assert r.status_code == 422, days
    for step in (0, 8):
        r = client.get("/v1/aggregates/population", params={"at": AT, "step": step})
        assert r.status_code == 422, step
    # a rule the public may not name needs a key
    r = client.get("/v1/aggregates/population", params={"at": AT, "policy": "hk-building"})
    assert r.status_code == 401


def test_community_search_by_name_and_id(client: TestClient) -> None:
    feats = client.get("/v1/communities", params={"at": AT}).json()["features"]
    target = feats[17]
    cid, name = target["properties"]["id"], target["properties"]["name"]
    for q in (cid, cid.lower(), name, name.upper()):
        r = client.get("/v1/communities/search", params={"q": q})
        assert r.status_code == 200, r.text
        matches = r.json()["matches"]
        assert matches and any(m["id"] == cid for m in matches), q
    first = client.get("/v1/communities/search", params={"q": cid}).json()["matches"][0]
    assert first["id"] == cid  # the same id first
    # the point given lies inside the community, and its status names it
    inside = shapely.geometry.shape(target["geometry"])
    assert inside.contains(shapely.Point(first["lon"], first["lat"]))
    status = client.get(
        "/v1/status", params={"lat": first["lat"], "lon": first["lon"], "at": AT}
    ).json()
    assert status["community"]["id"] == cid
    # a part of names: every match holds it, at most limit of them
    part = name[:3]
    matches = client.get("/v1/communities/search", params={"q": part, "limit": 4}).json()
    assert 0 < len(matches["matches"]) <= 4
    assert all(part.casefold() in (m["name"] or "").casefold() for m in matches["matches"])
    assert client.get("/v1/communities/search", params={"q": "no such place"}).json() == {
        "query": "no such place",
        "matches": [],
    }


def test_community_search_is_bounded(client: TestClient) -> None:
    assert client.get("/v1/communities/search", params={"q": "x" * 101}).status_code == 422
    assert client.get("/v1/communities/search", params={"q": ""}).status_code == 422
    assert client.get("/v1/communities/search", params={"q": "a", "limit": 21}).status_code == 422


def test_map_page_config_and_policy_without_a_base_map(client: TestClient) -> None:
    r = client.get("/", params={"at": AT})
    config = json.loads(r.text.split('id="map-config">', 1)[1].split("</script>", 1)[0])
    assert config["basemap"] is None and config["source"] == "tiles"
    # a city this small draws its communities at every zoom (a large one from a denser zoom)
    assert config["minzoom"] == {"communities": 0}
    assert [x["id"] for x in config["rules"]] == ["cn-three-zone"]
    assert config["rules"][0]["first"] <= AT <= config["rules"][0]["last"]
    assert "https:" not in r.headers["content-security-policy"]


def test_base_map_origin_is_allowed_only_when_set(sample_db: Path) -> None:
    url = "https://tiles.example.org/osm/{z}/{x}/{y}.png"
    settings = Settings(database_url=f"sqlite:///{sample_db}", basemap_url=url)
    with served(settings) as c:
        r = c.get("/", params={"at": AT})
        csp = dict(
            (d.split()[0], d.split()[1:]) for d in r.headers["content-security-policy"].split("; ")
        )
        assert csp["img-src"][:2] == ["'self'", "https://tiles.example.org"]
        assert csp["connect-src"] == ["'self'", "https://tiles.example.org"]
        assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'none'"]
        config = json.loads(r.text.split('id="map-config">', 1)[1].split("</script>", 1)[0])
        assert config["basemap"] == url
        assert config["rules"][0]["levels"][0]["fill"][3] < 255  # see-through over it
        # other answers keep their policy
        assert c.get("/healthz").headers["content-security-policy"].startswith("default-src")
    for bad, why in (
        ("ftp://x.org/{z}/{x}/{y}.png", "http(s)"),
        ("https://x.org/tiles.png", "lacks {z}, {x}, {y}"),
        ("https://x.org/{z}/{x}/{y}.png'; script-src *", "no spaces"),
    ):
        with pytest.raises(ValidationError, match="basemap_url") as e:
            Settings(basemap_url=bad)
        assert why in str(e.value), bad


def test_export_map_refuses_long_or_reversed_periods(sample_db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{sample_db}"
    out = tmp_path / "map.html"
    r = runner.invoke(
        app,
        ["--db", db, "export", "map", "--out", str(out), "--from", "2023-12-01", "--to", AT],
    )
    assert r.exit_code != 0 and "at most 92" in r.stderr and not out.exists()
    r = runner.invoke(
        app,
        ["--db", db, "export", "map", "--out", str(out), "--from", AT, "--to", "2024-03-01"],
    )
    assert r.exit_code != 0 and "is after --to" in r.stderr and not out.exists()
