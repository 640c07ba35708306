"""The reference of the HTTP status benchmark: a minimal FastAPI + psycopg pool + PostGIS service
answering the same look-up as riskmap's ``GET /v1/status``.

It holds riskmap's zones and communities of one city, rule and date (as riskmap answers them:
``load_from_riskmap`` reads them from a running riskmap server's ``/v1/zones`` and
``/v1/communities``, so anonymous callers of both services see the same public zones) in two
PostGIS tables with GiST indexes, and answers a place with one SQL statement: the highest-ranked
zone containing the point (``ST_Intersects``: points on a boundary count, as in riskmap; ties:
the zone listed first, as riskmap's index) and the community containing it, with the same
fields as riskmap's answer. ``POST /status/batch`` answers many points with one set join.

    python -m bench.reference_api --dsn dbname=riskmap_bench --port 8100 --workers 2

serves it with uvicorn (the same worker count as riskmap's in the benchmark). Tables:
``ref_zones``, ``ref_communities`` and ``ref_meta`` (rule, date, data version, level
labels and colours) in the database of ``--dsn``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response

# the service itself imports nothing of riskmap (its start-up is that of a minimal service):
# labels, colours and the name of "no zone" are stored with the tables (``ref_meta``)
try:  # orjson (the bench extra) when installed: the encoding a lean service would use
    import orjson

    _dumps, _loads, _JSONError = orjson.dumps, orjson.loads, orjson.JSONDecodeError
except ImportError:  # the test extra alone (tests/test_bench_smoke.py)

    def _dumps(doc: Any) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()

    _loads, _JSONError = json.loads, json.JSONDecodeError  # type: ignore[assignment]

DSN_ENV = "RISKMAP_REFAPI_DSN"
POOL_ENV = "RISKMAP_REFAPI_POOL"
MAX_BATCH = 100_000
PAGE = 5_000  # features per page read from riskmap (its RISKMAP_MAX_ITEMS is larger)
#: how long the loader honours 503 + Retry-After of a server still computing its layers
BUSY_WAIT_S = 900.0

LOOKUP = """
SELECT z.level, z.zone_id, z.start, z.expected_lift,
       c.community_id, c.name, c.level, c.since, c.expected_lift
FROM (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p) q
LEFT JOIN LATERAL (
    SELECT level, zone_id, start, expected_lift FROM ref_zones
    WHERE ST_Intersects(geom, q.p) ORDER BY rank DESC, ord LIMIT 1
) z ON true
LEFT JOIN LATERAL (
    SELECT community_id, name, level, since, expected_lift FROM ref_communities
    WHERE ST_Intersects(geom, q.p) ORDER BY ord LIMIT 1
) c ON true
"""

BATCH = """
SELECT q.i, z.level, z.zone_id, z.start, z.expected_lift,
       c.community_id, c.level, c.since, c.expected_lift
