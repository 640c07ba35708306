"""The cn-three-zone computation written as PostGIS SQL, for a side-by-side benchmark.

Needs a PostgreSQL server with PostGIS that the current user can reach over the local socket;
``ensure_server()`` installs and starts it as ``make test`` does (``.ci/postgres``).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from riskmap.geo.zones import CommunityLayer

DB = "riskmap_bench"


def ensure_server() -> None:
    """Install and start PostgreSQL + PostGIS as the test suite does (``.ci/postgres``), then
    create the benchmark's database."""
    import psycopg

    script = Path(__file__).resolve().parents[1] / ".ci" / "postgres"
    subprocess.run(["bash", str(script)], check=True)
    with psycopg.connect("dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DB}")


def connect() -> Any:
    import psycopg

    return psycopg.connect(f"dbname={DB}", autocommit=True)


def load(conn: Any, layer: CommunityLayer, cases: pd.DataFrame) -> None:
    """Communities (lon/lat and metric geometries) and qualifying case locations."""
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    cur.execute("DROP TABLE IF EXISTS communities, locations")
    cur.execute(
        "CREATE TABLE communities (community_id text PRIMARY KEY, district_id text,"
        " geom geometry(MultiPolygon, 4326), geom_m geometry)"
    )
    cur.execute(
        "CREATE TABLE locations (case_id text, reported date, type text, role text,"
        " geom geometry(Point, 4326))"
    )
    f = layer.frame
    with cur.copy("COPY communities (community_id, district_id, geom, geom_m) FROM STDIN") as copy:
        geoms = [
            g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in layer.geoms
        ]
        wkb = shapely.to_wkb(np.array(geoms, dtype=object), hex=True, include_srid=False)
        wkb_m = shapely.to_wkb(layer.metric, hex=True)
        for cid, did, g, gm in zip(
            layer.ids, f["district_id"].astype(object), wkb, wkb_m, strict=True
        ):
            copy.write_row((cid, did, f"SRID=4326;{g}", gm))
    with cur.copy("COPY locations (case_id, reported, type, role, geom) FROM STDIN") as copy:
        for r in cases[["case_id", "reported", "type", "role", "lon", "lat"]].itertuples(
            index=False
        ):
            copy.write_row(
                (
                    r.case_id,
                    pd.Timestamp(r.reported).date(),
                    r.type,
                    r.role,
                    f"SRID=4326;POINT({r.lon} {r.lat})",
                )
            )
    cur.execute("CREATE INDEX ON communities USING gist (geom)")
    cur.execute("CREATE INDEX ON communities USING gist (geom_m)")
    cur.execute("CREATE INDEX ON locations (reported)")
    cur.execute("ANALYZE communities")
    cur.execute("ANALYZE locations")


SQL = """
WITH sealed AS (
    SELECT DISTINCT c.community_id, c.district_id, c.geom_m
    FROM locations l
    JOIN communities c ON ST_Intersects(c.geom, l.geom)
    WHERE l.reported BETWEEN %(at)s::date - 13 AND %(at)s::date
      AND l.type IN ('confirmed', 'asymptomatic')
      AND l.role IN ('residence', 'frequent_activity')
),
controlled AS (
    SELECT DISTINCT c.community_id, c.district_id
    FROM sealed s
    JOIN communities c ON ST_Intersects(c.geom_m, ST_Buffer(s.geom_m, 1000, 16))
    WHERE c.community_id NOT IN (SELECT community_id FROM sealed)
),
precaution AS (
    SELECT c.community_id, c.district_id
    FROM communities c
    WHERE c.district_id IN (SELECT district_id FROM sealed)
      AND c.community_id NOT IN (SELECT community_id FROM sealed)
      AND c.community_id NOT IN (SELECT community_id FROM controlled)
),
levels AS (
    SELECT community_id, district_id, 'sealed' AS level FROM sealed
    UNION ALL SELECT community_id, district_id, 'controlled' FROM controlled
    UNION ALL SELECT community_id, district_id, 'precaution' FROM precaution
)
SELECT l.level, l.district_id, count(*) AS communities, ST_Union(c.geom) AS geom
FROM levels l JOIN communities c USING (community_id)
GROUP BY l.level, l.district_id
"""


def run(conn: Any, at: dt.date) -> tuple[float, dict[str, int]]:
    """Seconds for the cn-three-zone zones (levels, and their union per level and district)."""
    cur = conn.cursor()
    t = time.perf_counter()
    cur.execute(SQL, {"at": at})
    rows = cur.fetchall()
    seconds = time.perf_counter() - t
    counts: dict[str, int] = {}
    for level, _district, n, _geom in rows:
        counts[level] = counts.get(level, 0) + n
    return seconds, counts
