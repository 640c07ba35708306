"""riskmap status --file: every point of a CSV answered in order, streamed in chunks, bad
coordinates written with their error, the same answers as single look-ups."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import riskmap.api.cli as cli
from riskmap.api.store import Store
from riskmap.geo.policy import load_policy
from tests.api.helpers import END

runner = CliRunner()


def test_a_file_of_points_is_answered_in_order(
    sample_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riskmap.api.service import RiskService

    monkeypatch.setattr(cli, "STATUS_CHUNK", 7)  # several chunks
    svc = RiskService(Store.open(sample_db))
    try:
        _, layer, _ = svc.data()
        minx, miny, maxx, maxy = layer.frame.total_bounds
        rng = np.random.default_rng(2)
        lon, lat = rng.uniform(minx, maxx, 40), rng.uniform(miny, maxy, 40)
        src = tmp_path / "points.csv"
        rows = [f"p{i},{y},{x}" for i, (x, y) in enumerate(zip(lon, lat, strict=True))]
        rows[5] = "p5,abc,114.3"
        rows[11] = "p11,30.5,200"
        src.write_text("id,lat,lon\n" + "\n".join(rows) + "\n")
        out = tmp_path / "out.csv"
        r = runner.invoke(
            cli.app,
            [
                "--db",
                str(sample_db),
                "status",
                "--file",
                str(src),
                "--out",
                str(out),
                "--at",
                END.isoformat(),
            ],
        )
        assert r.exit_code == 0, r.output
        assert "40 points under cn-three-zone" in r.stderr and "2 with bad coordinates" in r.stderr
        got = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert list(got["id"]) == [f"p{i}" for i in range(40)]
        assert got["error"].iloc[5] == "lat: 'abc' is not a number from -90 to 90"
        assert got["error"].iloc[11] == "lon: '200' is not a number from -180 to 180"
        assert got["level"].iloc[5] == "" and got["level"].iloc[11] == ""
        pol = load_policy("cn-three-zone")
        for i in range(40):
            if i in (5, 11):
                continue
            one = svc.status(lon[i], lat[i], pol, END)
            assert got["level"].iloc[i] == one["level"], i
            assert got["label"].iloc[i] == one["label"]
            assert got["zone_id"].iloc[i] == (one["zone_id"] or "")
            assert got["covered"].iloc[i] == str(one["covered"])
            assert got["error"].iloc[i] == ""
    finally:
        svc.shutdown()


def test_bad_uses_are_one_line_errors(sample_db: Path, tmp_path: Path) -> None:
    db = ["--db", str(sample_db)]
    r = runner.invoke(cli.app, [*db, "status", "--file", str(tmp_path / "none.csv")])
    assert r.exit_code == 1 and "none.csv: no such file" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("y,x\n1,2\n")
    r = runner.invoke(cli.app, [*db, "status", "--file", str(bad)])
    assert r.exit_code == 1 and "missing column(s) lat, lon" in r.stderr
    r = runner.invoke(cli.app, [*db, "status"])
    assert r.exit_code == 1 and "give LAT LON" in r.stderr
    r = runner.invoke(cli.app, [*db, "status", "30.5", "114.3", "--file", str(bad)])
    assert r.exit_code == 1 and "not both" in r.stderr


def test_standard_output(sample_db: Path, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("lat,lon\n30.59,114.30\n0,0\n")
    r = runner.invoke(
        cli.app, ["--db", str(sample_db), "status", "--file", str(src), "--at", END.isoformat()]
    )
    assert r.exit_code == 0, r.output
    got = pd.read_csv(io.StringIO(r.stdout), keep_default_na=False)
    assert list(got.columns[:3]) == ["lat", "lon", "level"] and len(got) == 2
    assert got["covered"].iloc[1] in (False, "False") and got["level"].iloc[1] == "none"
