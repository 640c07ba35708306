"""Deterministic sample-city generator: communities, subdistricts, districts and an outbreak.

The city is synthetic but placed at real-world coordinates (centred on Wuhan) so that every
riskmap layer (H3 cells, tiles, zone rules) can be exercised end to end::

    city = generate_city(seed=7, communities=2_000, cases=5_000, days=60)
    write_city(city, Path("var/sample"))

How it is built (all steps vectorised with numpy / shapely 2, in a local azimuthal equidistant
projection in metres, then transformed to EPSG:4326):

1. **Outline** - a circle with low-frequency radial noise, scaled so that a community covers
   0.5 km^2 on average (2,000 communities ~ 1,000 km^2).
2. **Communities** - Voronoi cells of seed points clipped to the outline. Seeds are denser toward
   the centre (urban core) and get one Lloyd relaxation step. The cells form an exact partition;
   lon/lat coordinates are rounded pointwise to 7 decimals so neighbours keep identical shared
   vertices.
3. **Population** - cell area x a density that decays from the centre, with lognormal noise.
4. **Subdistricts / districts** - k-means of community centroids, then of subdistrict centres;
   geometries are unions of their communities.
5. **Outbreak** - a branching cluster process: clusters start on random days in
   population-weighted random communities, follow a gamma-shaped epidemic curve (1-4 weeks), seed
   child clusters a few km away and die out. Daily counts are Poisson (drawn as a multinomial
   conditional on a Poisson total kept within +-10% of the request). Each case gets a residence
   and possibly a workplace, a frequent-activity place and visits.

Determinism: every random stream is derived from ``seed`` and a fixed stream number, never from
``end``; ``end`` only labels day indexes, so re-dating a sample shifts every date by the same offset
and leaves ids and coordinates identical.
"""

from __future__ import annotations

import datetime
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from scipy.spatial import cKDTree
from scipy.special import gammainc

__all__ = [
    "CENTRE_LAT",
    "CENTRE_LON",
    "CASE_ROLES",
    "CASE_TYPES",
    "METRIC_PROJ",
    "SampleCity",
    "generate_city",
    "write_city",
]

#: City centre (Wuhan).
CENTRE_LAT = 30.5928
CENTRE_LON = 114.3055
#: Local metric projection in which the city is built.
METRIC_PROJ = f"+proj=aeqd +lat_0={CENTRE_LAT} +lon_0={CENTRE_LON} +datum=WGS84 +units=m +no_defs"
#: Allowed values of ``cases.type`` and ``cases.role`` (roles in their output order).
CASE_TYPES = ("confirmed", "asymptomatic")
RURAL_DENSITY = 3_000.0  # residents per km2 below which a community is rural
CASE_ROLES = ("residence", "workplace", "frequent_activity", "visit")
CASE_COLUMNS = ["case_id", "reported", "type", "role", "lat", "lon"]

COMMUNITY_AREA_M2 = 500_000.0  # mean community area (0.5 km^2)
INNER_MARGIN_M = 20.0  # seeds and case locations stay this far inside the outline
LONLAT_DECIMALS = 7  # polygon coordinates
CASE_DECIMALS = 6  # case coordinates

# Random streams: one independent generator per step (changing one step never shifts another).
_S_OUTLINE, _S_SEEDS, _S_POPULATION, _S_NAMES = 1, 2, 3, 4
_S_SUBDISTRICTS, _S_DISTRICTS, _S_OUTBREAK, _S_LOCATIONS = 5, 6, 7, 8

# Pinyin-like syllables that names are built from ("dong" + "hu" -> "Donghu").
_SYLLABLE_TEXT = (
    "dong hu qing shan han yang wu chang jiang an hong xin zhou hua qiao nan bei xi guan gu tian "
    "he ping lin shui yu jin long feng kou tang men li cheng ming de shi hou yuan sha hai fu kang "
    "bai zhu song mei tao liu yan hui guang xing le shou jia bao sheng tai ning yong rong fang ji "
    "lu ma"
)
_SYLLABLES = np.array(_SYLLABLE_TEXT.split())

_FloatArray = NDArray[np.float64]
_IntArray = NDArray[np.int64]


