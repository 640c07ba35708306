"""Early warning on the command line and over HTTP: ``riskmap scan`` (files and the store),
``riskmap hotspots``, ``riskmap zones --from --to --out-dir``, ``GET /v1/alerts`` and
``GET /v1/hotspots`` (small cities, few replications)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.geometry
from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.scan import community_counts, haversine_km, space_time_scan
from riskmap.geo.zones import CommunityLayer
from tests.api.helpers import served

runner = CliRunner()
END = dt.date(2024, 3, 31)


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample city (300 communities) in a SQLite store."""
    out = tmp_path_factory.mktemp("ew-city")
    write_city(generate_city(seed=3, communities=300, cases=600, days=40, end=END), out)
    db = out / "riskmap.db"
    store = Store.open(db)
    ingest_communities(store, out / "communities.geojson")
    assert ingest_cases(store, out / "cases.csv", today=END).counts.rejected == 0
    store.close()
    return db


# --------------------------------------------------------------------------- scan on files


def planted() -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """A 7 x 7 grid of places with background cases and a raised risk in the 4 places nearest
    the centre over the last 3 days."""
    lat, lon = np.meshgrid(np.linspace(37.50, 37.56, 7), np.linspace(127.00, 127.07, 7))
    coords = pd.DataFrame(
        {"location": [f"P{i:02d}" for i in range(49)], "lat": lat.ravel(), "lon": lon.ravel()}
    )
    rng = np.random.default_rng(5)
    days = [END - dt.timedelta(days=i) for i in range(30)]
    rows = [(z, d, int(k)) for z in coords["location"] for d in days if (k := rng.poisson(0.1))]
    c = coords.set_index("location").loc["P24"]
    near = np.argsort(haversine_km(c["lat"], c["lon"], coords["lat"], coords["lon"]))[:4]
    hot = set(coords["location"].to_numpy()[near])
    rows += [(z, d, 3) for z in hot for d in days[:3]]
    return pd.DataFrame(rows, columns=["location", "date", "count"]), coords, hot


def write_satscan(tmp: Path, counts: pd.DataFrame, coords: pd.DataFrame) -> tuple[Path, Path]:
    cas, geo = tmp / "cases.cas", tmp / "places.geo"
    cas.write_text(
        "".join(f"{r.location} {r.count} {r.date:%Y/%m/%d}\n" for r in counts.itertuples())
    )
    geo.write_text("".join(f"{r.location} {r.lat} {r.lon}\n" for r in coords.itertuples()))
    return cas, geo


def test_scan_files_json_is_the_scan_of_the_files(tmp_path: Path) -> None:
    counts, coords, hot = planted()
    cas, geo = write_satscan(tmp_path, counts, coords)
    args = ["--end", "2024-03-31", "--replications", "99", "--seed", "4", "--json"]
    code, stdout, stderr = run("scan", "--cases", str(cas), "--geo", str(geo), *args)
    assert code == 0, stderr
    got = json.loads(stdout)
    want = space_time_scan(counts, coords, end=END, replications=99, seed=4).to_json()
    assert got == want
    top = got["clusters"][0]
    assert set(got) == {"clusters"}
    assert set(top) == {
        "center",
        "locations",
        "radius_km",
        "start",
        "end",
        "observed",
        "expected",
        "llr",
        "p_value",
        "recurrence_days",
    }
    assert hot & set(top["locations"]) and top["p_value"] <= 0.01 and top["end"] == "2024-03-31"
    llrs = [c["llr"] for c in got["clusters"]]
    assert llrs == sorted(llrs, reverse=True)  # most likely first
    assert "99/99" in stderr  # the progress bar over the replications

    # the same data as CSV (one case per row, no count column) gives the same clusters
    cases_csv, geo_csv = tmp_path / "cases.csv", tmp_path / "places.csv"
    one = counts.loc[counts.index.repeat(counts["count"])]
    cases_csv.write_text(
        "location,date\n" + "".join(f"{r.location},{r.date}\n" for r in one.itertuples())
    )
    coords[["location", "lat", "lon"]].to_csv(geo_csv, index=False)
    code, stdout, _ = run("scan", "--cases", str(cases_csv), "--geo", str(geo_csv), *args)
    assert code == 0 and json.loads(stdout) == got


