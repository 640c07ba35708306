"""The public CLI end to end: sample -> ingest -> zones -> status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.api.store import Store

runner = CliRunner()
END = "2024-03-31"


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("city")
    code, stdout, _ = run(
        "sample",
        "--out",
        str(out),
        "--communities",
        "300",
        "--cases",
        "600",
        "--days",
        "40",
        "--end",
        END,
        "--seed",
        "3",
    )
    assert code == 0, stdout
    assert "300 communities" in stdout
    return out


def test_sample_ingest_zones_status(city: Path, tmp_path: Path, store_url: str) -> None:
    db = store_url  # the same commands on SQLite and on PostgreSQL + PostGIS
    code, stdout, _ = run("--db", db, "ingest", "communities", str(city / "communities.geojson"))
    assert code == 0, stdout
    code, stdout, _ = run("--db", db, "ingest", "cases", str(city / "cases.csv"))
    assert code == 0, stdout
    n_loc = Store.open(db).counts()["case_locations"]
    # the same file again adds nothing
    code, stdout, _ = run("--db", db, "ingest", "cases", str(city / "cases.csv"))
    assert code == 0
    assert Store.open(db).counts()["case_locations"] == n_loc
    assert "already stored" in stdout

    out = tmp_path / "zones.geojson"
    code, _, stderr = run("--db", db, "zones", "--at", END, "--out", str(out))
    assert code == 0, stderr
    fc = json.loads(out.read_text())
    sealed = [f for f in fc["features"] if f["properties"]["level"] == "sealed"]
    assert sealed
    assert all(f["properties"]["cells"] for f in fc["features"])  # files keep the zones' cells
    pt = shapely.geometry.shape(sealed[0]["geometry"]).representative_point()
    code, stdout, _ = run("--db", db, "status", str(pt.y), str(pt.x), "--at", END)
    assert code == 0
    s = json.loads(stdout)
    assert s["level"] == "sealed" and s["zone_id"] == sealed[0]["id"]
    # zones to stdout, one level
    code, stdout, _ = run("--db", db, "zones", "--at", END, "--level", "precaution")
    assert code == 0
    assert {f["properties"]["level"] for f in json.loads(stdout)["features"]} <= {"precaution"}


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    db = "postgresql://riskmap:secret@127.0.0.1:1/riskmap"
    code, stdout, stderr = run("--db", db, "ingest", "cases", str(tmp_path / "x.csv"))
    assert code != 0
    assert "cannot connect to postgresql://riskmap:***@127.0.0.1:1/riskmap" in stderr
    assert "secret" not in stdout + stderr and "Traceback" not in stdout + stderr
    code, _, stderr = run("--db", "mysql://x/y", "status", "30.5", "114.3")
    assert code != 0 and "unsupported database URL scheme 'mysql'" in stderr
    # a password given as a parameter, or holding an @, is not shown either
    for db in (
        "postgresql://bob@127.0.0.1:1/db?password=s3cret",
        "postgresql://bob:s3@cret@127.0.0.1:1/db",
    ):
        code, stdout, stderr = run("--db", db, "keys", "list")
        assert code != 0 and "cannot connect" in stderr
        assert "s3cret" not in stdout + stderr and "cret" not in stdout + stderr


def test_ingest_reports_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    f = tmp_path / "cases.csv"
    f.write_text(
        "case_id,reported,type,role,lat,lon\n"
        "a,2024-03-01,confirmed,residence,30.5,114.3\n"
        "b,2024-03-01,confirmed,residence,95,114.3\n"
        ",2024-03-01,confirmed,residence,30.5,114.3\n"
        "c,03/01/2024,confirmed,residence,30.5,114.3\n"
        "d,2024-03-01,zombie,residence,30.5,114.3\n"
        "e,2024-03-01,confirmed,residence,,114.3\n"
    )
    rejects = tmp_path / "rejects.csv"
    code, stdout, stderr = run("--db", db, "ingest", "cases", str(f), "--rejects", str(rejects))
    assert code == 0, stdout + stderr
    assert Store.open(db).counts()["cases"] == 1
    lines = rejects.read_text().splitlines()
    assert lines[0] == "file,row,field,reason"
    got = [(r.split(",")[1], r.split(",")[2]) for r in lines[1:]]
    assert got == [("3", "lat"), ("4", "case_id"), ("5", "reported"), ("6", "type"), ("7", "lat")]
    assert "row 3: lat" in stderr


def test_ingest_nothing_readable_exits_non_zero(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    f = tmp_path / "bad.csv"
    f.write_text("case_id,reported,type,role,lat,lon\nx,nope,confirmed,residence,1,1\n")
    code, _, stderr = run("--db", db, "ingest", "cases", str(f))
    assert code != 0 and "no case location" in stderr
    code, _, stderr = run("--db", db, "ingest", "cases", str(tmp_path / "missing.csv"))
    assert code != 0 and "missing.csv" in stderr
    code, _, stderr = run("--db", db, "ingest", "communities", str(f))
    assert code != 0


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    code, _, stderr = run("--db", db, "zones", "--at", "yesterday")
    assert code != 0 and "YYYY-MM-DD" in stderr
    code, _, stderr = run("--db", db, "zones", "--policy", "no-such-rule")
    assert code != 0 and "unknown policy" in stderr
    code, _, stderr = run("--db", db, "status", "123", "0")
    assert code != 0


def test_policies_command(tmp_path: Path) -> None:
    code, stdout, _ = run("policies")
    assert code == 0
    for name in ("cn-2022-9th", "india-containment", "cdc-community", "cn-2020-county"):
        assert name in stdout
    code, stdout, _ = run("policies", "india-containment")
    assert code == 0 and "containment" in stdout and "28 d" in stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: x\nname: y\nsource: z\nlevels:\n  - id: a\n    label: A\n    color: '#123456'\n"
        "    extent: {kind: radius, radius_m: -5}\n    trigger: {roles: [home]}\n"
    )
    code, _, stderr = run("policies", str(bad))
    assert code != 0
    assert "key levels.0.extent.radius.radius_m: value -5" in stderr
    assert "key levels.0.trigger.roles.0: value 'home'" in stderr
    code, stdout, _ = run("policies", "hk-building")
    assert code == 0 and "15 d" in stdout
    assert "public precision: building" in stdout and "Centre for Health Protection" in stdout
    fine = tmp_path / "fine.yaml"
    fine.write_text(
        "id: x\nname: y\nsource: z\nlevels:\n  - id: cell\n    label: A\n    color: '#123456'\n"
        "    extent: {kind: cell, res: 12}\n    trigger: {roles: [residence]}\n"
    )
    code, _, stderr = run("policies", str(fine))
    assert code != 0 and "level 'cell' publishes geometry finer than a community" in stderr
    assert "public_precision" in stderr


def test_custom_rule_file_from_the_cli(city: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    run("--db", db, "ingest", "communities", str(city / "communities.geojson"))
    run("--db", db, "ingest", "cases", str(city / "cases.csv"))
    rule = tmp_path / "my-rule.yaml"
    rule.write_text(
        "id: my-rule\nname: Residences, 2 km, 10 days\nsource: a test\nlevels:\n"
        "  - id: hot\n    label: Hot\n    color: '#ff0000'\n"
        "    extent: {kind: radius, radius_m: 2000}\n"
        "    trigger: {roles: [residence]}\n    lift_after_days: 10\n"
        "public_precision: {geometry: home, source: a test}\n"
    )
    code, stdout, stderr = run("--db", db, "zones", "--at", END, "--policy", str(rule))
    assert code == 0, stderr
    fc = json.loads(stdout)
    assert fc["features"] and {f["properties"]["level"] for f in fc["features"]} == {"hot"}
    assert {f["properties"]["policy"] for f in fc["features"]} == {"my-rule"}
    pt = shapely.geometry.shape(fc["features"][0]["geometry"]).representative_point()
    code, stdout, _ = run(
        "--db", db, "status", str(pt.y), str(pt.x), "--at", END, "--policy", str(rule)
    )
    assert json.loads(stdout)["level"] == "hot"


def test_timeline_command(city: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    run("--db", db, "ingest", "communities", str(city / "communities.geojson"))
    run("--db", db, "ingest", "cases", str(city / "cases.csv"))
    code, stdout, _ = run("--db", db, "timeline", "--from", "2024-03-01", "--to", END, "--json")
    assert code == 0
    events = json.loads(stdout)
    assert events and {e["kind"] for e in events} <= {
        "created",
        "escalated",
        "stepped_down",
        "extended",
        "lifted",
    }
    code, stdout, _ = run("--db", db, "timeline", "--to", END, "--kind", "escalated")
    assert code == 0 and "escalated" in stdout and "extended" not in stdout
    code, _, stderr = run("--db", db, "timeline", "--kind", "boom")
    assert code != 0 and "boom" in stderr


def test_hospital_figures_drive_cdc_levels(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    city = tmp_path / "city"
    code, _, _ = run(
        "sample",
        "--out",
        str(city),
        "--communities",
        "300",
        "--cases",
        "600",
        "--days",
        "40",
        "--end",
        END,
        "--districts",
        "3",
        "--subdistricts",
        "6",
    )
    assert code == 0
    run("--db", db, "ingest", "communities", str(city / "communities.geojson"))
    run("--db", db, "ingest", "cases", str(city / "cases.csv"))
    code, stdout, _ = run("--db", db, "zones", "--at", END, "--policy", "cdc-community")
    before = {f["id"]: f["properties"]["level"] for f in json.loads(stdout)["features"]}
    assert set(before.values()) == {"low"}  # a few hundred cases in a city of millions
    figures = tmp_path / "hospital.csv"
    figures.write_text(
        "district,day,admissions,beds\n"
        "D01,2024-03-20,25,5\n"
        "D02,2024-03-20,12,\n"
        "D03,2024-03-20,abc,5\n"
    )
    code, stdout, stderr = run(
        "--db",
        db,
        "ingest",
        "metrics",
        str(figures),
        "--columns",
        "unit_id=district,date=day,admissions_per_100k=admissions,beds_pct=beds",
    )
    assert code == 0, stderr
    assert "row 4: admissions_per_100k" in stderr
    code, stdout, _ = run("--db", db, "zones", "--at", END, "--policy", "cdc-community")
    after = {f["id"]: f["properties"]["level"] for f in json.loads(stdout)["features"]}
    assert after["high-D01"] == "high" and after["medium-D02"] == "medium"
    assert "low-D03" in after
    code, stdout, _ = run("--db", db, "zones", "--at", "2024-03-19", "--policy", "cdc-community")
    assert {f["properties"]["level"] for f in json.loads(stdout)["features"]} == {"low"}


def test_ingest_units(city: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    for name in ("districts.geojson", "subdistricts.parquet"):
        code, stdout, stderr = run("--db", db, "ingest", "units", str(city / name))
        assert code == 0, stdout + stderr
    units = Store.open(db).units()
    assert set(units["level"]) == {"district", "subdistrict"}
    assert units["name"].notna().all() and units["population"].notna().all()
    bad = tmp_path / "u.csv"
    bad.write_text("unit_id,name\nX1,Somewhere\n")
    code, _, stderr = run("--db", db, "ingest", "units", str(bad))
    assert code != 0 and "pass --level" in stderr
    code, stdout, stderr = run("--db", db, "ingest", "units", str(bad), "--level", "district")
    assert code == 0, stdout + stderr
    code, _, stderr = run("--db", db, "ingest", "units", str(bad), "--level", "county")
    assert code != 0 and "unknown unit level 'county'" in stderr


def test_date_format_option(tmp_path: Path) -> None:
    """--date-format reads day-first dates (ISO dates too) in cases and hospital figures."""
    import sqlite3

    db = str(tmp_path / "r.db")
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,reported,type,role,lat,lon\n"
        "a,25/02/2024,confirmed,residence,30.5,114.3\n"
        "b,2024-02-26,confirmed,residence,30.5,114.3\n"
        "c,02/25/2024,confirmed,residence,30.5,114.3\n"
    )
    rejects = tmp_path / "rejects.csv"
    code, stdout, stderr = run(
        "--db", db, "ingest", "cases", str(cases), "--date-format", "%d/%m/%Y",
        "--rejects", str(rejects),
    )  # fmt: skip
    assert code == 0, stdout + stderr
    with sqlite3.connect(db) as conn:
        got = dict(conn.execute("SELECT case_id, reported FROM cases").fetchall())
    assert got == {"a": "2024-02-25", "b": "2024-02-26"}
    assert "expected %d/%m/%Y or YYYY-MM-DD" in rejects.read_text()
    figures = tmp_path / "m.csv"
    figures.write_text("unit_id,date,admissions_per_100k,beds_pct\nD1,03/01/2024,4.5,\n")
    code, stdout, stderr = run(
        "--db", db, "ingest", "metrics", str(figures), "--date-format", "%m/%d/%Y"
    )
    assert code == 0, stdout + stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT unit_id, date FROM unit_metrics").fetchall() == [
            ("D1", "2024-03-01")
        ]
    # a pattern that names no day is refused before reading, in one line
    code, _, stderr = run("--db", db, "ingest", "cases", str(cases), "--date-format", "%H:%M")
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "does not name one day" in lines[0]
