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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="also run the scale city")
    ap.add_argument("--communities", type=int, help="run only a city of this many communities")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--tiles", type=int, default=50, help="tiles sampled per zoom (default 50)")
    ap.add_argument("--out", type=Path, default=Path("var/bench/tiles.json"))
    ap.add_argument("--index-only", action="store_true", help="(run.py's option: no tiles)")
    args, _ = ap.parse_known_args()  # make bench passes run.py's options (--postgis) too
    if args.index_only:
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
