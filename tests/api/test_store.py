"""The store and ingest, on both backends (SQLite and PostgreSQL + PostGIS): idempotence,
versions, atomic batches, migrations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.store import SCHEMA_VERSION, Store
from riskmap.geo._errors import StoreError
from tests.helpers import squares

HEADER = "case_id,reported,type,role,lat,lon\n"


def schema_version(store: Store) -> int:
    """The schema version the store records (its meta table)."""
    return int(store.conn.one("SELECT value FROM meta WHERE key='schema_version'")[0])


def _communities(tmp_path: Path) -> Path:
    f = tmp_path / "c.geojson"
    squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1")]).to_file(f, driver="GeoJSON")
    return f


def test_reingesting_communities_changes_nothing(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    f = _communities(tmp_path)
    r1 = ingest_communities(store, f)
    assert (r1.counts.inserted, r1.counts.unchanged) == (2, 0)
    v = store.data_version
    r2 = ingest_communities(store, f)
    assert (r2.counts.inserted, r2.counts.updated, r2.counts.unchanged) == (0, 0, 2)
    assert store.data_version == v
    assert store.counts()["communities"] == 2
    assert len(store.community_cells(10)) > 0
    assert list(store.communities()["community_id"]) == ["A", "B"]


def test_changed_case_is_a_new_version(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "k1,2024-03-01,confirmed,residence,30.59,114.30\n")
    ingest_cases(store, f)
    v = store.data_version
    f.write_text(HEADER + "k1,2024-03-02,confirmed,residence,30.59,114.30\n")
    rep = ingest_cases(store, f)
    assert rep.counts.updated == 1 and rep.counts.unchanged == 0
    assert store.data_version == v + 1
    loc = store.case_locations()
    assert len(loc) == 1 and pd.Timestamp(loc["reported"][0]).date() == dt.date(2024, 3, 2)
    old = store.conn.execute("SELECT version, reported, rows FROM case_versions").fetchall()
    assert old == [(1, "2024-03-01", '[["2024-03-01", "residence", 30.59, 114.3]]')]
    # the same record again changes nothing
    rep = ingest_cases(store, f)
    assert (rep.counts.inserted, rep.counts.updated, rep.counts.unchanged) == (0, 0, 1)
    assert store.data_version == v + 1


def test_a_case_can_have_places_on_several_dates(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    f = tmp_path / "a.csv"
    f.write_text(
        HEADER
        + "k1,2024-03-01,confirmed,frequent_activity,30.59,114.30\n"
        + "k1,2024-03-05,confirmed,frequent_activity,30.59,114.30\n"
        + "k1,2024-03-05,confirmed,frequent_activity,30.59,114.30\n"  # exact duplicate
        + "k1,2024-03-06,asymptomatic,visit,30.60,114.31\n"  # another type: rejected
    )
    rep = ingest_cases(store, f)
    assert rep.counts.accepted == 3 and rep.counts.inserted == 2 and rep.counts.unchanged == 1
    assert [(r.row, r.field) for r in rep.rejects] == [(5, "type")]
    assert "row 2" in rep.rejects[0].reason
    days = sorted(str(pd.Timestamp(d).date()) for d in store.case_locations()["reported"])
    assert days == ["2024-03-01", "2024-03-05"]


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    with pytest.raises(RuntimeError), store.batch("cases", "x") as (conn, batch_id):
        conn.execute(
            "INSERT INTO cases (case_id, reported, type, version, batch_id)"
            " VALUES ('k', '2024-01-01', 'confirmed', 1, ?)",
            (batch_id,),
        )
        raise RuntimeError("crash in the middle")
    assert store.counts() == {"communities": 0, "cases": 0, "case_locations": 0, "batches": 0}
    assert store.data_version == 0


def test_rejects_are_stored_with_the_batch(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    f = tmp_path / "a.csv"
    f.write_text(
        HEADER + "k1,2024-03-01,confirmed,residence,30.59,114.30\nk2,x,confirmed,residence,1,1\n"
    )
    rep = ingest_cases(store, f)
    rows = store.conn.execute(
        "SELECT row, field FROM rejects WHERE batch_id=?", (rep.batch_id,)
    ).fetchall()
    assert rows == [(3, "reported")]
    b = store.conn.execute(
        "SELECT rows_read, accepted, rejected FROM batches WHERE batch_id=?", (rep.batch_id,)
    ).fetchone()
    assert b == (2, 1, 1)


def test_rural_flag_is_stored(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    gdf = squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1")])
    gdf["rural"] = ["yes", "no"]
    f = tmp_path / "c.geojson"
    gdf.to_file(f, driver="GeoJSON")
    ingest_communities(store, f)
    assert store.communities()["rural"].tolist() == [True, False]


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from riskmap.api.store.sqlite import SCHEMA

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('data_version', '3')")
    import shapely

    conn.execute(
        "INSERT INTO communities (community_id, geometry, batch_id) VALUES ('A', ?, 1)",
        (shapely.to_wkb(shapely.box(114.2, 30.4, 114.4, 30.6)),),
    )
    conn.execute("INSERT INTO cases VALUES ('k1', '2024-03-01', 'confirmed', 1, 1)")
    conn.execute("INSERT INTO case_locations VALUES ('k1', 'residence', 30.5, 114.3, 7, 1)")
    conn.commit()
    conn.close()
    store = Store.open(path)
    assert schema_version(store) == SCHEMA_VERSION and store.data_version == 3
    cols = {r[1] for r in store.conn.execute("PRAGMA table_info(communities)")}
    assert "rural" in cols
    assert store.conn.execute("SELECT rural FROM communities").fetchone() == (0,)
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert {"unit_metrics", "zone_events"} <= tables
    loc = store.case_locations()
    assert len(loc) == 1 and pd.Timestamp(loc["reported"][0]).date() == dt.date(2024, 3, 1)
    # the migrated record is recognised: sending it again changes nothing
    f = tmp_path / "k1.csv"
    f.write_text(HEADER + "k1,2024-03-01,confirmed,residence,30.5,114.3\n")
    rep = ingest_cases(store, f)
    assert rep.counts.unchanged == 1 and store.data_version == 3
    store.close()
    assert schema_version(Store.open(path)) == SCHEMA_VERSION  # idempotent


def test_a_newer_store_is_refused(store_url: str) -> None:
    store = Store.open(store_url)
    store.conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreError, match="newer than this riskmap"):
        Store.open(store_url)


def test_opening_again_keeps_everything(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    ingest_communities(store, _communities(tmp_path))
    key_id, key = store.create_key("officer", "lab")
    store.close()
    again = Store.open(store_url)
    assert schema_version(again) == SCHEMA_VERSION
    assert again.counts()["communities"] == 2 and again.data_version == 1
    assert again.check_key(key) == (key_id, "officer")
    assert [a["action"] for a in again.audit_log()] == ["ingest.communities", "keys.create"]


def test_swapped_coordinates_and_flags(tmp_path: Path, store_url: str) -> None:
    import shapely

    store = Store.open(store_url)
    gdf = squares([("A", 0, 0, 2000, "D1"), ("B", 2000, 0, 2000, "D1")])
    gdf.to_file(tmp_path / "c.geojson", driver="GeoJSON")
    ingest_communities(store, tmp_path / "c.geojson")
    inside = gdf.geometry.iloc[0].representative_point()
    la, lo = round(inside.y, 6), round(inside.x, 6)
    centre = shapely.centroid(shapely.union_all(gdf.geometry.to_numpy()))
    rows = [
        f"s1,2024-03-01,confirmed,residence,{lo},{la}",  # swapped: lon in the lat column
        "o1,2024-03-01,confirmed,residence,10.123456,10.123456",  # outside every community
        f"c1,2024-03-01,confirmed,residence,{centre.y:.6f},{centre.x:.6f}",  # district centroid
        "g1,2024-03-01,confirmed,residence,30.59,114.3",  # 2 decimals
    ]
    rows += [f"r{i},2024-03-01,confirmed,visit,{la},{lo}" for i in range(10)]  # repeated
    f = tmp_path / "cases.csv"
    f.write_text(HEADER + "\n".join(rows) + "\n")
    rep = ingest_cases(store, f)
    assert rep.counts.rejected == 0 and rep.counts.accepted == 14
    text = "\n".join(rep.warnings)
    assert "row 2: lat" in text and "look swapped" in text
    loc = store.case_locations().set_index("case_id")
    assert (loc.loc["s1", "lat"], loc.loc["s1", "lon"]) == (la, lo)
    assert "row 3: (10.1235, 10.1235) is outside every community" in text
    assert "row 4:" in text and "centroid of a district" in text
    assert "row 5: (30.59, 114.3) has 2 decimals" in text
    assert "is a location of 11 cases" in text
    assert len(loc) == 14  # flagged rows are accepted all the same


def test_reports_keys_and_zone_events(tmp_path: Path, store_url: str) -> None:
    store = Store.open(store_url)
    f = tmp_path / "a.csv"
    f.write_text(
        HEADER
        + "k1,2024-03-01,confirmed,residence,30.59,114.30\n"
        + "k2,2024-13-01,confirmed,residence,30.59,114.30\n"
        + "k3,2024-03-01,alien,residence,30.59,114.30\n"
    )
    rep = ingest_cases(store, f, key_id="abcd", source="lab upload")
    report = store.batch_report(rep.batch_id)
    assert report is not None
    assert (report["source"], report["accepted"], report["rejected"]) == ("lab upload", 1, 2)
    assert [(r["row"], r["field"]) for r in report["rejects"]] == [  # type: ignore[attr-defined]
        (3, "reported"),
        (4, "type"),
    ]
    assert report["key_id"] == "abcd"
    assert store.batch_report(rep.batch_id + 100) is None
    assert store.versions() == (1, rep.batch_id)

    key_id, key = store.create_key("analyst", "someone")
    assert store.check_key(key) == (key_id, "analyst")
    assert store.check_key(key[:-1] + ("x" if key[-1] != "x" else "y")) is None
    assert store.revoke_key(key_id, by="admin1") and not store.revoke_key(key_id)
    assert store.check_key(key) is None
    assert [k["key_id"] for k in store.api_keys()] == [key_id]
    actions = [a["action"] for a in store.audit_log()]
    assert actions == ["ingest.cases", "keys.create", "keys.revoke"]

    ev = pd.DataFrame(
        {
            "date": [dt.date(2024, 3, 1), dt.date(2024, 3, 2)],
            "kind": ["created", "lifted"],
            "unit_type": ["community", "community"],
            "unit_id": ["A", "A"],
            "level_from": ["none", "sealed"],
            "level_to": ["sealed", "none"],
        }
    )
    assert store.zone_events("p", 1, dt.date(2024, 3, 2)) is None
    store.save_zone_events("p", 1, dt.date(2024, 3, 5), ev)
    back = store.zone_events("p", 1, dt.date(2024, 3, 5))
    assert back is not None and back.to_dict("records") == ev.to_dict("records")
    assert store.zone_events("p", 2, dt.date(2024, 3, 5)) is None  # another data version
    assert store.zone_events("p", 1, dt.date(2024, 3, 6)) is None  # not computed that far
    store.save_zone_events("p", 1, dt.date(2024, 3, 5), ev.iloc[:0])
    empty = store.zone_events("p", 1, dt.date(2024, 3, 5))
    assert empty is not None and len(empty) == 0


def test_concurrent_writers_are_serialised(tmp_path: Path, store_url: str) -> None:
    """Two store instances (two processes' worth of connections) writing at once: every batch
    lands whole, batch ids follow commit order, and the data version counts every batch."""
    from concurrent.futures import ThreadPoolExecutor

    files = []
    for w in range(2):
        for b in range(5):
            f = tmp_path / f"w{w}b{b}.csv"
            f.write_text(
                HEADER
                + "".join(
                    f"w{w}b{b}c{i},2024-03-01,confirmed,residence,30.59,114.{30 + i:02d}\n"
                    for i in range(20)
                )
            )
            files.append(f)
    stores = [Store.open(store_url), Store.open(store_url)]

    def run(w: int) -> list[int]:
        return [ingest_cases(stores[w], f).batch_id for f in files[w * 5 : (w + 1) * 5]]

    with ThreadPoolExecutor(2) as pool:
        ids = [b for got in pool.map(run, range(2)) for b in got]
    assert sorted(ids) == sorted(set(ids))
    assert stores[0].counts()["cases"] == 200 and stores[1].data_version == 10
    # batch ids follow commit order: each batch left the data version one above the last
    left = [stores[0].batch_report(b)["data_version"] for b in sorted(ids)]  # type: ignore[index]
    assert left == list(range(1, 11))
    loc = stores[1].case_locations()
    per_batch = loc.groupby(loc["case_id"].str[:4]).size()
    assert (per_batch == 20).all() and len(per_batch) == 10


def test_postgis_tables_are_spatial(tmp_path: Path, pg_url: str) -> None:
    """In PostgreSQL, communities are PostGIS geometries and case locations carry points: a
    spatial join in SQL agrees with riskmap's own point-in-community look-up."""
    store = Store.open(pg_url)
    ingest_communities(store, _communities(tmp_path))
    gdf = store.communities()
    pts = gdf.geometry.representative_point()
    rows = [f"k{i},2024-03-01,confirmed,residence,{p.y:.6f},{p.x:.6f}" for i, p in enumerate(pts)]
    rows.append("far,2024-03-01,confirmed,residence,10.5,10.5")
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "\n".join(rows) + "\n")
    ingest_cases(store, f)
    got = store.conn.execute(
        "SELECT l.case_id, c.community_id FROM case_locations l"
        " JOIN communities c ON ST_Intersects(c.geometry, l.geom) ORDER BY l.case_id"
    ).fetchall()
    assert got == [("k0", "A"), ("k1", "B")]
    srid = store.conn.one("SELECT ST_SRID(geometry) FROM communities LIMIT 1")[0]
    assert srid == 4326