def test_scan_options_reach_the_scan(tmp_path: Path) -> None:
    counts, coords, _ = planted()
    cas, geo = write_satscan(tmp_path, counts, coords)
    code, stdout, stderr = run(
        "scan",
        "--cases",
        str(cas),
        "--geo",
        str(geo),
        "--start",
        "2024-03-10",
        "--end",
        "2024-03-31",
        "--retrospective",
        "--max-radius-km",
        "1.5",
        "--max-share",
        "20",
        "--min-days",
        "3",
        "--max-days",
        "10",
        "--replications",
        "19",
        "--seed",
        "1",
        "--json",
    )
    assert code == 0, stderr
    want = space_time_scan(
        counts,
        coords,
        end=END,
        start=dt.date(2024, 3, 10),
        prospective=False,
        max_radius_km=1.5,
        max_share=0.2,
        min_days=3,
        max_days=10,
        replications=19,
        seed=1,
    )
    got = json.loads(stdout)
    assert got == want.to_json()
    for c in got["clusters"]:
        assert c["radius_km"] <= 1.5 and c["recurrence_days"] is None
        days = (dt.date.fromisoformat(c["end"]) - dt.date.fromisoformat(c["start"])).days + 1
        assert 3 <= days <= 10 and c["start"] >= "2024-03-10"


def test_scan_table(tmp_path: Path) -> None:
    counts, coords, hot = planted()
    cas, geo = write_satscan(tmp_path, counts, coords)
    code, stdout, _ = run(
        "scan", "--cases", str(cas), "--geo", str(geo), "--end", "2024-03-31",
        "--replications", "99", "--seed", "4",
    )  # fmt: skip
    assert code == 0
    res = space_time_scan(counts, coords, end=END, replications=99, seed=4)
    assert f"prospective, {res.start} .. 2024-03-31: {res.total_cases} cases at 49" in stdout
    assert "RI days" in stdout and "1*" in stdout  # the top cluster signals
    assert f"1: {', '.join(res.clusters[0].locations)}" in stdout
    assert f"{len(res.clusters)} cluster(s), {len(res.signals())} signal(s)" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [],
            "error: nothing to scan: give --cases FILE --geo FILE --end DATE (files) or --at "
            "DATE (the store's communities)",
        ),
        (
            ["--cases", "{cas}", "--end", "2024-03-31"],
            "error: --cases and --geo go together (a case file and a coordinates file)",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}"],
            "error: --end: the analysis date is required with --cases (YYYY-MM-DD)",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--at", "2024-03-31"],
            "error: --at scans the store; with --cases and --geo give the analysis date as --end",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--end", "2024-02-30"],
            "error: --end: '2024-02-30' is not a date (expected YYYY-MM-DD)",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--end", "2024-03-31", "--start", "2024-04-02"],
            "error: --start 2024-04-02 is after --end 2024-03-31",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--end", "2024-03-31", "--max-share", "0"],
            "error: --max-share: 0 is not a percentage in 0 < PCT <= 100",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--end", "2024-03-31", "--max-share", "150"],
            "error: --max-share: 150 is not a percentage in 0 < PCT <= 100",
        ),
        (
            ["--cases", "{cas}", "--geo", "{geo}", "--end", "2024-03-31", "--max-radius-km", "-1"],
            "error: --max-radius-km: -1 is not a distance >= 0",
        ),
        (
            [
                "--cases",
                "{cas}",
                "--geo",
                "{geo}",
                "--end",
                "2024-03-31",
                "--min-days",
                "5",
                "--max-days",
                "3",
            ],  # fmt: skip
            "error: --min-days 5 is more than --max-days 3",
        ),
        (
            ["--cases", "{missing}", "--geo", "{geo}", "--end", "2024-03-31"],
            "error: {missing}: cannot be read (No such file or directory)",
        ),
        (
            ["--cases", "{bad}", "--geo", "{geo}", "--end", "2024-03-31"],
            "error: {bad}: 2 bad row(s):\n  row 2: count: 'x' is not a number\n"
            "  row 3: date: '2024/02/30' is not a calendar date",
        ),
        (
            ["--cases", "{stranger}", "--geo", "{geo}", "--end", "2024-03-31"],
            "error: cases: row 2: location 'Q9' has no coordinates",
        ),
    ],
)
def test_scan_bad_input_is_one_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    cas, geo = tmp_path / "a.cas", tmp_path / "a.geo"
    cas.write_text("L1 2 2024/03/30\nL2 1 2024/03/31\n")
    geo.write_text("L1 37.5 127.0\nL2 37.51 127.02\n")
    (tmp_path / "bad.cas").write_text("L1 2 2024/03/30\nL2 x 2024/03/31\nL1 1 2024/02/30\n")
    (tmp_path / "stranger.cas").write_text("L1 2 2024/03/30\nQ9 1 2024/03/31\n")
    paths = {
        "cas": cas,
        "geo": geo,
        "missing": tmp_path / "missing.cas",
        "bad": tmp_path / "bad.cas",
        "stranger": tmp_path / "stranger.cas",
    }
    code, stdout, stderr = run("scan", *(a.format(**paths) for a in args))
    assert code == 1 and stdout == ""
    assert stderr.strip() == message.format(**paths)  # nothing else: no progress, no traceback