@dataclass
class SampleCity:
    """A generated city and its outbreak (all geometries in EPSG:4326).

    ``communities``: community_id, name, population, subdistrict_id, district_id, rural
      (fewer than 3,000 residents per km2), geometry.
    ``subdistricts``: subdistrict_id, name, district_id, population, geometry.
    ``districts``: district_id, name, population, geometry.
    ``cases``: one row per case *location*: case_id, reported (``datetime.date``), type
    (``confirmed``/``asymptomatic``), role (``residence``/``workplace``/``frequent_activity``/
    ``visit``), lat, lon; sorted by (reported, case_id, role order).
    ``end``: the last day of the outbreak.
    """

    communities: gpd.GeoDataFrame
    subdistricts: gpd.GeoDataFrame
    districts: gpd.GeoDataFrame
    cases: pd.DataFrame
    end: datetime.date


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def generate_city(
    *,
    seed: int = 0,
    communities: int = 2000,
    cases: int = 5000,
    days: int = 60,
    end: datetime.date | None = None,
    subdistricts: int | None = None,
    districts: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SampleCity:
    """Generate a deterministic sample city centred on Wuhan with an outbreak ending on ``end``.

    :param seed: random seed; same arguments give identical output.
    :param communities: number of community polygons (a community is ~0.5 km^2 on average).
    :param cases: approximate number of cases (the total is within +-10% of it).
    :param days: outbreak length; day indexes ``0..days-1`` map to ``end-days+1 .. end``.
    :param end: last day of the outbreak (default: today). Only labels dates.
    :param subdistricts: default ``max(1, round(communities / 50))``.
    :param districts: default ``max(1, round(communities / 333))``; at most ``subdistricts``.
    :param progress: called with a short description at the start of each major step.
    """
    n_comm = _check_int("communities", communities, 1)
    n_cases = _check_int("cases", cases, 0)
    n_days = _check_int("days", days, 1)
    n_sub = max(1, round(n_comm / 50)) if subdistricts is None else subdistricts
    n_sub = _check_int("subdistricts", n_sub, 1)
    n_dist = max(1, round(n_comm / 333)) if districts is None else districts
    n_dist = _check_int("districts", n_dist, 1)
    if n_sub > n_comm:
        raise ValueError(f"subdistricts ({n_sub}) cannot exceed communities ({n_comm})")
    if n_dist > n_sub:
        if districts is not None:
            raise ValueError(f"districts ({n_dist}) cannot exceed subdistricts ({n_sub})")
        n_dist = n_sub
    if end is None:
        end = datetime.date.today()
    elif isinstance(end, datetime.datetime):
        end = end.date()
    elif not isinstance(end, datetime.date):
        raise TypeError(f"end must be a datetime.date, got {type(end).__name__}")
    seed = int(seed)
    say = progress or (lambda _msg: None)

    say("Shaping the city outline")
    outline = _outline(_rng(seed, _S_OUTLINE), n_comm)
    inner = outline.buffer(-INNER_MARGIN_M)
    shapely.prepare(outline)
    shapely.prepare(inner)

    say(f"Placing {n_comm:,} community seeds")
    seeds = _community_seeds(_rng(seed, _S_SEEDS), n_comm, outline, inner)

    say("Building community polygons")
    cells = _voronoi_cells(seeds, outline)

    say("Projecting to WGS84")
    to_lonlat = Transformer.from_crs(METRIC_PROJ, "EPSG:4326", always_xy=True)
    geoms = _to_lonlat_polygons(cells, to_lonlat)

    say("Assigning populations and names")
    population = _populations(_rng(seed, _S_POPULATION), cells, seeds, outline)
    names_rng = _rng(seed, _S_NAMES)
    comm_names = _names(names_rng, n_comm, "Community")
    sub_names = _names(names_rng, n_sub, "Subdistrict")
    dist_names = _names(names_rng, n_dist, "District")

    say(f"Grouping communities into {n_sub:,} subdistricts")
    centroids = shapely.get_coordinates(shapely.centroid(cells))
    sub_of_comm, sub_centres = _cluster(_rng(seed, _S_SUBDISTRICTS), centroids, n_sub)

    say(f"Grouping subdistricts into {n_dist:,} districts")
    dist_of_sub, _ = _cluster(_rng(seed, _S_DISTRICTS), sub_centres, n_dist)
    dist_of_comm = dist_of_sub[sub_of_comm]

    comm_ids = _ids("C", n_comm, 6)
    sub_ids = _ids("S", n_sub, 4)
    dist_ids = _ids("D", n_dist, 2)
    communities_gdf = gpd.GeoDataFrame(
        {
            "community_id": comm_ids,
            "name": comm_names,
            "population": population,
            "subdistrict_id": sub_ids[sub_of_comm],
            "district_id": dist_ids[dist_of_comm],
            # rural: fewer than 3,000 residents per km2 (the outskirts)
            "rural": population / (shapely.area(cells) / 1e6) < RURAL_DENSITY,
        },
        geometry=geoms,
        crs="EPSG:4326",
    )

    say("Merging subdistrict and district boundaries")
    sub_geoms = _union_groups(geoms, sub_of_comm, n_sub)
    sub_pop = np.bincount(sub_of_comm, weights=population, minlength=n_sub).astype(np.int64)
    subdistricts_gdf = gpd.GeoDataFrame(
        {
            "subdistrict_id": sub_ids,
            "name": sub_names,
            "district_id": dist_ids[dist_of_sub],
            "population": sub_pop,
        },
        geometry=sub_geoms,
        crs="EPSG:4326",
    )
    dist_geoms = _union_groups(sub_geoms, dist_of_sub, n_dist)
    dist_pop = np.bincount(dist_of_sub, weights=sub_pop, minlength=n_dist).astype(np.int64)
    districts_gdf = gpd.GeoDataFrame(
        {"district_id": dist_ids, "name": dist_names, "population": dist_pop},
        geometry=dist_geoms,
        crs="EPSG:4326",
    )

    say(f"Simulating the outbreak ({n_cases:,} cases over {n_days} days)")
    case_cluster, case_day, case_age, cl_xy = _outbreak(
        _rng(seed, _S_OUTBREAK), n_cases, n_days, seeds, population, inner
    )

    say("Placing case locations")
    cases_df = _case_rows(
        _rng(seed, _S_LOCATIONS),
        case_cluster,
        case_day,
        case_age,
        cl_xy,
        inner,
        to_lonlat,
        n_days,
        end,
    )
    return SampleCity(
        communities=communities_gdf,
        subdistricts=subdistricts_gdf,
        districts=districts_gdf,
        cases=cases_df,
        end=end,
    )


def write_city(
    city: SampleCity, out: pathlib.Path, progress: Callable[[str], None] | None = None
) -> list[pathlib.Path]:
    """Write ``city`` into directory ``out`` (created with parents) and return the paths written.

    Files: ``communities``, ``subdistricts`` and ``districts`` as ``.geojson`` (RFC 7946, lon/lat)
    and ``.parquet`` (GeoParquet); ``cases.csv`` (header ``case_id,reported,type,role,lat,lon``,
    dates ``YYYY-MM-DD``, 6-decimal coordinates) and ``cases.parquet`` (the same columns plus a
    Point geometry, EPSG:4326). The bytes depend only on ``city`` (no timestamps are embedded).
    """
    say = progress or (lambda _msg: None)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    layers = [
        ("communities", city.communities),
        ("subdistricts", city.subdistricts),
        ("districts", city.districts),
    ]
    for name, gdf in layers:
        path = out / f"{name}.geojson"
        say(f"Writing {path.name}")
        path.unlink(missing_ok=True)  # the GeoJSON driver does not overwrite
        gdf.to_file(path, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
        written.append(path)
        path = out / f"{name}.parquet"
        say(f"Writing {path.name}")
        gdf.to_parquet(path, index=False)
        written.append(path)

    cases = city.cases[CASE_COLUMNS].reset_index(drop=True)
    reported = _as_dates(cases["reported"])
    path = out / "cases.csv"
    say(f"Writing {path.name}")
    _write_cases_csv(cases, reported, path)
    written.append(path)

    path = out / "cases.parquet"
    say(f"Writing {path.name}")
    lon = cases["lon"].to_numpy(dtype=np.float64)
    lat = cases["lat"].to_numpy(dtype=np.float64)
    table = cases.assign(reported=reported)
    gpd.GeoDataFrame(table, geometry=shapely.points(lon, lat), crs="EPSG:4326").to_parquet(
        path, index=False
    )
    written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# helpers: randomness, ids, names
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per (seed, step)."""
    return np.random.default_rng(np.random.SeedSequence([stream, abs(seed), int(seed < 0)]))


def _ids(prefix: str, count: int, min_width: int) -> NDArray[np.str_]:
    """``prefix`` + zero-padded 1-based numbers, e.g. C000001 (wider if ``count`` needs it)."""
    width = max(min_width, len(str(count)))
    if count == 0:
        return np.empty(0, dtype=f"<U{width + len(prefix)}")
    return np.strings.add(prefix, np.strings.zfill(np.arange(1, count + 1).astype(str), width))


def _names(rng: np.random.Generator, count: int, kind: str) -> NDArray[np.str_]:
    """Unique syllable-built names like "Donghu Community" ("Donghu Community 2" if taken)."""
    s = len(_SYLLABLES)
    a = rng.integers(0, s, count)
    b = (a + rng.integers(1, s, count)) % s  # never the same syllable twice in a row
    c = (b + rng.integers(1, s, count)) % s
    three = rng.random(count) < 0.2
    base = np.strings.add(_SYLLABLES[a], _SYLLABLES[b])
    base = np.where(three, np.strings.add(base, _SYLLABLES[c]), base)
    base = np.strings.add(np.strings.capitalize(base), f" {kind}")
    dup = pd.Series(base).groupby(base, sort=False).cumcount().to_numpy()
    suffix = np.where(dup > 0, np.strings.add(" ", (dup + 1).astype(str)), "")
    return np.strings.add(base, suffix)


def _hilbert_keys(xy: _FloatArray) -> NDArray[np.uint32]:
    """Hilbert-curve keys of points (used to number things in a spatially coherent order)."""
    if len(xy) == 0:
        return np.empty(0, dtype=np.uint32)
    lo = xy.min(axis=0)
    hi = xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    side = 1 << 16
    ij = np.minimum(((xy - lo) / span * (side - 1)).astype(np.int64), side - 1)
    x, y = ij[:, 0].copy(), ij[:, 1].copy()
    d = np.zeros(len(xy), dtype=np.int64)
    s = side // 2
    while s > 0:  # classic xy -> d, vectorised over points (16 iterations)
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry
        swap_rx = flip & rx
        x = np.where(swap_rx, side - 1 - x, x)
        y = np.where(swap_rx, side - 1 - y, y)
        x, y = np.where(flip, y, x), np.where(flip, x, y)
        s //= 2
    return d.astype(np.uint32)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------


def _outline(rng: np.random.Generator, n_comm: int) -> shapely.Polygon:
    """Irregular city outline: a circle with low-frequency log-radial noise, area n x 0.5 km^2."""
    area = n_comm * COMMUNITY_AREA_M2
    n_vertices = int(np.clip(40 * math.sqrt(n_comm), 720, 4096))
    theta = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    k = np.arange(2, 17, dtype=np.float64)
    amp = rng.normal(0.0, 0.16, k.size) / k
    phase = rng.uniform(0.0, 2.0 * np.pi, k.size)
    r = np.exp((amp[:, None] * np.cos(k[:, None] * theta[None, :] + phase[:, None])).sum(axis=0))
    unit_area = 0.5 * np.sum(r * np.roll(r, -1)) * math.sin(2.0 * np.pi / n_vertices)
    r *= math.sqrt(area / unit_area)
    return shapely.Polygon(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))


def _community_seeds(
    rng: np.random.Generator, n: int, outline: shapely.Polygon, inner: shapely.Polygon
) -> _FloatArray:
    """``n`` seed points inside ``inner``, denser toward the centre, in Hilbert order.

    Rejection sampling from a radial density (~12x higher at the core than at the edge), then one
    Lloyd relaxation step (seeds move to their cell's centroid) to avoid slivers; the gradient
    survives (core cells ~0.15 km^2, edge cells ~1.2 km^2).
    """
    r_eff = math.sqrt(shapely.area(outline) / math.pi)
    minx, miny, maxx, maxy = shapely.bounds(outline)
    chunks: list[_FloatArray] = []
    have = 0
    while have < n:
        m = max(1024, 8 * (n - have))
        xy = rng.uniform((minx, miny), (maxx, maxy), size=(m, 2))
        rho = np.hypot(xy[:, 0], xy[:, 1]) / r_eff
        density = 0.09 + np.exp(-((rho / 0.42) ** 2))
        keep = (rng.random(m) * 1.09 < density) & shapely.contains_xy(inner, xy[:, 0], xy[:, 1])
        chunks.append(xy[keep])
        have += int(keep.sum())
    seeds = np.concatenate(chunks)[:n]
    if n >= 3:
        cells = _voronoi_cells(seeds, outline)
        cen = shapely.get_coordinates(shapely.centroid(cells))
        ok = shapely.contains_xy(inner, cen[:, 0], cen[:, 1])
        seeds = np.where(ok[:, None], cen, seeds)
    order = np.argsort(_hilbert_keys(seeds), kind="stable")
    return np.ascontiguousarray(seeds[order])


def _polygonal(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Keep only the polygonal parts of each geometry (Polygon stays, anything else -> Multi)."""
    geoms = np.asarray(geoms, dtype=object).copy()
    tid = shapely.get_type_id(geoms)
    bad = np.flatnonzero((tid != 3) & (tid != 6))
    if bad.size:
        parts, idx = shapely.get_parts(geoms[bad], return_index=True)
        while True:  # flatten nested collections
            ptid = shapely.get_type_id(parts)
            multi = (ptid == 6) | (ptid == 7)
            if not multi.any():
                break
            sub, sidx = shapely.get_parts(parts[multi], return_index=True)
            parts = np.concatenate([parts[~multi], sub])
            idx = np.concatenate([idx[~multi], idx[multi][sidx]])
        poly = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
        fixed = np.full(bad.size, shapely.MultiPolygon(), dtype=object)
        if poly.any():
            owners, dense = np.unique(idx[poly], return_inverse=True)
            order = np.argsort(dense, kind="stable")
            fixed[owners] = shapely.multipolygons(parts[poly][order], indices=dense[order])
        geoms[bad] = fixed
    return geoms


def _voronoi_cells(seeds: _FloatArray, outline: shapely.Polygon) -> NDArray[np.object_]:
    """Voronoi cells of ``seeds`` (in input order) clipped to ``outline``: an exact partition."""
    n = len(seeds)
    if n == 1:
        return np.array([outline], dtype=object)
    minx, miny, maxx, maxy = shapely.bounds(outline)
    pad = max(maxx - minx, maxy - miny)
    env = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=env, ordered=True)
    cells = shapely.get_parts(diagram)
    if len(cells) != n:  # pragma: no cover - only with duplicate seeds
        raise RuntimeError(f"Voronoi diagram has {len(cells)} cells for {n} seeds")
    border = ~shapely.contains(outline, cells)
    cells[border] = shapely.intersection(cells[border], outline)
    return _polygonal(cells)


def _to_lonlat_polygons(cells: NDArray[np.object_], to_lonlat: Transformer) -> NDArray[np.object_]:
    """Project metric cells to lon/lat rounded to 7 decimals, pointwise (shared vertices stay
    identical between neighbours); the rare cell made invalid by rounding is repaired."""

    def project(xy: _FloatArray) -> _FloatArray:
        lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), LONLAT_DECIMALS)

    geoms = shapely.transform(cells, project)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        geoms[invalid] = _polygonal(repaired)
    empty = shapely.is_empty(geoms)
    if empty.any():  # pragma: no cover - a cell smaller than the 1e-7 degree grid
        raise RuntimeError(f"{int(empty.sum())} communities vanished when rounding coordinates")
    return geoms


