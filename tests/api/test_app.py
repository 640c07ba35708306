"""The application as a whole: its lifespan owns the services, /openapi.json documents every
answer, and one table sets Cache-Control per route family."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from riskmap.api.deps import service_of
from riskmap.api.main import create_app
from riskmap.api.middleware import CACHE_CONTROL, cache_control
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from tests.api.helpers import END

AT = END.isoformat()


def test_every_route_documents_its_answer() -> None:
    """Every operation in /openapi.json has a success answer with a named schema (a model),
    not a free-form object: clients can be generated from it."""
    spec = TestClient(create_app()).get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    seen = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
            assert ok, (method, path)
            for code, answer in ok.items():
                if code == "204":
                    assert "content" not in answer, (method, path)
                    continue
                assert answer.get("content"), (method, path, code)
                for media, body in answer["content"].items():
                    schema = body.get("schema") or {}
                    if media == "text/html":
                        assert schema == {"type": "string"}, (method, path)
                        continue
                    if media == "application/vnd.mapbox-vector-tile":  # binary: a vector tile
                        assert schema == {"type": "string", "format": "binary"}, (method, path)
                        assert list(answer["content"]) == [media], (method, path)
                        continue
                    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
                    assert ref, (method, path, media, schema)
                    name = ref.rsplit("/", 1)[1]
                    assert schemas[name].get("properties"), (method, path, name)
                    seen += 1
    assert seen >= 18


def test_the_cache_control_table() -> None:
    assert cache_control("GET", "/v1/status", False, 200) == "no-store"
    assert cache_control("GET", "/v1/status/history", True, 200) == "no-store"
    assert cache_control("GET", "/v1/zones", False, 200) == "public, max-age=60"
    assert cache_control("GET", "/v1/zones", True, 304) == "private, max-age=60"
    assert cache_control("GET", "/v1/zones/history", False, 200) == "no-store"
    assert cache_control("GET", "/v1/districts", True, 200) == "public, max-age=300"
    assert cache_control("GET", "/v1/aggregates/cases", False, 200) == "public, max-age=60"
    assert cache_control("GET", "/v1/aggregates/cases", True, 200) == "private, no-store"
    assert cache_control("HEAD", "/static/deckgl.js", False, 200) == "public, max-age=86400"
    assert cache_control("GET", "/static/map.js", False, 200) == "no-cache"
    # a write, the map page, keys, or a path the table does not name: never stored
    for method, path in [("POST", "/v1/zones"), ("GET", "/"), ("GET", "/v1/keys"), ("GET", "/x")]:
        assert cache_control(method, path, False, 200) == "no-store", (method, path)
    # "/v1/zonesX" is not below "/v1/zones"
    assert cache_control("GET", "/v1/zonesX", False, 200) == "no-store"
    for status in (401, 404, 422, 429, 503):  # errors are never stored
        assert cache_control("GET", "/v1/zones", False, status) == "no-store"
    assert CACHE_CONTROL[-1][1] == "/"  # a catch-all closes the table


@pytest.mark.parametrize(
    ("path", "keyed", "expected"),
    [
        ("/healthz", False, "no-store"),
        ("/v1/status?lat=30.59&lon=114.3", False, "no-store"),
        (f"/v1/zones?at={AT}", False, "public, max-age=60"),
        (f"/v1/zones?at={AT}", True, "private, max-age=60"),
        ("/v1/districts", False, "public, max-age=300"),
        ("/v1/policies", False, "no-cache"),
        ("/v1/keys", True, "no-store"),
        ("/v1/keys", False, "no-store"),  # 401
        (f"/?at={AT}", False, "no-store"),
        ("/static/map.css", False, "no-cache"),
    ],
)
def test_answers_carry_the_table_s_cache_control(
    client: TestClient, sample_db: Path, path: str, keyed: bool, expected: str
) -> None:
    headers = {}
    if keyed:
        store = Store.open(sample_db)
        headers = {"Authorization": f"Bearer {store.create_key('admin', 'cache test')[1]}"}
        store.close()
    r = client.get(path, headers=headers)
    assert r.headers["cache-control"] == expected, (path, r.status_code)


def test_the_lifespan_opens_services_when_needed_and_closes_them(sample_db: Path) -> None:
    app = create_app()
    settings = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0)
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        service = service_of(app, settings)
        assert c.get("/healthz").status_code == 200
        assert service_of(app, settings) is service  # one per store configuration
        other = Settings(database_url=f"sqlite:///{sample_db}", cache_size=3)
        assert service_of(app, other) is not service
    # stopped: computations refused, the store closed; a new start opens a new service
    with pytest.raises(Exception, match="shutting down"):
        service.flights.run("k", lambda: 1)
    with pytest.raises(Exception):  # noqa: B017, PT011  (the driver's own error)
        service.store.versions()
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        assert service_of(app, settings) is not service


def test_the_service_does_not_import_the_early_warning_kernels() -> None:
    """numba and scipy.stats (the scan and hotspots) are imported when those are computed,
    not by every worker process at start-up (about 80 MB of resident memory each)."""
    import subprocess
    import sys

    code = (
        "import sys; from riskmap.api.main import create_app; create_app(); "
        "print(sorted(m for m in ('numba', 'scipy.stats', 'esda', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
