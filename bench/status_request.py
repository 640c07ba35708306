"""Per-request cost of ``GET /v1/status`` (today, the service's rule) in one process.

The app runs in-process (httpx's ASGI transport, one event loop, settings from the
environment as under ``riskmap serve``: no dependency overrides) on the sample city; the loop
sends requests one after another and prints the wall and CPU time per request (CPU: every
thread of the process, so it is less disturbed by other processes on the machine), then the
time of the answer alone (``Served.answer``: index look-ups, array look-ups, one orjson
encoding). Not a load test (see ``bench/README.md`` for those)::

    .venv/bin/python bench/status_request.py [--requests 300] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import time
from pathlib import Path


async def _loop(app, q: dict[str, float], requests: int, runs: int) -> None:  # type: ignore[no-untyped-def]
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            r = await c.get("/v1/status", params=q)
            while r.status_code == 503:  # the first snapshot is being computed
                await asyncio.sleep(0.2)
                r = await c.get("/v1/status", params=q)
            print(r.status_code, r.text)
            for _ in range(50):
                await c.get("/v1/status", params=q)
            wall, cpu = [], []
            for _ in range(runs):
                t, p = time.perf_counter(), time.process_time()
                for _ in range(requests):
                    await c.get("/v1/status", params=q)
                wall.append((time.perf_counter() - t) / requests * 1e3)
                cpu.append((time.process_time() - p) / requests * 1e3)
        # the answer alone, on the snapshot the server serves
        from riskmap.api.deps import service_of
        from riskmap.api.settings import get_settings
        from riskmap.geo.policy import load_policy

        served = service_of(app, get_settings()).served_status(load_policy(get_settings().policy))
        assert served is not None
        n = 2000
        t = time.process_time()
        for _ in range(n):
            served.answer(q["lon"], q["lat"], True)
        alone = (time.process_time() - t) / n * 1e6
    print("per request, ms wall:", " ".join(f"{x:.2f}" for x in wall), f"(min {min(wall):.2f})")
    print("per request, ms CPU: ", " ".join(f"{x:.2f}" for x in cpu), f"(min {min(cpu):.2f})")
    print(f"the answer alone (Served.answer): {alone:.0f} µs CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="riskmap-bench-status-"))
    os.environ["RISKMAP_DATABASE_URL"] = f"sqlite:///{work / 'riskmap.db'}"
    os.environ["RISKMAP_RATE_LIMIT_PER_MINUTE"] = "0"

    from riskmap.api.ingest import ingest_cases, ingest_communities
    from riskmap.api.store import Store
    from riskmap.data.generator import generate_city, write_city

    today = dt.date.today()
    write_city(generate_city(seed=7, end=today), work / "city")
    store = Store.open(work / "riskmap.db")
    ingest_communities(store, work / "city" / "communities.geojson")
    ingest_cases(store, work / "city" / "cases.csv", today=today)
    inner = store.communities().geometry.iloc[3].representative_point()
    store.close()

    from riskmap.api.main import app

    q = {"lat": inner.y, "lon": inner.x}
    asyncio.run(_loop(app, q, args.requests, args.runs))


if __name__ == "__main__":
    main()
