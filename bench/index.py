"""In-process status look-ups: riskmap's :class:`PolygonIndex` vs a shapely STRtree vs brute force.

    python -m bench.index                    # the Wuhan-sized city, 1,000,000 points
    python -m bench.index --points 200000    # fewer points
    python -m bench.index --communities 100000   # a denser city (5,700 zones)

The Wuhan-sized city: 20,000 Voronoi communities from random seeds in a 0.40 x 0.35 degree box,
5% of them sealed and their neighbours (communities sharing a boundary) controlled. Zones as the
service draws them: each connected group of sealed communities is a sealed zone; each connected
group of sealed and controlled communities is a controlled zone (it overlaps the sealed zones it
surrounds: the highest level wins). Random points over the box.

Every method answers the index of the winning zone (highest level, ties: lowest zone index) and
is checked against brute force (each zone tested against the points in its bounding box).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from rich.console import Console

from riskmap.geo.index import PolygonIndex

console = Console()
BOX = (114.10, 30.40, 114.50, 30.75)  # 0.40 x 0.35 degrees around Wuhan
SEALED, CONTROLLED = 2, 1

Rec = Callable[[str, str, float, str], None]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def cpu_timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result): on a shared machine the CPU time
    is the better measure of the work done."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def voronoi_city(communities: int, seed: int = 0) -> NDArray[np.object_]:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BOX
    pts = rng.uniform([x0, y0], [x1, y1], (communities, 2))
    box = shapely.box(*BOX)
    v = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box, ordered=True)
    return shapely.intersection(np.asarray(shapely.get_parts(v)), box)


def _groups(geoms: NDArray[np.object_], members: NDArray[np.intp]) -> list[shapely.Geometry]:
    """The connected groups of ``members`` (communities sharing a boundary), each unioned."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sub = geoms[members]
    tree = shapely.STRtree(sub)
    a, b = tree.query(sub, predicate="intersects")
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(sub), len(sub)))
    k, label = connected_components(graph, directed=False)
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return [shapely.coverage_union_all(sub[g]) for g in np.split(order, cuts)]


def wuhan_zones(
    communities: int = 20_000, sealed_share: float = 0.05, seed: int = 0
) -> tuple[NDArray[np.object_], NDArray[np.object_], NDArray[np.int64]]:
    """(communities, zones, zone levels) of the Wuhan-sized city."""
    geoms = voronoi_city(communities, seed)
    rng = np.random.default_rng(seed + 1)
    sealed = rng.choice(len(geoms), size=round(sealed_share * len(geoms)), replace=False)
    tree = shapely.STRtree(geoms)
    _, touching = tree.query(geoms[sealed], predicate="intersects")
    controlled = np.union1d(sealed, touching)
    z_sealed = _groups(geoms, sealed)
    z_controlled = _groups(geoms, controlled)
    zones = np.array(z_sealed + z_controlled, dtype=object)
    levels = np.r_[np.full(len(z_sealed), SEALED), np.full(len(z_controlled), CONTROLLED)]
    return geoms, zones, levels.astype(np.int64)


