"""The differencing attack of ``tests/api/test_aggregates.py`` over many cell-key secrets: how
often does an integer program over every public table pin down a count from 1 to 4? Never
part of the test suite (the test runs one secret).

    python -m bench.attack --secrets 100                 # perturbation as served
    python -m bench.attack --secrets 5 --no-perturbation  # the small-count rule alone
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np

from riskmap.api.aggregates import MAX_PERTURBATION, last_published_week, perturb, week_period
from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.service import RiskService
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from tests.api.test_aggregates import MIN, SMALL_END, UNITS, Cell, _attack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", type=int, default=20, help="secrets to try")
    ap.add_argument("--no-perturbation", action="store_true", help="e = 0 in every cell")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="riskmap-attack-"))
    city = generate_city(
        seed=11, communities=48, cases=360, days=35, end=SMALL_END, subdistricts=6, districts=2
    )
    write_city(city, out)
    store = Store.open(out / "small.db")
    ingest_communities(store, out / "communities.geojson")
    ingest_cases(store, out / "cases.csv", today=SMALL_END)
    service = RiskService(store)
    first = SMALL_END - dt.timedelta(days=34)
    weeks = sorted(
        {last_published_week(first + dt.timedelta(days=d)) for d in range(0, 35 + 16, 7)}
    )
    comm = city.communities
    parents = {
        ("community", r.community_id): ("subdistrict", r.subdistrict_id) for r in comm.itertuples()
    }
    parents |= {
        ("subdistrict", r.subdistrict_id): ("district", r.district_id) for r in comm.itertuples()
    }
    pins = small = 0
    t0 = time.perf_counter()
    for i in range(args.secrets):
        secret = f"bench-attack-secret-{i:05d}".encode()
        published: dict[Cell, int] = {}
        truth: dict[Cell, int] = {}
        for period in ("week", "14d"):
            for week in weeks:
                start, end = week_period(period, week)
                for level in UNITS:
                    counts, _ = service.case_counts(level, start, end, secret=secret)
                    n = counts.table["cases"].to_numpy()
                    keys = counts.table["key"].to_numpy()
                    total_key = np.array([counts.total_key], np.uint64)
                    if args.no_perturbation:  # a cell key whose perturbation is 0
                        keys = np.full(len(n), 2**63, np.uint64)
                        total_key[0] = 2**63
                    shown = perturb(n, keys, MIN)
                    tot = perturb(np.array([counts.total]), total_key, MIN)
                    published[(period, week, level, "")] = int(tot[0])
                    truth[(period, week, level, "")] = counts.total
                    for uid, t, v in zip(counts.table["unit_id"], n, shown, strict=True):
                        published[(period, week, level, uid)] = int(v)
                        truth[(period, week, level, uid)] = int(t)
        d = 0 if args.no_perturbation else MAX_PERTURBATION
        n_small, pinned = _attack(published, truth, parents, weeks, d)
        small += n_small
        pins += len(pinned)
        print(f"secret {i}: {n_small} small cells, {len(pinned)} pinned down", flush=True)
    print(
        f"{args.secrets} secrets, {small} small cells attacked, {pins} pinned down "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    store.close()


if __name__ == "__main__":
    main()
