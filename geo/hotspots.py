"""Hotspots: the Getis-Ord Gi* statistic of case counts on H3 cells or on communities, with
a false-discovery-rate correction (Benjamini-Hochberg).

Gi* (Ord and Getis 1995) compares the cases of each place and its neighbours (the place
itself included) with what the whole area's mean would give them. With binary weights
``w_ij`` (1 for the place itself and each neighbour), n places and counts x:

    z_i = (sum_j w_ij x_j - mean(x) W_i) / (S sqrt((n W_i - W_i^2) / (n - 1)))

with ``W_i = sum_j w_ij`` and ``S`` the standard deviation of x (divided by n). The z-score
is computed by PySAL's ``esda.G_Local(star=True, transform="B")`` on ``libpysal`` weights;
the p-value is two-sided from the normal distribution, and the p-values of all places are
adjusted together for the false discovery rate (``scipy.stats.false_discovery_control``,
Benjamini-Hochberg). A place is ``hot`` (z > 0) or ``cold`` (z < 0) when its adjusted
p-value is below ``alpha``, else ``not significant``. Neighbours: H3 cells sharing an edge;
communities touching each other (within a centimetre).

Privacy. Case counts are health data; the hotspot layer may be public. The public variant
(``public=True``, the default) holds, per cell or community, its id, its geometry and its
class only: no count, no z-score and no p-value (the z-scores of all places determine the
counts up to a scale and an offset, and with a published total exactly). A place is shown
``hot`` only when its neighbourhood (the place and its neighbours, the cases its Gi* sums)
holds at least ``min_count`` cases in the window; a hot place with fewer is shown as
``not significant`` (a hot class could otherwise point at the home of one or two cases).
Cells are no finer than resolution 8 (about 0.7 km2) in the public variant. The analysts'
variant (``public=False``) adds cases, z, p and p_fdr and shows the classes as computed.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse, stats

from riskmap.geo import cells as h3c
from riskmap.geo.crs import WGS84
from riskmap.geo.measures import DEFAULT_TYPES, case_points
from riskmap.geo.warning import PUBLIC_MAX_RES
from riskmap.geo.zones import CommunityLayer, to_day, to_days

CLASSES = ("hot", "cold", "not significant")
PUBLIC_COLUMNS = ["id", "class", "geometry"]
ANALYST_COLUMNS = ["id", "cases", "z", "p", "p_fdr", "class", "geometry"]

__all__ = [
    "ANALYST_COLUMNS",
    "CLASSES",
    "PUBLIC_COLUMNS",
    "PUBLIC_MAX_RES",
    "classify",
    "gi_star",
    "hotspots",
]


def gi_star(
    values: NDArray[np.float64],
    adjacency: sparse.spmatrix,
    *,
    permutations: int = 0,
    seed: int | None = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(z-score, two-sided p-value) of Gi* for each place, from its value and a binary
    (places x places) adjacency without the diagonal (each place is its own neighbour in
    Gi*: added here). Places where Gi* is undefined (no cases anywhere, or the same value
    everywhere, or a place whose neighbourhood is every place) get z = NaN and p = 1.

    ``permutations`` 0: p from the normal distribution of z (fast; somewhat liberal when
    counts are small: see README); else from esda's conditional permutations (the place's
    value kept, the others shuffled): the share of permuted Gi* at least as far from their
    mean as the observed one, (k + 1) / (permutations + 1); ``seed`` makes it repeatable.
    The smallest such p is 1 / (permutations + 1): with m places, Benjamini-Hochberg can
    flag a single place only when that is below alpha / m."""
    from esda.getisord import G_Local
    from libpysal.weights import WSP

    y = np.asarray(values, dtype=np.float64)
    n = len(y)
    if n < 3 or y.sum() <= 0 or np.allclose(y, y[0]):
        return np.full(n, np.nan), np.ones(n)
    adj = sparse.csr_matrix(adjacency, dtype=np.float64)
    adj.setdiag(0)
    adj.eliminate_zeros()
    adj.data[:] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands: a place with no neighbour is legitimate
        w = WSP(adj).to_W(silence_warnings=True)
        g = G_Local(y, w, transform="B", star=True, permutations=permutations, seed=seed, n_jobs=1)
    z = np.asarray(g.Zs, dtype=np.float64)
    if permutations:
        # two-sided: permuted values at least as far from their mean as the observed one
        # (esda's folded pseudo p-value counts ties with the observed value on one side, so
        # a place at the minimum of a sparse count field would look significant)
        sims = np.asarray(g.rGs, dtype=np.float64)  # places x permutations
        centre = sims.mean(axis=1, keepdims=True)
        obs = np.abs(np.asarray(g.Gs, dtype=np.float64)[:, None] - centre)
        far = (np.abs(sims - centre) >= obs * (1 - 1e-9)).sum(axis=1)
        p = (far + 1) / (permutations + 1)
    else:
        p = 2 * stats.norm.sf(np.abs(z))
    p = np.where(np.isfinite(z), p, 1.0)
    z = np.where(np.isfinite(z), z, np.nan)
    return z, p


