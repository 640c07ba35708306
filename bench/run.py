"""riskmap benchmarks (``make bench``). Prints a table; never part of the test suite.

    python bench/run.py                     # the sample city (2,000 communities, ~5,000 cases)
    python bench/run.py --scale             # and the scale city (100,000 / 1,000,000 / 120 d)
    python bench/run.py --scale --postgis   # and cn-three-zone as PostGIS SQL on the same data

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
import shapely
from rich.console import Console
from rich.table import Table

from riskmap.data.generator import generate_city, write_city
from riskmap.geo.history import zone_events
from riskmap.geo.incremental import update_zones
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import load_policy
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

    # status look-ups: H3-accelerated index vs STRtree only vs brute force
    zones = res.zones
    prio = [three.rank(lv) for lv in zones["level"]]
    zi = PolygonIndex(zones.geometry.to_numpy(), 10, priority=prio)
    t, _ = timed(lambda: zi.table)
    rec(name, "zone index build (H3 res 10 table)", t, f"{zi.resolved_cell_count} resolved cells")
    qx, qy = (
        rng.uniform(*layer.frame.total_bounds[[0, 2]], points),
        rng.uniform(*layer.frame.total_bounds[[1, 3]], points),
    )
    t, a = timed(lambda: zi.lookup(qx, qy))
    rec(name, "status look-up, H3 table + exact fallback", t, f"{points / t:,.0f} points/s")
    t, b = timed(lambda: zi.exact(qx, qy))
    rec(name, "status look-up, STRtree only", t, f"{points / t:,.0f} points/s")
    assert (a.index == b).all()
    pts = shapely.points(qx, qy)
    geoms = zones.geometry.to_numpy()
    t, _ = timed(lambda: [shapely.intersects(g, pts) for g in geoms])
    rec(
        name,
        "status look-up, brute force (every zone x every point)",
        t,
        f"{points / t:,.0f} points/s",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="also run the scale city")
    ap.add_argument("--postgis", action="store_true", help="compare with PostGIS SQL")
    ap.add_argument("--out", type=Path, default=Path("var/bench/results.json"))
    args = ap.parse_args()
    rec = Recorder()
    bench_city(rec, "sample", 2_000, 5_000, 60, 200_000, args.postgis and not args.scale)
    if args.scale:
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
