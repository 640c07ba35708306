"""riskmap benchmarks (``make bench``). Prints a table; never part of the test suite.

    python bench/run.py                 # the default sample city (2,000 communities, ~5,000 cases)
    python bench/run.py --scale         # also the scale city (100,000 communities, 1,000,000 cases)

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
import shapely
from rich.console import Console
from rich.table import Table

from data.generator import generate_city, write_city
from geo.policy import load_policy
from geo.zones import CommunityLayer, compute_zones

END = dt.date(2024, 3, 31)
console = Console()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_city(name: str, communities: int, cases: int, days: int, points: int) -> list[dict]:
    rows: list[dict] = []

    def rec(what: str, seconds: float, note: str = "") -> None:
        rows.append({"city": name, "what": what, "seconds": round(seconds, 3), "note": note})
        console.print(f"[dim]{name}: {what}: {seconds:.3f} s {note}[/]")

    t, city = timed(
        lambda: generate_city(seed=1, communities=communities, cases=cases, days=days, end=END)
    )
    rec("generate city", t, f"{len(city.communities)} communities, {len(city.cases)} locations")
    with tempfile.TemporaryDirectory() as d:
        t, _ = timed(lambda: write_city(city, Path(d)))
        rec("write city files", t)
    t, layer = timed(lambda: CommunityLayer(city.communities, 10))
    cases_df = city.cases.copy()
    lon, lat = cases_df["lon"].to_numpy(), cases_df["lat"].to_numpy()
    t, idx = timed(lambda: layer.index)
    rec("community index build (H3 res 10)", t, f"{idx.resolved_cell_count} resolved cells")
    t, loc = timed(lambda: layer.locate(lon, lat))
    rec("locate case locations", t, f"{len(lon) / t:,.0f} points/s")
    cases_df["community"] = loc
    policy = load_policy("cn-three-zone")
    t, res = timed(lambda: compute_zones(layer, cases_df, policy, END))
    rec("zones cn-three-zone, one date, cold (graphs built)", t, f"{len(res.zones)} zones")
    t, res = timed(lambda: compute_zones(layer, cases_df, policy, END))
    rec("zones cn-three-zone, one date, warm", t)
    t, res_ng = timed(lambda: compute_zones(layer, cases_df, policy, END, with_geometry=False))
    rec("zones cn-three-zone, one date, warm, no geometry", t)

    # status look-ups: H3-accelerated index vs STRtree only vs a plain shapely loop
    from geo.index import PolygonIndex

    zones = res.zones
    prio = [policy.rank(lv) for lv in zones["level"]]
    t, zi = timed(lambda: PolygonIndex(zones.geometry.to_numpy(), 10, priority=prio))
    rec("zone index build", t, f"{zi.resolved_cell_count} resolved cells")
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = layer.frame.total_bounds
    qx, qy = rng.uniform(minx, maxx, points), rng.uniform(miny, maxy, points)
    t, a = timed(lambda: zi.lookup(qx, qy))
    rec("status look-up, H3 + exact fallback", t, f"{points / t:,.0f} points/s")
    t, b = timed(lambda: zi.exact(qx, qy))
    rec("status look-up, STRtree only", t, f"{points / t:,.0f} points/s")
    assert (a.index == b).all()
    geoms = zones.geometry.to_numpy()
    pts = shapely.points(qx, qy)
    t, _ = timed(lambda: [shapely.intersects(g, pts) for g in geoms])
    rec("status look-up, brute force (every zone x every point)", t, f"{points / t:,.0f} points/s")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="also run the scale city")
    ap.add_argument("--out", type=Path, default=Path("var/bench/results.json"))
    args = ap.parse_args()
    rows = bench_city("sample", 2_000, 5_000, 60, 200_000)
    if args.scale:
        rows += bench_city("scale", 100_000, 1_000_000, 120, 1_000_000)
    table = Table(title="riskmap benchmarks")
    for c in ("city", "what", "seconds", "note"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["city"], r["what"], f"{r['seconds']:.3f}", r["note"])
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
