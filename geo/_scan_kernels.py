"""Compiled loops of the space-time scan (numba): every cylinder of every replication.

Vectorized numpy evaluates a cylinder in about 15 ns (gather, cumulative sum, bound test), so
2,000 locations x 1,000 neighbours x 29 windows x 999 replications would take some 15 minutes;
these loops walk each centre's neighbours once per replication, skip the neighbours without a
case in any window (the count of the circle does not change, its expected count grows, so its
LLR cannot be higher than the circle before it) and compute the exact LLR only where the bound
``C (c - mu)^2 / (mu (C - mu))`` reaches the lowest LLR that matters.

``geo.scan`` holds the reference in numpy (``scan_candidates``); the tests check both against
plain loops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

# below this many cylinders a call runs on one thread: starting threads costs more (much more
# on a busy machine) than it saves
_PARALLEL_CELLS = 1_000_000


@contextmanager
def threads_for(cells: int) -> Iterator[None]:
    """Run the loops of a problem of ``cells`` cylinders on one thread when it is small."""
    before = numba.get_num_threads()
    if cells < _PARALLEL_CELLS:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@njit(cache=True, inline="always")
def _llr(c: float, mu: float, total: float) -> float:
    rest = total - c
    out = c * math.log(c / mu)
    if rest > 0:
        out += rest * math.log(rest / (total - mu))
    return out


@njit(cache=True, parallel=True)
def circle_best(nbr, kmax, valid, share, per_window, day_share, total):  # type: ignore[no-untyped-def]
    """For every circle (centre i, first k + 1 neighbours): best LLR over the windows, the
    window and the count (0, 0, count of window 0 where no window has c > mu)."""
    n_loc, width = nbr.shape
    n_win = per_window.shape[1]
    best = np.zeros((n_loc, width))
    best_w = np.zeros((n_loc, width), dtype=np.int64)
    best_c = np.zeros((n_loc, width), dtype=np.int64)
    for i in prange(n_loc):
        c = np.zeros(n_win, dtype=np.int64)
        for k in range(kmax[i]):
            row = per_window[nbr[i, k]]
            for w in range(n_win):
                c[w] += row[w]
            if not valid[i, k]:
                continue
            s = share[i, k] * total
            b = 0.0
            bw = 0
            for w in range(n_win):
                mu = s * day_share[w]
                if c[w] > mu:
                    v = _llr(c[w], mu, total)
                    if v > b:
                        b = v
                        bw = w
            best[i, k] = b
            best_w[i, k] = bw
            best_c[i, k] = c[bw]
    return best, best_w, best_c


@njit(cache=True, parallel=True)
def max_llr(nbr, kmax, valid, share, per_window, nonzero, day_share, total, floor, cap):  # type: ignore[no-untyped-def]
    """The highest LLR of any cylinder, when it is at least ``floor`` (else 0) and at most
    ``cap`` (a centre stops at its first cylinder reaching ``cap``: only ``min(max, cap)`` is
    used, to count the replications at or above each reported LLR).

    ``per_window`` holds float64 counts (exact integers) so that the bound test vectorizes;
    ``nonzero[z]``: location z has a case in some window.
    """
    n_loc = nbr.shape[0]
    n_win = per_window.shape[1]
    per_centre = np.zeros(n_loc)
    for i in prange(n_loc):
        c = np.zeros(n_win)
        b = 0.0
        level = floor
        changed = False
        for k in range(kmax[i]):
            loc = nbr[i, k]
            if nonzero[loc]:
                row = per_window[loc]
                for w in range(n_win):
                    c[w] += row[w]
                changed = True
            if not (changed and valid[i, k]):
                continue
            changed = False
            s = share[i, k] * total
            hit = False
            for w in range(n_win):
                mu = s * day_share[w]
                d = c[w] - mu
                hit |= (d > 0) & (total * d * d >= level * mu * (total - mu))
            if not hit:
                continue
            for w in range(n_win):
                mu = s * day_share[w]
                d = c[w] - mu
                if not (d > 0 and total * d * d >= level * mu * (total - mu)):
                    continue
                # tighter, still without a logarithm: log x <= (x - 1) / sqrt(x) for x >= 1
                if d * (math.sqrt(c[w] / mu) - (total - c[w]) / (total - mu)) >= level:
                    v = _llr(c[w], mu, total)
                    if v > b:
                        b = v
                        if v > level:
                            level = v
            if b >= cap:
                break
        per_centre[i] = b
    best = per_centre.max() if n_loc else 0.0
    return best if best >= floor else 0.0