def _highest(pi: NDArray, gi: NDArray, prio: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    """Per point, the zone of (point, zone) pairs with the highest level (ties: lowest index)."""
    out = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((gi, -prio[gi], pi))
    pi, gi = pi[order], gi[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    out[pi[first]] = gi[first]
    return out


def strtree_lookup(
    tree: shapely.STRtree, prio: NDArray[np.int64], lon: NDArray, lat: NDArray
) -> NDArray[np.int64]:
    """The plain-shapely answer: ``STRtree.query(points, predicate="intersects")``, the highest
    level kept per point."""
    pts = shapely.points(lon, lat)
    pi, gi = tree.query(pts, predicate="intersects")
    return _highest(pi, gi, prio, len(pts))


def strtree_prepared_lookup(
    tree: shapely.STRtree,
    zones: NDArray[np.object_],
    prio: NDArray[np.int64],
    lon: NDArray,
    lat: NDArray,
) -> NDArray[np.int64]:
    """A tuned shapely variant: bounding-box candidates from the STRtree, then ``intersects``
    with the zones prepared (``query(..., predicate=)`` prepares the points, not the zones)."""
    shapely.prepare(zones)
    pts = shapely.points(lon, lat)
    pi, gi = tree.query(pts)
    hit = shapely.intersects(zones[gi], pts[pi])
    pi, gi = pi[hit], gi[hit]
    return _highest(pi, gi, prio, len(pts))


def brute_force(
    zones: NDArray[np.object_], prio: NDArray[np.int64], lon: NDArray, lat: NDArray
) -> NDArray[np.int64]:
    """Every zone against every point of its bounding box (``intersects``), best kept."""
    order = np.argsort(lon, kind="stable")
    slon, slat = lon[order], lat[order]
    best = np.full(len(lon), -1, dtype=np.int64)
    best_p = np.full(len(lon), np.iinfo(np.int64).min, dtype=np.int64)
    bounds = shapely.bounds(zones)
    for z in range(len(zones)):
        x0, y0, x1, y1 = bounds[z]
        a, b = np.searchsorted(slon, [x0, x1], side="left")[0], np.searchsorted(slon, x1, "right")
        cand = np.arange(a, b)
        cand = cand[(slat[cand] >= y0) & (slat[cand] <= y1)]
        if len(cand) == 0:
            continue
        hit = cand[shapely.intersects_xy(zones[z], slon[cand], slat[cand])]
        rows = order[hit]
        better = prio[z] > best_p[rows]  # zones in index order: ties keep the lower index
        best[rows[better]] = z
        best_p[rows[better]] = prio[z]
    return best


def compare(
    rec: Rec, city: str, zones: NDArray[np.object_], prio: NDArray[np.int64], n_points: int
) -> dict[str, float]:
    """riskmap vs STRtree vs brute force on ``n_points`` random points over the zones' extent
    (plus every 50th vertex of the zones: points exactly on boundaries)."""
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = shapely.total_bounds(zones)
    lon = rng.uniform(x0, x1, n_points)
    lat = rng.uniform(y0, y1, n_points)
    v = shapely.get_coordinates(zones)[::50]
    lon_v, lat_v = v[:, 0], v[:, 1]

    t_build, c_build, zi = cpu_timed(lambda: PolygonIndex(zones, priority=prio).build())
    rec(
        city,
        "riskmap index: build",
        t_build,
        f"CPU {c_build:.1f} s; {len(zones):,} zones; leaf cells {zi.leaf_size_m:.1f} m; table "
        f"{zi.table_bytes / 1e6:.1f} MB, {zi.boundary_cell_count:,} boundary leaves",
    )
    zi.lookup(lon[:1000], lat[:1000])  # warm-up
    t_rm, c_rm, got = cpu_timed(lambda: zi.lookup(lon, lat))
    rec(
        city,
        "riskmap index: look-up",
        t_rm,
        f"{n_points / t_rm:,.0f} points/s ({n_points / c_rm:,.0f} per CPU second); "
        f"{got.resolved_by_cell / n_points:.1%} from cells, "
        f"{got.outside / n_points:.1%} outside, {got.exact / n_points:.1%} exact test",
    )
    t_tb, tree = timed(lambda: shapely.STRtree(zones))
    rec(city, "STRtree: build", t_tb, "")
    t_tq, c_tq, ref = cpu_timed(lambda: strtree_lookup(tree, prio, lon, lat))
    rec(
        city,
        'STRtree: query(points, predicate="intersects"), highest level kept',
        t_tq,
        f"{n_points / t_tq:,.0f} points/s ({n_points / c_tq:,.0f} per CPU second); "
        f"riskmap / STRtree = {t_tq / t_rm:.1f}x (CPU time {c_tq / c_rm:.1f}x)",
    )
    t_tp, ref_p = timed(lambda: strtree_prepared_lookup(tree, zones, prio, lon, lat))
    rec(
        city,
        "STRtree bounding-box query + prepared zones intersects, highest level kept",
        t_tp,
        f"{n_points / t_tp:,.0f} points/s; riskmap / this = {t_tp / t_rm:.1f}x",
    )
    t_bf, brute = timed(lambda: brute_force(zones, prio, lon, lat))
    same = float((got.index == brute).mean())
    same_tree = float(((ref == brute) & (ref_p == brute)).mean())
    on_edges = zi.lookup(lon_v, lat_v).index
    same_v = float((on_edges == brute_force(zones, prio, lon_v, lat_v)).mean())
    rec(
        city,
        "brute force (each zone x the points in its bounding box)",
        t_bf,
        f"{n_points / t_bf:,.0f} points/s; equal to brute force: riskmap {same:.4%}, "
        f"STRtree (both) {same_tree:.4%}; {len(lon_v):,} zone vertices: riskmap {same_v:.4%}",
    )
    return {
        "points_per_s": n_points / t_rm,
        "points_per_cpu_s": n_points / c_rm,
        "ratio_vs_strtree": t_tq / t_rm,
        "ratio_vs_prepared_strtree": t_tp / t_rm,
        "equal": min(same, same_v),
        "build_s": t_build,
    }


def bench_wuhan(rec: Rec, n_points: int = 1_000_000, communities: int = 20_000) -> dict[str, float]:
    t, (comm, zones, levels) = timed(lambda: wuhan_zones(communities))
    n_sealed = int((levels == SEALED).sum())
    rec(
        "wuhan-voronoi",
        "generate city and zones",
        t,
        f"{len(comm):,} communities; {n_sealed:,} sealed + {len(zones) - n_sealed:,} "
        "controlled zones",
    )
    return compare(rec, "wuhan-voronoi", zones, levels, n_points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--communities", type=int, default=20_000, help="Voronoi communities")
    args = ap.parse_args()

    def rec(city: str, what: str, seconds: float, note: str = "") -> None:
        console.print(f"{city}: {what}: {seconds:.3f} s {note}")

    bench_wuhan(rec, args.points, args.communities)


if __name__ == "__main__":
    main()
