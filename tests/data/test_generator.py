"""Tests of the deterministic sample-city generator (data.generator), on small cities."""

from __future__ import annotations

import datetime
import math
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from riskmap.data.generator import (
    CASE_ROLES,
    CASE_TYPES,
    CENTRE_LAT,
    CENTRE_LON,
    METRIC_PROJ,
    SampleCity,
    generate_city,
    write_city,
)

END = datetime.date(2022, 4, 30)
SMALL = {"communities": 500, "cases": 800, "days": 30}  # -> 10 subdistricts, 2 districts
FILES = [
    "communities.geojson",
    "communities.parquet",
    "subdistricts.geojson",
    "subdistricts.parquet",
    "districts.geojson",
    "districts.parquet",
    "cases.csv",
    "cases.parquet",
]


@pytest.fixture(scope="module")
def city() -> SampleCity:
    return generate_city(seed=3, end=END, **SMALL)


@pytest.fixture(scope="module")
def written(city: SampleCity, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_city(city, tmp_path_factory.mktemp("city") / "nested" / "out")


def _metric(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return gdf.geometry.to_crs(METRIC_PROJ)


# ---------------------------------------------------------------------------- determinism


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    messages: list[str] = []
    a = write_city(
        generate_city(seed=3, end=END, progress=messages.append, **SMALL), tmp_path / "a"
    )
    b = write_city(generate_city(seed=3, end=END, **SMALL), tmp_path / "b")
    assert [p.name for p in a] == FILES
    assert [p.name for p in b] == FILES
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert messages and all(isinstance(m, str) and m for m in messages)
    # writing again into the same directory overwrites and stays identical
    again = write_city(generate_city(seed=3, end=END, **SMALL), tmp_path / "a")
    for pa, pb in zip(again, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_different_seed_gives_different_output(city: SampleCity, tmp_path: Path) -> None:
    other = generate_city(seed=4, end=END, **SMALL)
    a = write_city(city, tmp_path / "a")
    b = write_city(other, tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() != pb.read_bytes(), pa.name


def test_changing_end_only_shifts_dates(city: SampleCity) -> None:
    shift = 17
    moved = generate_city(seed=3, end=END + datetime.timedelta(days=shift), **SMALL)
    assert moved.end == END + datetime.timedelta(days=shift)
    for layer in ("communities", "subdistricts", "districts"):
        before, after = getattr(city, layer), getattr(moved, layer)
        pd.testing.assert_frame_equal(
            before.drop(columns="geometry"), after.drop(columns="geometry")
        )
        assert shapely.equals_exact(before.geometry.values, after.geometry.values, 0.0).all()
    cols = ["case_id", "type", "role", "lat", "lon"]
    pd.testing.assert_frame_equal(city.cases[cols], moved.cases[cols])
    delta = {b - a for a, b in zip(city.cases["reported"], moved.cases["reported"], strict=True)}
    assert delta == {datetime.timedelta(days=shift)}


def test_default_end_is_today() -> None:
    before = datetime.date.today()
    c = generate_city(seed=1, communities=30, cases=20, days=5)
    assert before <= c.end <= datetime.date.today()
    assert c.cases["reported"].max() <= c.end


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("n", [1, 7, 200, 500, 2000])
def test_default_nesting_ratios(n: int) -> None:
    c = generate_city(seed=0, communities=n, cases=10, days=3, end=END)
    assert len(c.communities) == n
    assert len(c.subdistricts) == max(1, round(n / 50))
    assert len(c.districts) == max(1, round(n / 333))


def test_two_thousand_communities_give_40_subdistricts_and_6_districts() -> None:
    c = generate_city(seed=0, communities=2000, cases=10, days=3, end=END)
    assert (len(c.subdistricts), len(c.districts)) == (40, 6)


def test_explicit_counts_and_no_empty_groups() -> None:
    # as many groups as members: k-means must still give every group a member
    c = generate_city(seed=5, communities=40, subdistricts=40, districts=40, cases=10, end=END)
    assert c.communities["subdistrict_id"].nunique() == 40
    assert c.subdistricts["district_id"].nunique() == 40
    c = generate_city(seed=5, communities=300, subdistricts=17, districts=5, cases=10, end=END)
    assert c.communities["subdistrict_id"].nunique() == 17
    assert c.subdistricts["district_id"].nunique() == 5


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        generate_city(communities=0)
    with pytest.raises(ValueError):
        generate_city(communities=10, subdistricts=11)
    with pytest.raises(ValueError):
        generate_city(communities=100, subdistricts=2, districts=3)
    with pytest.raises(ValueError):
        generate_city(days=0)
    with pytest.raises(TypeError):
        generate_city(communities=10, end="2022-04-30")  # type: ignore[arg-type]


def test_hierarchy_is_consistent(city: SampleCity) -> None:
    comm, sub, dist = city.communities, city.subdistricts, city.districts
    assert list(comm.columns) == [
        "community_id", "name", "population", "subdistrict_id", "district_id",
        "rural", "geometry",
    ]  # fmt: skip
    assert list(sub.columns) == ["subdistrict_id", "name", "district_id", "population", "geometry"]
    assert list(dist.columns) == ["district_id", "name", "population", "geometry"]
    for gdf in (comm, sub, dist):
        assert gdf.crs.to_epsg() == 4326
    assert sub["subdistrict_id"].is_unique and dist["district_id"].is_unique
    assert set(comm["subdistrict_id"]) == set(sub["subdistrict_id"])
    assert set(sub["district_id"]) == set(dist["district_id"])
    district_of_sub = sub.set_index("subdistrict_id")["district_id"]
    assert (comm["subdistrict_id"].map(district_of_sub) == comm["district_id"]).all()
    assert (comm.groupby("subdistrict_id")["population"].sum() ==
            sub.set_index("subdistrict_id")["population"]).all()  # fmt: skip
    assert (sub.groupby("district_id")["population"].sum() ==
            dist.set_index("district_id")["population"]).all()  # fmt: skip
    assert re.fullmatch(r"S\d{4}", sub["subdistrict_id"].iloc[0])
    assert re.fullmatch(r"D\d{2}", dist["district_id"].iloc[0])
    assert sub["name"].str.endswith(" Subdistrict").all() and sub["name"].is_unique
    assert dist["name"].str.endswith(" District").all() and dist["name"].is_unique


@pytest.mark.parametrize(("layer", "key"), [("subdistricts", "subdistrict_id"),
                                            ("districts", "district_id")])  # fmt: skip
def test_group_geometry_is_union_of_communities(city: SampleCity, layer: str, key: str) -> None:
    comm = city.communities
    groups = getattr(city, layer)
    m_comm = _metric(comm)
    m_groups = _metric(groups)
    assert groups.is_valid.all()
    assert groups.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    for gid, geom in zip(groups[key], m_groups, strict=True):
        members = m_comm[(comm[key] == gid).to_numpy()]
        assert len(members) >= 1
        expected = shapely.union_all(members.values)
        assert math.isclose(geom.area, expected.area, rel_tol=1e-6)
        assert math.isclose(geom.area, members.area.sum(), rel_tol=1e-6)
        assert shapely.symmetric_difference(geom, expected).area <= 1e-6 * expected.area


# ---------------------------------------------------------------------------- communities


def test_communities_form_a_valid_partition(city: SampleCity) -> None:
    comm = city.communities
    geoms = comm.geometry.values
    assert comm.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert not comm.is_empty.any()
    assert comm.is_valid.all()
    # neighbours share identical edges: a valid coverage (no overlaps, no near-misses)
    assert shapely.coverage_is_valid(geoms)
    m = _metric(comm)
    union_area = shapely.union_all(m.values).area
    assert math.isclose(union_area, m.area.sum(), rel_tol=1e-9)
    # ~0.5 km^2 per community on average
    assert math.isclose(union_area / len(comm), 500_000, rel_tol=0.01)
    # coordinates: near Wuhan, at most 7 decimals
    minx, miny, maxx, maxy = comm.total_bounds
    assert CENTRE_LON - 1 < minx < maxx < CENTRE_LON + 1
    assert CENTRE_LAT - 1 < miny < maxy < CENTRE_LAT + 1
    xy = shapely.get_coordinates(geoms)
    assert np.array_equal(np.round(xy, 7), xy)


def test_communities_ids_names_population(city: SampleCity) -> None:
    comm = city.communities
    assert comm["community_id"].is_unique
    assert comm["community_id"].str.fullmatch(r"C\d{6}").all()
    assert comm["name"].is_unique and comm["name"].str.contains(" Community").all()
    pop = comm["population"]
    assert pd.api.types.is_integer_dtype(pop.dtype)
    assert (pop > 0).all()
    assert 300 <= pop.median() <= 20_000  # thousands per community
    # denser toward the centre
    m = _metric(comm)
    dist = np.hypot(m.centroid.x, m.centroid.y)
    density = pop.to_numpy() / m.area.to_numpy()
    near = dist < np.quantile(dist, 0.2)
    far = dist > np.quantile(dist, 0.8)
    assert density[near].mean() > 3 * density[far].mean()


def test_two_thousand_community_city_is_realistic() -> None:
    c = generate_city(seed=0, cases=5000, days=60, end=END)
    assert len(c.communities) == 2000
    total = int(c.communities["population"].sum())
    assert 3_000_000 <= total <= 12_000_000
    area_km2 = _metric(c.districts).area.sum() / 1e6
    assert math.isclose(area_km2, 1000, rel_tol=0.01)
    assert math.isclose(len(c.cases.drop_duplicates("case_id")), 5000, rel_tol=0.1)


# ---------------------------------------------------------------------------- cases


def test_cases_table(city: SampleCity) -> None:
    cases = city.cases
    assert list(cases.columns) == ["case_id", "reported", "type", "role", "lat", "lon"]
    n_cases = cases["case_id"].nunique()
    assert abs(n_cases - SMALL["cases"]) <= 0.1 * SMALL["cases"]
    assert cases["case_id"].str.fullmatch(r"K\d{7}").all()
    residences = cases[cases["role"] == "residence"]
    assert residences["case_id"].is_unique and len(residences) == n_cases
    assert set(cases["role"]) <= set(CASE_ROLES)
    assert set(cases["type"]) <= set(CASE_TYPES)
    assert set(cases["role"]) == set(CASE_ROLES)  # each role appears in 800 cases
    # one type per case; ~80% confirmed
    assert (cases.groupby("case_id")["type"].nunique() == 1).all()
    assert 0.7 < (residences["type"] == "confirmed").mean() < 0.9
    assert (cases.groupby("case_id")["reported"].nunique() == 1).all()
    per_role = cases.groupby(["case_id", "role"]).size().unstack(fill_value=0)
    assert per_role.drop(columns="visit").le(1).all().all()
    assert per_role["visit"].le(2).all()


def test_case_dates(city: SampleCity) -> None:
    reported = city.cases["reported"]
    assert all(type(d) is datetime.date for d in reported.unique())
    first = END - datetime.timedelta(days=SMALL["days"] - 1)
    assert reported.min() >= first
    assert reported.max() <= END
    assert (reported > END - datetime.timedelta(days=14)).any()


def test_case_rows_are_sorted(city: SampleCity) -> None:
    cases = city.cases
    role_rank = cases["role"].map({r: i for i, r in enumerate(CASE_ROLES)}).to_numpy()
    keys = pd.DataFrame({"d": cases["reported"], "id": cases["case_id"], "r": role_rank})
    assert keys.equals(keys.sort_values(["d", "id", "r"], kind="stable").reset_index(drop=True))


def test_case_locations_inside_city(city: SampleCity) -> None:
    cases = city.cases
    lon, lat = cases["lon"].to_numpy(), cases["lat"].to_numpy()
    assert np.array_equal(np.round(lon, 6), lon) and np.array_equal(np.round(lat, 6), lat)
    outline = shapely.union_all(city.communities.geometry.values)
    assert shapely.contains_xy(outline, lon, lat).all()


def test_tiny_outbreaks(tmp_path: Path) -> None:
    for n in (0, 1, 5, 9):
        c = generate_city(seed=2, communities=20, cases=n, days=20, end=END)
        got = c.cases["case_id"].nunique()
        assert abs(got - n) <= 0.1 * n
        if n:
            assert (c.cases["reported"] > END - datetime.timedelta(days=14)).any()
    c = generate_city(seed=2, communities=1, cases=0, days=1, end=END)
    assert len(c.communities) == len(c.subdistricts) == len(c.districts) == 1
    assert list(c.cases.columns) == ["case_id", "reported", "type", "role", "lat", "lon"]
    paths = write_city(c, tmp_path / "empty")
    assert (tmp_path / "empty" / "cases.csv").read_text() == "case_id,reported,type,role,lat,lon\n"
    assert len(gpd.read_parquet(paths[-1])) == 0


# ---------------------------------------------------------------------------- files


def test_cases_csv(city: SampleCity, written: list[Path]) -> None:
    path = next(p for p in written if p.name == "cases.csv")
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == "case_id,reported,type,role,lat,lon"
    assert lines[-1] == ""  # newline-terminated, no \r
    assert "\r" not in text
    assert len(lines) == len(city.cases) + 2
    assert re.fullmatch(r"K\d{7},\d{4}-\d\d-\d\d,\w+,\w+,\d+\.\d{6},\d+\.\d{6}", lines[1])
    back = pd.read_csv(path, dtype={"case_id": str, "reported": str})
    assert back["case_id"].tolist() == city.cases["case_id"].tolist()
    assert back["reported"].tolist() == [d.isoformat() for d in city.cases["reported"]]
    assert np.array_equal(back["lat"].to_numpy(), city.cases["lat"].to_numpy())
    assert np.array_equal(back["lon"].to_numpy(), city.cases["lon"].to_numpy())


def test_cases_parquet(city: SampleCity, written: list[Path]) -> None:
    back = gpd.read_parquet(next(p for p in written if p.name == "cases.parquet"))
    assert list(back.columns) == ["case_id", "reported", "type", "role", "lat", "lon", "geometry"]
    assert back.crs.to_epsg() == 4326
    assert (back.geom_type == "Point").all()
    assert np.array_equal(back.geometry.x.to_numpy(), city.cases["lon"].to_numpy())
    assert np.array_equal(back.geometry.y.to_numpy(), city.cases["lat"].to_numpy())
    assert back["reported"].tolist() == city.cases["reported"].tolist()


@pytest.mark.parametrize("layer", ["communities", "subdistricts", "districts"])
def test_polygon_files_round_trip(city: SampleCity, written: list[Path], layer: str) -> None:
    expected = getattr(city, layer)
    for suffix in ("geojson", "parquet"):
        path = next(p for p in written if p.name == f"{layer}.{suffix}")
        back = gpd.read_parquet(path) if suffix == "parquet" else gpd.read_file(path)
        assert back.crs.to_epsg() == 4326
        assert list(back.columns) == list(expected.columns)
        assert back.iloc[:, 0].tolist() == expected.iloc[:, 0].tolist()
        assert back["population"].tolist() == expected["population"].tolist()
        # same shapes (GeoJSON may re-orient rings per RFC 7946)
        assert shapely.equals(back.geometry.values, expected.geometry.values).all()
