"""The space-time permutation scan statistic (Kulldorff et al. 2005), as SaTScan computes it.

Input: case counts by location and day, and the location's coordinates. Candidate clusters are
cylinders: a circle centred on a location, holding it and its nearest neighbours by great-circle
distance (haversine), up to a maximum radius and/or a maximum share of all cases, times a window
of ``min_days`` .. ``max_days`` consecutive days (prospective analysis: windows ending on the
analysis date only; retrospective: every window inside the study period).

With ``C_z`` the cases of location z over the study period, ``C_d`` the cases of day d and ``C``
all cases, the expected count of a cylinder A is ``mu_A = sum over z, d in A of C_z * C_d / C``;
since a cylinder is a set of locations times a set of days, ``mu_A = S_z * S_d / C`` with ``S_z``
the cases of its locations and ``S_d`` the cases of its days. Its statistic is SaTScan's Poisson
generalized likelihood ratio, scanning for high rates only::

    LLR = c log(c / mu) + (C - c) log((C - c) / (C - mu))   when c > mu, else 0

The most likely cluster is the cylinder with the highest LLR; secondary clusters are the next
ones, in decreasing LLR, that share no location with a cluster already reported (SaTScan's
default "no geographical overlap"), drawn as in SaTScan from the most likely cylinder of each
centre. P-values come from Monte Carlo replications in which the
days are permuted among the cases (location and day totals kept): ``p = rank / (R + 1)``, the
rank of the cluster's LLR among the replications' maximum LLRs (the observed one counted).
Prospective analyses report the recurrence interval ``1 / p`` days, as SaTScan does for an
analysis repeated every day.

Speed: the expected counts of every cylinder are the same in every replication (the totals are
kept), so they are computed once; each replication permutes the days and runs compiled loops
(``geo._scan_kernels``) that add up the counts over each centre's neighbours (sorted by
distance) for every window at once and compute the exact LLR only for the cylinders whose
upper bounds of it reach the lowest LLR reported. ``scan_candidates`` is the same computation
in vectorized numpy, for every cylinder (the reference of the tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from riskmap.geo import _scan_kernels as _kernels
from riskmap.geo._errors import ScanError
from riskmap.geo.warning import DEFAULT_SIGNAL_DAYS

__all__ = [
    "DEFAULT_SIGNAL_DAYS",
    "EARTH_RADIUS_KM",
    "Cluster",
    "ScanResult",
    "haversine_km",
    "scan_candidates",
    "space_time_scan",
]

#: Mean Earth radius (IUGG), used for great-circle distances.
EARTH_RADIUS_KM = 6371.0088
# cells per block of centres (centres x neighbours x windows) held in memory at once
_BLOCK_CELLS = 1 << 21

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Cluster:
    """One cluster: a circle of locations (``center`` and the others by distance) and a window."""

    center: Hashable
    locations: tuple[Hashable, ...]
    radius_km: float
    start: dt.date
    end: dt.date
    observed: int
    expected: float
    llr: float
    p_value: float | None
    recurrence_days: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings, numbers rounded for reading."""
        return {
            "center": _plain(self.center),
            "locations": [_plain(x) for x in self.locations],
            "radius_km": round(self.radius_km, 3),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "observed": self.observed,
            "expected": round(self.expected, 3),
            "llr": round(self.llr, 6),
            "p_value": self.p_value,
            "recurrence_days": (
                None if self.recurrence_days is None else round(self.recurrence_days, 1)
            ),
        }


@dataclass(frozen=True)
class ScanResult:
    """The clusters found (most likely first) and what the analysis was run on."""

    clusters: tuple[Cluster, ...]
    start: dt.date
    end: dt.date
    prospective: bool
    replications: int
    total_cases: int
    locations: int
    #: cases dated outside the study period, left out of the analysis
    cases_outside: int = 0
    #: the maximum LLR of each replication, clipped: below the lowest reported LLR it is only
    #: known to be below (stored as 0), and above the highest it may be any value above
    null_max_llr: NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0), repr=False, compare=False
    )

    def signals(self, min_recurrence_days: float = DEFAULT_SIGNAL_DAYS) -> list[Cluster]:
        """Prospective clusters whose recurrence interval is at least ``min_recurrence_days``."""
        return [
            c
            for c in self.clusters
            if c.recurrence_days is not None and c.recurrence_days >= min_recurrence_days
        ]

    def to_json(self) -> dict[str, Any]:
        """``{"clusters": [...]}``, most likely cluster first."""
        return {"clusters": [c.to_dict() for c in self.clusters]}


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _show(x: Any) -> str:
    return repr(_plain(x))