def test_parent_units(tmp_path: Path, store_url: str) -> None:
    from riskmap.api.ingest import ingest_units

    store = Store.open(store_url)
    f = tmp_path / "subdistricts.csv"
    f.write_text(
        "subdistrict_id,name,population,district_id\n"
        "S1,Jianghan,120000,D1\n"
        "S2,Qiaokou,-5,D1\n"  # negative population
        "S1,Again,1,D1\n"  # duplicate id
        ",Nameless,10,D1\n"  # no id
        "S3,,,D2\n"
    )
    rep = ingest_units(store, f)
    assert (rep.counts.inserted, rep.counts.rejected) == (2, 3)
    assert [(r.row, r.field) for r in rep.rejects] == [
        (3, "population"),
        (4, "unit_id"),
        (5, "unit_id"),
    ]
    u = store.units()
    assert u["unit_id"].tolist() == ["S1", "S3"] and set(u["level"]) == {"subdistrict"}
    assert u["population"].tolist()[0] == 120000 and pd.isna(u["population"].iloc[1])
    assert u["parent_id"].tolist() == ["D1", "D2"]
    d = tmp_path / "districts.csv"
    d.write_text("district_id,name,population\nD1,Wuchang,1000000\n")
    assert ingest_units(store, d).counts.inserted == 1
    d.write_text("district_id,name,population\nD1,Wuchang,1100000\n")
    rep = ingest_units(store, d)
    assert (rep.counts.updated, rep.counts.unchanged) == (1, 0)
    assert ingest_units(store, d).counts.unchanged == 1
    row = store.units().set_index(["level", "unit_id"]).loc[("district", "D1")]
    assert (row["name"], row["population"]) == ("Wuchang", 1100000)