def _populations(
    rng: np.random.Generator,
    cells: NDArray[np.object_],
    seeds: _FloatArray,
    outline: shapely.Polygon,
) -> _IntArray:
    """Residents per community: area x density (~28,000/km^2 at the core, ~2,000/km^2 at the
    edge) x lognormal noise; at least 300."""
    r_eff = math.sqrt(shapely.area(outline) / math.pi)
    rho = np.hypot(seeds[:, 0], seeds[:, 1]) / r_eff
    density = 2_000.0 + 26_000.0 * np.exp(-((rho / 0.45) ** 2))
    area_km2 = shapely.area(cells) / 1e6
    pop = area_km2 * density * rng.lognormal(0.0, 0.35, len(seeds))
    return np.maximum(np.rint(pop), 300).astype(np.int64)


def _cluster(
    rng: np.random.Generator, points: _FloatArray, k: int, iterations: int = 12
) -> tuple[_IntArray, _FloatArray]:
    """K-means of ``points`` into ``k`` non-empty groups numbered in Hilbert order of their centres.

    Returns ``(labels, centres)``.
    """
    n = len(points)
    if k == 1:
        return np.zeros(n, dtype=np.int64), points.mean(axis=0, keepdims=True)
    centres = points[rng.choice(n, size=k, replace=False)].copy()
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        labels = cKDTree(centres).query(points)[1].astype(np.int64)
        counts = np.bincount(labels, minlength=k)
        full = counts > 0
        for dim in range(2):
            sums = np.bincount(labels, weights=points[:, dim], minlength=k)
            centres[full, dim] = sums[full] / counts[full]
    labels = cKDTree(centres).query(points)[1].astype(np.int64)
    counts = np.bincount(labels, minlength=k)
    for j in np.flatnonzero(counts == 0):  # rare: give an empty group the farthest point
        big = int(np.argmax(counts))
        members = np.flatnonzero(labels == big)
        far = members[np.argmax(((points[members] - centres[big]) ** 2).sum(axis=1))]
        labels[far] = j
        counts[big] -= 1
        counts[j] += 1
    counts = np.bincount(labels, minlength=k)
    for dim in range(2):
        centres[:, dim] = np.bincount(labels, weights=points[:, dim], minlength=k) / counts
    order = np.argsort(_hilbert_keys(centres), kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels], centres[order]