def test_scan_count_options_are_checked() -> None:
    code, _, stderr = run("scan", "--at", "2024-03-31", "--replications", "-1")
    assert code == 2 and "Invalid value for '--replications'" in stderr
    code, _, stderr = run("scan", "--at", "2024-03-31", "--min-days", "0")
    assert code == 2 and "Invalid value for '--min-days'" in stderr


# --------------------------------------------------------------------------- the store


def test_scan_on_the_store(city_db: Path) -> None:
    code, stdout, stderr = run(
        "--db", str(city_db), "scan", "--at", "2024-03-31", "--replications", "19", "--seed", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, stderr
    store = Store.open(city_db)
    layer = CommunityLayer(store.communities(), 10)
    cases = store.case_locations()
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    store.close()
    counts, coords = community_counts(layer, cases)
    # the study period: the 365 days up to --at (../shared/docs/policies.md)
    want = space_time_scan(
        counts, coords, end=END, start=END - dt.timedelta(days=364), replications=19, seed=2
    )
    assert json.loads(stdout) == want.to_json()
    ids = set(layer.frame["community_id"])
    assert all(set(c["locations"]) <= ids for c in json.loads(stdout)["clusters"])
    # the table names the communities
    code, stdout, _ = run(
        "--db", str(city_db), "scan", "--at", "2024-03-31", "--replications", "19", "--seed", "2"
    )
    top = want.clusters[0]
    name = layer.frame.set_index("community_id").loc[top.center, "name"]
    assert code == 0 and f"1: {top.center} ({name})" in stdout


def test_scan_store_errors(city_db: Path, tmp_path: Path) -> None:
    code, _, stderr = run("--db", str(tmp_path / "none.db"), "scan", "--at", "2024-03-31")
    assert code == 1 and f"error: no store at {tmp_path / 'none.db'}" in stderr
    code, _, stderr = run("--db", str(city_db), "scan", "--at", "2024-03-31", "--end", "2024-03-31")
    assert (
        code == 1 and "error: --end is for files; on the store the analysis date is --at" in stderr
    )
    code, _, stderr = run("--db", str(city_db), "scan", "--at", "31/03/2024")
    assert code == 1 and "error: --at: '31/03/2024' is not a date (expected YYYY-MM-DD)" in stderr


# --------------------------------------------------------------------------- hotspots


def store_data(db: Path) -> tuple[CommunityLayer, pd.DataFrame]:
    store = Store.open(db)
    layer = CommunityLayer(store.communities(), 10)
    cases = store.case_locations()
    store.close()
    cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
    return layer, cases


def test_hotspots_command(city_db: Path, tmp_path: Path) -> None:
    from riskmap.geo.hotspots import hotspots

    layer, cases = store_data(city_db)
    out = tmp_path / "hotspots.geojson"
    code, _, stderr = run("--db", str(city_db), "hotspots", "--at", "2024-03-31", "--out", str(out))
    assert code == 0, stderr
    fc = json.loads(out.read_text())
    want = hotspots(layer, cases, END)  # public: res 8, RISKMAP_MIN_PUBLIC_COUNT 5
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(want)
    for f in fc["features"]:
        assert set(f["properties"]) == {"id", "class"}  # no count, z or p for the public
        assert f["id"] == f["properties"]["id"]
    got = {f["id"]: f["properties"]["class"] for f in fc["features"]}
    assert got == dict(zip(want["id"], want["class"], strict=True))
    hot = sum(c == "hot" for c in got.values())
    assert hot and f"{hot} hot, 0 cold of {len(want)} cells written to {out}" in stderr

    # analysts: every column, communities, any resolution; said not to be for publication
    code, stdout, stderr = run(
        "--db", str(city_db), "hotspots", "--at", "2024-03-31", "--on", "communities",
        "--days", "7", "--analyst",
    )  # fmt: skip
    assert code == 0, stderr
    assert "not for publication" in stderr
    fc = json.loads(stdout)
    want = hotspots(layer, cases, END, on="communities", days=7, public=False)
    assert [f["id"] for f in fc["features"]] == list(want["id"])
    assert [f["properties"]["cases"] for f in fc["features"]] == list(want["cases"])
    assert set(fc["features"][0]["properties"]) == {"id", "cases", "z", "p", "p_fdr", "class"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--res", "9"],
            "error: --res: public hotspots use H3 cells of resolution 8 or coarser, got 9 "
            "(--analyst: not for publication)",
        ),
        (["--on", "districts"], "error: --on: 'districts' is not cells or communities"),
        (["--alpha", "2"], "error: --alpha: a level between 0 and 1 is needed, got 2.0"),
        (["--at", "2024-13-01"], "error: --at: '2024-13-01' is not a date (expected YYYY-MM-DD)"),
    ],
)
def test_hotspots_bad_options(city_db: Path, args: list[str], message: str) -> None:
    code, stdout, stderr = run("--db", str(city_db), "hotspots", *args)
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines()[-1] == message


