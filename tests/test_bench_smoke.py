"""Smoke tests of the benchmark harness (bench/): the parts a benchmark's figures rest on, on tiny
inputs, in a few seconds. Nothing here measures or asserts speed."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
import shapely

from bench import openloop
from bench.serving import parse_wrk, paths_lua, status_lua


async def _serve(delay: float, version: str) -> asyncio.AbstractServer:
    """A tiny HTTP/1.1 keep-alive server answering every request after ``delay`` seconds, one
    request at a time per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                if delay:
                    await asyncio.sleep(delay)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                    + f"X-Data-Version: {version}\r\n\r\nok".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(delay: float, rate: float, duration: float, **options: object) -> openloop.OpenLoopResult:
    async def main() -> openloop.OpenLoopResult:
        server = await _serve(delay, "7")
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await openloop.open_loop(
                f"http://127.0.0.1:{port}",
                lambda i: f"/status?i={i}",
                rate,
                duration,
                **options,  # type: ignore[arg-type]
            )

    return asyncio.run(main())


def test_open_loop_reports_every_request_with_its_latency_and_header() -> None:
    res = _run(0.0, rate=200, duration=1.0, header="X-Data-Version")
    assert res.sent == 200
    assert res.ok == 200 and res.failed == 0
    assert np.all(np.isfinite(res.latency)) and np.all(res.latency > 0)
    assert set(res.header) == {"7"}
    # scheduled at fixed times, 5 ms apart
    assert np.allclose(np.diff(res.scheduled), 1 / 200)
    s = res.summary()
    assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["sent"] == 200 and s["failed"] == 0
    assert s["client_lag_p99_ms"] >= 0


def test_open_loop_counts_the_time_requests_wait_behind_a_slow_server() -> None:
    """One connection, 20 ms per answer, 100 requests/s offered: the server keeps up with 50/s,
    so later requests wait longer and longer; their latency runs from their scheduled time,
    not from when they could be sent (no coordinated omission)."""
    res = _run(0.02, rate=100, duration=1.0, max_connections=1, timeout=5.0)
    assert res.ok == 100
    assert res.connections == 1
    assert res.percentile_ms(50) > 200  # far above the 20 ms each answer takes
    assert res.percentile_ms(99) > 700
    # the last request waited behind about 50 earlier ones
    assert res.latency[-1] > 0.7
    assert res.achieved() < 70


def test_open_loop_counts_requests_without_answer_as_failed() -> None:
    res = _run(1.0, rate=20, duration=0.5, timeout=0.2)
    assert res.sent == 10
    assert res.failed == 10 and res.ok == 0
    assert np.isinf(res.percentile_ms(99))


def test_open_loop_stops_early_when_asked() -> None:
    t0 = time.perf_counter()

    def stop() -> bool:
        return time.perf_counter() - t0 > 0.3

    res = _run(0.0, rate=100, duration=30.0, stop=stop)
    assert 0 < res.sent < 200  # not the 3,000 of 30 s
    assert res.ok == res.sent and res.duration == res.sent / 100


def test_parse_wrk_output() -> None:
    out = """Running 3s test @ http://127.0.0.1:8000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   90.00%
  Latency Distribution
     50%    2.50ms
     75%    3.00ms
     90%  750.00us
     99%    1.20s
  12345 requests in 3.00s, 5.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   4115.00
Transfer/sec:      1.67MB
"""
    r = parse_wrk(out)
    assert r["rps"] == 4115.0 and r["requests"] == 12345
    assert (r["p50_ms"], r["p90_ms"], r["p99_ms"]) == (2.5, 0.75, 1200.0)
    assert r["non_2xx"] == 4 and r["socket_errors"] == 3


def test_wrk_scripts_carry_the_box_and_the_paths() -> None:
    lua = status_lua("/v1/status", (114.1, 30.4, 114.5, 30.75))
    assert "/v1/status?lat=%.6f&lon=%.6f" in lua and "114.1" in lua and "30.4" in lua
    lua = paths_lua(["/a/1", "/a/2"], {"Accept-Encoding": "gzip"})
    assert '"/a/1",\n"/a/2"' in lua and '["Accept-Encoding"] = "gzip"' in lua


