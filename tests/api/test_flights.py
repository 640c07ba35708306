"""Bounded work: one computation per key, other keys never wait behind it, a bounded queue,
cancellation when every request has gone, the memory guard (see api/flights.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from riskmap.api.errors import Busy, add_exception_handlers
from riskmap.api.flights import Claim, Flights, RequestGone, WorkLimits, claiming
from riskmap.api.middleware import add_middleware
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings, get_settings
from riskmap.api.store import Store
from riskmap.geo._cancel import Cancelled, checkpoint, rss_bytes
from riskmap.geo.policy import load_policy
from tests.api.helpers import END, served

WAIT = 60  # seconds: only a guard against hanging, never a speed assertion


def _in_thread(f: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = f()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _waiters(flights: Flights, key: object) -> int:
    with flights._lock:
        fl = flights._flights.get(key)
        return 0 if fl is None else fl.waiters


def _spin(ended: threading.Event, seen: list[str]) -> Callable[[], None]:
    """A computation that only stops when a checkpoint tells it to."""

    def f() -> None:
        try:
            while True:
                checkpoint()
                time.sleep(0.005)
        except Cancelled as e:
            seen.append(e.reason)
            raise
        finally:
            ended.set()

    return f


@pytest.fixture
def flights() -> Iterator[Flights]:
    f = Flights(WorkLimits(max_running=2, max_queued=1))
    yield f
    f.close()


def test_one_computation_per_key(flights: Flights) -> None:
    calls: list[int] = []
    release = threading.Event()

    def compute() -> object:
        calls.append(1)
        release.wait(WAIT)
        return object()

    a, out_a = _in_thread(lambda: flights.run("k", compute))
    b, out_b = _in_thread(lambda: flights.run("k", compute))
    _until(lambda: _waiters(flights, "k") == 2)
    release.set()
    a.join(WAIT)
    b.join(WAIT)
    assert calls == [1]
    assert out_a["value"] is out_b["value"]
    # once done, the key computes again (the caller's cache keeps results, not the flights)
    assert flights.run("k", lambda: 5) == 5


def _small_service(tmp_path: Path) -> RiskService:
    """A service on a small city (120 communities, 300 cases up to END)."""
    from riskmap.api.ingest import ingest_cases, ingest_communities
    from riskmap.data.generator import generate_city, write_city

    write_city(generate_city(seed=3, communities=120, cases=300, days=30, end=END), tmp_path)
    store = Store.open(tmp_path / "r.db")
    ingest_communities(store, tmp_path / "communities.geojson")
    ingest_cases(store, tmp_path / "cases.csv", today=END)
    return RiskService(store, limits=WorkLimits(max_running=2, max_queued=2))


def test_status_answers_never_wait_for_other_work(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """While a zone computation for one date and a status history on the computed date are
    both held mid-way, status answers for the computed date complete (no lock of the service,
    of the data or of a snapshot is held by either)."""
    import riskmap.api.service as svc
    import riskmap.geo.status as status_mod

    service = _small_service(tmp_path)
    policy = load_policy("cn-three-zone")
    snap = service.snapshot(policy, END)
    point = snap.layer.frame.geometry.iloc[0].representative_point()
    lon, lat = point.x, point.y
    expected = service.status(lon, lat, policy, END)

    slow_day = END - dt.timedelta(days=4)
    release = threading.Event()
    in_zones, in_history = threading.Event(), threading.Event()
    real_zones, real_ranks = svc.compute_zones, status_mod.point_ranks

    def slow_zones(layer, cases, pol, at, **kw):  # type: ignore[no-untyped-def]
        if at == slow_day:
            in_zones.set()
            release.wait(WAIT)
        return real_zones(layer, cases, pol, at, **kw)

    def slow_ranks(*a, **kw):  # type: ignore[no-untyped-def]
        in_history.set()
        release.wait(WAIT)
        return real_ranks(*a, **kw)

    monkeypatch.setattr(svc, "compute_zones", slow_zones)
    monkeypatch.setattr(status_mod, "point_ranks", slow_ranks)
    t1, out1 = _in_thread(lambda: service.status(lon, lat, policy, slow_day))
    t2, out2 = _in_thread(lambda: service.status_history(lon, lat, policy, END, END))
    assert in_zones.wait(WAIT) and in_history.wait(WAIT)
    answers = [service.status(lon, lat, policy, END) for _ in range(3)]  # completes meanwhile
    assert answers == [expected] * 3
    assert t1.is_alive() and t2.is_alive() and not out1 and not out2  # both still held
    release.set()
    t1.join(WAIT)
    t2.join(WAIT)
    assert out1["value"]["at"] == slow_day
    assert out2["value"]["intervals"][-1]["level"] == expected["level"]


def test_a_slow_computation_blocks_no_other_date(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A slow computation for one date does not hold up a cached read, nor the computation
    of another date."""
    import riskmap.api.service as svc

    service = _small_service(tmp_path)
    policy = load_policy("cn-three-zone")
    cached = service.snapshot(policy, END)

    slow_day = END - dt.timedelta(days=5)
    release, started = threading.Event(), threading.Event()
    real = svc.compute_zones

    def slow(layer, cases, pol, at, **kw):  # type: ignore[no-untyped-def]
        if at == slow_day:
            started.set()
            release.wait(WAIT)
        return real(layer, cases, pol, at, **kw)

    monkeypatch.setattr(svc, "compute_zones", slow)
    t, out = _in_thread(lambda: service.snapshot(policy, slow_day))
    assert started.wait(WAIT)
    assert service.snapshot(policy, END) is cached  # the cached read while the slow one runs
    other = service.snapshot(policy, END - dt.timedelta(days=2))  # another key: computed
    assert other.result.at == END - dt.timedelta(days=2)
    assert t.is_alive() and not out  # the slow one is still waiting
    release.set()
    t.join(WAIT)
    assert out["value"].result.at == slow_day


