"""CLI habits (issue 9 item 9): light import, negative coordinates, no store created by a read,
every reject and warning in --report, effective values of a rule."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskmap.api.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
# modules `riskmap --help` must not load: they belong inside the commands that need them
HEAVY = (
    "numpy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pyogrio",
    "h3",
    "scipy",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic_settings",
    "yaml",
    "rich.console",
    "typer.rich_utils",
    "riskmap.geo.zones",
    "riskmap.geo.io",
    "riskmap.geo.policy",
    "riskmap.api.store",
    "riskmap.api.service",
    "riskmap.api.settings",
)


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "import riskmap.api.cli\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(res.stdout) == []


def test_help_loads_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "sys.argv = ['riskmap', '--help']\n"
        "from riskmap.api.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"sys.stderr.write(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "ingest" in res.stdout and "status" in res.stdout
    assert json.loads(res.stderr) == []


# a 2 km square around Sydney's CBD and one case in it
SYDNEY = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"community_id": "syd", "name": "Sydney", "population": 1000},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[151.19, -33.91], [151.21, -33.91], [151.21, -33.89], [151.19, -33.89]]
                    + [[151.19, -33.91]]
                ],
            },
        }
    ],
}


def _sydney_store(tmp_path: Path) -> str:
    db = str(tmp_path / "syd.db")
    communities = tmp_path / "syd.geojson"
    communities.write_text(json.dumps(SYDNEY))
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,reported,type,role,lat,lon\nk1,2024-03-01,confirmed,residence,-33.9012,151.2034\n"
    )
    assert run("--db", db, "ingest", "communities", str(communities))[0] == 0
    assert run("--db", db, "ingest", "cases", str(cases))[0] == 0
    return db


def test_status_takes_negative_coordinates(tmp_path: Path) -> None:
    db = _sydney_store(tmp_path)
    code, stdout, stderr = run("--db", db, "status", "-33.9", "151.2", "--at", "2024-03-02")
    assert code == 0, stderr
    answer = json.loads(stdout)
    assert answer["community"]["id"] == "syd" and answer["level"] == "sealed"
    # the northern mirror of the place is in no community: the sign was kept
    code, stdout, _ = run("--db", db, "status", "33.9", "151.2", "--at", "2024-03-02")
    assert code == 0 and json.loads(stdout)["community"] is None
    # a negative longitude too, and the range is still checked
    code, stdout, _ = run("--db", db, "status", "--at", "2024-03-02", "-33.9", "-151.2")
    assert code == 0 and json.loads(stdout)["level"] == "none"
    code, _, stderr = run("--db", db, "status", "-93.9", "151.2")
    assert code != 0 and "greater than or equal to -90" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status", "30.5", "114.3"],
        ["zones"],
        ["timeline"],
        ["keys", "list"],
        ["keys", "revoke", "abc"],
    ],
)
def test_a_read_command_does_not_create_a_store(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "nowhere" / "missing.db"
    for url in (str(db), f"sqlite:///{db}"):
        code, stdout, stderr = run("--db", url, *args)
        assert code != 0
        assert f"no store at {db}" in stderr and "riskmap ingest" in stderr
        assert not db.exists() and not db.parent.exists()


def test_report_holds_every_reject_and_warning(tmp_path: Path) -> None:
    db = _sydney_store(tmp_path)
    rows = ["case_id,reported,type,role,lat,lon"]
    # 30 accepted rows given with 2 decimals (a warning each) and 25 rejected rows
    rows += [f"a{i},2024-03-01,confirmed,residence,-33.9,151.2" for i in range(30)]
    rows += [f"b{i},2024-03-01,unknown,residence,-33.9,151.2" for i in range(25)]
    f = tmp_path / "more.csv"
    f.write_text("\n".join(rows) + "\n")
    report = tmp_path / "out" / "report.csv"
    code, stdout, stderr = run("--db", db, "ingest", "cases", str(f), "--report", str(report))
    assert code == 0, stderr
    assert "more warnings" in stderr and "more rejected rows" in stderr
    with report.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert set(got[0]) == {"kind", "file", "row", "field", "message"}
    rejected = [r for r in got if r["kind"] == "rejected"]
    warned = [r for r in got if r["kind"] == "warning"]
    assert len(rejected) == 25 and {r["field"] for r in rejected} == {"type"}
    assert sorted(int(r["row"]) for r in rejected) == list(range(32, 57))
    assert all("unknown type 'unknown'" in r["message"] for r in rejected)
    # one warning per accepted row (coarse coordinates), with its row number, and the shared
    # location (a file-level warning, no row)
    coarse = [r for r in warned if "2 decimals" in r["message"]]
    assert sorted(int(r["row"]) for r in coarse) == list(range(2, 32))
    assert any(r["row"] == "" and "location of 30 cases" in r["message"] for r in warned)
    assert all(r["file"] == str(f) for r in got)
    assert "25 rejected rows and" in stdout and str(report) in stdout


def test_no_rejected_rows_written_when_none_rejected(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    f = tmp_path / "cases.csv"
    f.write_text(
        "case_id,reported,type,role,lat,lon\nk1,2024-03-01,confirmed,residence,30.51,114.31\n"
    )
    rejects = tmp_path / "rejects.csv"
    code, stdout, _ = run("--db", db, "ingest", "cases", str(f), "--rejects", str(rejects))
    assert code == 0
    assert "rows written" not in stdout and "rejected rows" not in stdout
    assert rejects.read_text().splitlines() == ["file,row,field,reason"]


def test_policies_shows_every_effective_value() -> None:
    code, stdout, _ = run("policies", "cn-three-zone")
    assert code == 0, stdout
    # defaults the preset does not write: the trigger's window, the buffer's snapping, grouping
    for text in (
        "case_types: [confirmed, asymptomatic]",
        "roles: [residence, frequent_activity]",
        "window_days: 1",
        "snap: intersects",
        "min_area_fraction: 0.5",
        "rural_distance_m: null",
        "grouping: connected",
        "colour of places in no zone: #95a5a6",
    ):
        assert text in stdout, text
    code, stdout, _ = run("policies", "hk-building")
    assert code == 0 and "res: 12" in stdout and "snap: exact" in stdout