# --------------------------------------------------------------------------- zones of a range


def test_zones_of_a_range(city_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "days"
    code, _, stderr = run(
        "--db", str(city_db), "zones", "--from", "2024-03-28", "--to", "2024-03-31",
        "--policy", "india-containment", "--out-dir", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "areas.geojson",
        "zones-2024-03-28.geojson",
        "zones-2024-03-29.geojson",
        "zones-2024-03-30.geojson",
        "zones-2024-03-31.geojson",
    ]
    # each date's file: the zones and geometry of `riskmap zones --at` that date
    # (last_case and expected_lift look forward: a range leaves them empty)
    for day in ("2024-03-28", "2024-03-31"):
        code, stdout, _ = run(
            "--db", str(city_db), "zones", "--at", day, "--policy", "india-containment"
        )
        one = json.loads(stdout)["features"]
        ranged = json.loads((out / f"zones-{day}.geojson").read_text())["features"]
        assert [f["id"] for f in ranged] == [f["id"] for f in one] and one
        for a, b in zip(ranged, one, strict=True):
            assert a["geometry"] == b["geometry"]
            for k in ("level", "start", "communities"):
                if k in b["properties"]:
                    assert a["properties"][k] == b["properties"][k]
    areas = json.loads((out / "areas.geojson").read_text())["features"]
    assert areas and "4 dates" in stderr and f"{len(areas)} exact-geometry areas" in stderr
    for f in areas:
        p = f["properties"]
        assert f["id"] == p["unit_id"] and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert p["cells"] and all(isinstance(c, str) for c in p["cells"])
        assert "2024-03-28" <= p["first_day"] <= p["last_day"] <= "2024-03-31"
    # the exact-geometry areas of the last day are the exact zones drawn that day
    last = json.loads((out / "zones-2024-03-31.geojson").read_text())["features"]
    drawn = {f["id"] for f in last if f["properties"].get("drawn") != "community"}
    on_last = {f["id"] for f in areas if f["properties"]["last_day"] == "2024-03-31"}
    assert drawn and drawn <= on_last | {f["id"] for f in last}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2024-03-28", "--to", "2024-03-31"],
            "error: a range needs --from DATE, --to DATE and --out-dir DIR",
        ),
        (
            ["--from", "2024-03-31", "--to", "2024-03-28", "--out-dir", "{tmp}"],
            "error: --from 2024-03-31 is after --to 2024-03-28",
        ),
        (
            [
                "--at",
                "2024-03-31",
                "--from",
                "2024-03-28",
                "--to",
                "2024-03-31",
                "--out-dir",
                "{tmp}",
            ],
            "error: --at and --out are for one date; a range takes --from, --to, --out-dir",
        ),
        (
            ["--from", "2024-03-32", "--to", "2024-03-31", "--out-dir", "{tmp}"],
            "error: --from: '2024-03-32' is not a date (expected YYYY-MM-DD)",
        ),
    ],
)
def test_zones_range_bad_options(
    city_db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, stdout, stderr = run(
        "--db", str(city_db), "zones", *(a.format(tmp=tmp_path) for a in args)
    )
    assert code == 1 and stdout == "" and stderr.strip() == message


# --------------------------------------------------------------------------- HTTP


def settings_for(db: Path, **more: object) -> Settings:
    options: dict[str, object] = {"rate_limit_per_minute": 0, "scan_replications": 99} | more
    return Settings(database_url=f"sqlite:///{db}", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def officer_key(city_db: Path) -> str:
    store = Store.open(city_db)
    _, key = store.create_key("officer", "early warning tests")
    store.close()
    return key


def test_alerts_public_and_officer(city_db: Path, officer_key: str) -> None:
    layer, cases = store_data(city_db)
    counts, coords = community_counts(layer, cases)
    want = space_time_scan(
        counts, coords, end=END, start=END - dt.timedelta(days=364), replications=99, seed=0
    ).signals()
    assert want  # the sample outbreak signals
    with served(settings_for(city_db)) as c:
        r = c.get("/v1/alerts?at=2024-03-31")
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "public, max-age=60"
        doc = r.json()
        assert doc["exact"] is False and doc["replications"] == 99
        assert doc["at"] == "2024-03-31" and doc["study_start"] == "2023-04-02"
        shown = [a for a in want if a.observed >= 5]
        assert doc["withheld"] == len(want) - len(shown)
        assert [a["center"]["id"] for a in doc["alerts"]] == [str(a.center) for a in shown]
        names = dict(zip(layer.frame["community_id"], layer.frame["name"], strict=True))
        geoms = dict(zip(layer.frame["community_id"], layer.frame.geometry, strict=True))
        for a, w in zip(doc["alerts"], shown, strict=True):
            # no count, expected count or statistic that could point at a case
            assert a["observed"] is None and a["expected"] is None and a["llr"] is None
            assert a["radius_km"] is None
            assert [p["id"] for p in a["communities"]] == list(w.locations)
            assert all(p["name"] == names[p["id"]] for p in a["communities"])
            assert (a["start"], a["end"]) == (w.start.isoformat(), "2024-03-31")
            assert a["p_value"] == w.p_value and a["recurrence_days"] >= 100
            area = shapely.geometry.shape(a["geometry"])
            union = shapely.union_all([geoms[x] for x in w.locations])
            assert area.symmetric_difference(union).area < 1e-9 * union.area
        # a second request: the same answer, from the cache; 304 with the ETag
        assert c.get("/v1/alerts?at=2024-03-31").json() == doc
        etag = r.headers["etag"]
        again = c.get("/v1/alerts?at=2024-03-31", headers={"If-None-Match": etag})
        assert again.status_code == 304

        # an API key: every signal with its counts, privately cached
        auth = {"Authorization": f"Bearer {officer_key}"}
        r = c.get("/v1/alerts?at=2024-03-31", headers=auth)
        assert r.status_code == 200 and r.headers["cache-control"] == "private, max-age=60"
        doc = r.json()
        assert doc["exact"] is True and doc["withheld"] == 0
        assert len(doc["alerts"]) == len(want)
        for a, w in zip(doc["alerts"], want, strict=True):
            # rounded as in riskmap scan --json
            assert a["observed"] == w.observed
            assert a["expected"] == pytest.approx(w.expected, abs=1e-3)
            assert a["llr"] == pytest.approx(w.llr, abs=1e-6)
            assert a["radius_km"] == pytest.approx(w.radius_km, abs=1e-3)


def test_alerts_scan_once_per_data_version_and_date(
    city_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many callers ask, and even when each gives up before the answer (time
    limit), the scan of a data version and date runs once."""
    import shutil
    import threading
    import time

    import riskmap.geo.scan as scan_module

    db = tmp_path / "copy.db"
    shutil.copy(city_db, db)
    real = scan_module.space_time_scan
    calls: list[dt.date] = []

    def slow_scan(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["end"])  # type: ignore[arg-type]
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "space_time_scan", slow_scan)
    # dates before the last need a key; made in the copy (the original's WAL may not be in it)
    keys = Store.open(db)
    auth = {"Authorization": f"Bearer {keys.create_key('officer', 'scan once')[1]}"}
    keys.close()
    with served(settings_for(db, request_timeout_s=0.2, scan_replications=19)) as c:
        # every request gives up (503) while the scan runs; the scan goes on
        codes = [c.get("/v1/alerts?at=2024-03-30", headers=auth).status_code for _ in range(3)]
        assert codes[0] == 503
        deadline = time.monotonic() + 30
        while (r := c.get("/v1/alerts?at=2024-03-30", headers=auth)).status_code != 200:
            assert r.status_code == 503 and time.monotonic() < deadline
            time.sleep(0.2)
        assert calls == [dt.date(2024, 3, 30)]
    with served(settings_for(db, scan_replications=19)) as c:
        # many callers at once: one scan for the new date
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    c.get("/v1/alerts?at=2024-03-29", headers=auth).status_code
                )
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 6
        assert calls == [dt.date(2024, 3, 30), dt.date(2024, 3, 29)]
        assert c.get("/v1/alerts?at=2024-03-29", headers=auth).status_code == 200
        assert len(calls) == 2
        # new data: a new data version, scanned afresh
        store = Store.open(db)
        extra = tmp_path / "one.csv"
        case = store.case_locations().iloc[0]
        extra.write_text(
            "case_id,reported,type,role,lat,lon\n"
            f"NEW1,2024-03-29,confirmed,residence,{case['lat']},{case['lon']}\n"
        )
        assert ingest_cases(store, extra, today=END).counts.inserted == 1
        store.close()
        assert c.get("/v1/alerts?at=2024-03-29", headers=auth).status_code == 200
        assert calls == [dt.date(2024, 3, 30), dt.date(2024, 3, 29), dt.date(2024, 3, 29)]


def test_anonymous_alerts_only_for_today_and_the_last_report_date(
    city_db: Path, monkeypatch: pytest.MonkeyPatch, officer_key: str
) -> None:
    """Each date is a scan of its own: without a key, only the last report date (and today)
    are answered, so an anonymous caller cannot walk through every date."""
    import riskmap.geo.scan as scan_module

    calls: list[object] = []
    real = scan_module.space_time_scan

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["end"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "space_time_scan", counting)
    with served(settings_for(city_db, scan_replications=19)) as c:
        for day in ("2024-03-25", "2024-03-30"):
            r = c.get(f"/v1/alerts?at={day}")
            assert r.status_code == 401
            assert f"alerts for {day} need an API key" in r.json()["detail"]
            assert "2024-03-31" in r.json()["detail"]
        assert calls == []
        assert c.get("/v1/alerts?at=2024-03-31").status_code == 200
        auth = {"Authorization": f"Bearer {officer_key}"}
        assert c.get("/v1/alerts?at=2024-03-25", headers=auth).status_code == 200
        assert calls == [END, dt.date(2024, 3, 25)]


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ("at=2024-02-30", 422, "valid date"),
        ("at=1990-01-01", 422, "(1990-01-01) must lie from 2024-02-22"),
        ("policy=hk-building", 401, "is not public on this service"),
        ("policy=nope", 404, "unknown policy 'nope'"),
    ],
)
def test_alerts_bad_queries(city_db: Path, query: str, status: int, detail: str) -> None:
    with served(settings_for(city_db)) as c:
        r = c.get(f"/v1/alerts?{query}")
        assert r.status_code == status
        assert detail in json.dumps(r.json()["detail"])
        assert r.headers["cache-control"] == "no-store"


def test_hotspots_route(city_db: Path, officer_key: str) -> None:
    from riskmap.geo.hotspots import hotspots

    layer, cases = store_data(city_db)
    with served(settings_for(city_db)) as c:
        r = c.get("/v1/hotspots?at=2024-03-31")
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        assert r.headers["cache-control"] == "public, max-age=60"
        fc = r.json()
        want = hotspots(layer, cases, END, res=8, min_count=5)
        got = {f["id"]: f["properties"]["class"] for f in fc["features"]}
        assert got == dict(zip(want["id"], want["class"], strict=True))
        assert all(set(f["properties"]) == {"id", "class"} for f in fc["features"])
        assert "hot" in got.values()
        # coarser cells, communities; a key sees the same public classes, privately cached
        r = c.get("/v1/hotspots?at=2024-03-31&res=7&on=communities")
        want = hotspots(layer, cases, END, on="communities", min_count=5)
        assert [f["id"] for f in r.json()["features"]] == list(want["id"])
        auth = {"Authorization": f"Bearer {officer_key}"}
        r = c.get("/v1/hotspots?at=2024-03-31", headers=auth)
        assert r.headers["cache-control"] == "private, max-age=60"
        assert {f["id"]: f["properties"]["class"] for f in r.json()["features"]} == got
        # finer than resolution 8, or an unknown kind of place: 422 naming the parameter
        r = c.get("/v1/hotspots?at=2024-03-31&res=9")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "res"]
        r = c.get("/v1/hotspots?at=2024-03-31&on=districts")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "on"]


def test_a_running_scan_never_holds_up_zones(
    city_db: Path, monkeypatch: pytest.MonkeyPatch, officer_key: str
) -> None:
    """Scans run on a worker of their own: with one zone computation allowed at a time, the
    zones of a new date are computed while a scan is running."""
    import threading

    import riskmap.geo.scan as scan_module

    real = scan_module.space_time_scan
    started, release = threading.Event(), threading.Event()

    def held_scan(*args: object, **kwargs: object) -> object:
        started.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "space_time_scan", held_scan)
    settings = settings_for(city_db, max_computations=1, scan_replications=19)
    with served(settings) as c:
        answers: list[int] = []
        t = threading.Thread(
            target=lambda: answers.append(
                c.get(
                    "/v1/alerts?at=2024-03-27",
                    headers={"Authorization": f"Bearer {officer_key}"},
                ).status_code
            )
        )
        t.start()
        try:
            assert started.wait(60)
            r = c.get("/v1/zones?at=2024-03-26")
            assert r.status_code == 200 and r.json()["features"]
        finally:
            release.set()
            t.join()
        assert answers == [200]
