"""The hostile requests of issue 8 against ``riskmap serve`` as a real process under a memory
limit: every answer is 200, 422 or 503 (with Retry-After), the server stays up with its peak
memory under the limit, and SIGTERM stops it within a few seconds."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.api.helpers import END, RISKMAP, Server, copy_store

LIMIT_MB = 700
pytestmark = pytest.mark.slow


def _peak_mb(pid: int) -> float:
    """VmHWM (peak resident memory) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _admin_key(db: str) -> str:
    out = subprocess.run(
        [str(RISKMAP), "--db", db, "keys", "create", "--role", "admin", "--name", "load test"],
        capture_output=True,
        check=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def served(sample_db: Path, sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    db_file = tmp_path / "r.db"
    copy_store(sample_db, db_file)
    db = f"sqlite:///{db_file}"
    key = _admin_key(db)  # presets the public may not ask for need a key (issue 8, item 1)
    monkeypatch.setenv("RISKMAP_MAX_MEMORY_MB", str(LIMIT_MB))
    monkeypatch.setenv("RISKMAP_MAX_COMPUTATIONS", "2")
    monkeypatch.setenv("RISKMAP_MAX_QUEUED", "3")
    monkeypatch.setenv("RISKMAP_REQUEST_TIMEOUT_S", "20")
    monkeypatch.setenv("RISKMAP_SHUTDOWN_TIMEOUT_S", "3")
    server = Server(db, tmp_path / "server.log")
    server.start()
    # the burst comes once today's status snapshot is served (its tiles are rendered ahead
    # meanwhile, through the same bounded computations as the burst's)
    deadline = time.monotonic() + 120
    while httpx.get(f"{server.url}/v1/status?lat=0&lon=0", timeout=60).status_code == 503:
        assert time.monotonic() < deadline, "no status snapshot after 120 s"
        time.sleep(0.2)
    try:
        yield server, key, pd.read_csv(sample_dir / "cases.csv")
    finally:
        server.stop()


def test_hostile_requests_keep_the_server_up_within_its_memory(served) -> None:  # type: ignore[no-untyped-def]
    server, key, cases = served
    headers = {"Authorization": f"Bearer {key}"}
    first = dt.date.fromisoformat(str(cases["reported"].min())[:10])
    lat, lon = float(cases["lat"].iloc[0]), float(cases["lon"].iloc[0])
    far = {"from": "0001-01-01", "to": "9999-12-31"}
    requests: list[tuple[str, dict[str, str]]] = [
        ("/v1/zones/history", {"to": "9999-12-31", "policy": "india-containment"}),
        ("/v1/zones/history", {"to": "9999-12-31", "policy": "hk-building"}),
        ("/v1/zones/history", {"from": str(first), "to": str(END), "policy": "hk-building"}),
        ("/v1/zones/history", {"from": str(first), "to": str(END), "policy": "india-containment"}),
        ("/v1/status/history", {"lat": str(lat), "lon": str(lon)} | far),
        ("/v1/status/history", {"lat": str(lat), "lon": str(lon), "to": "9999-12-31"}),
        ("/v1/status", {"lat": str(lat), "lon": str(lon), "at": "9999-12-31"}),
        ("/v1/aggregates/cases", {"unit": "community"} | far),
        ("/v1/zones", {"at": "0001-01-01"}),
        ("/", {"at": "9999-12-31"}),
    ]
    for d in range(0, 30, 6):
        at = str(END - dt.timedelta(days=d))
        requests.append(("/v1/zones", {"policy": "hk-building", "at": at}))
        requests.append(("/v1/communities", {"policy": "india-containment", "at": at}))
    burst = [("/v1/zones", {"at": str(END - dt.timedelta(days=d))}) for d in range(20)]
    requests += burst

    def get(req: tuple[str, dict[str, str]]) -> tuple[str, httpx.Response]:
        path, params = req
        r = httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=120)
        return f"{path}?{params}", r

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(pool.map(get, requests))

    codes = Counter(r.status_code for _, r in answers)
    print(dict(codes))
    for what, r in answers:
        assert r.status_code in (200, 422, 503), f"{what}: {r.status_code} {r.text[:300]}"
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1, what
        if r.status_code == 422:
            assert "must lie from" in r.text or "spans" in r.text, f"{what}: {r.text[:300]}"
    by_req = dict(answers)
    for path, params in requests[:2] + requests[4:10]:  # dates outside the data
        assert by_req[f"{path}?{params}"].status_code == 422, (path, params)
    # twenty computations at once for a queue of five: some are refused
    assert any(by_req[f"{p}?{q}"].status_code == 503 for p, q in burst)

    assert server.proc is not None
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    peak = _peak_mb(server.proc.pid)
    print(f"peak memory {peak:.0f} MB (limit {LIMIT_MB} MB)")
    assert peak < LIMIT_MB

    # SIGTERM while computations run: the server stops within a few seconds
    slow: list[int] = []

    def busy() -> None:
        params = {"policy": "india-containment", "at": str(END - dt.timedelta(days=40))}
        try:
            r = httpx.get(f"{server.url}/v1/zones", params=params, headers=headers, timeout=60)
            slow.append(r.status_code)
        except httpx.HTTPError:
            slow.append(-1)

    t = threading.Thread(target=busy)
    t.start()
    time.sleep(0.5)  # the request is in
    server.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        code = server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("the server did not stop within 15 s of SIGTERM") from None
    t.join(60)
    print(f"stopped {time.monotonic() - t0:.1f} s after SIGTERM (exit {code}), request: {slow}")
    assert code in (0, -signal.SIGTERM), code
    assert slow and slow[0] in (200, 503, -1)
    assert "Traceback" not in Path(server.log).read_text(), Path(server.log).read_text()[-3000:]