FROM (
    SELECT i, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS p
    FROM unnest(%(lon)s::float8[], %(lat)s::float8[]) WITH ORDINALITY AS t(lon, lat, i)
) q
LEFT JOIN LATERAL (
    SELECT level, zone_id, start, expected_lift FROM ref_zones
    WHERE ST_Intersects(geom, q.p) ORDER BY rank DESC, ord LIMIT 1
) z ON true
LEFT JOIN LATERAL (
    SELECT community_id, level, since, expected_lift FROM ref_communities
    WHERE ST_Intersects(geom, q.p) ORDER BY ord LIMIT 1
) c ON true
ORDER BY q.i
"""


# -- loading -------------------------------------------------------------------------------


def load(
    conn: Any,
    zones: dict[str, Any],
    communities: dict[str, Any],
    data_version: int,
    data_through: str | None = None,
) -> dict[str, Any]:
    """(Re)create the tables from riskmap's zones and communities GeoJSON (as ``GET /v1/zones``
    and ``GET /v1/communities`` answer them); answers the meta row (rule, date, version)."""
    import shapely

    from riskmap.geo.policy import NONE_LABEL, NONE_LEVEL, load_policy

    feats = zones["features"]
    cfeats = communities["features"]
    props = feats[0]["properties"] if feats else cfeats[0]["properties"]
    policy = load_policy(props["policy"])
    meta = {
        "policy": policy.id,
        "at": props["at"],
        "data_version": data_version,
        "data_through": data_through,
        "none": NONE_LEVEL,
        "label": {x.id: x.label for x in policy.levels} | {NONE_LEVEL: NONE_LABEL},
        "color": {x.id: x.color for x in policy.levels} | {NONE_LEVEL: policy.none_color},
    }
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    cur.execute("DROP TABLE IF EXISTS ref_zones, ref_communities, ref_meta")
    cur.execute(
        "CREATE TABLE ref_zones (zone_id text PRIMARY KEY, ord int NOT NULL, level text NOT NULL,"
        " rank int NOT NULL, label text, color text, start date, expected_lift date,"
        " geom geometry(Geometry, 4326) NOT NULL)"
    )
    cur.execute(
        "CREATE TABLE ref_communities (community_id text PRIMARY KEY, ord int NOT NULL,"
        " name text, level text, since date, expected_lift date,"
        " geom geometry(Geometry, 4326) NOT NULL)"
    )
    cur.execute("CREATE TABLE ref_meta (doc jsonb NOT NULL)")

    def wkb(f: dict[str, Any]) -> str:
        return str(shapely.to_wkb(shapely.geometry.shape(f["geometry"]), hex=True))

    with cur.copy(
        "COPY ref_zones (zone_id, ord, level, rank, label, color, start, expected_lift, geom)"
        " FROM STDIN"
    ) as copy:
        for i, f in enumerate(feats):
            p = f["properties"]
            copy.write_row(
                (
                    p.get("id", f.get("id")),
                    i,
                    p["level"],
                    policy.rank(p["level"]),
                    p.get("label"),
                    p.get("color"),
                    p.get("start"),
                    p.get("expected_lift"),
                    f"SRID=4326;{wkb(f)}",
                )
            )
    with cur.copy(
        "COPY ref_communities (community_id, ord, name, level, since, expected_lift, geom)"
        " FROM STDIN"
    ) as copy:
        for i, f in enumerate(cfeats):
            p = f["properties"]
            copy.write_row(
                (
                    p.get("id", f.get("id")),
                    i,
                    p.get("name"),
                    p.get("level"),
                    p.get("since"),
                    p.get("expected_lift"),
                    f"SRID=4326;{wkb(f)}",
                )
            )
    cur.execute("INSERT INTO ref_meta (doc) VALUES (%s)", (json.dumps(meta),))
    cur.execute("CREATE INDEX ON ref_zones USING gist (geom)")
    cur.execute("CREATE INDEX ON ref_communities USING gist (geom)")
    cur.execute("ANALYZE ref_zones")
    cur.execute("ANALYZE ref_communities")
    return meta


def load_from_riskmap(conn: Any, base_url: str, at: str | None = None) -> dict[str, Any]:
    """Load the tables from a running riskmap server (its public zones and communities of the
    service's rule, ``at`` or today)."""
    import httpx

    q = {"at": at} if at else {}

    def layer(path: str) -> tuple[dict[str, Any], httpx.Response]:
        """Every feature of a layer, page by page (a large city's whole layer in one answer
        could pass the server's request time limit)."""
        feats: list[dict[str, Any]] = []
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            r = client.get(path, params=q | {"limit": PAGE, "offset": len(feats)})
            if r.status_code == 503 and time.monotonic() < deadline:
                # a worker still computing (a fresh server): as a client should, after
                # Retry-After
                wait = float(r.headers.get("retry-after") or 1)
                print(f"{path}: 503 ({r.text[:200]}), again in {wait:g} s", flush=True)
                time.sleep(min(max(wait, 0.5), 30))
                continue
            r.raise_for_status()
            doc = r.json()
            feats += doc["features"]
            if "numberMatched" not in doc or len(feats) >= doc["numberMatched"]:
                return {"type": "FeatureCollection", "features": feats}, r

    with httpx.Client(base_url=base_url, timeout=600) as client:
        zones, z = layer("/v1/zones")
        communities, _ = layer("/v1/communities")
        h = client.get("/healthz").json()
        s = client.get("/v1/status", params={"lat": 0, "lon": 0, **q})
        through = s.json().get("data_through") if s.status_code == 200 else None
    version = int(z.headers.get("x-data-version") or h.get("data_version") or 0)
    return load(conn, zones, communities, version, through)


# -- answers -------------------------------------------------------------------------------


def _iso(v: Any) -> str | None:
    return None if v is None else v.isoformat()


def answer(row: Sequence[Any], meta: dict[str, Any]) -> dict[str, Any]:
    """riskmap's status answer from one row of ``LOOKUP``."""
    z_level, zone_id, z_start, z_lift, cid, cname, c_level, c_since, c_lift = row
    level = z_level or meta["none"]
    if z_level is None:
        since = lift = None
    elif cid is not None and c_level == z_level:
        since, lift = c_since, c_lift
    else:
        since, lift = z_start, z_lift
    return {
        "level": level,
        "label": meta["label"][level],
        "color": meta["color"][level],
        "zone_id": zone_id,
        "community": None if cid is None else {"id": cid, "name": cname},
        "covered": cid is not None,
        "since": _iso(since),
        "expected_lift": _iso(lift),
        "policy": meta["policy"],
        "at": meta["at"],
        "data_version": meta["data_version"],
        "data_through": meta.get("data_through"),
    }


def read_meta(conn: Any) -> dict[str, Any]:
    doc = conn.execute("SELECT doc FROM ref_meta").fetchone()[0]
    return doc if isinstance(doc, dict) else json.loads(doc)


def lookup(conn: Any, lon: float, lat: float, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer for one place (a synchronous psycopg connection; tests use it)."""
    meta = meta or read_meta(conn)
    row = conn.execute(LOOKUP, {"lon": lon, "lat": lat}).fetchone()
    return answer(row, meta)


# -- the service ---------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    from psycopg_pool import AsyncConnectionPool

    size = int(os.environ.get(POOL_ENV, "8"))
    pool = AsyncConnectionPool(
        os.environ.get(DSN_ENV, "dbname=riskmap_bench"),
        min_size=size,
        max_size=size,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open(wait=True)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT doc FROM ref_meta")
        doc = (await cur.fetchone())[0]  # type: ignore[index]
    app.state.pool = pool
    app.state.meta = doc if isinstance(doc, dict) else json.loads(doc)
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(
    title="riskmap benchmark reference (FastAPI + psycopg pool + PostGIS)", lifespan=lifespan
)


def _json(doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(doc), media_type="application/json", headers=headers)


@app.get("/healthz")
async def healthz(request: Request) -> Response:
    return _json({"status": "ok", "data_version": request.app.state.meta["data_version"]})


@app.get("/status")
async def status(
    request: Request,
    lat: float = Query(ge=-90, le=90),
    lon: float = Query(ge=-180, le=180),
) -> Response:
    meta = request.app.state.meta
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(LOOKUP, {"lon": lon, "lat": lat})
        row = await cur.fetchone()
    return _json(answer(row, meta), {"X-Data-Version": str(meta["data_version"])})


@app.post("/status/batch")
async def status_batch(request: Request) -> Response:
    """``{"points": [{"lat": ..., "lon": ...}, ...]}`` (at most 100,000), answered in order."""
    try:
        pts = _loads(await request.body())["points"]
        lon = [float(p["lon"]) for p in pts]
        lat = [float(p["lat"]) for p in pts]
    except (_JSONError, KeyError, TypeError, ValueError) as e:
        msg = f'body: expected {{"points": [{{"lat": ..., "lon": ...}}, ...]}} ({e})'
        raise HTTPException(422, msg) from None
    if len(pts) > MAX_BATCH:
        raise HTTPException(422, f"points: at most {MAX_BATCH:,}")
    meta = request.app.state.meta
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(BATCH, {"lon": lon, "lat": lat})
        rows = await cur.fetchall()
    results = []
    for _i, z_level, zone_id, z_start, z_lift, cid, c_level, c_since, c_lift in rows:
        if z_level is None:
            since = lift = None
        elif cid is not None and c_level == z_level:
            since, lift = c_since, c_lift
        else:
            since, lift = z_start, z_lift
        results.append(
            {
                "level": z_level or meta["none"],
                "zone_id": zone_id,
                "community_id": cid,
                "covered": cid is not None,
                "since": _iso(since),
                "expected_lift": _iso(lift),
            }
        )
    doc = {k: meta[k] for k in ("policy", "at", "data_version", "data_through")}
    return _json(doc | {"results": results})


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get(DSN_ENV, "dbname=riskmap_bench"))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--pool", type=int, default=8, help="connections per worker")
    args = ap.parse_args()
    os.environ[DSN_ENV] = args.dsn
    os.environ[POOL_ENV] = str(args.pool)
    uvicorn.run(
        "bench.reference_api:app",
        host=args.host,
        port=args.port,
        workers=args.workers if args.workers > 1 else None,
        log_level="info",  # as `riskmap serve` (uvicorn's access log included)
    )


if __name__ == "__main__":
    main()
