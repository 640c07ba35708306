"""Rate limits on the public status routes and the request time limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from riskmap.api.ratelimit import RateLimit, SQLiteStorage
from riskmap.api.settings import Settings, get_settings
from tests.api.helpers import Server, copy_store, served, wait_ready


def test_a_shared_file_counts_for_every_worker(tmp_path: Path) -> None:
    """Two rate limits on one file (two worker processes) count the same requests: 3 a
    minute in all, whichever worker takes them; other clients have their own count."""
    uri = f"riskmap+sqlite://{tmp_path}/limits.db"
    one, two = RateLimit(uri), RateLimit(uri)
    waits = [w.take("203.0.113.1", 3) for w in (one, two, one, two, one)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(1.0 <= w <= 60.0 for w in waits[3:])
    assert two.take("203.0.113.2", 3) == 0.0
    memory = RateLimit("memory://")
    assert [memory.take("a", 2) for _ in range(3)][:2] == [0.0, 0.0]


def test_the_storage_counts_and_expires(tmp_path: Path) -> None:
    store = SQLiteStorage(f"riskmap+sqlite://{tmp_path}/c.db")
    assert store.incr("k", 60) == 1 and store.incr("k", 60, 2) == 3 and store.get("k") == 3
    assert store.get_expiry("k") > time.time() + 50
    store.incr("gone", -1)  # expired at once
    assert store.get("gone") == 0 and store.incr("gone", 60) == 1  # a new window
    store.clear("k")
    assert store.get("k") == 0 and store.check()
    assert store.reset() == 1


def test_a_bad_storage_is_named() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a rate limit storage"):
        Settings(rate_limit_storage="postgres://x")
    with pytest.raises(ValidationError, match="not a rate limit storage"):
        Settings(rate_limit_storage="async+memory://")
    assert Settings(rate_limit_storage="redis://localhost:6379").rate_limit_storage


@pytest.fixture
def limited(sample_db: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=5)
    with served(settings) as c:
        wait_ready(c, settings)  # today's status is served (no request spent on it)
        yield c


def test_status_is_rate_limited(limited: TestClient) -> None:
    codes = [
        limited.get("/v1/status", params={"lat": 30.5, "lon": 114.3}).status_code for _ in range(7)
    ]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    r = limited.get("/v1/status", params={"lat": 30.5, "lon": 114.3})
    assert int(r.headers["retry-after"]) >= 1
    assert limited.get("/v1/zones").status_code == 200  # layers are not limited


def test_slow_requests_time_out() -> None:
    import asyncio

    from fastapi import FastAPI

    from riskmap.api.middleware import add_middleware

    slow_app = FastAPI()
    add_middleware(slow_app)
    slow_app.dependency_overrides[get_settings] = lambda: Settings(request_timeout_s=0.2)

    @slow_app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(2)
        return {"done": True}

    @slow_app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"done": True}

    client = TestClient(slow_app)
    r = client.get("/slow")
    assert r.status_code == 503 and "longer than 0.2 s" in r.json()["detail"]
    assert client.get("/fast").status_code == 200


def test_the_rate_limit_is_off_by_default() -> None:
    assert Settings().rate_limit_per_minute == 0


def test_forwarded_addresses_count_only_from_trusted_proxies() -> None:
    from riskmap.api.auth import client_address

    trusted = "10.0.0.0/8, 192.0.2.7"
    # a trusted proxy: the right-most address it did not add itself
    assert client_address("10.1.2.3", "203.0.113.5", trusted) == "203.0.113.5"
    assert client_address("10.1.2.3", "1.1.1.1, 203.0.113.5, 10.9.9.9", trusted) == "203.0.113.5"
    assert client_address("192.0.2.7", "198.51.100.1", trusted) == "198.51.100.1"
    # anyone else: its own address, whatever the header says
    assert client_address("203.0.113.9", "10.0.0.1", trusted) == "203.0.113.9"
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "203.0.113.5", "") == "10.1.2.3"
    assert client_address("10.1.2.3", "garbage, 203.0.113.5", trusted) == "203.0.113.5"


def test_bad_trusted_proxies_are_named() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'10.0.0.300' is not an address or network"):
        Settings(trusted_proxies="10.0.0.0/8,10.0.0.300")


def test_a_gateway_passes_when_trusted(sample_db: Path) -> None:
    """Behind a trusted gateway, each phone has its own bucket; an untrusted peer's header
    changes nothing."""
    q = {"lat": 30.5, "lon": 114.3}
    gateway = Settings(
        database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=2, trusted_proxies="10.0.0.1"
    )
    # TestClient's peer ("testclient") is not the trusted proxy: its header is not believed
    with served(gateway) as c:
        wait_ready(c, gateway)
        codes = [
            c.get("/v1/status", params=q, headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]
        assert [r.status_code for r in codes] == [200, 200, 429]
    settings = Settings(
        database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=2, trusted_proxies="127.0.0.1"
    )
    with served(settings) as c:
        wait_ready(c, settings)
        c2 = TestClient(c.app, client=("127.0.0.1", 5000))
        for i in range(6):  # six phones, one request each: all pass
            h = {"X-Forwarded-For": f"203.0.113.{i}"}
            assert c2.get("/v1/status", params=q, headers=h).status_code == 200
        h = {"X-Forwarded-For": "203.0.113.0"}  # the first phone again: its bucket is empty
        assert c2.get("/v1/status", params=q, headers=h).status_code == 200
        assert c2.get("/v1/status", params=q, headers=h).status_code == 429


def test_workers_share_the_limit(sample_db: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=5, workers=2)
    with served(settings) as c:
        wait_ready(c, settings)
        codes = [c.get("/v1/status", params={"lat": 30.5, "lon": 114.3}) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]  # ceil(5 / 2) here


def test_serve_with_workers_holds_the_limit_across_them(sample_db: Path, tmp_path: Path) -> None:
    """``riskmap serve --workers 2`` with 5 a minute: 5 requests pass in all, on fresh
    connections that the kernel hands to either worker."""
    import httpx

    server = Server(
        f"sqlite:///{copy_store(sample_db, tmp_path / 'r.db')}",
        tmp_path / "server.log",
        "--workers",
        "2",
        env={"RISKMAP_RATE_LIMIT_PER_MINUTE": "5", "RISKMAP_SNAPSHOT_DIR": str(tmp_path / "s")},
    )
    server.start(timeout=120)
    try:
        # every request to /v1/status counts, a 503 too: first wait (without asking) until
        # today's snapshot is stored, and the other worker has had time to read it
        snaps = tmp_path / "s"
        deadline = time.monotonic() + 180
        while not (snaps.is_dir() and any(p.is_dir() for p in snaps.iterdir())):
            assert time.monotonic() < deadline, "no stored status snapshot after 180 s"
            time.sleep(0.5)
        time.sleep(4)
        q = {"lat": 30.5, "lon": 114.3}
        codes = []
        for _ in range(12):
            with httpx.Client(timeout=60) as c:  # a new connection each time
                codes.append(c.get(f"{server.url}/v1/status", params=q).status_code)
        assert all(c in (200, 503) for c in codes[:5]) and codes[5:] == [429] * 7, codes
        assert 200 in codes, codes
    finally:
        server.stop()
