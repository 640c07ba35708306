"""Status snapshots computed ahead (api.snapshots): served at once, swapped atomically when a
newer one is complete, kept on disk for a restart, rolled over at midnight.

Slow computations are simulated with gates (a patched compute that waits for an event): the
tests assert what answers while a computation is held, never how long anything takes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import riskmap.api.service as service_module
from riskmap.api.cli import app as cli_app
from riskmap.api.clock import Clock
from riskmap.api.deps import service_of
from riskmap.api.flights import WorkLimits
from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.routers.status import Status
from riskmap.api.service import RiskService, policy_key
from riskmap.api.settings import Settings
from riskmap.api.snapshots import build_served, snapshot_dir
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.policy import load_policy
from tests.api.helpers import served, wait_ready

TODAY = dt.date.today()  # the service's default zone is the machine's: its today
POLICY = load_policy("cn-three-zone")


class Gate:
    """Stands for a function of api.service: records each call (thread name) and holds it
    until :attr:`open` is set."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.entered = threading.Event()
        self.open = threading.Event()
        self.calls: list[str] = []

    def __call__(self, *a: Any, **k: Any) -> Any:
        self.calls.append(threading.current_thread().name)
        self.entered.set()
        if not self.open.wait(120):
            raise RuntimeError("the gate was never opened")
        return self.fn(*a, **k)


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Gate]]:
    """Hold every zone computation (full and incremental) until the test opens the gates."""
    out = {
        "compute_zones": Gate(service_module.compute_zones),
        "update_zones": Gate(service_module.update_zones),
    }
    for name, gate in out.items():
        monkeypatch.setattr(service_module, name, gate)
    try:
        yield out
    finally:
        for gate in out.values():
            gate.open.set()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small city whose cases end today (today's zones are not empty)."""
    out = tmp_path_factory.mktemp("city")
    write_city(generate_city(seed=4, communities=200, cases=400, days=30, end=TODAY), out)
    return out


@pytest.fixture
def db(city: Path, tmp_path: Path) -> Path:
    path = tmp_path / "riskmap.db"
    store = Store.open(path)
    ingest_communities(store, city / "communities.geojson")
    ingest_cases(store, city / "cases.csv", today=TODAY)
    store.close()
    return path


def _settings(db: Path, **kw: Any) -> Settings:
    return Settings(**({"database_url": f"sqlite:///{db}", "rate_limit_per_minute": 0} | kw))


def _places(db: Path) -> pd.DataFrame:
    """A point inside each community."""
    store = Store.open(db)
    comm = store.communities()
    store.close()
    pts = comm.geometry.representative_point()
    return pd.DataFrame({"id": comm["community_id"], "lon": pts.x, "lat": pts.y})


def _status(client: TestClient, lon: float, lat: float, **kw: str) -> dict[str, Any]:
    r = client.get("/v1/status", params={"lat": lat, "lon": lon} | kw)
    assert r.status_code == 200, r.text
    assert r.headers["X-Data-Version"] == str(r.json()["data_version"])
    return dict(r.json())


def _new_case_csv(path: Path, lon: float, lat: float, case_id: str = "new-1") -> Path:
    path.write_text(
        "case_id,reported,type,role,lat,lon\n"
        f"{case_id},{TODAY.isoformat()},confirmed,residence,{lat},{lon}\n"
    )
    return path


def _quiet_place(client: TestClient, db: Path) -> tuple[float, float]:
    """A place inside a community that is not sealed today (a new case there seals it)."""
    for p in _places(db).itertuples():
        s = _status(client, p.lon, p.lat)
        if s["level"] != "sealed" and s["covered"]:
            return p.lon, p.lat
    raise AssertionError("every community is sealed")


def _wait(check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_start_up_computes_in_the_background_and_503_before(
    db: Path, city: Path, gates: dict[str, Gate]
) -> None:
    with served(_settings(db)) as client:
        assert gates["compute_zones"].entered.wait(120)  # the start-up computation is held
        for _ in range(3):
            r = client.get("/v1/status", params={"lat": 30.5, "lon": 114.3})
            assert r.status_code == 503
            assert int(r.headers["Retry-After"]) > 0
            assert "being computed" in r.json()["detail"]
        # the reads started no computation of their own: one, on a worker thread
        assert len(gates["compute_zones"].calls) == 1
        assert gates["compute_zones"].calls[0].startswith("riskmap-compute")
        gates["compute_zones"].open.set()
        body = wait_ready(client).json()
        store = Store.open(db)
        assert body["data_version"] == store.data_version
        store.close()
        assert body["at"] == TODAY.isoformat() and body["policy"] == POLICY.id
        assert body["data_through"] == pd.read_csv(city / "cases.csv")["reported"].max()


def test_an_ingest_is_served_soon_and_reads_meanwhile_answer_from_the_old_snapshot(
    db: Path, tmp_path: Path, gates: dict[str, Gate]
) -> None:
    for gate in gates.values():
        gate.open.set()
    store = Store.open(db)
    _, key = store.create_key("officer", "snapshot test")
    store.close()
    with served(_settings(db)) as client:
        old = wait_ready(client).json()["data_version"]
        lon, lat = _quiet_place(client, db)
        before = _status(client, lon, lat)
        # hold the next computations
        held = {n: Gate(g.fn) for n, g in gates.items()}
        for n, g in held.items():
            setattr(service_module, n, g)
        try:
            body = _new_case_csv(tmp_path / "new.csv", lon, lat).read_bytes()
            r = client.post(
                "/v1/cases",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
            )
            assert r.status_code == 200, r.text
            _wait(lambda: any(g.entered.is_set() for g in held.values()))
            # a computation of the new version is held: reads answer from the old snapshot
            for _ in range(5):
                s = _status(client, lon, lat)
                assert s == before and s["data_version"] == old
            r = client.get(
                "/v1/status",
                params={"lat": lat, "lon": lon},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200 and r.json()["data_version"] == old  # the exact view
            assert not any(g.open.is_set() for g in held.values())
        finally:
            for g in held.values():
                g.open.set()
        _wait(lambda: _status(client, lon, lat)["data_version"] > old)
        after = _status(client, lon, lat)
        assert after["level"] == "sealed" and after["data_through"] == TODAY.isoformat()
        assert after["computed_at"] > before["computed_at"]


def test_a_restart_answers_from_the_stored_snapshot_without_computing(
    db: Path, tmp_path: Path, city: Path, gates: dict[str, Gate]
) -> None:
    for gate in gates.values():
        gate.open.set()
    settings = _settings(db)
    with served(settings) as client:
        first = wait_ready(client)
        lon, lat = _quiet_place(client, db)
        here = _status(client, lon, lat)
    stored = snapshot_dir(settings.database_url)
    assert stored is not None and any(stored.iterdir())

    # restarted with every computation held: the stored snapshot answers at once; the zones
    # behind it (for the other routes) are computed in the background, not in a request
    held = {n: Gate(g.fn) for n, g in gates.items()}
    for n, g in held.items():
        setattr(service_module, n, g)
    try:
        with served(settings) as client:
            again = wait_ready(client)
            assert again.json() == first.json()  # computed_at included: the same snapshot
            assert _status(client, lon, lat) == here
            _wait(lambda: held["compute_zones"].entered.is_set())
            assert held["compute_zones"].calls[0] != "MainThread"
            assert _status(client, lon, lat) == here  # answered while it computes
            held["compute_zones"].open.set()
            service = service_of(client.app, settings)  # type: ignore[arg-type]
            _wait(lambda: len(service.served._completed) == 1)  # type: ignore[union-attr]
            assert _status(client, lon, lat) == here  # the same snapshot answers after it
            held["compute_zones"].open.clear()

        # the data changed while the server was down (the CLI): the old snapshot answers at
        # once, the new one is computed in the background
        store = Store.open(db)
        ingest_cases(store, _new_case_csv(tmp_path / "cli.csv", lon, lat), today=TODAY)
        new = store.data_version
        store.close()
        with served(settings) as client:
            assert wait_ready(client).json()["data_version"] == here["data_version"] < new
            _wait(lambda: any(g.entered.is_set() for g in held.values()))
            assert _status(client, lon, lat) == here
            for g in held.values():
                g.open.set()
            _wait(lambda: _status(client, lon, lat)["data_version"] == new)
            assert _status(client, lon, lat)["level"] == "sealed"
    finally:
        for g in held.values():
            g.open.set()


def test_a_cli_ingest_by_another_store_object_is_picked_up(
    db: Path, tmp_path: Path, gates: dict[str, Gate]
) -> None:
    for gate in gates.values():
        gate.open.set()
    with served(_settings(db)) as client:
        old = wait_ready(client).json()["data_version"]
        lon, lat = _quiet_place(client, db)
        other = Store.open(db)  # as `riskmap ingest cases` does, in its own process
        ingest_cases(other, _new_case_csv(tmp_path / "cli.csv", lon, lat), today=TODAY)
        new = other.data_version
        other.close()
        assert new > old
        _wait(lambda: _status(client, lon, lat)["data_version"] == new)
        assert _status(client, lon, lat)["level"] == "sealed"


def test_a_damaged_or_mismatched_stored_snapshot_is_ignored(
    db: Path, gates: dict[str, Gate], caplog: pytest.LogCaptureFixture
) -> None:
    for gate in gates.values():
        gate.open.set()
    settings = _settings(db)
    with served(settings) as client:
        first = wait_ready(client).json()
    stored = snapshot_dir(settings.database_url)
    assert stored is not None
    (entry,) = [p for p in stored.iterdir() if not p.name.startswith(".")]
    meta = json.loads((entry / "meta.json").read_text())
    damages: list[Callable[[], None]] = [
        lambda: (entry / "exact" / "parts.json").write_bytes(b'{"zone_level": [1, 2'),
        lambda: (entry / "communities" / "index" / "node.npy").write_bytes(b"\x93NUMPY garbage"),
        lambda: (entry / "meta.json").write_text(json.dumps(meta | {"store": "another"})),
        lambda: (entry / "meta.json").write_text(json.dumps(meta | {"data_version": 99})),
    ]
    for damage in damages:
        damage()
        held = Gate(gates["compute_zones"].fn)
        service_module.compute_zones = held  # type: ignore[attr-defined]
        caplog.clear()
        try:
            with caplog.at_level(logging.WARNING, logger="riskmap"), served(settings) as client:
                # not answered from the damaged files: computed again
                assert held.entered.wait(120)
                r = client.get("/v1/status", params={"lat": 0, "lon": 0})
                assert r.status_code == 503
                held.open.set()
                body = wait_ready(client).json()
                assert body["data_version"] == first["data_version"]
                assert body["computed_at"] != first["computed_at"]
            assert any("ignoring the stored status snapshot" in r.message for r in caplog.records)
        finally:
            held.open.set()
            service_module.compute_zones = gates["compute_zones"]  # type: ignore[attr-defined]
        # the new snapshot was stored again (undamaged) for the next round
        entry = next(p for p in stored.iterdir() if not p.name.startswith("."))
        meta = json.loads((entry / "meta.json").read_text())


class FakeClock(Clock):
    """A clock a test sets (in Asia/Shanghai)."""

    def __init__(self, now: dt.datetime) -> None:
        super().__init__(ZoneInfo("Asia/Shanghai"))
        self.t = now

    def now(self) -> dt.datetime:
        return self.t


def test_the_day_rolls_over_at_midnight_without_a_pause(
    db: Path, tmp_path: Path, gates: dict[str, Gate]
) -> None:
    for gate in gates.values():
        gate.open.set()
    tz = ZoneInfo("Asia/Shanghai")
    day = TODAY
    clock = FakeClock(dt.datetime.combine(day, dt.time(22, 0), tzinfo=tz))
    service = RiskService(Store.open(db), clock=clock)
    served_ = service.serve([POLICY], 5, tmp_path / "snaps", poll_s=0.05)
    try:

        def dates() -> set[dt.date]:
            return {s.at for s in served_.entries()}

        assert served_.wait_until(lambda: dates() == {day}, 120)
        done = served_.rounds
        assert served_.wait_until(lambda: served_.rounds >= done + 3, 120)
        assert dates() == {day}  # tomorrow is not computed before the last hour of the day
        clock.t = dt.datetime.combine(day, dt.time(23, 30), tzinfo=tz)
        served_.wake()
        assert served_.wait_until(lambda: dates() == {day, day + dt.timedelta(days=1)}, 120)
        assert service.served_status(POLICY).at == day  # type: ignore[union-attr]

        # midnight: tomorrow's snapshot answers at once, with no computation
        held = Gate(gates["compute_zones"].fn)
        service_module.compute_zones = held  # type: ignore[attr-defined]
        clock.t = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0, 1), tzinfo=tz)
        now = service.served_status(POLICY)
        assert now is not None and now.at == day + dt.timedelta(days=1)
        assert json.loads(now.answer(0.0, 0.0, True))["at"] == now.at.isoformat()
        # yesterday's is dropped (from memory and from disk)
        served_.wake()
        assert served_.wait_until(lambda: day not in dates(), 120)
        assert not (tmp_path / "snaps" / f"{policy_key(POLICY)[:20]}-{day}").exists()
        assert held.calls == []
    finally:
        service_module.compute_zones = gates["compute_zones"]  # type: ignore[attr-defined]
        service.shutdown()


def test_served_answers_are_today_s_answers_field_for_field(db: Path) -> None:
    """The lean answer equals the one built by geo.status and pydantic (exact and public
    views), at community points, zone vertices (boundaries) and outside the city."""
    service = RiskService(Store.open(db))
    try:
        s = build_served(service, POLICY, TODAY, 5)
        snap = service.snapshot(POLICY, TODAY)
        public = service.public_snapshot(POLICY, TODAY, 5)
        places = _places(db)
        zones = snap.result.zones
        assert len(zones)
        xy = shapely.get_coordinates(zones.geometry.to_numpy())[::7]
        lon = np.r_[places["lon"].to_numpy(), xy[:, 0], 0.0, 114.0]
        lat = np.r_[places["lat"].to_numpy(), xy[:, 1], 0.0, 30.0]
        _, fresh = service.status_snapshot(POLICY, TODAY)
        for view, is_public in ((snap, False), (public, True)):
            old = view.status(lon, lat)
            for i in range(len(lon)):
                want = Status.model_validate(old[i] | fresh).model_dump(mode="json")
                got = json.loads(s.answer(float(lon[i]), float(lat[i]), is_public))
                assert got == want, (i, got, want)
                assert list(got) == list(want)  # the same order of fields
        # batches: the values of geo.status's table (missing values as None, as the batch
        # route writes them; dates as ISO text)
        table = s.exact.table(lon, lat)
        ref = snap.lookup.table(lon, lat)
        assert list(table.columns) == list(ref.columns)
        for col in table.columns:
            want = [None if pd.isna(v) else v for v in ref[col]]
            if col in ("since", "expected_lift"):
                want = [None if v is None else v.isoformat() for v in want]
            assert [None if pd.isna(v) else v for v in table[col]] == want, col
    finally:
        service.shutdown()


def test_today_is_the_configured_time_zone_s(db: Path) -> None:
    settings = _settings(db, timezone="Pacific/Kiritimati")  # UTC+14
    with served(settings) as client:
        svc = client.app.state.services.get(settings)  # type: ignore[attr-defined]
        assert svc.today() == dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
        r = wait_ready(client)
        assert r.json()["at"] == svc.today().isoformat()
    with pytest.raises(ValueError, match="RISKMAP_TIMEZONE"):
        Settings(timezone="Mars/Olympus_Mons")


def test_batches_and_cells_of_today_come_from_the_served_snapshot(
    db: Path, gates: dict[str, Gate]
) -> None:
    import h3

    for gate in gates.values():
        gate.open.set()
    settings = _settings(db)
    with served(settings) as client:
        wait_ready(client, settings)
        held = {n: Gate(g.fn) for n, g in gates.items()}
        for n, g in held.items():
            setattr(service_module, n, g)
        try:
            places = _places(db).head(40)
            points = [{"lat": p.lat, "lon": p.lon, "id": p.id} for p in places.itertuples()] + [
                {"lat": 0.0, "lon": 0.0, "id": "far"}
            ]
            r = client.post("/v1/status/batch", json={"points": points})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["at"] == TODAY.isoformat()
            for p, row in zip(points, doc["results"], strict=True):
                one = _status(client, p["lon"], p["lat"])
                assert row["id"] == p["id"]
                assert row["level"] == one["level"] and row["covered"] == one["covered"]
                assert row["since"] == one["since"] and row["zone_id"] == one["zone_id"]
                assert doc["data_version"] == one["data_version"]
            p = places.iloc[0]
            cell = h3.latlng_to_cell(p.lat, p.lon, 12)
            c = client.get(f"/v1/status/cell/{cell}")
            assert c.status_code == 200 and c.json()["at"] == TODAY.isoformat()
            assert (
                c.json()["level"] == _status(client, p.lon, p.lat)["level"]
                or not c.json()["uniform"]
            )
            assert not any(g.calls for g in held.values())  # nothing was computed
        finally:
            for g in held.values():
                g.open.set()


def test_the_cli_answers_from_the_stored_snapshot(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`riskmap status LAT LON` answers from the snapshot a server stored (no zone
    computation) while it is of the store's data version, and computes once the data moved."""
    settings = _settings(db)
    with served(settings) as client:
        wait_ready(client)
        lon, lat = _quiet_place(client, db)
        here = _status(client, lon, lat)
    runner = CliRunner()
    args = ["--db", f"sqlite:///{db}", "status", str(lat), str(lon)]

    def no_computation(*a: Any, **k: Any) -> Any:
        raise AssertionError("the CLI computed zones")

    def no_whole_check(*a: Any, **k: Any) -> Any:
        raise AssertionError("the CLI read the whole store file (quick_check)")

    from riskmap.api.store.sqlite import SQLiteStore

    with monkeypatch.context() as m:
        m.setattr(service_module, "compute_zones", no_computation)
        m.setattr(SQLiteStore, "_quick_check", no_whole_check)  # two rows of metadata only
        r = runner.invoke(cli_app, args)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == here  # the server's answer, field for field
        m.setattr(SQLiteStore, "_quick_check", lambda *a: None)
        # another date is not stored: computed (and refused here)
        r = runner.invoke(cli_app, [*args, "--at", (TODAY - dt.timedelta(days=3)).isoformat()])
        assert r.exit_code != 0

    # a process of its own reads only what one answer needs: neither pandas nor the zone
    # engine is imported (they take most of a second), nor a polygon decoded but those tested
    code = (
        "import sys\nfrom riskmap.api.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('pandas', 'geopandas', 'scipy', 'riskmap.geo.zones') "
        "if m in sys.modules), file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr

    # the data changed since: the stored snapshot is not used, the zones are computed
    store = Store.open(db)
    ingest_cases(store, _new_case_csv(tmp_path / "cli.csv", lon, lat), today=TODAY)
    new = store.data_version
    store.close()
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    assert answer["data_version"] == new and answer["level"] == "sealed"


def test_the_public_tiles_of_a_new_snapshot_are_rendered_ahead(db: Path) -> None:
    """RISKMAP_PRERENDER_ZOOM: after today's snapshot is computed, its public tiles and the
    district outlines' are in the cache, so the map's first views are hits (and carry the
    same bytes as rendered on demand)."""
    from riskmap.api.deps import service_of
    from riskmap.tiles.mvt import TMS

    settings = _settings(db, prerender_zoom=9)
    with served(settings) as client:
        wait_ready(client)
        service = service_of(client.app, settings)  # type: ignore[arg-type]
        # tiles of every zoom up to 9 over the city, of both snapshot layers
        assert service.served is not None
        _wait(lambda: service.served.prerendered >= 1)  # type: ignore[union-attr]
        assert len(service.tiles) >= 20
        misses = service.tiles.misses
        store = Store.open(db)
        w, s, e, n = store.communities().total_bounds
        store.close()
        tiles = [t for z in (3, 9) for t in TMS.tiles(w, s, e, n, [z])]
        for name in ("communities", "districts"):  # the district outlines too
            for t in tiles:
                r = client.get(
                    f"/collections/{name}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}",
                    headers={"Accept-Encoding": "gzip"},
                )
                assert r.status_code in (200, 204)
        assert service.tiles.misses == misses  # every one from the cache
        # at most max_tiles (the coarsest: up to z16 over the city would be thousands)
        got = service.prerender_tiles(POLICY, TODAY, settings.min_public_count, 16, max_tiles=7)
        assert got == 7
        # beyond the zoom: rendered on demand
        t = next(iter(TMS.tiles(w, s, e, n, [10])))
        client.get(f"/collections/communities/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}")
        assert service.tiles.misses > misses


def test_merged_zones_are_prepared_ahead_with_the_tiles(db: Path) -> None:
    """Where the zones tiles merge each level (RISKMAP_TILE_MERGE_FEATURES made small for the
    sample city), rendering ahead prepares every merged zoom first: the first view's tiles
    then only clip and encode; a zones tile at a merged zoom holds one feature per level."""
    import mapbox_vector_tile

    from riskmap.api.deps import service_of
    from riskmap.tiles.mvt import TMS

    settings = _settings(db, prerender_zoom=6, tile_merge_features=1)
    with served(settings) as client:
        wait_ready(client)
        service = service_of(client.app, settings)  # type: ignore[arg-type]
        assert service.served is not None
        _wait(lambda: service.served.prerendered >= 1)  # type: ignore[union-attr]
        snap = service.public_snapshot(
            load_policy(settings.policy), service.today(), settings.min_public_count
        )
        zones = service.map_layer("zones", snap).tiles
        assert zones.merge is not None and zones.merge.below > 6
        assert set(zones._merged) == set(range(7))  # every merged zoom up to the prerendered
        w, s, e, n = zones.bounds
        t = TMS.tile((w + e) / 2, (s + n) / 2, 6)
        r = client.get(f"/collections/zones/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}")
        assert r.status_code == 200
        feats = mapbox_vector_tile.decode(r.content)["zones"]["features"]
        ids = [f["properties"]["id"] for f in feats]
        assert ids and all(i.startswith("merged:") for i in ids) and len(set(ids)) == len(ids)
        doc = client.get("/collections/zones/tiles/WebMercatorQuad/tilejson.json").json()
        assert doc["vector_layers"][0]["fields"]["zone_count"] == "Number"


def test_cached_public_tiles_are_answered_before_routing_with_the_routes_answer(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public tile of today in the tile cache is answered by the outermost middleware
    (api.fastpath) with the route's bytes and headers (ETag, gzip or not, 204 for an empty
    tile), and so is one not rendered yet, rendered there into the cache when the snapshot's
    layer is in memory; a key, If-None-Match, a query, a tile outside the matrix or a layer
    not prepared yet go through the route."""
    from riskmap.api.deps import service_of
    from riskmap.api.fastpath import FastPaths
    from riskmap.tiles.mvt import TMS

    settings = _settings(db, prerender_zoom=13)
    store = Store.open(db)
    w, s, e, n = store.communities().total_bounds
    key = store.create_key("analyst", "t")[1]
    store.close()
    with served(settings) as client:
        wait_ready(client)
        service = service_of(client.app, settings)  # type: ignore[arg-type]
        _wait(lambda: service.served.prerendered >= 1)  # type: ignore[union-attr]
        tiles = [t for z in (4, 13) for t in TMS.tiles(w, s, e, n, [z])]
        routed = {"n": 0}
        real = FastPaths._tile_answer

        def counted(self: FastPaths, scope: Any, path: str) -> Any:
            got = real(self, scope, path)
            routed["n"] += got is None
            return got

        monkeypatch.setattr(FastPaths, "_tile_answer", counted)
        codes = set()
        for layer in ("zones", "communities"):
            for t in tiles:
                path = f"/collections/{layer}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
                for headers in ({"Accept-Encoding": "gzip"}, {"Accept-Encoding": "identity"}):
                    routed["n"] = 0
                    fast = client.get(path, headers=headers)
                    assert routed["n"] == 0, path  # from the cache, before routing
                    with monkeypatch.context() as m:
                        m.setattr(FastPaths, "_tile_answer", lambda *a: None)
                        slow = client.get(path, headers=headers)
                    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
                    same = {k: v for k, v in slow.headers.items() if k != "date"}
                    assert {k: v for k, v in fast.headers.items() if k != "date"} == same
                    codes.add(fast.status_code)
        assert codes == {200, 204}
        t = tiles[-1]
        path = f"/collections/zones/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
        etag = client.get(path).headers["etag"]
        for extra, query in [
            ({"Authorization": f"Bearer {key}"}, ""),
            ({"If-None-Match": etag}, ""),
            ({}, f"?at={TODAY.isoformat()}"),
        ]:
            routed["n"] = 0
            r = client.get(path + query, headers=extra)
            assert r.status_code in (200, 204, 304) and routed["n"] == 1, (extra, query)
        # beyond the zoom rendered ahead: rendered by the fast path, the route's answer, cached
        for layer in ("zones", "communities"):
            for far in list(TMS.tiles(w, s, e, n, [15]))[:40]:
                path = f"/collections/{layer}/tiles/WebMercatorQuad/{far.z}/{far.x}/{far.y}"
                key = service.tiles.misses
                routed["n"] = 0
                fast = client.get(path, headers={"Accept-Encoding": "gzip"})
                assert routed["n"] == 0 and service.tiles.misses == key + 1, path
                with monkeypatch.context() as m:
                    m.setattr(FastPaths, "_tile_answer", lambda *a: None)
                    slow = client.get(path, headers={"Accept-Encoding": "gzip"})
                assert service.tiles.misses == key + 1  # the route found it in the cache
                assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
                same = {k: v for k, v in slow.headers.items() if k != "date"}
                assert {k: v for k, v in fast.headers.items() if k != "date"} == same
        # a rendering that fails in the fast path: the route answers (its errors are the app's)
        far = list(TMS.tiles(w, s, e, n, [16]))[0]
        path = f"/collections/zones/tiles/WebMercatorQuad/{far.z}/{far.x}/{far.y}"
        real_tile = type(service).tile
        calls = {"n": 0}

        def failing_once(self: Any, *a: Any, **k: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a rendering that fails")
            return real_tile(self, *a, **k)

        with monkeypatch.context() as m:
            m.setattr(type(service), "tile", failing_once)
            routed["n"] = 0
            r = client.get(path)
        assert r.status_code in (200, 204) and calls["n"] == 2
        # outside the matrix: the route's 404
        routed["n"] = 0
        r = client.get("/collections/zones/tiles/WebMercatorQuad/3/8/0")
        assert r.status_code == 404 and routed["n"] == 1
        # a layer not prepared (another view than the served one): never built by the fast path
        snap_policy = load_policy(settings.policy)
        version = service.served_status(snap_policy).data_version  # type: ignore[union-attr]
        assert service.built_public_layer(snap_policy, TODAY, version, 999, "zones") is None
        got = service.built_public_layer(
            snap_policy, TODAY, version, settings.min_public_count, "zones"
        )
        assert got is not None


def test_tiles_rendered_ahead_give_way_to_a_new_data_version(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering a snapshot's tiles ahead is background work: it pauses between tiles (the
    process's requests keep their share of it) and stops when new data arrives, whose
    snapshot is served first (the stale tiles are not finished)."""
    from riskmap.api.deps import service_of

    rendered: list[float] = []
    real = service_module.RiskService.tile

    def slow(self: RiskService, *a: Any, **k: Any) -> Any:
        time.sleep(0.05)  # a large city's tile
        rendered.append(time.monotonic())
        return real(self, *a, **k)

    monkeypatch.setattr(service_module.RiskService, "tile", slow)
    settings = _settings(db, prerender_zoom=14)  # thousands of tiles: minutes at this pace
    with served(settings) as client:
        ready = wait_ready(client)
        assert ready is not None
        first = ready.json()["data_version"]
        service = service_of(client.app, settings)  # type: ignore[arg-type]
        _wait(lambda: len(rendered) >= 10)
        # the pauses: at most about one tile per 2 x 50 ms
        span = rendered[9] - rendered[0]
        assert span >= 9 * 0.1 * 0.9, span
        lon, lat = _quiet_place(client, db)
        key = Store.open(db).create_key("officer", "t")[1]
        t0 = time.monotonic()
        r = client.post(
            "/v1/cases",
            content=_new_case_csv(tmp_path / "n.csv", lon, lat).read_bytes(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        _wait(lambda: _status(client, lon, lat)["data_version"] > first, timeout=30)
        assert time.monotonic() - t0 < 30
        assert _status(client, lon, lat)["level"] == "sealed"
        assert service.served is not None and service.served.prerendered == 0  # stopped


def test_the_start_up_build_waits_while_memory_is_short(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served snapshot is built as a bounded computation: while the process is above the
    memory guard's admission limit it is put off (not failed, no back-off), then built."""
    import riskmap.api.flights as flights_module

    short = {"on": True}
    real = flights_module.rss_bytes
    monkeypatch.setattr(flights_module, "rss_bytes", lambda: 2**40 if short["on"] else real())
    service = RiskService(Store.open(db), limits=WorkLimits(2, 3, 2**34))
    try:
        served_ = service.serve([POLICY], 5, poll_s=0.05)
        assert served_.wait_until(lambda: served_.waits >= 3, 60)
        assert served_.get(POLICY, TODAY) is None and served_.failures == 0
        short["on"] = False
        assert served_.wait_until(lambda: served_.get(POLICY, TODAY) is not None, 120)
        assert served_.waits == 0
    finally:
        service.shutdown()


def test_the_cli_and_default_periods_count_today_in_the_configured_zone(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``riskmap`` commands without a date and the API's default period end (``to``) take
    today in RISKMAP_TIMEZONE, as the served snapshots do, not the machine's date."""
    from riskmap.api import cli
    from riskmap.api.bounds import date_range

    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14, UTC-11: 25 hours apart
        monkeypatch.setenv("RISKMAP_TIMEZONE", tz)
        monkeypatch.setenv("RISKMAP_DATABASE_URL", f"sqlite:///{db}")
        want = dt.datetime.now(ZoneInfo(tz)).date()
        assert cli._parse_date(None) == want
        svc = cli._service()
        try:
            assert svc.today() == want
            assert date_range(svc, POLICY, 400).period(None, None, 7)[1] == want
        finally:
            svc.shutdown()


def test_the_plain_status_read_is_answered_before_routing_with_the_routes_answer(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anonymous ``GET /v1/status?lat=&lon=`` of today is answered by the outermost middleware
    (api.fastpath) with the route's answer byte for byte and the same headers; anything else
    (a key, other parameters, bad numbers, a rate limit) goes through the route."""
    import riskmap.api.routers.status as status_routes

    settings = _settings(db)
    routed: list[int] = []
    real = status_routes.served_today

    def counted(*a: Any, **k: Any) -> Any:
        routed.append(1)
        return real(*a, **k)

    monkeypatch.setattr(status_routes, "served_today", counted)
    places = _places(db)
    rng = np.random.default_rng(3)
    lon = np.concatenate([places["lon"].to_numpy(), rng.uniform(-180, 180, 20)])
    lat = np.concatenate([places["lat"].to_numpy(), rng.uniform(-90, 90, 20)])
    with served(settings) as client:
        wait_ready(client)
        levels = set()
        for x, y in zip(lon, lat, strict=True):
            q = f"lat={y:.6f}&lon={x:.6f}"
            routed.clear()
            fast = client.get(f"/v1/status?{q}")
            assert fast.status_code == 200 and routed == []  # not routed
            slow = client.get(f"/v1/status?{q}&policy={settings.policy}")
            assert slow.status_code == 200 and routed  # through the route
            assert fast.content == slow.content
            same = {k: v for k, v in slow.headers.items() if k != "date"}
            assert {k: v for k, v in fast.headers.items() if k != "date"} == same
            levels.add(fast.json()["level"])
        assert {"none", "sealed"} <= levels
        # with gzip asked for (a small answer is not compressed either way)
        routed.clear()
        got = client.get(f"/v1/status?{q}", headers={"Accept-Encoding": "gzip"})
        assert got.content == fast.content and routed == []
        key = Store.open(db).create_key("analyst", "t")[1]
        for path, headers, code in [
            (f"/v1/status?{q}", {"Authorization": f"Bearer {key}"}, 200),  # the exact view
            (f"/v1/status?{q}&at={TODAY.isoformat()}", {}, 200),
            (f"/v1/status?lon={x:.6f}&lat={y:.6f}&lat=1", {}, 200),
            ("/v1/status?lat=abc&lon=114.3", {}, 422),
            ("/v1/status?lat=91&lon=114.3", {}, 422),
            ("/v1/status?lat=1e1&lon=114.3", {}, 200),
            ("/v1/status?lat=30.5", {}, 422),
        ]:
            routed.clear()
            r = client.get(path, headers=headers)
            assert r.status_code == code, (path, r.text)
            if code == 200:
                assert routed, path
    # a configured rate limit: every read goes through the route (and its limit)
    with served(_settings(db, rate_limit_per_minute=1000)) as client:
        wait_ready(client)
        routed.clear()
        assert client.get(f"/v1/status?{q}").status_code == 200 and routed
