"""riskmap as real server processes (``riskmap serve``): crash safety under SIGKILL on both
backends, and two API replicas on one PostGIS database."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from riskmap.api.ingest import ingest_communities
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from tests.api.helpers import END, Server, copy_store


@pytest.fixture
def city(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    c = generate_city(seed=11, communities=300, cases=1500, days=40, end=END)
    write_city(c, tmp_path / "city")
    return tmp_path / "city" / "communities.geojson", c.cases


def _prepare(db: str, communities: Path) -> str:
    """A store with the communities and an officer's key (returned)."""
    store = Store.open(db)
    ingest_communities(store, communities)
    _, key = store.create_key("officer", "crash test")
    store.close()
    return key


def _batches(cases: pd.DataFrame, n: int) -> list[list[dict[str, Any]]]:
    """``n`` batches of whole cases, as JSON records."""
    ids = cases["case_id"].unique()
    groups = np.array_split(ids, n)
    out = []
    for g in groups:
        rows = cases[cases["case_id"].isin(set(g))]
        out.append(
            [
                {
                    "case_id": r.case_id,
                    "reported": str(r.reported),
                    "type": r.type,
                    "role": r.role,
                    "lat": float(r.lat),
                    "lon": float(r.lon),
                }
                for r in rows.itertuples(index=False)
            ]
        )
    return out


def _levels(server: Server) -> dict[str, str]:
    r = httpx.get(
        f"{server.url}/v1/communities",
        params={"at": END.isoformat(), "policy": "cn-three-zone"},
        timeout=60,
    )
    r.raise_for_status()
    return {f["id"]: f["properties"]["level"] for f in r.json()["features"]}