def test_a_version_4_postgres_store_is_migrated(pg_url: str) -> None:
    store = Store.open(pg_url)
    for table in ("units", "zones", "zone_snapshots"):
        store.conn.execute(f"DROP TABLE {table}")
    store.conn.execute("ALTER TABLE batches DROP COLUMN data_version")
    store.conn.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    store.close()
    store = Store.open(pg_url)
    assert schema_version(store) == SCHEMA_VERSION == 5
    assert len(store.units()) == 0


def test_postgres_connections_dropped_by_the_server_are_reopened(
    tmp_path: Path, pg_url: str
) -> None:
    import psycopg

    store = Store.open(pg_url)
    ingest_communities(store, _communities(tmp_path))
    with psycopg.connect(pg_url, autocommit=True) as admin:
        for c in (store.conn, store._wconn):  # type: ignore[attr-defined]
            admin.execute("SELECT pg_terminate_backend(%s)", (c.raw.info.backend_pid,))
    assert store.counts()["communities"] == 2  # a read, on a new connection
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "k1,2024-03-01,confirmed,residence,30.59,114.30\n")
    assert ingest_cases(store, f).counts.inserted == 1  # a write, on a new connection
    assert store.data_version == 2


def test_the_data_version_never_waits_behind_a_long_read(tmp_path: Path) -> None:
    """The data version and the health check (every /healthz, every poll of the snapshot
    keeper) have a SQLite connection of their own: a long read holding the main one (a
    million case locations loading) does not hold them up; inside ``reading()`` the data
    version is the read transaction's (one state of the data)."""
    import threading

    db = tmp_path / "s.db"
    store = Store.open(db)
    gdf = squares([("A", 0, 0, 500, "D1")])
    gdf.to_file(tmp_path / "c.geojson", driver="GeoJSON")
    ingest_communities(store, tmp_path / "c.geojson")
    v1 = store.data_version
    held, release = threading.Event(), threading.Event()

    def long_read() -> None:
        with store.lock:  # as Conn.frame of a million rows holds it
            held.set()
            release.wait(30)

    t = threading.Thread(target=long_read)
    t.start()
    try:
        assert held.wait(10)
        got: list[int] = []
        quick = threading.Thread(target=lambda: (store.check(), got.append(store.data_version)))
        quick.start()
        quick.join(5)
        assert got == [v1]  # answered while the long read held the main connection
    finally:
        release.set()
        t.join()
    other = Store.open(db)  # another process's ingest, committed during a reading()
    with store.reading():
        before = store.data_version
        ingest_communities(other, tmp_path / "c.geojson", source="again")
        squares([("B", 600, 0, 500, "D1")]).to_file(tmp_path / "b.geojson", driver="GeoJSON")
        ingest_communities(other, tmp_path / "b.geojson")
        assert store.data_version == before == v1  # the transaction's state
    assert store.data_version > v1
    other.close()
    store.close()