def haversine_km(
    lat1: NDArray[np.float64],
    lon1: NDArray[np.float64],
    lat2: NDArray[np.float64],
    lon2: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Great-circle distance in km between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# --------------------------------------------------------------------------- input checks


def _as_date(value: Any, what: str) -> dt.date:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ScanError(f"{what}: {value!r} is not a date") from exc
    if pd.isna(ts):
        raise ScanError(f"{what}: a date is required")
    return ts.date()


def _check_frame(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ScanError(f"{name}: expected a DataFrame with columns {', '.join(columns)}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ScanError(f"{name}: missing column(s) {', '.join(missing)}")


def _locations(coords: pd.DataFrame) -> tuple[pd.Index, NDArray[np.float64], NDArray[np.float64]]:
    _check_frame(coords, ("location", "lat", "lon"), "coordinates")
    ids = pd.Index(coords["location"])
    if ids.hasnans:
        raise ScanError("coordinates: a location id is missing")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ScanError(f"coordinates: location {_show(dup[0])} is listed more than once")
    lat = pd.to_numeric(coords["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(coords["lon"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScanError(
            f"coordinates: location {_show(ids[i])}: lat {_show(coords['lat'].iloc[i])}, "
            f"lon {_show(coords['lon'].iloc[i])} is not a position in degrees"
        )
    if len(ids) == 0:
        raise ScanError("coordinates: no location")
    return ids, lat, lon


def _cases(
    counts: pd.DataFrame, ids: pd.Index, start: dt.date | None, end: dt.date
) -> tuple[NDArray[np.int64], NDArray[np.int64], dt.date, int]:
    """Per-row (location index, day index) repeated by count, the study start, cases outside."""
    _check_frame(counts, ("location", "date", "count"), "cases")
    n = pd.to_numeric(counts["count"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(n) | (n < 0) | (n != np.floor(n))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScanError(
            f"cases: row {i + 1}: count {_show(counts['count'].iloc[i])} is not a whole number >= 0"
        )
    loc = ids.get_indexer(pd.Index(counts["location"]))
    if (loc < 0).any():
        i = int(np.flatnonzero(loc < 0)[0])
        raise ScanError(
            f"cases: row {i + 1}: location {_show(counts['location'].iloc[i])} has no coordinates"
        )
    dates = pd.to_datetime(counts["date"], errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise ScanError(f"cases: row {i + 1}: date {_show(counts['date'].iloc[i])} is not a date")
    day = dates.to_numpy().astype("datetime64[D]")
    end64 = np.datetime64(end, "D")
    keep_n = n > 0
    if start is None:
        inside = day[keep_n & (day <= end64)]
        if not len(inside):
            raise ScanError(f"cases: no case on or before the end date {end}")
        start = dt.date.fromisoformat(str(inside.min()))
    start64 = np.datetime64(start, "D")
    if start64 > end64:
        raise ScanError(f"study period: start {start} is after end {end}")
    inside_mask = (day >= start64) & (day <= end64)
    outside = int(n[keep_n & ~inside_mask].sum())
    keep = keep_n & inside_mask
    reps = n[keep].astype(np.int64)
    case_loc = np.repeat(loc[keep].astype(np.int64), reps)
    case_day = np.repeat((day[keep] - start64).astype(np.int64), reps)
    return case_loc, case_day, start, outside


# --------------------------------------------------------------------------- the design


@dataclass
class _Design:
    """Everything that is the same in every replication."""

    n_loc: int
    n_days: int
    total: int
    nbr: NDArray[np.intp]  # (L, K) neighbours by distance; padding = n_loc (a zero row)
    dist: NDArray[np.float64]  # (L, K) km
    valid: NDArray[np.bool_]  # (L, K) the first k+1 neighbours form an allowed circle
    share: NDArray[np.float64]  # (L, K) S_z / C of the circle
    t0: NDArray[np.intp]  # (W,) first day of each window
    t1: NDArray[np.intp]  # (W,) last day of each window
    day_share: NDArray[np.float64]  # (W,) S_d / C of each window

    @property
    def width(self) -> int:
        return self.nbr.shape[1]

    def blocks(self) -> list[slice]:
        size = max(1, _BLOCK_CELLS // max(1, self.width * len(self.t0)))
        return [slice(a, min(a + size, self.n_loc)) for a in range(0, self.n_loc, size)]

    def mu(self, rows: slice) -> NDArray[np.float64]:
        # the same operations, in the same order, as the compiled loops
        return (self.share[rows] * self.total)[:, :, None] * self.day_share[None, None, :]

    @property
    def kmax(self) -> NDArray[np.int64]:
        return (self.nbr < self.n_loc).sum(axis=1).astype(np.int64)

    def with_cases(
        self, loc_totals: NDArray[np.int64]
    ) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.bool_], NDArray[np.float64]]:
        """(nbr, kmax, valid, share) without the locations that have no case in the study
        period: they have none in any replication either (its location totals are kept), so a
        circle ending on one has the count and expected count of the circle ending on the last
        location with cases before it. The replications scan these shorter lists."""
        has = np.append(loc_totals, 0)[self.nbr] > 0
        pos = np.cumsum(has, axis=1) - 1
        width = max(1, int(has.sum(axis=1).max()))
        nbr = np.full((self.n_loc, width), self.n_loc, dtype=np.intp)
        share = np.zeros((self.n_loc, width))
        valid = np.zeros((self.n_loc, width), dtype=bool)
        r, k = np.nonzero(has)
        nbr[r, pos[r, k]] = self.nbr[r, k]
        share[r, pos[r, k]] = self.share[r, k]
        r, k = np.nonzero(self.valid & (pos >= 0))
        valid[r, pos[r, k]] = True
        return nbr, has.sum(axis=1).astype(np.int64), valid, share


def _design(
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    loc_totals: NDArray[np.int64],
    day_totals: NDArray[np.int64],
    *,
    prospective: bool,
    max_radius_km: float | None,
    max_share: float,
    min_days: int,
    max_days: int,
) -> _Design:
    n_loc, n_days = len(lat), len(day_totals)
    total = int(loc_totals.sum())
    rows: list[NDArray[np.intp]] = []
    dists: list[NDArray[np.float64]] = []
    limit = max_share * total * (1 + 1e-12)
    step = max(1, (1 << 22) // max(1, n_loc))
    for a in range(0, n_loc, step):
        b = min(a + step, n_loc)
        d = haversine_km(lat[a:b, None], lon[a:b, None], lat[None, :], lon[None, :])
        d[np.arange(b - a), np.arange(a, b)] = 0.0  # the centre comes first among ties
        order = np.argsort(d, axis=1, kind="stable")
        ds = np.take_along_axis(d, order, axis=1)
        cum = np.cumsum(loc_totals[order], axis=1)
        ok = cum <= limit
        if max_radius_km is not None:
            ok &= ds <= max_radius_km
        # allowed circles form a prefix (both quantities grow with k)
        k = ok.argmin(axis=1)
        k[ok.all(axis=1)] = n_loc
        for j in range(b - a):
            rows.append(order[j, : k[j]])
            dists.append(ds[j, : k[j]])
    width = max(1, max(len(r) for r in rows))
    nbr = np.full((n_loc, width), n_loc, dtype=np.intp)
    dist = np.full((n_loc, width), np.inf)
    for i, (r, d) in enumerate(zip(rows, dists, strict=True)):
        nbr[i, : len(r)] = r
        dist[i, : len(d)] = d
    present = nbr < n_loc
    # a circle includes every location at its radius: a tie with the next neighbour is no circle
    nxt = np.concatenate([dist[:, 1:], np.full((n_loc, 1), np.inf)], axis=1)
    valid = present & (dist < nxt)
    totals_pad = np.append(loc_totals, 0)
    share = np.cumsum(totals_pad[nbr], axis=1) / max(total, 1)

    max_days = min(max_days, n_days)
    lengths = np.arange(min_days, max_days + 1)
    if prospective:
        t1 = np.full(len(lengths), n_days - 1)
        t0 = t1 - lengths + 1
    else:
        t0 = np.concatenate([np.arange(0, n_days - n + 1) for n in lengths])
        t1 = np.concatenate([np.arange(n - 1, n_days) for n in lengths])
    pday = np.concatenate([[0], np.cumsum(day_totals)])
    day_share = (pday[t1 + 1] - pday[t0]) / max(total, 1)
    return _Design(
        n_loc,
        n_days,
        total,
        nbr,
        dist,
        valid,
        share,
        t0.astype(np.intp),
        t1.astype(np.intp),
        day_share,
    )


# --------------------------------------------------------------------------- statistics


def _llr(c: NDArray[np.float64], mu: NDArray[np.float64], total: int) -> NDArray[np.float64]:
    """SaTScan's LLR for cells with ``c > mu`` (the caller keeps only those)."""
    rest = total - c
    with np.errstate(divide="ignore", invalid="ignore"):
        out = c * np.log(c / mu)
        out += np.where(rest > 0, rest * np.log(rest / (total - mu)), 0.0)
    return out


def _window_counts(grid: NDArray[np.int64], design: _Design) -> NDArray[np.int64]:
    """(L + 1, W): each location's cases in each window (last row: the padding, zero)."""
    pref = np.zeros((design.n_loc + 1, design.n_days + 1), dtype=np.int64)
    np.cumsum(grid, axis=1, out=pref[: design.n_loc, 1:])
    return pref[:, design.t1 + 1] - pref[:, design.t0]


def _dense(
    per_window: NDArray[np.int64], design: _Design, rows: slice
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Counts, expected counts and LLRs of every cylinder of the centres ``rows`` (numpy,
    arrays of shape (centres, neighbours, windows); LLR 0 for non-circles and c <= mu)."""
    c = np.cumsum(per_window[design.nbr[rows]], axis=1)
    mu = design.mu(rows)
    keep = (c > mu) & design.valid[rows][:, :, None]
    llr = np.zeros(c.shape)
    llr[keep] = _llr(c[keep].astype(float), mu[keep], design.total)
    return c, mu, llr


def _clusters_from(
    best: NDArray[np.float64], design: _Design, max_clusters: int
) -> list[tuple[int, int]]:
    """(centre, k) of the most likely circle and the next ones sharing no location with those.

    As in SaTScan, the candidates are the most likely cylinder centred on each location (not
    every circle): in decreasing LLR, each is reported unless it overlaps one reported before.
    """
    avail = np.where(design.valid, best, 0.0)
    top_k = avail.argmax(axis=1)
    top = avail[np.arange(design.n_loc), top_k]
    used = np.zeros(design.n_loc + 1, dtype=bool)
    out: list[tuple[int, int]] = []
    for i in np.argsort(-top, kind="stable"):
        if top[i] <= 0 or len(out) >= max_clusters:
            break
        members = design.nbr[i, : top_k[i] + 1]
        if used[members].any():
            continue
        out.append((int(i), int(top_k[i])))
        used[members] = True
    return out


# --------------------------------------------------------------------------- preparation


@dataclass
class _Prepared:
    ids: pd.Index
    design: _Design
    case_loc: NDArray[np.int64]
    case_day: NDArray[np.int64]
    start: dt.date
    end: dt.date
    outside: int

    def grid(self, days: NDArray[np.int64]) -> NDArray[np.int64]:
        """(L, T) counts of the cases when case j falls on day ``days[j]``."""
        n_loc, n_days = self.design.n_loc, self.design.n_days
        flat = np.bincount(self.case_loc * n_days + days, minlength=n_loc * n_days)
        return flat.reshape(n_loc, n_days)

    def dates(self, w: int) -> tuple[dt.date, dt.date]:
        d = self.design
        return (
            self.start + dt.timedelta(days=int(d.t0[w])),
            self.start + dt.timedelta(days=int(d.t1[w])),
        )


def _prepare(
    counts: pd.DataFrame,
    coords: pd.DataFrame,
    *,
    end: dt.date | str,
    start: dt.date | str | None,
    prospective: bool,
    max_radius_km: float | None,
    max_share: float,
    min_days: int,
    max_days: int,
) -> _Prepared:
    end_d = _as_date(end, "end")
    start_d = None if start is None else _as_date(start, "start")
    if not 0 < max_share <= 1:
        raise ScanError(f"max_share: {max_share!r} is not in (0, 1]")
    if max_radius_km is not None and not max_radius_km >= 0:
        raise ScanError(f"max_radius_km: {max_radius_km!r} is not a distance >= 0")
    if not 1 <= min_days <= max_days:
        raise ScanError(f"min_days {min_days!r} and max_days {max_days!r}: need 1 <= min <= max")
    ids, lat, lon = _locations(coords)
    case_loc, case_day, start_d, outside = _cases(counts, ids, start_d, end_d)
    n_days = (end_d - start_d).days + 1
    if n_days < min_days:
        raise ScanError(
            f"study period {start_d} .. {end_d} lasts {n_days} day(s), less than min_days "
            f"{min_days}"
        )
    design = _design(
        lat,
        lon,
        np.bincount(case_loc, minlength=len(ids)),
        np.bincount(case_day, minlength=n_days),
        prospective=prospective,
        max_radius_km=max_radius_km,
        max_share=max_share,
        min_days=min_days,
        max_days=max_days,
    )
    return _Prepared(ids, design, case_loc, case_day, start_d, end_d, outside)


# --------------------------------------------------------------------------- public functions


def scan_candidates(
    counts: pd.DataFrame,
    coords: pd.DataFrame,
    *,
    end: dt.date | str,
    start: dt.date | str | None = None,
    prospective: bool = True,
    max_radius_km: float | None = None,
    max_share: float = 0.5,
    min_days: int = 2,
    max_days: int = 30,
) -> pd.DataFrame:
    """Every candidate cylinder with its count, expected count and LLR, computed with numpy
    (the reference the compiled loops are tested against; one row per circle and window, so
    meant for small inputs). Same options as :func:`space_time_scan`. Columns: ``center``,
    ``locations`` (tuple, by distance), ``radius_km``, ``start``, ``end``, ``observed``,
    ``expected``, ``llr`` (0 when ``observed <= expected``)."""
    prep = _prepare(
        counts,
        coords,
        end=end,
        start=start,
        prospective=prospective,
        max_radius_km=max_radius_km,
        max_share=max_share,
        min_days=min_days,
        max_days=max_days,
    )
    design = prep.design
    per_window = _window_counts(prep.grid(prep.case_day), design)
    frames = []
    for rows in design.blocks():
        c, mu, llr = _dense(per_window, design, rows)
        ii, kk, ww = np.nonzero(np.broadcast_to(design.valid[rows][:, :, None], c.shape))
        gi = ii + rows.start
        windows = [prep.dates(int(w)) for w in ww]
        frames.append(
            pd.DataFrame(
                {
                    "center": prep.ids[gi],
                    "locations": [
                        tuple(prep.ids[design.nbr[i, : k + 1]]) for i, k in zip(gi, kk, strict=True)
                    ],
                    "radius_km": design.dist[gi, kk],
                    "start": [a for a, _ in windows],
                    "end": [b for _, b in windows],
                    "observed": c[ii, kk, ww],
                    "expected": mu[ii, kk, ww],
                    "llr": llr[ii, kk, ww],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def space_time_scan(
    counts: pd.DataFrame,
    coords: pd.DataFrame,
    *,
    end: dt.date | str,
    start: dt.date | str | None = None,
    prospective: bool = True,
    max_radius_km: float | None = None,
    max_share: float = 0.5,
    min_days: int = 2,
    max_days: int = 30,
    replications: int = 999,
    seed: int | None = None,
    max_clusters: int = 10,
    progress: Progress | None = None,
) -> ScanResult:
    """Run the space-time permutation scan.

    ``counts``: columns ``location``, ``date``, ``count`` (rows of one location and day may
    repeat: they add up). ``coords``: ``location``, ``lat``, ``lon`` in degrees; every location
    of ``counts`` must be there, locations without cases may be. The study period runs from
    ``start`` (default: the first date with a case) to ``end`` (the analysis date); cases
    outside it are left out and counted in ``ScanResult.cases_outside``.

    ``max_share`` (0 < x <= 1) caps a circle's share of all cases, ``max_radius_km`` its radius
    (both apply when both are given); windows last ``min_days`` to ``max_days`` days (capped at
    the study period). ``replications`` Monte Carlo replications (0: no p-values) drawn with
    ``seed``; ``progress(done, total)`` is called after each one. At most ``max_clusters``
    clusters are reported. Bad input raises :class:`~geo._errors.ScanError`.
    """
    if replications < 0:
        raise ScanError(f"replications: {replications!r} is negative")
    if max_clusters < 1:
        raise ScanError(f"max_clusters: {max_clusters!r} is below 1")
    prep = _prepare(
        counts,
        coords,
        end=end,
        start=start,
        prospective=prospective,
        max_radius_km=max_radius_km,
        max_share=max_share,
        min_days=min_days,
        max_days=max_days,
    )
    design = prep.design
    total = float(design.total)
    kmax = design.kmax
    with _kernels.threads_for(design.n_loc * design.width * len(design.t0)):
        per_window = _window_counts(prep.grid(prep.case_day), design)
        best, best_w, best_c = _kernels.circle_best(
            design.nbr, kmax, design.valid, design.share, per_window, design.day_share, total
        )
        picks = _clusters_from(best, design, max_clusters)
        llrs = [float(best[i, k]) for i, k in picks]

        null_max = np.zeros(replications)
        if picks and replications:
            rng = np.random.default_rng(seed)
            nbr, kmax, valid, share = design.with_cases(
                np.bincount(prep.case_loc, minlength=design.n_loc)
            )
            for r in range(replications):
                pw = _window_counts(prep.grid(rng.permutation(prep.case_day)), design)
                null_max[r] = _kernels.max_llr(
                    nbr,
                    kmax,
                    valid,
                    share,
                    pw.astype(np.float64),
                    pw.any(axis=1),
                    design.day_share,
                    total,
                    min(llrs),
                    max(llrs),
                )
                if progress is not None:
                    progress(r + 1, replications)
        elif progress is not None:
            progress(replications, replications)

    clusters = []
    for (i, k), llr in zip(picks, llrs, strict=True):
        w = int(best_w[i, k])
        p = None
        if replications:
            p = (1 + int((null_max >= llr).sum())) / (replications + 1)
        first, last = prep.dates(w)
        clusters.append(
            Cluster(
                center=prep.ids[i],
                locations=tuple(prep.ids[design.nbr[i, : k + 1]]),
                radius_km=float(design.dist[i, k]),
                start=first,
                end=last,
                observed=int(best_c[i, k]),
                expected=float(design.share[i, k] * total * design.day_share[w]),
                llr=llr,
                p_value=p,
                recurrence_days=(1.0 / p) if (prospective and p is not None) else None,
            )
        )
    return ScanResult(
        clusters=tuple(clusters),
        start=prep.start,
        end=prep.end,
        prospective=prospective,
        replications=replications,
        total_cases=design.total,
        locations=design.n_loc,
        cases_outside=prep.outside,
        null_max_llr=null_max,
    )


def community_counts(
    layer: Any, cases: pd.DataFrame, types: Sequence[str] | None = ("confirmed",)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scan's inputs from a community layer and case locations: ``counts`` (each case
    once, where it lives: :func:`geo.measures.case_points`, in its community, by report date;
    cases outside every community left out) and ``coords`` (every community at a point on its
    surface that lies inside it, in lon/lat)."""
    from riskmap.geo.measures import case_points

    pts = case_points(cases, layer, types)
    pts = pts[pts["community"] >= 0]
    ids = layer.frame["community_id"].to_numpy()
    counts = pd.DataFrame(
        {
            "location": ids[pts["community"].to_numpy()],
            "date": pd.to_datetime(pts["reported"]).dt.date,
            "count": 1,
        }
    )
    inner = layer.frame.geometry.representative_point()
    coords = pd.DataFrame({"location": ids, "lat": inner.y.to_numpy(), "lon": inner.x.to_numpy()})
    return counts, coords
