"""Real public data through the public CLI: Seoul neighbourhoods (EUC-KR dbf) and DS4C routes.

The expected zones are derived independently, by brute force with shapely on the raw files.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.geo.crs import metric_crs_for

AT = "2020-03-01"


def test_seoul_ds4c_cn_three_zone(shared_dir: Path, tmp_path: Path) -> None:
    seoul = shared_dir / "data/korea/boundaries/seoul_neighborhoods_2015.shp"
    route = shared_dir / "data/korea/ds4c/PatientRoute.csv"
    db = str(tmp_path / "korea.db")
    runner = CliRunner()

    r = runner.invoke(
        app,
        [
            "--db",
            db,
            "ingest",
            "communities",
            str(seoul),
            "--encoding",
            "cp949",
            "--columns",
            "community_id=EMD_CD,name=EMD_KOR_NM",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "467" in r.stdout  # rows read and accepted
    r = runner.invoke(
        app,
        [
            "--db",
            db,
            "ingest",
            "cases",
            str(route),
            "--role",
            "frequent_activity",
            "--columns",
            "case_id=patient_id,reported=date,lat=latitude,lon=longitude,type=",
        ],
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "zones.geojson"
    r = runner.invoke(
        app, ["--db", db, "zones", "--at", AT, "--policy", "cn-three-zone", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    got: dict[str, set[str]] = {}
    for f in fc["features"]:
        got.setdefault(f["properties"]["level"], set()).update(f["properties"]["community_ids"])

    # brute force on the raw files
    hoods = gpd.read_file(seoul, encoding="cp949").to_crs(4326)
    assert "대방동" in set(hoods["EMD_KOR_NM"])  # decoded, not mojibake
    ids = hoods["EMD_CD"].astype(str).to_numpy()
    routes = pd.read_csv(route, dtype=str)
    dates = pd.to_datetime(routes["date"])
    window = (dates >= pd.Timestamp(AT) - pd.Timedelta(days=13)) & (dates <= pd.Timestamp(AT))
    pts = shapely.points(
        routes.loc[window, "longitude"].astype(float), routes.loc[window, "latitude"].astype(float)
    )
    sealed = {ids[i] for i, g in enumerate(hoods.geometry) if shapely.intersects(g, pts).any()}
    metric = hoods.geometry.to_crs(metric_crs_for(hoods)).to_numpy()
    sealed_idx = [i for i in range(len(ids)) if ids[i] in sealed]
    controlled = {
        ids[i]
        for i in range(len(ids))
        if ids[i] not in sealed and any(metric[i].distance(metric[j]) <= 1000 for j in sealed_idx)
    }
    assert len(sealed) > 10 and len(controlled) > 10
    assert got.get("sealed", set()) == sealed
    assert got.get("controlled", set()) == controlled
    # the Seoul file has no district column: no precaution zone can be drawn
    assert "precaution" not in got
    n_sealed = len(sealed)
    print(f"Seoul {AT}: {n_sealed} sealed, {len(controlled)} controlled")
    # a sealed neighbourhood answers sealed at a point inside it
    inside = hoods.geometry[np.flatnonzero(ids == sorted(sealed)[0])[0]].representative_point()
    r = runner.invoke(app, ["--db", db, "status", str(inside.y), str(inside.x), "--at", AT])
    assert json.loads(r.stdout)["level"] == "sealed"
