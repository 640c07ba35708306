"""Probable cases (authorities list them): read, stored, selected by a rule's case type filter,
counted by case type."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.api.service import RiskService
from riskmap.api.store import Store

runner = CliRunner()
AT = "2024-03-02"


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def square(cid: str, x: float) -> dict[str, object]:
    ring = [[x, 30.0], [x + 0.01, 30.0], [x + 0.01, 30.01], [x, 30.01], [x, 30.0]]
    return {
        "type": "Feature",
        "properties": {"community_id": cid, "population": 1000},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


RULE = """
id: probable-too
name: Confirmed and probable cases seal their community
source: a test
levels:
  - id: sealed
    label: Sealed
    color: '#ff0000'
    extent: {kind: community}
    trigger: {case_types: [%s], roles: [residence]}
    lift_after_days: 14
"""


def test_probable_cases_end_to_end(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    communities = tmp_path / "c.geojson"
    communities.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [square("a", 114.0), square("b", 114.1)]}
        )
    )
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,reported,type,role,lat,lon\n"
        "k1,2024-03-01,confirmed,residence,30.0051,114.0052\n"
        "k2,2024-03-01,Probable,residence,30.0052,114.1051\n"
        "k3,2024-03-01,probable,residence,30.0053,114.1053\n"
    )
    assert run("--db", db, "ingest", "communities", str(communities))[0] == 0
    code, stdout, stderr = run("--db", db, "ingest", "cases", str(cases))
    assert code == 0 and "rejected" in stdout, stderr
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT case_id, type FROM cases").fetchall())
    assert stored == {"k1": "confirmed", "k2": "probable", "k3": "probable"}

    def sealed(types: str) -> set[str]:
        rule = tmp_path / f"rule-{types.replace(', ', '-')}.yaml"
        rule.write_text(RULE % types)
        code, out, err = run("--db", db, "zones", "--at", AT, "--policy", str(rule))
        assert code == 0, err
        return {c for f in json.loads(out)["features"] for c in f["properties"]["community_ids"]}

    # a rule's case type filter selects probable cases, or leaves them out
    assert sealed("confirmed, probable") == {"a", "b"}
    assert sealed("confirmed") == {"a"}
    assert sealed("probable") == {"b"}

    # counted by case type
    service = RiskService(Store.open(db))
    day = dt.date.fromisoformat("2024-03-01")
    for case_type, want in (("probable", {"a": 0, "b": 2}), ("confirmed", {"a": 1, "b": 0})):
        table, _ = service.case_counts("community", day, day, case_type)
        assert dict(zip(table.table["unit_id"], table.table["cases"], strict=True)) == want
        assert table.total == sum(want.values())