def _full_recompute(db: str, cases: pd.DataFrame) -> dict[str, str]:
    """Zones computed from scratch, in this process, from the store's communities and the
    client's own copy of the cases the store holds."""
    store = Store.open(db)
    layer = CommunityLayer(store.communities(), 10)
    store.close()
    cs = cases.copy()
    cs["reported"] = pd.to_datetime(cs["reported"]).to_numpy().astype("datetime64[D]")
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    res = compute_zones(layer, cs, load_policy("cn-three-zone"), END)
    return dict(zip(layer.ids, res.levels["level"], strict=True))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_while_streaming_batches(
    backend: str,
    city: tuple[Path, pd.DataFrame],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    servers: list[Server],
) -> None:
    """Kill -9 the server again and again while a client streams batches; after each restart
    every acknowledged batch is there whole, no unacknowledged batch is there in part, and the
    zones the server answers equal a full recompute."""
    db = (
        f"sqlite:///{tmp_path / 'r.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    communities, cases = city
    key = _prepare(db, communities)
    batches = _batches(cases, 30)
    server = Server(db, tmp_path / "server.log")
    servers.append(server)
    server.start()
    rng = random.Random(5)

    acked: dict[int, int] = {}  # batch index -> batch id
    unacked: list[int] = []
    done = threading.Event()
    up = threading.Event()
    up.set()

    failures: list[BaseException] = []

    def client() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        try:
            for i, rows in enumerate(batches):
                up.wait(120)
                try:
                    r = httpx.post(f"{server.url}/v1/cases", json=rows, headers=headers, timeout=60)
                except httpx.HTTPError:
                    unacked.append(i)
                    continue
                if r.status_code != 200:
                    unacked.append(i)
                    continue
                assert r.json()["rejected"] == 0, r.json()
                acked[i] = r.json()["batch_id"]
                # the live server's zones move on with every batch (incremental path)
                with contextlib.suppress(httpx.HTTPError):
                    _levels(server)
        except BaseException as e:  # reported by the test, not lost in the thread
            failures.append(e)
        finally:
            done.set()

    t = threading.Thread(target=client)
    t.start()
    kills = 0
    while not done.is_set():
        time.sleep(rng.uniform(0.2, 1.2))
        if done.is_set():
            break
        up.clear()
        server.kill()
        kills += 1
        server.start()
        up.set()
    t.join(300)
    assert not t.is_alive()
    if failures:
        raise failures[0]
    print(f"{backend}: {kills} kills, {len(acked)} acknowledged, unacknowledged {unacked}")
    assert kills >= 3, "the client finished before the server was killed three times"
    assert len(acked) >= 10, f"only {len(acked)} of 30 batches went through"

    # what the store holds, batch by batch
    store = Store.open(db)
    held = store.case_locations()
    store.close()
    held_rows = held.groupby("case_id").size().to_dict()
    present: list[int] = []
    for i, rows in enumerate(batches):
        want = pd.Series([r["case_id"] for r in rows]).value_counts().to_dict()
        got = {c: held_rows.get(c, 0) for c in want}
        if i in acked:
            assert got == want, f"acknowledged batch {i} is not whole"
            present.append(i)
        else:
            assert all(v == 0 for v in got.values()) or got == want, f"batch {i} half applied"
            if got == want:
                present.append(i)
                print(f"unacknowledged batch {i} is there whole")
    assert sum(len(batches[i]) for i in present) == len(held)

    # the server, restarted after the last kill and advanced batch by batch since, answers
    # the same zones as a full recompute of the cases the store holds
    ids = {r["case_id"] for i in present for r in batches[i]}
    expected = _full_recompute(db, cases[cases["case_id"].isin(ids)])
    assert _levels(server) == expected
    assert sum(v != "none" for v in expected.values()) > 0


def test_two_replicas_on_one_postgis_database(
    city: tuple[Path, pd.DataFrame], tmp_path: Path, pg_url: str, servers: list[Server]
) -> None:
    """A batch written through one replica shows in the other's answers within 5 seconds, and
    writes through both at once are serialised."""
    communities, cases = city
    key = _prepare(pg_url, communities)
    headers = {"Authorization": f"Bearer {key}"}
    a, b = Server(pg_url, tmp_path / "a.log"), Server(pg_url, tmp_path / "b.log")
    servers += [a, b]
    a.start()
    b.start()

    # a place in no zone yet: a community's inner point
    store = Store.open(pg_url)
    gdf = store.communities()
    store.close()
    p = gdf.geometry.iloc[len(gdf) // 2].representative_point()
    q = {"lat": p.y, "lon": p.x, "at": END.isoformat(), "policy": "cn-three-zone"}
    assert httpx.get(f"{b.url}/v1/status", params=q, timeout=60).json()["level"] == "none"

    row = {"reported": END.isoformat(), "type": "confirmed", "role": "residence"}
    r = httpx.post(
        f"{a.url}/v1/cases",
        json=[row | {"case_id": "replica-1", "lat": p.y, "lon": p.x}],
        headers=headers,
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["inserted"] == 1
    t0 = time.monotonic()
    while True:
        level = httpx.get(f"{b.url}/v1/status", params=q, timeout=60).json()["level"]
        if level != "none" or time.monotonic() - t0 > 5:
            break
        time.sleep(0.1)
    assert level == "sealed", f"replica b still answers {level!r} after 5 s"

    # both replicas take writes at once; they end on the same data version and the same zones
    batches = _batches(cases, 10)
    results: list[int] = []

    def post(server: Server, part: list[list[dict[str, Any]]]) -> None:
        for rows in part:
            r = httpx.post(f"{server.url}/v1/cases", json=rows, headers=headers, timeout=120)
            assert r.status_code == 200, r.text
            results.append(r.json()["batch_id"])

    threads = [
        threading.Thread(target=post, args=(a, batches[:5])),
        threading.Thread(target=post, args=(b, batches[5:])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 10 and len(set(results)) == 10
    va = httpx.get(f"{a.url}/healthz", timeout=10).json()["data_version"]
    vb = httpx.get(f"{b.url}/healthz", timeout=10).json()["data_version"]
    assert va == vb == 2 + 10  # communities, replica-1, ten batches
    assert _levels(a) == _levels(b)


def test_serve_with_two_workers(sample_db: Path, tmp_path: Path) -> None:
    """`riskmap serve --workers 2`: two processes answer, each with the same zones; the rate
    limit is shared between them; SIGTERM stops them all."""
    log = tmp_path / "workers.log"
    server = Server(
        f"sqlite:///{copy_store(sample_db, tmp_path / 'r.db')}",
        log,
        "--workers",
        "2",
        env={"RISKMAP_RATE_LIMIT_PER_MINUTE": "600"},
    )
    server.start()
    try:
        q = {"lat": 30.5, "lon": 114.3, "at": END.isoformat()}
        answers = [httpx.get(f"{server.url}/v1/status", params=q, timeout=60) for _ in range(6)]
        assert all(r.status_code == 200 for r in answers)
        assert len({r.json()["level"] for r in answers}) == 1
    finally:
        server.stop()
    text = log.read_text()
    assert "with 2 workers" in text
    assert text.count("Started server process") >= 2
    assert server.proc is not None and server.proc.poll() is not None