def _union_groups(geoms: NDArray[np.object_], labels: _IntArray, k: int) -> NDArray[np.object_]:
    """``union_all`` of the geometries of each group ``0..k-1`` (every group non-empty)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    out = np.empty(k, dtype=object)
    for g in range(k):  # one GEOS call per group (k is ~n/50)
        out[g] = shapely.union_all(geoms[order[bounds[g] : bounds[g + 1]]])
    return _polygonal(out)


# --------------------------------------------------------------------------------------------
# outbreak
# --------------------------------------------------------------------------------------------


def _inside(inner: shapely.Polygon, xy: _FloatArray) -> NDArray[np.bool_]:
    return shapely.contains_xy(inner, xy[:, 0], xy[:, 1])


def _scatter(
    base: _FloatArray,
    offsets: Callable[[_IntArray], _FloatArray],
    inner: shapely.Polygon,
    tries: int = 12,
) -> _FloatArray:
    """``base + offsets(rows)``, redrawing the offsets of points outside ``inner`` a few times and
    falling back to ``base`` (which must be inside) for the stubborn ones. ``offsets(rows)`` draws
    one offset per row index (it may depend on per-row parameters)."""
    rows = np.arange(len(base))
    xy = base + offsets(rows)
    bad = np.flatnonzero(~_inside(inner, xy))
    for _ in range(tries):
        if bad.size == 0:
            break
        xy[bad] = base[bad] + offsets(bad)
        bad = bad[~_inside(inner, xy[bad])]
    xy[bad] = base[bad]
    return xy


def _polar(dist: _FloatArray, angle: _FloatArray) -> _FloatArray:
    return np.column_stack([dist * np.cos(angle), dist * np.sin(angle)])


def _outbreak(
    rng: np.random.Generator,
    n_cases: int,
    days: int,
    seeds: _FloatArray,
    population: _IntArray,
    inner: shapely.Polygon,
) -> tuple[_IntArray, _IntArray, _IntArray, _FloatArray]:
    """Branching cluster process. Returns per case ``(cluster, day, age)`` (in day order) and the
    cluster centres (metres)."""
    if n_cases == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, np.empty((0, 2))

    # primary clusters: population-weighted communities, random start days (some late ones so
    # that zones are active on the last day)
    n_primary = max(3, math.ceil(n_cases / 700))
    comm = rng.choice(len(seeds), size=n_primary, p=population / population.sum())
    late = rng.random(n_primary) < 0.2
    late[0] = True
    late_lo = max(0, days - 21)
    late_hi = max(late_lo, days - 7)
    start = np.where(
        late,
        rng.integers(late_lo, late_hi + 1, n_primary),
        rng.integers(-10, days, n_primary),
    )
    xy = seeds[comm]

    starts = [start]
    centres = [xy]
    durations = [rng.uniform(7.0, 28.0, n_primary)]
    sizes = [rng.lognormal(0.0, 0.9, n_primary)]
    for _generation in range(64):  # children: a few km away, started during the parent's life
        parent_dur = durations[-1]
        n_child = rng.poisson(0.8, len(parent_dur))
        parent = np.repeat(np.arange(len(parent_dur)), n_child)
        age = 1 + np.floor(rng.gamma(3.0, parent_dur[parent] / 8.0)).astype(np.int64)
        child_start = starts[-1][parent] + age
        keep = child_start < days
        parent, child_start = parent[keep], child_start[keep]
        if parent.size == 0:
            break
        m = parent.size
        base = centres[-1][parent]
        child_xy = _scatter(
            base,
            lambda rows: _polar(
                rng.uniform(1_500.0, 4_000.0, rows.size), rng.uniform(0, 2 * np.pi, rows.size)
            ),
            inner,
        )
        starts.append(child_start)
        centres.append(child_xy)
        durations.append(rng.uniform(7.0, 28.0, m))
        sizes.append(rng.lognormal(0.0, 0.9, m))
    start = np.concatenate(starts)
    cl_xy = np.concatenate(centres)
    duration = np.concatenate(durations)
    size = np.concatenate(sizes)

    # epidemic curve: gamma(shape 3, scale duration/8) discretised by day, truncated at duration
    theta = duration / 8.0
    span = np.ceil(duration).astype(np.int64) + 1
    n_cl = len(start)
    cl = np.repeat(np.arange(n_cl), span)
    age = np.arange(cl.size) - np.repeat(np.cumsum(span) - span, span)
    day = start[cl] + age
    cdf_hi = gammainc(3.0, (age + 1) / theta[cl])
    cdf_lo = gammainc(3.0, age / theta[cl])
    norm = gammainc(3.0, span / theta)
    weight = size[cl] * (cdf_hi - cdf_lo) / norm[cl]
    window = (day >= 0) & (day < days)
    cl, age, day, weight = cl[window], age[window], day[window], weight[window]

    # Poisson daily counts, conditioned on a Poisson total kept within +-10% of the request
    lo = math.ceil(0.9 * n_cases)
    hi = max(lo, math.floor(1.1 * n_cases))
    total = int(np.clip(rng.poisson(n_cases), lo, hi))
    p = weight / weight.sum()
    counts = rng.multinomial(total, p)
    recent = day >= days - 14
    if counts[recent].sum() == 0:  # tiny outbreaks: move one case into the last 14 days
        counts[int(np.argmax(counts))] -= 1
        counts[int(np.argmax(np.where(recent, weight, -1.0)))] += 1

    case_cluster = np.repeat(cl, counts)
    case_day = np.repeat(day, counts)
    case_age = np.repeat(age, counts)
    order = np.argsort(case_day, kind="stable")
    return case_cluster[order], case_day[order], case_age[order], cl_xy


def _case_rows(
    rng: np.random.Generator,
    case_cluster: _IntArray,
    case_day: _IntArray,
    case_age: _IntArray,
    cl_xy: _FloatArray,
    inner: shapely.Polygon,
    to_lonlat: Transformer,
    days: int,
    end: datetime.date,
) -> pd.DataFrame:
    """One row per case location, sorted by (reported, case_id, role order)."""
    n = len(case_cluster)
    is_confirmed = rng.random(n) < 0.8
    has_work = rng.random(n) < 0.5
    has_freq = rng.random(n) < 0.3
    n_visits = np.where(rng.random(n) < 0.4, 1 + (rng.random(n) < 0.4), 0)

    # residence: around the cluster centre, spread growing with the cluster's age
    sigma = np.minimum(120.0 + 25.0 * case_age, 800.0)
    home = _scatter(
        cl_xy[case_cluster],
        lambda rows: rng.normal(0.0, 1.0, (rows.size, 2)) * sigma[rows, None],
        inner,
    )

    # workplace: a few km away, biased toward the city centre
    w_idx = np.flatnonzero(has_work)
    w_home = home[w_idx]
    to_centre = np.arctan2(-w_home[:, 1], -w_home[:, 0])
    work = _scatter(
        w_home,
        lambda rows: _polar(
            500.0 + rng.gamma(2.0, 1_500.0, rows.size),
            to_centre[rows] + rng.normal(0.0, 1.0, rows.size),
        ),
        inner,
    )

    # frequent activity: within ~1.5 km
    f_idx = np.flatnonzero(has_freq)
    freq = _scatter(
        home[f_idx],
        lambda rows: _polar(
            1_500.0 * np.sqrt(rng.random(rows.size)), rng.uniform(0, 2 * np.pi, rows.size)
        ),
        inner,
    )

    # visits: 1-2 places within ~5 km
    v_idx = np.repeat(np.arange(n), n_visits)
    visit = _scatter(
        home[v_idx],
        lambda rows: _polar(
            5_000.0 * np.sqrt(rng.random(rows.size)), rng.uniform(0, 2 * np.pi, rows.size)
        ),
        inner,
    )

    case_idx = np.concatenate([np.arange(n), w_idx, f_idx, v_idx])
    role = np.concatenate(
        [
            np.zeros(n, dtype=np.int64),
            np.full(w_idx.size, 1),
            np.full(f_idx.size, 2),
            np.full(v_idx.size, 3),
        ]
    )
    xy = np.concatenate([home, work, freq, visit]).reshape(-1, 2)
    order = np.lexsort((role, case_idx))  # stable: visits keep their draw order
    case_idx, role, xy = case_idx[order], role[order], xy[order]

    lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
    day_dates = np.array(
        [end - datetime.timedelta(days=days - 1 - d) for d in range(days)], dtype=object
    )
    ids = _ids("K", n, 7)
    return pd.DataFrame(
        {
            "case_id": ids[case_idx],
            "reported": day_dates[case_day[case_idx]],
            "type": np.where(is_confirmed, CASE_TYPES[0], CASE_TYPES[1])[case_idx],
            "role": np.array(CASE_ROLES)[role],
            "lat": np.round(np.asarray(lat, dtype=np.float64), CASE_DECIMALS),
            "lon": np.round(np.asarray(lon, dtype=np.float64), CASE_DECIMALS),
        }
    )


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _as_dates(values: pd.Series) -> NDArray[np.object_]:
    """The ``reported`` column as ``datetime.date`` objects (accepts dates or datetime64)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return np.asarray(values.dt.date, dtype=object)
    arr = np.asarray(values, dtype=object)
    if arr.size and not all(type(v) is datetime.date for v in pd.unique(arr)):
        return np.asarray(pd.to_datetime(values).dt.date, dtype=object)
    return arr


