"""Rate limits on the public status routes and the request time limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from riskmap.api.middleware import TokenBuckets
from riskmap.api.settings import Settings, get_settings
from tests.api.conftest import served


def test_token_buckets() -> None:
    b = TokenBuckets()
    assert all(b.take("a", 3, now=0.0) == 0 for _ in range(3))
    wait = b.take("a", 3, now=0.0)
    assert wait == pytest.approx(20.0)  # 3 a minute: one every 20 s
    assert b.take("b", 3, now=0.0) == 0  # another client
    assert b.take("a", 3, now=21.0) == 0


@pytest.fixture
def limited(sample_db: Path) -> Iterator[TestClient]:
    with served(Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=5)) as c:
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
