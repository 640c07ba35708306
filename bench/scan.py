"""Benchmark of the space-time permutation scan (geo.scan); part of ``make bench``.

    python -m bench.scan                          # 2,000 locations x 60 days x 999 replications
    python -m bench.scan --cases 20000 --replications 99

Synthetic data: locations spread uniformly over a 30 x 25 km city, cases with independent
locations and days (the null hypothesis: every replication scans every cylinder, nothing stops
early). ``bench/run.py`` also runs the scan on the sample city's communities (residences of its
cases). Prints wall-clock and CPU seconds (the loops use every core numba is given: CPU seconds
above wall seconds mean both cores worked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from riskmap.geo.scan import ScanResult, space_time_scan

END = dt.date(2024, 3, 31)
console = Console()

Record = Callable[[str, str, float, str], None]


def synthetic(
    locations: int, days: int, cases: int, seed: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    coords = pd.DataFrame(
        {
            "location": [f"L{i:05d}" for i in range(locations)],
            "lat": rng.uniform(37.45, 37.675, locations),
            "lon": rng.uniform(126.85, 127.19, locations),
        }
    )
    loc = rng.integers(0, locations, cases)
    day = rng.integers(0, days, cases)
    counts = pd.DataFrame(
        {
            "location": coords["location"].to_numpy()[loc],
            "date": [END - dt.timedelta(days=int(d)) for d in day],
            "count": 1,
        }
    )
    return counts, coords


def run_scan(
    counts: pd.DataFrame, coords: pd.DataFrame, replications: int, **options: object
) -> tuple[float, float, ScanResult]:
    """Wall and CPU seconds of one scan, with a progress bar."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("scan replications", total=replications)
        wall, cpu = time.perf_counter(), time.process_time()
        res = space_time_scan(
            counts,
            coords,
            end=END,
            replications=replications,
            seed=1,
            progress=lambda done, total: bar.update(task, completed=done),
            **options,  # type: ignore[arg-type]
        )
        return time.perf_counter() - wall, time.process_time() - cpu, res


def bench_scan(
    rec: Record, city: str, counts: pd.DataFrame, coords: pd.DataFrame, replications: int
) -> None:
    # the first call compiles the loops (numba caches them on disk): not counted
    space_time_scan(counts.head(50), coords, end=END, replications=1, seed=0)
    wall, cpu, res = run_scan(counts, coords, replications)
    top = res.clusters[0] if res.clusters else None
    note = (
        f"{res.locations:,} locations, {res.total_cases:,} cases, {replications} replications, "
        f"CPU {cpu:.1f} s (target < 60 s)"
    )
    if top is not None:
        note += f"; top LLR {top.llr:.2f}, p {top.p_value}"
    rec(city, "space-time permutation scan, prospective, defaults", wall, note)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--locations", type=int, default=2000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--replications", type=int, default=999)
    args = ap.parse_args()
    counts, coords = synthetic(args.locations, args.days, args.cases)

    def rec(city: str, what: str, seconds: float, note: str = "") -> None:
        console.print(f"{city}: {what}: {seconds:.1f} s wall; {note}")

    bench_scan(
        rec, f"synthetic {args.locations} x {args.days} d", counts, coords, args.replications
    )


if __name__ == "__main__":
    main()