def _fixed6(values: NDArray[np.float64]) -> NDArray[np.str_]:
    """Format numbers with exactly 6 decimals, vectorised through integer micro-units."""
    micro = np.rint(np.asarray(values, dtype=np.float64) * 1e6).astype(np.int64)
    sign = np.where(micro < 0, "-", "")
    micro = np.abs(micro)
    whole = (micro // 1_000_000).astype(str)
    frac = np.strings.zfill((micro % 1_000_000).astype(str), 6)
    return np.strings.add(np.strings.add(sign, whole), np.strings.add(".", frac))


def _write_cases_csv(
    cases: pd.DataFrame, reported: NDArray[np.object_], path: pathlib.Path, chunk: int = 250_000
) -> None:
    """Write the cases CSV (``\\n`` line ends; no quoting: values never contain commas), built
    with vectorised string operations in chunks to bound memory."""
    days = reported.astype("datetime64[D]")
    uniq, inverse = np.unique(days, return_inverse=True)
    date_txt = uniq.astype(str)
    case_id = cases["case_id"].to_numpy(dtype=str)
    ctype = cases["type"].to_numpy(dtype=str)
    role = cases["role"].to_numpy(dtype=str)
    lat = cases["lat"].to_numpy(dtype=np.float64)
    lon = cases["lon"].to_numpy(dtype=np.float64)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(CASE_COLUMNS) + "\n")
        for lo in range(0, len(cases), chunk):
            sl = slice(lo, lo + chunk)
            line = case_id[sl]
            for col in (
                date_txt[inverse[sl]],
                ctype[sl],
                role[sl],
                _fixed6(lat[sl]),
                _fixed6(lon[sl]),
            ):
                line = np.strings.add(np.strings.add(line, ","), col)
            fh.write("\n".join(line.tolist()))
            fh.write("\n")
