"""The bad-input corpus: every hostile or broken input, through the CLI and over HTTP.

Each entry is a small file built here (nothing kept on disk) with what must come of it: the
rows rejected (row, field, a word of the reason), or the whole file refused with a clear
reason. Both ways in must give the same answer, never a 500 or a traceback, keep the good rows
of the same file, and store nothing else (the store is read back afterwards: no case ``nan``,
no ``['x']``, no id with a NUL byte or 100,000 characters).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskmap.api.cli import app as cli_app
from riskmap.api.ingest import ingest_communities
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from tests.helpers import REPO, running, squares

# a point inside community A of the base store (a 500 m square at the origin of the local frame)
LAT, LON = 30.5922, 114.3026
HEAD = "case_id,reported,type,role,lat,lon"
BASE_COMMUNITIES = {"A", "B"}


def row(cid: str, date: str = "2024-03-01", extra: str = "") -> str:
    return f"{cid},{date},confirmed,residence,{LAT},{LON}{extra}"


def csv_body(*rows: str, head: str = HEAD) -> bytes:
    return ("\n".join([head, *rows]) + "\n").encode()


def record(cid: object = "__omit__", **kw: object) -> dict[str, object]:
    rec: dict[str, object] = {"reported": "2024-03-01", "role": "residence", "lat": LAT, "lon": LON}
    if cid != "__omit__":
        rec["case_id"] = cid
    rec.update(kw)
    return rec


def square(x: float, size: float = 0.002) -> list[list[list[float]]]:
    return [[[x, 30.6], [x + size, 30.6], [x + size, 30.6 + size], [x, 30.6 + size], [x, 30.6]]]


def feature(cid: object, coords: object) -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": {"community_id": cid},
        "geometry": {"type": "Polygon", "coordinates": coords},
    }


def geojson(*features: dict[str, object], raw: str | None = None) -> bytes:
    text = json.dumps({"type": "FeatureCollection", "features": list(features)})
    return text.replace('"NaN"', "NaN").encode() if raw is None else raw.encode()


def circle(n: int, x: float = 114.5) -> list[list[list[float]]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.column_stack([x + 0.01 * np.cos(t), 30.6 + 0.01 * np.sin(t)]).tolist()
    return [[*ring, ring[0]]]


def lying_zip(vertices: int) -> bytes:
    """A zipped shapefile whose directory says the .shp holds 1,000 bytes (GDAL would read
    the whole polygon regardless)."""
    import struct

    data = bytearray(zipped_shapefile(vertices))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        real = z.getinfo("c.shp").file_size
    pattern, patched = struct.pack("<I", real), 0
    at = data.find(pattern)
    while at != -1:
        data[at : at + 4] = struct.pack("<I", 1000)
        patched += 1
        at = data.find(pattern, at + 4)
    assert patched == 2  # the local header and the central directory
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        assert z.getinfo("c.shp").file_size == 1000
    return bytes(data)


def zipped_shapefile(vertices: int) -> bytes:
    """A zipped shapefile of one community with that many vertices and one small good one."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        big = shapely.Polygon(circle(vertices)[0])
        gdf = gpd.GeoDataFrame(
            {"cid": ["huge", "ok"]}, geometry=[big, shapely.Polygon(square(114.6)[0])], crs=4326
        )
        gdf.to_file(tmp / "c.shp")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(tmp.iterdir()):
                z.write(f, f.name)
        return buf.getvalue()


@dataclass
class Entry:
    """One input of the corpus and what must come of it."""

    id: str
    kind: str  # cases, communities, units, metrics
    filename: str
    content_type: str
    body: Callable[[], bytes]
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # row, field, reason word
    stored: set[str] = field(default_factory=set)  # ids stored afterwards (beyond the base)
    file_error: str | None = None  # the whole file is refused with this in the reason
    settings: dict[str, object] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # CLI option -> value (HTTP: query)


