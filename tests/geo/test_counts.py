"""The cell-key method of public case counts (geo.counts): the perturbation table, published
counts and their bounds, record keys, publication periods. The counts over HTTP and the attack
on every public table are in tests/api/test_aggregates.py."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from riskmap.geo.counts import (
    MAX_PERTURBATION,
    PTABLE,
    last_published_week,
    perturb,
    perturbation,
    published_bounds,
    record_keys,
    week_period,
)


# -- the method -------------------------------------------------------------------------------
def test_perturbation_table() -> None:
    e = np.arange(-MAX_PERTURBATION, MAX_PERTURBATION + 1)
    assert PTABLE.sum() == pytest.approx(1) and np.allclose(PTABLE, PTABLE[::-1])
    assert PTABLE[MAX_PERTURBATION] == PTABLE.max() and (PTABLE > 0).all()
    # cell keys spread over [0, 1) meet the table's probabilities
    keys = np.random.default_rng(1).integers(0, 2**64, 200_000, dtype=np.uint64)
    got = np.bincount(perturbation(keys) + MAX_PERTURBATION, minlength=len(e)) / len(keys)
    assert np.abs(got - PTABLE).max() < 0.005
    assert perturbation(np.array([0, 2**64 - 1], np.uint64)).tolist() == [
        -MAX_PERTURBATION,
        MAX_PERTURBATION,
    ]


@pytest.mark.parametrize("minimum", [1, 2, 4, 5, 10])
def test_published_counts_are_never_small_and_within_the_stated_bounds(minimum: int) -> None:
    rng = np.random.default_rng(minimum)
    n = rng.integers(0, 40, 50_000)
    keys = rng.integers(0, 2**64, len(n), dtype=np.uint64)
    shown = perturb(n, keys, minimum)
    assert not ((shown > 0) & (shown < minimum)).any()
    assert (shown[n == 0] == 0).all()
    assert (np.abs(shown - n)[shown > minimum] <= MAX_PERTURBATION).all()
    for v, t in zip(shown.tolist(), n.tolist(), strict=True):
        lo, hi = published_bounds(v, minimum)
        assert lo <= t <= hi, (v, t)
    # with a cell key of each perturbation: the counts that can give a published value are
    # exactly those within its stated bounds
    mid = np.cumsum(PTABLE) - PTABLE / 2
    every = (mid * 2.0**64).astype(np.uint64)
    assert perturbation(every).tolist() == list(range(-MAX_PERTURBATION, MAX_PERTURBATION + 1))
    can: dict[int, set[int]] = {}
    for t in range(60):
        for v in perturb(np.full(len(every), t), every, minimum).tolist():
            can.setdefault(v, set()).add(t)
    for v in range(40):
        if v in can:
            lo, hi = published_bounds(v, minimum)
            assert can[v] == set(range(lo, hi + 1)), v
        else:
            assert 0 < v < minimum


def test_cell_keys_depend_on_the_cases_only() -> None:
    ids = np.array(["K1", "K2", "K3"], dtype=object)
    a = record_keys(ids, b"s" * 16)
    assert a.tolist() == record_keys(ids, b"s" * 16).tolist()
    assert a.tolist() != record_keys(ids, b"t" * 16).tolist()
    assert a.sum(dtype=np.uint64) == a[::-1].sum(dtype=np.uint64)  # the same set, any order


@pytest.mark.parametrize(
    ("period", "week", "days"),
    [
        ("week", "2024-W13", ("2024-03-25", "2024-03-31")),
        ("14d", "2024-W13", ("2024-03-18", "2024-03-31")),
        ("week", "2020-W53", ("2020-12-28", "2021-01-03")),
        ("week", "2025-W01", ("2024-12-30", "2025-01-05")),
    ],
)
def test_publication_periods(period: str, week: str, days: tuple[str, str]) -> None:
    assert week_period(period, week) == tuple(dt.date.fromisoformat(d) for d in days)


@pytest.mark.parametrize(
    ("week", "why"),
    [("2024-13", "YYYY-Www"), ("2023-W53", "does not exist"), ("2024-W00", "does not exist")],
)
def test_bad_weeks(week: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        week_period("week", week)


def test_last_published_week() -> None:
    assert last_published_week(dt.date(2024, 4, 1)) == "2024-W13"  # a Monday
    assert last_published_week(dt.date(2024, 3, 31)) == "2024-W12"  # a Sunday: not ended
