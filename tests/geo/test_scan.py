"""geo.scan: the space-time permutation scan against a brute-force reference, on a planted
cluster, under the null hypothesis, and its file readers (geo.scan_io)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from riskmap.geo import _scan_kernels as kernels
from riskmap.geo._errors import InputFileError, ScanError
from riskmap.geo.scan import (
    Cluster,
    _dense,
    _prepare,
    _window_counts,
    haversine_km,
    scan_candidates,
    space_time_scan,
)
from riskmap.geo.scan_io import ScanInputError, read_scan_cases, read_scan_coords

END = dt.date(2024, 3, 31)


def random_data(
    seed: int, n_loc: int, n_days: int, n_cases: int, duplicates: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cases with independent locations and days (no space-time interaction)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(37.45, 37.65, n_loc)
    lon = rng.uniform(126.85, 127.15, n_loc)
    # a few locations share the coordinates of another one (ties in distance)
    for j in range(duplicates):
        lat[n_loc - 1 - j], lon[n_loc - 1 - j] = lat[j], lon[j]
    coords = pd.DataFrame({"location": [f"L{i}" for i in range(n_loc)], "lat": lat, "lon": lon})
    loc = rng.integers(0, n_loc, n_cases)
    day = rng.integers(0, n_days, n_cases)
    counts = (
        pd.DataFrame(
            {
                "location": [f"L{i}" for i in loc],
                "date": [END - dt.timedelta(days=int(d)) for d in day],
            }
        )
        .value_counts()
        .rename("count")
        .reset_index()
    )
    return counts, coords


# --------------------------------------------------------------------------- brute force


def hav(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))


def brute_force(
    counts: pd.DataFrame,
    coords: pd.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    prospective: bool,
    max_share: float,
    max_radius_km: float | None,
    min_days: int,
    max_days: int,
) -> dict[tuple[str, frozenset[str], dt.date, dt.date], tuple[int, float, float]]:
    """Every cylinder with (observed, expected, LLR), by plain loops over the definitions."""
    ids = list(coords["location"])
    pos = {r.location: (r.lat, r.lon) for r in coords.itertuples()}
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    n: dict[tuple[str, dt.date], int] = {}
    for r in counts.itertuples():
        if start <= r.date <= end:
            n[(r.location, r.date)] = n.get((r.location, r.date), 0) + int(r.count)
    total = sum(n.values())
    cz = {z: sum(n.get((z, d), 0) for d in days) for z in ids}
    cd = {d: sum(n.get((z, d), 0) for z in ids) for d in days}
    windows = []
    for length in range(min_days, min(max_days, len(days)) + 1):
        ends = [len(days) - 1] if prospective else range(length - 1, len(days))
        for b in ends:
            windows.append(days[b - length + 1 : b + 1])
    out = {}
    for centre in ids:
        dist = {z: hav(*pos[centre], *pos[z]) for z in ids}
        for radius in sorted(set(dist.values())):
            circle = [z for z in ids if dist[z] <= radius]
            if sum(cz[z] for z in circle) > max_share * total:
                continue
            if max_radius_km is not None and radius > max_radius_km:
                continue
            for window in windows:
                c = sum(n.get((z, d), 0) for z in circle for d in window)
                mu = sum(cz[z] * cd[d] / total for z in circle for d in window)
                llr = 0.0
                if c > mu:
                    llr = c * math.log(c / mu)
                    if total - c > 0:
                        llr += (total - c) * math.log((total - c) / (total - mu))
                out[(centre, frozenset(circle), window[0], window[-1])] = (c, mu, llr)
    return out


@pytest.mark.parametrize(
    ("prospective", "max_share", "max_radius_km", "min_days", "max_days"),
    [
        (True, 0.5, None, 2, 7),
        (False, 0.5, None, 1, 5),
        (True, 0.3, 6.0, 3, 30),
        (False, 1.0, 4.0, 2, 4),
    ],
)
def test_every_candidate_equals_brute_force(
    prospective: bool, max_share: float, max_radius_km: float | None, min_days: int, max_days: int
) -> None:
    counts, coords = random_data(3, 14, 12, 70, duplicates=2)
    start = END - dt.timedelta(days=11)
    opts = dict(
        prospective=prospective,
        max_share=max_share,
        max_radius_km=max_radius_km,
        min_days=min_days,
        max_days=max_days,
    )
    ref = brute_force(counts, coords, start=start, end=END, **opts)  # type: ignore[arg-type]
    got = scan_candidates(counts, coords, start=start, end=END, **opts)  # type: ignore[arg-type]
    keys = {
        (r.center, frozenset(r.locations), r.start, r.end): (r.observed, r.expected, r.llr)
        for r in got.itertuples()
    }
    assert len(keys) == len(got)  # no cylinder twice
    assert keys.keys() == ref.keys()
    assert any(v[2] > 0 for v in ref.values())
    for key, (c, mu, llr) in ref.items():
        gc, gmu, gllr = keys[key]
        assert gc == c, key
        assert gmu == pytest.approx(mu, rel=1e-9), key
        assert gllr == pytest.approx(llr, rel=1e-9, abs=1e-9), key

    # the scan reports the best of them, with its count and expected count
    res = space_time_scan(counts, coords, start=start, end=END, replications=0, **opts)  # type: ignore[arg-type]
    top = max(ref.values(), key=lambda v: v[2])
    first = res.clusters[0]
    assert first.llr == pytest.approx(top[2], rel=1e-9)
    c, mu, llr = ref[(first.center, frozenset(first.locations), first.start, first.end)]
    assert (first.observed, first.expected, first.llr) == (c, pytest.approx(mu), pytest.approx(llr))
    # secondary clusters: decreasing LLR, no location shared with an earlier one
    seen: set[str] = set()
    for a, b in zip(res.clusters, res.clusters[1:], strict=False):
        assert a.llr >= b.llr
    for cl in res.clusters:
        assert not seen & set(cl.locations)
        seen |= set(cl.locations)
        assert cl.p_value is None and cl.recurrence_days is None


@pytest.mark.parametrize("prospective", [True, False])
def test_compiled_replication_loop_equals_numpy(prospective: bool) -> None:
    """The loop used in replications (skips, bounds, early stop) finds the same maximum."""
    counts, coords = random_data(5, 120, 40, 300, duplicates=3)
    prep = _prepare(
        counts,
        coords,
        end=END,
        start=None,
        prospective=prospective,
        max_radius_km=None,
        max_share=0.5,
        min_days=2,
        max_days=10,
    )
    d = prep.design
    rng = np.random.default_rng(0)
    for _ in range(3):
        pw = _window_counts(prep.grid(rng.permutation(prep.case_day)), d)
        ref = max(float(_dense(pw, d, rows)[2].max()) for rows in d.blocks())
        args = (d.nbr, d.kmax, d.valid, d.share, pw.astype(float), pw.any(axis=1))
        rest = (d.day_share, float(d.total))
        assert kernels.max_llr(*args, *rest, 0.0, np.inf) == pytest.approx(ref, rel=1e-12)
        # the same without the locations that have no case
        short = d.with_cases(np.bincount(prep.case_loc, minlength=d.n_loc))
        assert short[0].shape[1] < d.width
        got = kernels.max_llr(*short, pw.astype(float), pw.any(axis=1), *rest, 0.0, np.inf)
        assert got == pytest.approx(ref, rel=1e-12)
        assert kernels.max_llr(*args, *rest, ref * 0.9, np.inf) == pytest.approx(ref, rel=1e-12)
        assert kernels.max_llr(*args, *rest, ref * 1.01, np.inf) == 0.0
        assert kernels.max_llr(*args, *rest, 0.0, ref * 0.5) >= ref * 0.5
        best, _, _ = kernels.circle_best(d.nbr, d.kmax, d.valid, d.share, pw, *rest)
        assert best.max() == pytest.approx(ref, rel=1e-12)


# --------------------------------------------------------------------------- power and size


def grid_city(n_side: int) -> pd.DataFrame:
    lat, lon = np.meshgrid(np.linspace(37.5, 37.6, n_side), np.linspace(127.0, 127.12, n_side))
    return pd.DataFrame(
        {
            "location": [f"g{i}" for i in range(n_side * n_side)],
            "lat": lat.ravel(),
            "lon": lon.ravel(),
        }
    )


def test_planted_cluster_is_found() -> None:
    coords = grid_city(15)
    rng = np.random.default_rng(11)
    n_days = 40
    days = [END - dt.timedelta(days=i) for i in range(n_days)]
    rows = [
        (z, d, int(k)) for z in coords["location"] for d in days if (k := rng.poisson(0.05)) > 0
    ]
    # raised risk in the 5 locations nearest g112 (the centre) over the last 4 days
    centre = coords.set_index("location").loc["g112"]
    dist = haversine_km(centre["lat"], centre["lon"], coords["lat"], coords["lon"])
    planted = set(coords["location"].to_numpy()[np.argsort(dist, kind="stable")[:5]])
    rows += [(z, d, 2) for z in planted for d in days[:4]]
    counts = pd.DataFrame(rows, columns=["location", "date", "count"])

    res = space_time_scan(counts, coords, end=END, replications=999, seed=1)
    top = res.clusters[0]
    assert planted & set(top.locations)
    assert top.end == END and top.start >= days[5]
    assert top.p_value is not None and top.p_value < 0.01
    assert top.recurrence_days == pytest.approx(1 / top.p_value)
    assert top in res.signals()
    assert top.observed > top.expected


def test_null_signals_at_the_nominal_rate() -> None:
    """No space-time interaction: the share of analyses that signal at alpha = 0.05 (recurrence
    interval >= 20 days with 19 replications) stays within a 99.9% binomial interval."""
    runs, alpha = 300, 0.05
    signals = 0
    for seed in range(runs):
        counts, coords = random_data(1000 + seed, 40, 15, 80)
        res = space_time_scan(
            counts, coords, end=END, replications=19, seed=seed, max_days=7, max_clusters=1
        )
        signals += bool(res.signals(min_recurrence_days=1 / alpha))
    low, high = binom.ppf(0.0005, runs, alpha), binom.isf(0.0005, runs, alpha)
    assert low <= signals <= high, (signals, low, high)


def test_same_seed_same_p_values_and_progress() -> None:
    counts, coords = random_data(8, 60, 20, 300)
    calls: list[tuple[int, int]] = []
    a = space_time_scan(
        counts, coords, end=END, replications=49, seed=7, progress=lambda *x: calls.append(x)
    )
    b = space_time_scan(counts, coords, end=END, replications=49, seed=7)
    assert [c.p_value for c in a.clusters] == [c.p_value for c in b.clusters]
    assert np.array_equal(a.null_max_llr, b.null_max_llr)
    assert a.to_json() == b.to_json()
    assert calls == [(i, 49) for i in range(1, 50)]
    for c in a.clusters:
        assert c.p_value is not None and 1 / 50 <= c.p_value <= 1
        assert round(c.p_value * 50) == pytest.approx(c.p_value * 50)


def test_json_shape_and_study_period() -> None:
    counts, coords = random_data(9, 30, 20, 200)
    early = pd.DataFrame({"location": ["L0"], "date": [END - dt.timedelta(days=40)], "count": [3]})
    late = pd.DataFrame({"location": ["L1"], "date": [END + dt.timedelta(days=1)], "count": [2]})
    counts = pd.concat([counts, early, late], ignore_index=True)
    start = END - dt.timedelta(days=19)
    res = space_time_scan(
        counts, coords, start=start, end=END, replications=9, seed=0, prospective=False
    )
    assert res.cases_outside == 5 and res.total_cases == 200
    out = res.to_json()
    assert list(out) == ["clusters"]
    assert out["clusters"]
    for c in out["clusters"]:
        assert list(c) == [
            "center", "locations", "radius_km", "start", "end", "observed", "expected", "llr",
            "p_value", "recurrence_days",
        ]  # fmt: skip
        assert c["recurrence_days"] is None  # retrospective
        assert start.isoformat() <= c["start"] <= c["end"] <= END.isoformat()
        assert c["center"] == c["locations"][0]
    llrs = [c["llr"] for c in out["clusters"]]
    assert llrs == sorted(llrs, reverse=True)
    assert isinstance(res.clusters[0], Cluster)


def test_bad_input_is_named() -> None:
    counts, coords = random_data(2, 10, 10, 30)
    with pytest.raises(ScanError, match="location 'nowhere' has no coordinates"):
        space_time_scan(
            pd.concat([counts, pd.DataFrame([{"location": "nowhere", "date": END, "count": 1}])]),
            coords,
            end=END,
        )
    with pytest.raises(ScanError, match="row 2: count -1 is not a whole number"):
        bad = counts.copy()
        bad.loc[1, "count"] = -1
        space_time_scan(bad, coords, end=END)
    with pytest.raises(ScanError, match="max_share"):
        space_time_scan(counts, coords, end=END, max_share=1.5)
    with pytest.raises(ScanError, match="less than min_days"):
        space_time_scan(counts, coords, end=END, start=END, min_days=2)
    with pytest.raises(ScanError, match="listed more than once"):
        space_time_scan(counts, pd.concat([coords, coords.iloc[:1]]), end=END)
    with pytest.raises(ScanError, match="missing column"):
        space_time_scan(counts.drop(columns="count"), coords, end=END)


# --------------------------------------------------------------------------- readers


def test_satscan_files_and_csv_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.cas").write_text("L1 2 2024/03/30\nL2 1 2024-3-31\n\n  L1   1 2024/03/31\n")
    (tmp_path / "a.geo").write_text("L1 37.5 127.0\nL2 37.51 127.02\n")
    (tmp_path / "b.csv").write_text(
        "Location,Date,Count\nL1,2024/03/30,2\nL2,2024-03-31,1\nL1,2024-03-31,1\n"
    )
    (tmp_path / "g.csv").write_text("id,longitude,latitude\nL1,127.0,37.5\nL2,127.02,37.51\n")
    cas, csv_cases = read_scan_cases(tmp_path / "a.cas"), read_scan_cases(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(cas, csv_cases)
    assert list(cas.itertuples(index=False, name=None)) == [
        ("L1", dt.date(2024, 3, 30), 2),
        ("L2", dt.date(2024, 3, 31), 1),
        ("L1", dt.date(2024, 3, 31), 1),
    ]
    geo, csv_geo = read_scan_coords(tmp_path / "a.geo"), read_scan_coords(tmp_path / "g.csv")
    pd.testing.assert_frame_equal(geo, csv_geo)
    assert geo.loc[0, "lat"] == 37.5 and geo.loc[0, "lon"] == 127.0
    # a CSV without a count column: one case per row
    (tmp_path / "c.csv").write_text("location,date\nL1,2024-03-30\nL1,2024-03-30\n")
    assert read_scan_cases(tmp_path / "c.csv")["count"].tolist() == [1, 1]
    res = space_time_scan(cas, geo, end="2024-03-31", replications=0, min_days=1)
    assert res.total_cases == 4


def test_bad_rows_are_listed(tmp_path: Path) -> None:
    p = tmp_path / "bad.cas"
    p.write_text(
        "L1 2 2024/03/30\n"
        "L2 x 2024/03/30\n"  # 2: count
        "L3 1 2024/02/30\n"  # 3: impossible date
        "L4 1 2024/03\n"  # 4: no day
        "L5 1 2024/03/30 male\n"  # 5: covariate
        "L6 -2 2024/03/30\n"  # 6: negative
    )
    with pytest.raises(ScanInputError) as err:
        read_scan_cases(p)
    got = [(r.row, r.field) for r in err.value.rejects]
    assert got == [(2, "count"), (3, "date"), (4, "date"), (5, "row"), (6, "count")]
    msg = str(err.value)
    assert str(p) in msg and "row 4: date: '2024/03' has no day" in msg
    assert "covariates" in msg and "not a calendar date" in msg

    g = tmp_path / "bad.geo"
    g.write_text("L1 37.5 127.0\nL2 127.0 37.5\nL1 37.6 127.1\nL3 37.5\nL4 37.5 190\n")
    with pytest.raises(ScanInputError) as err:
        read_scan_coords(g)
    got = [(r.row, r.field) for r in err.value.rejects]
    assert got == [(2, "lat"), (3, "location"), (4, "row"), (5, "lon")]
    assert "latitude comes before longitude" in str(err.value)
    assert "already on row 1" in str(err.value)

    h = tmp_path / "nohead.csv"
    h.write_text("where,when\nL1,2024-03-30\n")
    with pytest.raises(InputFileError, match="header has no location column"):
        read_scan_cases(h)
    e = tmp_path / "empty.cas"
    e.write_text("\n \n")
    with pytest.raises(InputFileError, match="is empty"):
        read_scan_cases(e)
    with pytest.raises(InputFileError, match="cannot be read"):
        read_scan_coords(tmp_path / "missing.geo")
