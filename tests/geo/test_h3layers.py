"""geo.h3layers on hand-made cases: distinct cases per cell with their cell keys, the
aggregation across resolutions, the period, bbox and the cell bound."""

from __future__ import annotations

import datetime as dt

import h3
import numpy as np
import pytest

from riskmap.geo import cells as h3c
from riskmap.geo.counts import distinct_counts, record_keys
from riskmap.geo.h3layers import TooManyCells, cell_counts
from tests.helpers import case_rows

SECRET = b"a test secret of the record keys"
D = "2024-03-05"


def test_distinct_counts_and_keys() -> None:
    ids = np.array(["a", "a", "b", "c", "a"], dtype=object)
    cell = np.array([0, 0, 0, 1, 1])
    got = distinct_counts(ids, cell, 3, SECRET)
    assert got.counts.tolist() == [2, 2, 0] and got.total == 3  # a twice in cell 0: once
    k = {
        c: int(v)
        for c, v in zip("abc", record_keys(np.array(["a", "b", "c"]), SECRET), strict=True)
    }
    assert got.keys is not None
    assert got.keys.tolist() == [
        int((k["a"] + k["b"]) % 2**64),
        int((k["a"] + k["c"]) % 2**64),
        0,
    ]
    assert distinct_counts(ids, cell, 3).keys is None


def test_cell_counts_aggregate_across_resolutions() -> None:
    # a case at two places 3 km apart, two cases at one place, one outside the period
    cases = case_rows(
        [
            ("k1", D, "confirmed", "residence", 0, 0),
            ("k1", D, "confirmed", "workplace", 3000, 0),
            ("k2", D, "confirmed", "residence", 0, 0),
            ("k3", "2024-03-04", "confirmed", "residence", 10, 10),
            ("k4", "2024-02-01", "confirmed", "residence", 0, 0),
        ]
    )
    day = dt.date.fromisoformat(D)
    fine = cell_counts(cases, 9, day, day, secret=SECRET)
    assert sorted(fine.counts.tolist()) == [1, 2]  # k1 and k2 at (0, 0); k1 at (3000, 0)
    for res in range(0, 9):
        got = cell_counts(cases, res, day, day, secret=SECRET)
        parents = h3c.parents(fine.cells, res)
        for cell, n in zip(got.cells.tolist(), got.counts.tolist(), strict=True):
            kids = parents == cell
            assert n <= fine.counts[kids].sum()
        if len(got.cells) == 1:  # both places in one cell: k1 and k2 once each
            assert got.counts.tolist() == [2]
    # the cell of a location is the ancestor of its res-15 cell
    lat, lon = cases["lat"].iat[0], cases["lon"].iat[0]
    one = cell_counts(cases.iloc[:1], 5, day, day)
    assert h3c.cells_to_hex(one.cells) == [h3.cell_to_parent(h3.latlng_to_cell(lat, lon, 15), 5)]
    two_days = cell_counts(cases, 9, day - dt.timedelta(days=1), day)
    assert two_days.counts.sum() == 4  # k3 (14 m from k2) joins, in k2's cell or its own
    with pytest.raises(TooManyCells, match="at most 1"):
        cell_counts(cases, 9, day, day, max_cells=1)
    w, s = float(cases["lon"].iat[1]) - 0.005, float(cases["lat"].iat[1]) - 0.005
    boxed = cell_counts(cases, 9, day, day, bbox=(w, s, w + 0.01, s + 0.01))
    assert boxed.counts.tolist() == [1]  # the workplace only