def test_the_deadline_cancels_the_computation(flights: Flights) -> None:
    ended, seen = threading.Event(), []
    # whichever notices the deadline first (the request or the computation): both a 503
    with claiming(Claim(time.monotonic() + 0.3)), pytest.raises((RequestGone, Cancelled)):
        flights.run("k", _spin(ended, seen))
    assert ended.wait(WAIT)
    assert seen and seen[0] in ("deadline", "cancelled")
    _until(lambda: flights.active == 0)


def test_a_computation_stops_when_its_last_request_leaves(flights: Flights) -> None:
    ended, seen = threading.Event(), []
    first, second = Claim(), Claim()
    compute = _spin(ended, seen)

    def wait_with(claim: Claim) -> Callable[[], object]:
        def f() -> object:
            with claiming(claim):
                return flights.run("k", compute)

        return f

    a, out_a = _in_thread(wait_with(first))
    b, out_b = _in_thread(wait_with(second))
    _until(lambda: _waiters(flights, "k") == 2)
    first.leave("the client disconnected")
    a.join(WAIT)
    assert isinstance(out_a["error"], RequestGone)
    assert not ended.is_set()  # the other request still waits: the computation goes on
    second.leave("the client disconnected")
    b.join(WAIT)
    assert ended.wait(WAIT) and seen == ["cancelled"]


def test_a_full_queue_refuses_new_keys(flights: Flights) -> None:
    release = threading.Event()
    started = [threading.Event() for _ in range(3)]

    def blocked(i: int) -> Callable[[], int]:
        def f() -> int:
            started[i].set()
            release.wait(WAIT)
            return i

        return f

    threads = [_in_thread(lambda i=i: flights.run(i, blocked(i))) for i in range(3)]  # 2 + 1
    assert started[0].wait(WAIT) and started[1].wait(WAIT)
    _until(lambda: flights.active == 3)
    with pytest.raises(Busy) as e:
        flights.run("one too many", lambda: 0)
    assert e.value.retry_after >= 1
    # a key already running is joined, not refused
    joined, out = _in_thread(lambda: flights.run(0, blocked(0)))
    _until(lambda: _waiters(flights, 0) == 2)
    release.set()
    for t, _ in threads:
        t.join(WAIT)
    joined.join(WAIT)
    assert [o["value"] for _, o in threads] == [0, 1, 2] and out["value"] == 0


