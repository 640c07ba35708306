"""riskmap benchmarks (``make bench``). Prints a table; never part of the test suite.

    python bench/run.py                     # the sample city (2,000 communities, ~5,000 cases)
    python bench/run.py --scale             # and the scale city (100,000 / 1,000,000 / 120 d)
    python bench/run.py --scale --postgis   # and cn-three-zone as PostGIS SQL on the same data
    python bench/run.py --index-only        # only the status index on the Wuhan-sized city
    python bench/run.py --no-scan           # without the space-time scan
    python -m bench.scan                    # the space-time scan alone (see bench/README.md)

Every run starts with the status index on the Wuhan-sized city (``bench/index.py``: 20,000
Voronoi communities, 1,000,000 points; riskmap vs STRtree vs brute force).

Machines here are noisy: compare ratios measured in one run, not absolute times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench import index as status_index
from bench.scan import bench_scan
from bench.scan import synthetic as scan_synthetic
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.history import zone_events
from riskmap.geo.incremental import update_zones
from riskmap.geo.policy import load_policy
from riskmap.geo.scan import community_counts
from riskmap.geo.zones import CommunityLayer, compute_zones, from_day

END = dt.date(2024, 3, 31)
console = Console()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


class Recorder:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, city: str, what: str, seconds: float, note: str = "") -> None:
        self.rows.append({"city": city, "what": what, "seconds": round(seconds, 3), "note": note})
        console.print(f"[dim]{city}: {what}: {seconds:.3f} s {note}[/]")


def bench_city(
    rec: Recorder,
    name: str,
    communities: int,
    cases: int,
    days: int,
    points: int,
    postgis: bool,
    scan: bool = False,
) -> None:
    t, city = timed(
        lambda: generate_city(seed=1, communities=communities, cases=cases, days=days, end=END)
    )
    rec(
        name,
        "generate city",
        t,
        f"{len(city.communities)} communities, {len(city.cases)} locations",
    )
    with tempfile.TemporaryDirectory() as d:
        t, _ = timed(lambda: write_city(city, Path(d)))
        rec(name, "write city files", t)
    layer = CommunityLayer(city.communities, 10)
    cs = city.cases.copy()
    cs["reported"] = pd.to_datetime(cs["reported"]).to_numpy().astype("datetime64[D]")
    lon, lat = cs["lon"].to_numpy(), cs["lat"].to_numpy()
    t, loc = timed(lambda: layer.locate(lon, lat))
    rec(name, "locate case locations in communities (STRtree)", t, f"{len(lon) / t:,.0f} points/s")
    cs["community"] = loc

    three = load_policy("cn-three-zone")
    t, _ = timed(lambda: (layer.cells, layer.touching, layer.within(1000.0)))
    rec(name, "prepare communities (H3 cover, neighbour graphs)", t)
    t, res = timed(lambda: compute_zones(layer, cs, three, END))
    rec(name, "zones cn-three-zone, one date", t, f"{len(res.zones)} zones (target <= 15 s)")
    india = load_policy("india-containment")
    t, res_i = timed(lambda: compute_zones(layer, cs, india, END))
    rec(name, "zones india-containment, one date", t, f"{len(res_i.zones)} zones (target <= 15 s)")
    del res_i  # its day-by-day circles are large at scale

    # full history: every day of the outbreak and every lift after it
    def history() -> pd.DataFrame:
        last = compute_zones(layer, cs, three, END + dt.timedelta(days=15))
        return zone_events(last, layer, from_day(last.day0), last.at)

    t, ev = timed(history)
    rec(name, "history cn-three-zone, all days (zones + events)", t, f"{len(ev):,} events")

    # incremental: 1,000 new cases of the last 3 days
    rng = np.random.default_rng(0)
    recent = cs.loc[cs["reported"] >= np.datetime64(END - dt.timedelta(days=2)), "case_id"]
    new_ids = set(rng.choice(recent.unique(), size=min(1000, recent.nunique()), replace=False))
    is_new = cs["case_id"].isin(new_ids).to_numpy()
    prev = compute_zones(layer, cs[~is_new], three, END)
    t_inc, _ = timed(lambda: update_zones(prev, layer, cs, cs[is_new]))
    t_full, _ = timed(lambda: compute_zones(layer, cs, three, END))
    rec(
        name,
        f"incremental update, {len(new_ids)} new cases",
        t_inc,
        f"full recompute {t_full:.3f} s, ratio {t_full / t_inc:.1f}x (target <= 1 s)",
    )

    if scan:
        # space-time scan on the communities of the cases' residences, prospective at END
        counts, coords = community_counts(layer, cs)
        bench_scan(rec, name, counts, coords, 999)

    if postgis:
        from bench import postgis as pg

        pg.ensure_server()
        conn = pg.connect()
        t, _ = timed(lambda: pg.load(conn, layer, cs))
        rec(name, "PostGIS: load communities and cases (not compared)", t)
        t_pg, counts = pg.run(conn, END)
        t_rm, r2 = timed(lambda: compute_zones(layer, cs, three, END))
        ours = r2.levels["level"].value_counts().to_dict()
        ours.pop("none", None)
        rec(
            name,
            "cn-three-zone as PostGIS SQL (ST_Buffer, ST_Union, ST_Intersects)",
            t_pg,
            f"riskmap {t_rm:.3f} s: PostGIS / riskmap = {t_pg / t_rm:.1f}x; "
            f"communities PostGIS {counts} riskmap {ours}",
        )

    # status look-ups on this city's zones: riskmap's index vs STRtree vs brute force
    zones = res.zones
    prio = np.array([three.rank(lv) for lv in zones["level"]], dtype=np.int64)
    status_index.compare(rec, name, zones.geometry.to_numpy(), prio, points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="also run the scale city")
    ap.add_argument("--postgis", action="store_true", help="compare with PostGIS SQL")
    ap.add_argument("--index-only", action="store_true", help="only the status index benchmark")
    ap.add_argument("--index-points", type=int, default=1_000_000, help="points of that benchmark")
    ap.add_argument("--no-scan", action="store_true", help="leave out the space-time scan")
    ap.add_argument("--out", type=Path, default=Path("var/bench/results.json"))
    args, _ = ap.parse_known_args()  # make bench passes bench.http's options too (--workers)
    rec = Recorder()
    status_index.bench_wuhan(rec, args.index_points)
    if not args.index_only:
        scan = not args.no_scan
        bench_city(rec, "sample", 2_000, 5_000, 60, 200_000, args.postgis and not args.scale, scan)
        if scan:  # 2,000 locations x 60 days, cases independent of place and day
            bench_scan(rec, "scan 2,000 x 60 d", *scan_synthetic(2_000, 60, 5_000), 999)
    if args.scale and not args.index_only:
        bench_city(rec, "scale", 100_000, 1_000_000, 120, 1_000_000, args.postgis)
    table = Table(title="riskmap benchmarks")
    for c in ("city", "what", "seconds", "note"):
        table.add_column(c)
    for r in rec.rows:
        table.add_row(r["city"], r["what"], f"{r['seconds']:.3f}", r["note"])
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec.rows, indent=2))
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
