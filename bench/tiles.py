"""Vector-tile benchmarks (``make bench``): cold and cached tile latency at z8, z11 and z14.

    python -m bench.tiles                  # the sample city (2,000 communities, ~5,000 cases)
    python -m bench.tiles --scale          # and the scale city (100,000 / 1,000,000 / 120 d)
    python -m bench.tiles --communities 20000 --cases 100000   # one city of that size

For each city and collection (zones, communities), up to ``--tiles`` tiles per zoom (all of
them if fewer, else a seeded sample); the ``tiles`` column: those holding a feature (measured) /
the tiles over the city at that zoom: *cold* renders each one with
:func:`tiles.mvt.encode_tile` from the prepared layer (no cache), *cached* serves the same
tiles from a warm :class:`tiles.mvt.TileCache` (raw, then gzip). One thread, in-process: the
HTTP layer is not included. Machines here are noisy: compare ratios within one run.

    python -m bench.tiles --http [--scale] [--workers 2] [--duration 10]
    python -m bench.tiles --http-only ...  # only the HTTP comparison

``--http`` adds the comparison over HTTP with tipg (``bench_http``): a built store of the city
served by ``riskmap serve --workers N``, its public zones (``GET /v1/zones``) copied into a
PostGIS table (``ref_zones``, GiST index; the table of ``bench/reference_api.py``) that tipg
serves under uvicorn with the same number of workers. Per zoom (8, 11, 14), up to ``--tiles``
tiles meeting a zone (a seeded sample), all asked with ``Accept-Encoding: gzip`` on one
keep-alive connection: *cold* (the first request of each tile after the server started; riskmap
has prepared the layer with one z0 tile first, tipg has read its catalog), *cached* (the same
tiles again: riskmap's tile cache; tipg has no tile cache and renders again), then ``wrk -t2
-c32`` cycling through the tiles for ``--duration`` seconds (tiles/s, p99). The time until the
planner map shows the scale city's fills in Debian's Chromium (a new browser, empty cache) is
:func:`map_fills_seconds`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from riskmap.data.generator import generate_city
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones
from riskmap.tiles.collections import communities_frame, zones_frame
from riskmap.tiles.mvt import TMS, MercatorGeometries, TileCache, TileLayer, encode_tile

END = dt.date(2024, 3, 31)
ZOOMS = (8, 11, 14)
console = Console()


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def bench_city(
    name: str, communities: int, cases: int, days: int, n_tiles: int
) -> list[dict[str, Any]]:
    console.print(f"[dim]{name}: generating {communities:,} communities, {cases:,} cases[/]")
    city = generate_city(seed=1, communities=communities, cases=cases, days=days, end=END)
    layer = CommunityLayer(city.communities, 10)
    cs = city.cases.copy()
    cs["reported"] = pd.to_datetime(cs["reported"]).to_numpy().astype("datetime64[D]")
    cs["community"] = layer.locate(cs["lon"].to_numpy(), cs["lat"].to_numpy())
    result = compute_zones(layer, cs, load_policy("cn-three-zone"), END)
    rows: list[dict[str, Any]] = []

    t = time.perf_counter()
    shared = MercatorGeometries.from_wgs84(layer.geoms)
    prepared = {
        "zones": TileLayer("zones", zones_frame(result)),
        "communities": TileLayer("communities", communities_frame(layer, result), geometry=shared),
    }
    prep = time.perf_counter() - t
    console.print(f"[dim]{name}: prepared layers in {prep:.3f} s[/]")
    w, s, e, n = layer.frame.total_bounds
    rng = np.random.default_rng(0)
    for collection, tl in prepared.items():
        for z in ZOOMS:
            every = list(TMS.tiles(w, s, e, n, [z]))
            picks = (
                every
                if len(every) <= n_tiles
                else [every[i] for i in rng.choice(len(every), n_tiles, replace=False)]
            )
            cold: list[float] = []
            sizes: list[int] = []
            cache = TileCache(max_bytes=512 * 2**20)
            keys = []
            for tile in picks:
                key = ("v1", "cn-three-zone", END, collection, tile.z, tile.x, tile.y)
                t = time.perf_counter()
                body = cache.get_or_render(
                    key, lambda tile=tile, tl=tl: encode_tile([tl], tile.z, tile.x, tile.y)
                )
                cold.append(time.perf_counter() - t)
                if body is not None:
                    sizes.append(len(body))
                    keys.append(key)
            if not keys:
                continue
            for k in keys:  # gzip bodies made once
                cache.get_or_render(k, lambda: None, gzip=True)
            warm: list[float] = []
            warm_gz: list[float] = []
            rounds = max(1, 20_000 // len(keys))
            for _ in range(rounds):
                for k in keys:
                    t = time.perf_counter()
                    cache.get_or_render(k, lambda: None)
                    warm.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    cache.get_or_render(k, lambda: None, gzip=True)
                    warm_gz.append(time.perf_counter() - t)
            row = {
                "city": name,
                "collection": collection,
                "zoom": z,
                "tiles": f"{len(keys)}/{len(every)}",
                "cold_p50_ms": round(_ms(cold, 50), 2),
                "cold_p99_ms": round(_ms(cold, 99), 2),
                "cached_p50_us": round(_ms(warm, 50) * 1000, 2),
                "cached_tiles_per_s": round(len(warm) / sum(warm)),
                "cached_gzip_tiles_per_s": round(len(warm_gz) / sum(warm_gz)),
                "mean_kb": round(float(np.mean(sizes)) / 1024, 1),
                "mean_gzip_kb": round(
                    float(
                        np.mean(
                            [
                                len(cache.get_or_render(k, lambda: None, gzip=True) or b"")
                                for k in keys
                            ]
                        )
                    )
                    / 1024,
                    1,
                ),
            }
            rows.append(row)
            console.print(f"[dim]{row}[/]")
    rows.append({"city": name, "collection": "(prepare layers)", "zoom": "", "seconds": prep})
    return rows


# -- over HTTP, with tipg ------------------------------------------------------------------

RISKMAP_TILE = "/collections/zones/tiles/WebMercatorQuad/{z}/{x}/{y}"
TIPG_TILE = "/collections/public.ref_zones/tiles/WebMercatorQuad/{z}/{x}/{y}"


def map_fills_seconds(base_url: str, timeout_s: float = 120.0) -> float | None:
    """Seconds from opening the planner map (``base_url + "/"``) in Chromium until the zones'
    fills are drawn (issue 11: within 3 s on the scale city): a new browser (empty cache)
    loads the page and waits until the map says every visible layer of today's rule and date
    has drawn (``<body data-ready>``, what the browser tests wait for). ``None`` when Debian's
    Chromium or playwright's package is missing (the table then says "not measured")."""
    chromium = Path(os.environ.get("RISKMAP_TEST_CHROMIUM", "/usr/bin/chromium"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            t = time.perf_counter()
            page.goto(base_url + "/", wait_until="commit")
            page.wait_for_function(
                "() => window.riskmapDeck && document.body.dataset.ready",
                timeout=timeout_s * 1000,
                polling=50,
            )
            return time.perf_counter() - t
        finally:
            browser.close()


def zones_ready(base_url: str, bbox: tuple[float, ...], workers: int, timeout: float) -> float:
    """Seconds until every worker serves the zones tiles: a restarted server answers status
    from its stored snapshot at once and computes the zones behind it in the background
    (minutes at scale), during which a zones tile waits for them. Ready when ``8 x workers``
    requests in a row for the city's central z8 tile (each on a new connection, spread over
    the workers) answer within half a second each."""
    import httpx

    w, s, e, n = bbox[:4]
    t = TMS.tile((w + e) / 2, (s + n) / 2, 8)
    url = f"{base_url}/collections/zones/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
    t0 = time.perf_counter()
    good = 0
    while good < 8 * workers:
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"zones tiles not served after {timeout:.0f} s")
        began = time.perf_counter()
        try:
            r = httpx.get(url, timeout=timeout)
            fast = r.status_code in (200, 204) and time.perf_counter() - began < 0.5
        except httpx.HTTPError:
            fast = False
        good = good + 1 if fast else 0
        if not fast:
            time.sleep(1.0)
    return time.perf_counter() - t0


def _timed_gets(client: Any, paths: list[str]) -> tuple[list[float], dict[int, int], list[int]]:
    """Latency of each GET (one keep-alive connection), the count of each status, and the
    sizes of the 200 bodies as sent (compressed when the server compressed them)."""
    lat: list[float] = []
    codes: dict[int, int] = {}
    sizes: list[int] = []
    for p in paths:
        t = time.perf_counter()
        r = client.get(p)
        raw = r.read() if hasattr(r, "read") else r.content
        lat.append(time.perf_counter() - t)
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        if r.status_code == 200:
            sizes.append(int(r.headers.get("content-length") or len(raw)))
    return lat, codes, sizes


def _pick_tiles(
    bbox: tuple[float, float, float, float], z: int, tree: Any, n: int, seed: int = 0
) -> list[Any]:
    import shapely

    every = list(TMS.tiles(*bbox, [z]))
    boxes = shapely.box(*np.array([tuple(TMS.bounds(t)) for t in every]).T)
    hit = np.unique(tree.query(boxes, predicate="intersects")[0])
    meeting = [every[i] for i in hit]
    if len(meeting) <= n:
        return meeting
    rng = np.random.default_rng(seed + z)
    return [meeting[i] for i in sorted(rng.choice(len(meeting), n, replace=False))]


def bench_http(args: argparse.Namespace) -> list[dict[str, Any]]:
    """riskmap's zone tiles vs tipg's over HTTP (see the module's docstring)."""
    import httpx
    import psycopg
    import shapely

    from bench import serving as sv
    from bench.http import warm_up
    from bench.reference_api import load_from_riskmap

    spec = sv.city_spec(args.scale, args.communities, args.cases)
    city = sv.build_city(spec)
    run_dir = sv.VAR / "tiles-http" / spec.name
    db = sv.work_store(city, run_dir)
    dsn = sv.pg_dsn()
    # nothing rendered ahead: the cold figures are of tiles rendered on request
    rm = sv.riskmap_server(
        db, args.workers, run_dir / "riskmap.log", {"RISKMAP_PRERENDER_ZOOM": "-1"}
    )
    tp = sv.tipg_server(dsn, ["public.ref_zones"], args.workers, run_dir / "tipg.log")
    rows: list[dict[str, Any]] = []
    headers = {"Accept-Encoding": "gzip"}
    try:
        sv.say(f"tiles over HTTP: riskmap serve --workers {args.workers} on {spec.name}")
        rm.start()
        rm.wait_for("/healthz", 900)
        rm.wait_for(f"/v1/status?lat={city.bbox[1]}&lon={city.bbox[0]}", 900)
        warm_up(rm, "/v1/status", city.bbox, args.workers, 900)  # every worker has its zones
        rm.wait_idle(900)  # and its background work (the tiles rendered ahead) is done
        with psycopg.connect(dsn, autocommit=True) as conn:
            meta = load_from_riskmap(conn, rm.url)
            wkb = [bytes(r[0]) for r in conn.execute("SELECT ST_AsBinary(geom) FROM ref_zones")]
        tree = shapely.STRtree(shapely.from_wkb(wkb))
        tp.start()
        tp.wait_for("/collections/public.ref_zones", 300)
        servers = {"riskmap": (rm, RISKMAP_TILE), "tipg": (tp, TIPG_TILE)}
        clients = {
            name: httpx.Client(base_url=proc.url, headers=headers, timeout=300)
            for name, (proc, _) in servers.items()
        }
        for name, (_, tpl) in servers.items():  # riskmap prepares its layer, tipg its catalog
            clients[name].get(tpl.format(z=0, x=0, y=0))
        for z in ZOOMS:
            tiles = _pick_tiles(city.bbox, z, tree, args.tiles)
            if not tiles:
                continue
            for name, (proc, tpl) in servers.items():
                paths = [tpl.format(z=t.z, x=t.x, y=t.y) for t in tiles]
                client = clients[name]
                cold, codes, sizes = _timed_gets(client, paths)
                rounds = max(1, 200 // len(paths))
                cached, _, _ = _timed_gets(client, paths * rounds)
                sv.say(f"{name} z{z}: wrk over {len(paths)} tiles, {args.duration:g} s")
                lua = sv.paths_lua(paths, headers)
                sv.run_wrk(proc.url, lua, min(2.0, args.duration), 2, args.connections)  # warm-up
                w = sv.run_wrk(proc.url, lua, args.duration, 2, args.connections)
                row = {
                    "city": spec.name,
                    "server": name,
                    "zoom": z,
                    "tiles": len(paths),
                    "statuses": codes,
                    "cold_p50_ms": round(_ms(cold, 50), 2),
                    "cold_p99_ms": round(_ms(cold, 99), 2),
                    "cached_p50_ms": round(_ms(cached, 50), 2),
                    "cached_p99_ms": round(_ms(cached, 99), 2),
                    "wrk_tiles_per_s": round(w["rps"]),
                    "wrk_p99_ms": w["p99_ms"],
                    "wrk_errors": w["non_2xx"] + w["socket_errors"],
                    "mean_gzip_kb": round(float(np.mean(sizes)) / 1024, 1) if sizes else 0.0,
                }
                rows.append(row)
                sv.say(str(row))
        for c in clients.values():
            c.close()
        rm.stop()
        tp.stop()
        # the map page as a planner meets it: a server with the default settings (its tiles
        # rendered ahead after a restart), idle, and a new browser
        rm = sv.riskmap_server(db, args.workers, run_dir / "riskmap-map.log")
        sv.say(f"the map page: riskmap serve --workers {args.workers} (default settings)")
        rm.start()
        rm.wait_for("/healthz", 900)
        rm.wait_for(f"/v1/status?lat={city.bbox[1]}&lon={city.bbox[0]}", 900)
        warm_up(rm, "/v1/status", city.bbox, args.workers, 900)
        zones_ready(rm.url, city.bbox, args.workers, 1800)  # behind the stored snapshot
        rm.wait_idle(1800, window=10.0)  # and the tiles rendered ahead
        fills = map_fills_seconds(rm.url)
        rows.append(
            {
                "city": spec.name,
                "server": "riskmap",
                "zoom": "map page",
                "fills_s": fills,
                "policy": meta["policy"],
                "at": meta["at"],
            }
        )
    finally:
        rm.stop()
        tp.stop()
    return rows


def _codes(row: dict[str, Any]) -> str:
    """``200: 18, 204: 2`` of a row's statuses."""
    codes = row.get("statuses") or {}
    return ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) or "-"


def http_table(rows: list[dict[str, Any]], workers: int, duration: float) -> str:
    """The HTTP comparison as one markdown table (riskmap | tipg per zoom)."""
    by = {(r["server"], r["zoom"]): r for r in rows if "cold_p50_ms" in r}
    zooms = sorted({z for _, z in by})
    page = next((r for r in rows if r.get("zoom") == "map page"), {})
    city = rows[0]["city"] if rows else "?"
    out = [
        f"`python -m bench.tiles --http` on the {city} city, zones layer, rule "
        f"`{page.get('policy', '?')}` at {page.get('at', '?')}, {workers} worker(s) each, "
        f"`wrk -t2` for {duration:g} s per zoom, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC",
        "",
        "| zoom | tiles (status: count) | cold p50 / p99 ms: riskmap, tipg | cached p50 / p99 ms: "
        "riskmap, tipg (tipg renders again) | tiles/s under wrk: riskmap, tipg | gzip KB: "
        "riskmap, tipg | targets |",
        "|---|---|---|---|---|---|---|",
    ]
    for z in zooms:
        a, b = by.get(("riskmap", z), {}), by.get(("tipg", z), {})
        cold_ok = a.get("cold_p50_ms", 1e9) < b.get("cold_p50_ms", 0)
        cached_ok = a.get("wrk_tiles_per_s", 0) >= 5000
        out.append(
            f"| z{z} | {a.get('tiles', '-')} (riskmap {_codes(a)}; tipg {_codes(b)}) | "
            f"{a.get('cold_p50_ms')} / {a.get('cold_p99_ms')}, "
            f"{b.get('cold_p50_ms')} / {b.get('cold_p99_ms')} | {a.get('cached_p50_ms')} / "
            f"{a.get('cached_p99_ms')}, {b.get('cached_p50_ms')} / {b.get('cached_p99_ms')} | "
            f"{a.get('wrk_tiles_per_s', '-'):,}, {b.get('wrk_tiles_per_s', '-'):,} | "
            f"{a.get('mean_gzip_kb')}, {b.get('mean_gzip_kb')} | cold p50 below tipg's: "
            f"{'met' if cold_ok else 'not met'}; cached >= 5,000 tiles/s: "
            f"{'met' if cached_ok else 'not met'} |"
        )
    fills = page.get("fills_s")
    out.append("")
    out.append(
        "Map page, time until the scale city's fills are shown (target 3 s): "
        + (f"{fills:.2f} s" if fills is not None else "not measured (no Chromium or playwright)")
    )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="also run the scale city")
    ap.add_argument("--communities", type=int, help="run only a city of this many communities")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--tiles", type=int, default=50, help="tiles sampled per zoom (default 50)")
    ap.add_argument("--out", type=Path, default=Path("var/bench/tiles.json"))
    ap.add_argument("--index-only", action="store_true", help="(run.py's option: no tiles)")
    ap.add_argument("--http", action="store_true", help="also riskmap vs tipg over HTTP")
    ap.add_argument("--http-only", action="store_true", help="only riskmap vs tipg over HTTP")
    ap.add_argument("--workers", type=int, default=2, help="(HTTP) workers of each server")
    ap.add_argument("--duration", type=float, default=10.0, help="(HTTP) wrk seconds per zoom")
    ap.add_argument("--connections", type=int, default=32, help="(HTTP) wrk connections")
    ap.add_argument(
        "--write-readme", action="store_true", help="(HTTP) put the table in bench/README.md"
    )
    args, _ = ap.parse_known_args()  # make bench passes run.py's options (--postgis) too
    if args.index_only:
        return
    if args.http or args.http_only:
        http_rows = bench_http(args)
        text = http_table(http_rows, args.workers, args.duration)
        print(text)
        out = args.out.with_name(args.out.stem + "-http.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(http_rows, indent=2, default=str))
        console.print(f"results written to {out}")
        if args.write_readme:
            from bench.http import write_readme

            write_readme(text, "bench.tiles", "`bench/tiles.py --http`")
        if args.http_only:
            return
    rows: list[dict[str, Any]] = []
    if args.communities:
        cases = args.cases or args.communities * 5
        rows += bench_city(f"{args.communities:,}", args.communities, cases, 60, args.tiles)
    else:
        rows += bench_city("sample", 2_000, 5_000, 60, args.tiles)
        if args.scale:
            rows += bench_city("scale", 100_000, 1_000_000, 120, args.tiles)
    table = Table(title="riskmap vector tiles (one thread, in-process)")
    short = {"cached_tiles_per_s": "cached/s", "cached_gzip_tiles_per_s": "gzip cached/s"}
    cols = [
        "city",
        "collection",
        "zoom",
        "tiles",
        "cold_p50_ms",
        "cold_p99_ms",
        "cached_p50_us",
        "cached_tiles_per_s",
        "cached_gzip_tiles_per_s",
        "mean_kb",
        "mean_gzip_kb",
    ]
    for c in cols:
        table.add_column(short.get(c, c.replace("_", " ")))
    for r in rows:
        if "seconds" in r:
            table.add_row(r["city"], f"{r['collection']}: {r['seconds']:.3f} s")
        else:
            table.add_row(*(str(r[c]) for c in cols))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2, default=str))
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