def test_the_memory_guard(tmp_path: Path) -> None:
    # admission: no new computation above the admission share of the limit
    tight = Flights(WorkLimits(memory_limit=rss_bytes() // 2))
    try:
        with pytest.raises(Busy, match="short of memory"):
            tight.run("k", lambda: 0)
    finally:
        tight.close()
    # running computations stop at a checkpoint before the process grows past the limit
    limit = rss_bytes() + 200 * 2**20
    loose = Flights(WorkLimits(memory_limit=limit, admit_share=1.0))
    held: list[bytearray] = []

    def grow() -> None:
        while True:
            checkpoint(need_bytes=20 * 2**20)
            held.append(bytearray(20 * 2**20))

    try:
        with pytest.raises(Cancelled) as e:
            loose.run("k", grow)
        assert e.value.reason == "memory"
        assert rss_bytes() <= limit
        # it grew, then stopped near the head-room (200 MB, 20 MB a step); the allocator may
        # give memory back to the system meanwhile (other tests' garbage), so a step or two
        # more than the head-room's 10 can fit under the limit: the guarantee is the RSS above
        assert 0 < len(held) <= 15
    finally:
        held.clear()
        loose.close()


def test_time_limit_and_queue_over_http(sample_db: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The middleware's time limit ends the computation (not only the answer), and a full
    queue answers 503 with Retry-After."""
    app = FastAPI()
    add_exception_handlers(app)
    add_middleware(app)
    app.dependency_overrides[get_settings] = lambda: Settings(
        request_timeout_s=0.5, rate_limit_per_minute=0
    )
    flights = Flights(WorkLimits(max_running=1, max_queued=0))
    ended, seen = threading.Event(), []

    @app.get("/spin")
    def spin() -> dict[str, bool]:
        flights.run("spin", _spin(ended, seen))
        return {"done": True}

    @app.get("/other")
    def other() -> dict[str, bool]:
        return {"done": flights.run("other", lambda: True)}

    try:
        client = TestClient(app)
        r = client.get("/spin")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert ended.wait(WAIT) and seen
        _until(lambda: flights.active == 0)
        assert client.get("/other").json() == {"done": True}

        release = threading.Event()
        t, _ = _in_thread(lambda: flights.run("hold", lambda: release.wait(WAIT)))
        _until(lambda: flights.active == 1)
        r = client.get("/other")
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "too many computations" in r.json()["detail"]
        release.set()
        t.join(WAIT)
    finally:
        flights.close()


def test_service_routes_answer_503_when_memory_is_short(sample_db: Path) -> None:
    """Through the real routes: a new computation refused for memory is a 503 with
    Retry-After; an answer cached before is still served."""
    from riskmap.api.deps import service_of

    settings = Settings(database_url=f"sqlite:///{sample_db}", rate_limit_per_minute=0)
    with served(settings) as client:
        assert client.get("/v1/zones", params={"at": str(END)}).status_code == 200
        service_of(client.app, settings).flights.limits = WorkLimits(memory_limit=1)
        assert client.get("/v1/zones", params={"at": str(END)}).status_code == 200
        r = client.get("/v1/zones", params={"at": str(END - dt.timedelta(days=1))})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "short of memory" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_a_client_leaving_cancels_its_computation() -> None:
    """The middleware sees the client disconnect while the answer is computed."""
    import asyncio

    app = FastAPI()
    add_exception_handlers(app)
    add_middleware(app)
    app.dependency_overrides[get_settings] = lambda: Settings(
        request_timeout_s=WAIT, rate_limit_per_minute=0
    )
    flights = Flights(WorkLimits(max_running=1, max_queued=0))
    ended, seen = threading.Event(), []

    @app.get("/spin")
    def spin() -> dict[str, bool]:
        flights.run("spin", _spin(ended, seen))
        return {"done": True}

    sent: list[dict[str, Any]] = []

    async def call() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            while not flights.active:  # the computation started: now the client leaves
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/spin",
            "raw_path": b"/spin",
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        await asyncio.wait_for(app(scope, receive, send), WAIT)

    try:
        asyncio.run(call())
        assert ended.wait(WAIT) and seen == ["cancelled"]
        assert sent and sent[0]["status"] == 503  # nobody reads it: the client is gone
    finally:
        flights.close()


def test_a_new_batch_recomputes_exact_geometry_rules_only_on_demand(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """After a batch, cached snapshots of rules that cannot be updated incrementally are
    dropped (computed again when asked, within the limits), not recomputed all at once while
    every request waits for the new data."""
    import pandas as pd

    import riskmap.api.service as svc
    from riskmap.api.ingest import ingest_cases, ingest_communities
    from riskmap.data.generator import generate_city, write_city
    from tests.helpers import assert_same

    write_city(generate_city(seed=3, communities=150, cases=300, days=30, end=END), tmp_path)
    cases = pd.read_csv(tmp_path / "cases.csv", dtype=str)
    late = cases["case_id"].isin(cases["case_id"].unique()[-5:])
    cases[~late].to_csv(tmp_path / "base.csv", index=False)
    cases[late].to_csv(tmp_path / "batch.csv", index=False)
    store = Store.open(tmp_path / "r.db")
    ingest_communities(store, tmp_path / "communities.geojson")
    ingest_cases(store, tmp_path / "base.csv", today=END)
    service = RiskService(store)
    local, exact = load_policy("cn-three-zone"), load_policy("india-containment")
    service.snapshot(local, END)
    service.snapshot(exact, END)

    advanced: list[str] = []
    real = svc.update_zones

    def spy(prev, *a, **k):  # type: ignore[no-untyped-def]
        advanced.append(prev.policy.id)
        return real(prev, *a, **k)

    monkeypatch.setattr(svc, "update_zones", spy)
    ingest_cases(store, tmp_path / "batch.csv", today=END)
    service.data()
    assert advanced == ["cn-three-zone"]
    fresh = RiskService(Store.open(tmp_path / "r.db")).snapshot(exact, END)
    assert_same(service.snapshot(exact, END).result, fresh.result)