def classify(z: NDArray[np.float64], p_fdr: NDArray[np.float64], alpha: float) -> NDArray[np.str_]:
    """``hot`` / ``cold`` where the adjusted p-value is below ``alpha``, by the sign of z."""
    sig = np.isfinite(z) & (p_fdr < alpha)
    out = np.full(len(z), "not significant", dtype=object)
    out[sig & (z > 0)] = "hot"
    out[sig & (z < 0)] = "cold"
    return out


def hotspots(
    layer: CommunityLayer,
    cases: pd.DataFrame,
    at: dt.date,
    *,
    days: int = 14,
    on: Literal["cells", "communities"] = "cells",
    res: int = PUBLIC_MAX_RES,
    alpha: float = 0.05,
    types: Sequence[str] | None = DEFAULT_TYPES,
    public: bool = True,
    min_count: int = 5,
    permutations: int = 0,
    seed: int | None = 0,
) -> gpd.GeoDataFrame:
    """Gi* hotspots of the cases reported in the ``days`` days ending on ``at``.

    ``on="cells"``: cases counted per H3 cell of resolution ``res`` (where each case lives:
    :func:`geo.measures.case_points`) over every cell holding part of a community (cells
    without cases count 0) and the cells of cases outside them; ``on="communities"``: cases
    per community. Returns a GeoDataFrame (lon/lat) ready for GeoJSON, one row per cell
    (``id``: the H3 index as hex) or community (``id``: community id), sorted by id; columns
    ``PUBLIC_COLUMNS`` when ``public`` (the default), else ``ANALYST_COLUMNS``. See the
    module's docstring for what each variant reveals. ``permutations`` and ``seed``: see
    :func:`gi_star`."""
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days: a positive integer is needed, got {days!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: a level between 0 and 1 is needed, got {alpha!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count: a positive integer is needed, got {min_count!r}")
    if not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations: 0 or a positive integer, got {permutations!r}")
    if on not in ("cells", "communities"):
        raise ValueError(f"on: {on!r} is not 'cells' or 'communities'")
    if on == "cells":
        h3c.check_resolution(res)
        if public and res > PUBLIC_MAX_RES:
            raise ValueError(
                f"res: public hotspots use H3 cells of resolution {PUBLIC_MAX_RES} or "
                f"coarser, got {res} (analysts: public=False)"
            )
    pts = case_points(cases, layer, types)
    if len(pts):
        rep = to_days(pts["reported"])
        last = to_day(at)
        pts = pts[(rep > last - days) & (rep <= last)].reset_index(drop=True)
    if on == "cells":
        ids, geoms, counts, adj = _cells(layer, pts, res)
    else:
        ids, geoms, counts, adj = _communities(layer, pts)
    z, p = gi_star(counts.astype(np.float64), adj, permutations=permutations, seed=seed)
    p_fdr = stats.false_discovery_control(p, method="bh") if len(p) else p
    cls = classify(z, p_fdr, alpha)
    out = gpd.GeoDataFrame(
        {
            "id": ids,
            "cases": counts,
            "z": z,
            "p": p,
            "p_fdr": p_fdr,
            "class": cls,
            "geometry": geoms,
        },
        geometry="geometry",
        crs=WGS84,
    )
    if public:
        # the cases each Gi* sums: the place and its neighbours
        near = (sparse.csr_matrix(adj, dtype=np.int64) @ counts) + counts if len(counts) else counts
        hide = (cls == "hot") & (near < min_count)
        out.loc[hide, "class"] = "not significant"
        out = out[PUBLIC_COLUMNS]
    else:
        out = out[ANALYST_COLUMNS]
    out = out.sort_values("id").reset_index(drop=True)
    out.attrs.update({"window": (at - dt.timedelta(days=days - 1), at), "alpha": alpha})
    if on == "cells":
        out.attrs["h3_resolution"] = res
    return out


def _cells(
    layer: CommunityLayer, pts: pd.DataFrame, res: int
) -> tuple[list[str], NDArray[np.object_], NDArray[np.int64], sparse.csr_matrix]:
    _, comm_cells = layer.cells
    if res <= layer.h3_res:
        region = h3c.parents(comm_cells, res)
    else:
        region = h3c.community_cells(layer.geoms, res)[1]
    case_cells = (
        h3c.points_to_cells(pts["lon"].to_numpy(), pts["lat"].to_numpy(), res)
        if len(pts)
        else h3c.EMPTY_CELLS
    )
    cells = h3c.unique(np.concatenate([region, case_cells]))
    counts = np.zeros(len(cells), dtype=np.int64)
    if len(case_cells):
        np.add.at(counts, np.searchsorted(cells, case_cells), 1)
    i, j = h3c.ring_pairs(cells)
    adj = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(len(cells), len(cells)))
    return h3c.cells_to_hex(cells), h3c.cell_polygons(cells), counts, adj


def _communities(
    layer: CommunityLayer, pts: pd.DataFrame
) -> tuple[list[str], NDArray[np.object_], NDArray[np.int64], sparse.csr_matrix]:
    comm = pts["community"].to_numpy() if len(pts) else np.empty(0, np.int64)
    counts = np.bincount(comm[comm >= 0], minlength=len(layer)).astype(np.int64)
    adj = sparse.csr_matrix(layer.touching, dtype=np.float64)
    return layer.ids.tolist(), layer.geoms, counts, adj