def test_reference_lookup_answers_as_riskmap(pg_url: str) -> None:
    """bench/reference_api.py's SQL look-up, on riskmap's zones and communities of a small
    city, answers the same level, zone, community and dates as riskmap's status look-up, at
    random places, inside communities and on zone vertices (boundaries)."""
    import psycopg

    from bench import reference_api as ref
    from riskmap.data.generator import generate_city
    from riskmap.geo.policy import load_policy
    from riskmap.geo.status import StatusLookup
    from riskmap.geo.zones import CommunityLayer, compute_zones
    from riskmap.tiles.geojson import communities_geojson, zones_geojson

    end = dt.date(2024, 3, 31)
    city = generate_city(seed=3, communities=120, cases=600, days=30, end=end)
    layer = CommunityLayer(city.communities, 10)
    cs = city.cases.copy()
    cs["reported"] = pd.to_datetime(cs["reported"]).to_numpy().astype("datetime64[D]")
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    result = compute_zones(layer, cs, load_policy("cn-three-zone"), end)
    assert len(result.zones) >= 2, "the scenario needs zones"
    ours = StatusLookup(result, layer)

    w, s, e, n = layer.frame.total_bounds
    rng = np.random.default_rng(1)
    pts = [rng.uniform([w - 0.01, s - 0.01], [e + 0.01, n + 0.01], (60, 2))]
    pts.append(shapely.get_coordinates(shapely.point_on_surface(layer.geoms[:40])))
    for g in result.zones.geometry.to_numpy()[:5]:  # vertices: points on zone boundaries
        pts.append(shapely.get_coordinates(g)[::7])
    lonlat = np.concatenate(pts)

    with psycopg.connect(pg_url, autocommit=True) as conn:
        meta = ref.load(conn, zones_geojson(result), communities_geojson(layer, result), 5)
        assert meta["policy"] == "cn-three-zone" and meta["data_version"] == 5
        expected = ours.answers(lonlat[:, 0], lonlat[:, 1])
        levels = set()
        for (lon, lat), want in zip(lonlat, expected, strict=True):
            got = ref.lookup(conn, float(lon), float(lat), meta)
            for k in ("level", "label", "color", "zone_id", "community", "covered"):
                assert got[k] == want[k], (k, lon, lat, got, want)
            for k in ("since", "expected_lift"):
                assert got[k] == (None if want[k] is None else want[k].isoformat()), (k, got)
            levels.add(got["level"])
    assert {"none", "sealed"} <= levels


@pytest.mark.parametrize("bad", [b"", b"{}", b'{"points": [{"lat": "x"}]}'])
def test_reference_batch_rejects_bad_bodies(bad: bytes) -> None:
    """The reference's batch answers 422 on a bad body before touching the database."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from bench import reference_api as ref

    app = FastAPI()
    app.add_api_route("/status/batch", ref.status_batch, methods=["POST"])
    with TestClient(app) as c:
        r = c.post("/status/batch", content=bad, headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def _answers(switch: list[float], slow_at: float) -> openloop.OpenLoopResult:
    """Readers at 100/s over 4 s, alternating between two workers that answer data version 5
    instead of 4 from ``switch[w]`` on; five answers of 200 ms just after ``slow_at``."""
    scheduled = np.arange(400) / 100
    latency = np.full(400, 0.005)
    slow = np.flatnonzero(scheduled >= slow_at)[:5]
    latency[slow] = 0.2
    answered = scheduled + latency
    header: list[str | None] = ["5" if answered[i] >= switch[i % 2] else "4" for i in range(400)]
    return openloop.OpenLoopResult(
        rate=100,
        duration=4,
        scheduled=scheduled,
        latency=latency,
        status=np.full(400, 200, dtype=np.int32),
        header=header,
    )


def test_freshness_figures_from_the_readers_answers() -> None:
    from bench.http import fresh_figures

    # the write starts at 1.0 s; one worker answers the new version from 1.5 s, the other 1.8 s
    got = fresh_figures(_answers([1.5, 1.8], slow_at=1.2), 4, 1.0, settle=1.0, max_wait=10)
    assert got["version_after"] == 5
    assert abs(got["first_new_s"] - 0.5) < 0.011
    assert abs(got["all_new_s"] - 0.8) < 0.011
    assert got["readers_p99_ms"] == 200.0  # the slow answers fall in the window (1.0 .. 2.0 s)
    assert got["window_requests"] == 101
    # slow answers outside the window do not count
    got = fresh_figures(_answers([1.5, 1.8], slow_at=3.0), 4, 1.0, settle=1.0, max_wait=10)
    assert got["readers_p99_ms"] == 5.0 and got["readers_p99_whole_run_ms"] == 200.0
    # reads unanswered (503) from 1.2 s until the new version comes at 2.0 s: every answer is
    # new only from 2.0 s, though the last old one was at 1.2 s
    res = _answers([2.0, 2.0], slow_at=3.0)
    res.status[(res.scheduled >= 1.2) & (res.scheduled < 2.0)] = 503
    got = fresh_figures(res, 4, 1.0, settle=1.0, max_wait=10)
    assert abs(got["first_new_s"] - 1.0) < 0.011 and got["all_new_s"] == got["first_new_s"]
    assert got["readers_failed"] == 80
    # a worker that never catches up
    got = fresh_figures(_answers([1.5, 99.0], slow_at=3.0), 4, 1.0, settle=1.0, max_wait=10)
    assert got["all_new_s"] is None and "still answered the old version" in got["note"]
    # no new version at all
    got = fresh_figures(_answers([99.0, 99.0], slow_at=3.0), 4, 1.0, settle=1.0, max_wait=10)
    assert got["first_new_s"] is None and "no reader saw" in got["note"]
