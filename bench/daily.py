"""Zones for a range of dates: one ``zones_over`` call against one ``compute_zones`` per date
(in one process), on a sample city. Never part of the test suite.

    python -m bench.daily                                  # 2,000 communities, 30 dates
    python -m bench.daily --communities 500 --dates 10 --policy india-containment
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from riskmap.data.generator import generate_city
from riskmap.geo.daily import zones_over
from riskmap.geo.policy import load_policy
from riskmap.geo.zones import CommunityLayer, compute_zones


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--communities", type=int, default=2000)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--dates", type=int, default=30, help="the last N days of the outbreak")
    ap.add_argument("--policy", action="append", help="presets (default: two)")
    args = ap.parse_args()
    end = dt.date(2024, 3, 31)
    city = generate_city(seed=5, communities=args.communities, cases=args.cases, end=end)
    layer = CommunityLayer(city.communities, 10)
    cases = city.cases.copy()
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    start = end - dt.timedelta(days=args.dates - 1)
    for name in args.policy or ["cn-2022-9th", "india-containment"]:
        policy = load_policy(name)
        compute_zones(layer, cases, policy, end)  # the layer's caches, once
        wall, cpu = time.perf_counter(), time.process_time()
        zones_over(layer, cases, policy, start, end)
        one = (time.perf_counter() - wall, time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.dates):
            compute_zones(layer, cases, policy, start + dt.timedelta(days=i))
        each = (time.perf_counter() - wall, time.process_time() - cpu)
        print(
            f"{name}: zones_over {args.dates} dates {one[0]:.1f} s ({one[1]:.1f} s CPU); "
            f"{args.dates} x compute_zones {each[0]:.1f} s ({each[1]:.1f} s CPU)"
        )


if __name__ == "__main__":
    main()
