"""Helpers on (units x days) grids of booleans and on sparse (sources x targets) selections."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo.policy import Range

Bool2D = NDArray[np.bool_]
Int1D = NDArray[np.int64]


def rolling_any(q: Bool2D, n: int) -> Bool2D:
    """active[:, t] = any q in [t-n+1, t] (the running count grew over the window)."""
    cs = np.cumsum(q, axis=1, dtype=np.int32)
    out = cs > 0
    if n < cs.shape[1]:
        np.greater(cs[:, n:], cs[:, :-n], out=out[:, n:])
    return out


def last_true(q: Bool2D, lo: int, hi: int) -> Int1D:
    """Index of the last True in columns [lo, hi] per row, -1 if none."""
    lo = max(lo, 0)
    if hi < lo:
        return np.full(q.shape[0], -1, dtype=np.int64)
    win = q[:, lo : hi + 1][:, ::-1]
    has = win.any(axis=1)
    return np.where(has, hi - win.argmax(axis=1), -1).astype(np.int64)


def run_bounds(grid: NDArray[np.int8], at_i: int) -> tuple[Int1D, Int1D]:
    """First day of the run containing ``at_i`` and first later day with another value (-1)."""
    cur = grid[:, at_i]
    before = grid[:, : at_i + 1] != cur[:, None]
    rev = before[:, ::-1]
    start = np.where(rev.any(axis=1), at_i + 1 - rev.argmax(axis=1), 0)
    after = grid[:, at_i + 1 :] != cur[:, None]
    has = after.any(axis=1)
    end = np.where(has, at_i + 1 + after.argmax(axis=1), -1)
    return start.astype(np.int64), end.astype(np.int64)


def spread(sel: sparse.spmatrix, grid: Bool2D) -> Bool2D:
    """out[j] = any grid[i] with sel[i, j] (sel: sources x targets)."""
    if sel.shape[0] == 0 or grid.shape[1] == 0:
        return np.zeros((sel.shape[1], grid.shape[1]), dtype=bool)
    return np.asarray((sel.T.tocsr().astype(np.int32) @ grid.astype(np.int32)) > 0)


def spread_max(sel: sparse.spmatrix, values: Int1D) -> Int1D:
    """out[j] = max values[i] with sel[i, j] (-1 if none)."""
    coo = sel.tocoo()
    out = np.full(sel.shape[1], -1, dtype=np.int64)
    if coo.nnz:
        np.maximum.at(out, coo.col, values[coo.row])
    return out


def in_range(values: NDArray[np.floating[Any]] | NDArray[np.integer[Any]], r: Range) -> Bool2D:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values)
        if r.min is not None:
            ok &= values >= r.min
        if r.max is not None:
            ok &= values < r.max
    return ok