CORPUS = [
    Entry(
        "json-records-without-case-id-or-null",
        "cases",
        "cases.json",
        "application/json",
        lambda: json.dumps([record("g1"), record(), record(None), record("")]).encode(),
        [(2, "case_id", "missing"), (3, "case_id", "missing"), (4, "case_id", "missing")],
        {"g1"},
    ),
    Entry(
        "json-records-with-list-object-boolean-ids",
        "cases",
        "cases.json",
        "application/json",
        lambda: json.dumps(
            [record(["x"]), record({"a": 1}), record(True), record("g1"), record(7), "text"]
        ).encode(),
        [
            (1, "case_id", "is a list"),
            (2, "case_id", "is an object"),
            (3, "case_id", "is true"),
            (6, "row", "is a string, expected an object"),
        ],
        {"g1", "7"},
    ),
    Entry(
        "ndjson-with-a-broken-line-and-a-list-date",
        "cases",
        "cases.ndjson",
        "application/x-ndjson",
        lambda: "\n".join(
            [
                json.dumps(record("g1")),
                '{"case_id": "half',
                json.dumps(record("g2", reported=["2024-03-01"])),
                json.dumps(record("g3")),
            ]
        ).encode(),
        [(2, "row", "not JSON"), (3, "reported", "is a list")],
        {"g1", "g3"},
    ),
    Entry(
        "long-ids-and-control-characters",
        "cases",
        "cases.csv",
        "text/csv",
        lambda: csv_body(
            row("x" * 100_000), row("y" * 129), row("a\x07b"), row("g1"), row("y" * 128)
        ),
        [
            (2, "case_id", "bytes long"),
            (3, "case_id", "129 characters long, more than the limit of 128"),
            (4, "case_id", "control characters"),
        ],
        {"g1", "y" * 128},
    ),
    Entry(
        "nul-bytes-reject-their-row-not-the-file",
        "cases",
        "cases.csv",
        "text/csv",
        lambda: csv_body(
            row("g1", extra=",fine"),
            row("a\x00b", extra=",fine"),
            row("g2", extra=",no\x00te"),
            head=HEAD + ",note",
        ),
        [(3, "case_id", "NUL byte"), (4, "note", "NUL byte")],
        {"g1"},
    ),
    Entry(
        "one-5-MB-field",
        "cases",
        "cases.csv",
        "text/csv",
        lambda: csv_body(
            row("g1", extra=",short"),
            row("big", extra=',"' + "z" * 5_000_000 + '"'),
            row("g2", extra=",short"),
            head=HEAD + ",note",
        ),
        [(3, "note", "5,000,000 bytes long")],
        {"g1", "g2"},
    ),
    Entry(
        "deeply-nested-json",
        "cases",
        "cases.json",
        "application/json",
        lambda: b"[" * 100_000 + b"]" * 100_000,
        file_error="nested 100000 levels deep",
    ),
    Entry(
        "deeply-nested-geojson",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: (
            b'{"type": "FeatureCollection", "features": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        ),
        file_error="nested 50001 levels deep",
    ),
    Entry(
        "far-and-impossible-dates",
        "cases",
        "cases.csv",
        "text/csv",
        lambda: csv_body(
            row("g1"),
            row("d1", "9999-12-31"),
            row("d2", "2024-02-30"),
            row("d3", "1000-01-01"),
            row("d4", "99999-01-01"),
            row("d5", "2024-13-01"),
        ),
        [
            (3, "reported", "in the future"),
            (4, "reported", "no such day"),
            (5, "reported", "impossible date"),
            (6, "reported", "unparseable"),
            (7, "reported", "no such day"),
        ],
        {"g1"},
    ),
    Entry(
        "day-first-dates-with-a-date-format",
        "cases",
        "cases.csv",
        "text/csv",
        lambda: csv_body(row("g1", "25/02/2024"), row("g2", "2024-02-26"), row("d1", "31/02/2024")),
        [(4, "reported", "expected %d/%m/%Y or YYYY-MM-DD")],
        {"g1", "g2"},
        options={"date-format": "%d/%m/%Y"},
    ),
    Entry(
        "metrics-far-dates-and-bad-unit-ids",
        "metrics",
        "m.csv",
        "text/csv",
        lambda: csv_body(
            "D1,2024-03-01,3.5,",
            "D1,9999-12-31,3.5,",
            "D1,1800-01-01,3.5,",
            ",2024-03-01,3.5,",
            "D\x002,2024-03-01,3.5,",
            "u" * 200 + ",2024-03-01,1,",
            head="unit_id,date,admissions_per_100k,beds_pct",
        ),
        [
            (3, "date", "in the future"),
            (4, "date", "impossible date 1800-01-01"),
            (5, "unit_id", "missing"),
            (6, "unit_id", "NUL byte"),
            (7, "unit_id", "characters long"),
        ],
        {"D1"},
    ),
    Entry(
        "units-bad-ids",
        "units",
        "u.csv",
        "text/csv",
        lambda: csv_body(
            "D1,North,100",
            "D\x012,West,100",
            "d" * 500 + ",Long,100",
            ",Nameless,100",
            head="district_id,name,population",
        ),
        [
            (3, "unit_id", "control characters"),
            (4, "unit_id", "characters long"),
            (5, "unit_id", "missing"),
        ],
        {"D1"},
    ),
    Entry(
        "community-ids-list-null-boolean",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: geojson(
            feature("ok", square(114.5)),
            feature(["x"], square(114.51)),
            feature(None, square(114.52)),
            feature(True, square(114.53)),
        ),
        [
            (2, "community_id", "is a list"),
            (3, "community_id", "missing"),
            (4, "community_id", "is true"),
        ],
        {"ok"},
    ),
    Entry(
        "polygon-with-a-nan-vertex",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: geojson(
            feature("ok", square(114.5)),
            feature("nan", [[[114.6, 30.6], [114.61, 30.6], ["NaN", 30.61], [114.6, 30.6]]]),
        ),
        [(2, "geometry", "not a finite number")],
        {"ok"},
    ),
    Entry(
        "whole-world-360-degrees-and-too-large-polygons",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: geojson(
            feature("world", [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]),
            feature("band", [[[-180, 0], [180, 0], [180, 1], [-180, 1], [-180, 0]]]),
            feature("dateline", [[[-179.9, 0], [179.9, 0], [179.9, 1], [-179.9, 1], [-179.9, 0]]]),
            feature("big", [[[100, 0], [105, 0], [105, 5], [100, 5], [100, 0]]]),
            feature("ok", square(114.5)),
        ),
        [
            (1, "geometry", "spans 360.0 degrees of longitude"),
            (2, "geometry", "covers the whole world"),
            (3, "geometry", "crosses the antimeridian"),
            (4, "geometry", "more than the limit of 50,000 km²"),
        ],
        {"ok"},
    ),
    Entry(
        "large-polygon-allowed-by-the-operator",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: geojson(
            feature("big", [[[100, 0], [100.2, 0], [100.2, 0.2], [100, 0.2], [100, 0]]])
        ),
        [],
        {"big"},
        settings={"allow_large_polygons": True, "max_community_area_km2": 100.0},
    ),
    Entry(
        "too-many-vertices-rejects-the-row",
        "communities",
        "c.geojson",
        "application/geo+json",
        lambda: geojson(feature("huge", circle(2_000)), feature("ok", square(114.6))),
        [(1, "geometry", "2,001 vertices, more than the limit of 1,000")],
        {"ok"},
        settings={"max_vertices": 1000},
    ),
    Entry(
        "zip-bomb-refused-before-reading",
        "communities",
        "c.zip",
        "application/zip",
        lambda: zipped_shapefile(200_000),
        file_error="more than the limit of 1 MB",
        settings={"max_unpacked_mb": 1.0},
        options={"columns": "community_id=cid"},
    ),
    Entry(
        "zip-lying-about-its-unpacked-size",
        "communities",
        "c.zip",
        "application/zip",
        lambda: lying_zip(200_000),
        file_error="not a readable zip archive (Bad CRC-32 for file 'c.shp')",
        options={"columns": "community_id=cid"},
    ),
    Entry(
        "zipped-shapefile-vertex-limit",
        "communities",
        "c.zip",
        "application/zip",
        lambda: zipped_shapefile(5_000),
        [(1, "geometry", "5,001 vertices, more than the limit of 1,000")],
        {"ok"},
        settings={"max_vertices": 1000},
        options={"columns": "community_id=cid"},
    ),
]


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store holding communities A and B (cases in A are located)."""
    d = tmp_path_factory.mktemp("base")
    squares([("A", 0, 0, 500, "D1"), ("B", 500, 0, 500, "D1")]).to_file(
        d / "c.geojson", driver="GeoJSON"
    )
    store = Store.open(d / "base.db")
    ingest_communities(store, d / "c.geojson")
    store.close()
    return d / "base.db"


def stored_ids(db: Path, kind: str) -> set[str]:
    table, col = {
        "cases": ("cases", "case_id"),
        "communities": ("communities", "community_id"),
        "units": ("units", "unit_id"),
        "metrics": ("unit_metrics", "unit_id"),
    }[kind]
    with sqlite3.connect(db) as conn:
        ids = {r[0] for r in conn.execute(f"SELECT {col} FROM {table}")}
        case_locations = {r[0] for r in conn.execute("SELECT case_id FROM case_locations")}
    if kind == "cases":
        assert case_locations == ids
    if kind == "communities":
        ids -= BASE_COMMUNITIES
    for i in ids:  # never junk, whatever the entry
        assert isinstance(i, str) and i not in ("nan", "None", "") and "\x00" not in i
        assert not i.startswith(("[", "{")) and len(i) <= 128
    return ids


def check_outcome(entry: Entry, rejects: list[tuple[int, str, str]], db: Path) -> None:
    got = sorted((r, f) for r, f, _ in rejects)
    assert got == sorted((r, f) for r, f, _ in entry.rejects), rejects
    for r, f, word in entry.rejects:
        reason = next(why for rr, ff, why in rejects if (rr, ff) == (r, f))
        assert word in reason, (r, f, reason)
    assert stored_ids(db, entry.kind) == entry.stored


@pytest.mark.parametrize("entry", CORPUS, ids=[e.id for e in CORPUS])
def test_corpus_through_the_cli(
    entry: Entry, base_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.db"
    shutil.copy(base_db, db)
    for k, v in entry.settings.items():
        monkeypatch.setenv(f"RISKMAP_{k.upper()}", str(v))
    f = tmp_path / entry.filename
    f.write_bytes(entry.body())
    rejects_csv = tmp_path / "rejects.csv"
    args = ["--db", str(db), "ingest", entry.kind, str(f), "--rejects", str(rejects_csv)]
    for opt, value in entry.options.items():
        args += [f"--{opt}", value]
    r = CliRunner().invoke(cli_app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    if entry.file_error is not None:
        assert r.exit_code == 1
        # the progress line, then one error line
        lines = [ln for ln in r.stderr.splitlines() if ln.strip().startswith("error:")]
        assert len(lines) == 1, r.stderr
        assert entry.file_error in lines[0] and entry.filename in lines[0]
        assert stored_ids(db, entry.kind) == set()
        return
    assert r.exit_code == (0 if entry.stored else 1), r.output
    with rejects_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    check_outcome(entry, [(int(x["row"]), x["field"], x["reason"]) for x in rows], db)


@pytest.fixture
def http(base_db: Path, tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, str, Path]]]:
    """A factory of clients on a fresh copy of the base store, with an officer's key."""

    def make(**settings: object) -> tuple[TestClient, str, Path]:
        db = tmp_path / "r.db"
        shutil.copy(base_db, db)
        store = Store.open(db)
        key = store.create_key("admin", "corpus")[1]
        store.close()
        conf = Settings(database_url=f"sqlite:///{db}", rate_limit_per_minute=0, **settings)
        client = stack.enter_context(running(conf, raise_server_exceptions=False))
        return client, key, db

    with contextlib.ExitStack() as stack:
        yield make


def no_server_paths(text: str, db: Path) -> None:
    assert "/tmp" not in text and "riskmap-ingest" not in text and str(db.parent) not in text
    assert "Traceback" not in text


@pytest.mark.parametrize("entry", CORPUS, ids=[e.id for e in CORPUS])
def test_corpus_over_http(entry: Entry, http: Callable[..., tuple[TestClient, str, Path]]) -> None:
    client, key, db = http(**entry.settings)
    params = {opt.replace("-", "_"): value for opt, value in entry.options.items()}
    r = client.post(
        f"/v1/{entry.kind}",
        content=entry.body(),
        params=params,
        headers={"Authorization": f"Bearer {key}", "Content-Type": entry.content_type},
    )
    no_server_paths(r.text, db)
    if entry.file_error is not None:
        assert r.status_code == 422, r.text
        msg = r.json()["detail"][0]["msg"]
        assert entry.file_error in msg and msg.startswith(f"upload.{entry.filename.split('.')[-1]}")
        assert stored_ids(db, entry.kind) == set()
        return
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["accepted"] >= len(entry.stored)
    check_outcome(entry, [(x["row"], x["field"], x["reason"]) for x in rep["rejects"]], db)
    kept = client.get(f"/v1/ingest/{rep['batch_id']}", headers={"Authorization": f"Bearer {key}"})
    assert kept.status_code == 200 and kept.json()["rejected"] == len(entry.rejects)


def test_http_only_inputs(http: Callable[..., tuple[TestClient, str, Path]]) -> None:
    """Inputs that exist only over HTTP: path and query parameters, JSON bodies of other routes."""
    client, key, db = http()
    auth = {"Authorization": f"Bearer {key}"}
    for batch_id in ("99999999999999999999999", "9223372036854775808", "-1", "0"):
        r = client.get(f"/v1/ingest/{batch_id}", headers=auth)
        assert r.status_code == 422, (batch_id, r.text)
    assert client.get("/v1/ingest/9223372036854775807", headers=auth).status_code == 404
    # far dates in queries: an answer or a 422, never a 500
    for path in (
        "/v1/status/history?lat=30.5922&lon=114.3026&to=9999-12-31",
        "/v1/status/history?lat=30.5922&lon=114.3026&from=9999-12-01&to=9999-12-31",
        "/v1/zones/history?to=9999-12-31",
        "/v1/zones?at=9999-12-31",
        "/v1/status?lat=30.5922&lon=114.3026&at=9999-12-31",
    ):
        r = client.get(path)
        assert r.status_code in (200, 422), (path, r.text)
    # a deeply nested body on a route whose body FastAPI parses itself
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/v1/keys", content=deep, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text
    # options checked as the CLI checks them, naming the parameter
    csv_h = {**auth, "Content-Type": "text/csv"}
    for params, loc in (
        ({"columns": "lat"}, "columns"),
        ({"columns": "colour=x"}, "columns"),
        ({"role": "pilot"}, "role"),
        ({"date_format": "%H:%M"}, "date_format"),
        ({"date_format": "%d%d%m%Y"}, "date_format"),  # strptime cannot even compile it
        ({"date_format": "%d" * 100}, "date_format"),
    ):
        r = client.post("/v1/cases", content=csv_body(row("g1")), params=params, headers=csv_h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", loc], r.text
    for encoding in ("klingon", "utf-8\x00"):
        r = client.post(
            "/v1/communities",
            content=b"x",
            params={"encoding": encoding},
            headers={**auth, "Content-Type": "application/zip"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "encoding"]
    # unreadable bodies name the upload, never the temporary file on the server
    for ctype, body in (
        ("application/geo+json", b'{"type": "FeatureCollection", "features": [}'),
        ("application/zip", b"PK\x03\x04 not really"),
        ("application/vnd.apache.parquet", b"PAR1 not really"),
        ("application/geopackage+sqlite3", b"SQLite format 3\x00 not really"),
    ):
        r = client.post("/v1/communities", content=body, headers={**auth, "Content-Type": ctype})
        assert r.status_code == 422, r.text
        no_server_paths(r.text, db)
        assert "upload." in r.json()["detail"][0]["msg"]
    assert stored_ids(db, "cases") == set() and stored_ids(db, "communities") == set()


def damage(db: Path) -> None:
    """Overwrite the last 16 KiB of a real store file with garbage (a damaged tail)."""
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size - 16384)
        f.write(np.random.default_rng(0).bytes(16384))


def test_damaged_store(base_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(base_db, db)
    damage(db)
    # HTTP: health fails, every route that reads the store answers a clear 503
    conf = Settings(database_url=f"sqlite:///{db}", rate_limit_per_minute=0)
    with running(conf, raise_server_exceptions=False) as client:
        spec = client.get("/openapi.json").json()
        paths = ["/healthz", "/", "/v1/status?lat=30.59&lon=114.3", "/v1/ingest/1"]
        # (GET /v1/status is asked with its place above: without one it is a 422 before any
        # store is read, as its answer needs no dependency to validate the query)
        paths += [
            p
            for p in spec["paths"]
            if "{" not in p and "get" in spec["paths"][p] and p != "/v1/status"
        ]
        for path in paths:
            r = client.get(path, headers={"Authorization": "Bearer rk_x_y"})
            assert r.status_code != 500, (path, r.text)
            # the rules and the OGC API conformance classes are not in the store
            if not path.startswith(("/v1/policies", "/conformance")):
                assert r.status_code == 503, (path, r.status_code)
                assert "the store is damaged" in r.json()["detail"], r.text
                assert str(db) not in r.text
        r = client.post("/v1/cases", content=b"x", headers={"Content-Type": "text/csv"})
        assert r.status_code == 503
    # CLI: one line, exit 1, for reads and writes
    csv_file = tmp_path / "cases.csv"
    csv_file.write_bytes(csv_body(row("g1")))
    for args in (
        ["zones", "--at", "2024-03-01"],
        ["status", "30.59", "114.3"],
        ["ingest", "cases", str(csv_file)],
        ["keys", "list"],
    ):
        r = CliRunner().invoke(cli_app, ["--db", str(db), *args])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (args, r.output)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "the store is damaged" in lines[0], (args, r.stderr)
    # the installed command, as an operator runs it
    p = subprocess.run(
        [sys.executable, "-m", "riskmap.api.cli", "--db", str(db), "zones"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "the store is damaged" in lines[0], p.stderr


@pytest.mark.parametrize("how", ["truncated", "garbage page", "not a database"])
def test_other_damage_is_detected_at_open(base_db: Path, tmp_path: Path, how: str) -> None:
    from riskmap.api.store import StoreDamagedError

    db = tmp_path / "r.db"
    shutil.copy(base_db, db)
    size = db.stat().st_size
    with db.open("r+b") as f:
        if how == "truncated":
            f.truncate(size // 2 + 100)
        elif how == "garbage page":
            f.seek(4096 * 3)
            f.write(b"\xff" * 4096)
        else:
            f.write(b"garbage!" * 16)
    with pytest.raises(StoreDamagedError, match="the store is damaged"):
        Store.open(db)


def test_damage_after_opening_fails_health(base_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    shutil.copy(base_db, db)
    conf = Settings(database_url=f"sqlite:///{db}", rate_limit_per_minute=0)
    with running(conf, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        damage(db)  # the file changes on disk: the next health check reads it again
        r = client.get("/healthz")
        assert r.status_code == 503 and "the store is damaged" in r.json()["detail"]
