"""geo.io: community and case readers with row-level validation."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from riskmap.geo._errors import InputFileError
from riskmap.geo.io import (
    CASE_FIELDS,
    CASE_TYPES,
    COMMUNITY_FIELDS,
    ROLES,
    LoadResult,
    parse_column_map,
    read_cases,
    read_communities,
)
from tests.helpers import need_shared

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
KOREA = SHARED / "data" / "korea"
TODAY = dt.date(2026, 1, 1)


def shared(*parts: str) -> Path:
    return need_shared(KOREA.joinpath(*parts))


def pairs(result: LoadResult) -> list[tuple[int, str]]:
    return [(r.row, r.field) for r in result.rejects]


def reason(result: LoadResult, row: int) -> str:
    return next(r.reason for r in result.rejects if r.row == row)


def write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def feature(props: dict[str, Any], geometry: Any) -> dict[str, Any]:
    geom = (
        geometry if geometry is None or isinstance(geometry, dict) else geometry.__geo_interface__
    )
    return {"type": "Feature", "properties": props, "geometry": geom}


# --------------------------------------------------------------------------- constants / API


def test_public_constants() -> None:
    assert CASE_TYPES == ("confirmed", "asymptomatic", "suspected", "close_contact")
    assert ROLES == ("residence", "workplace", "frequent_activity", "visit")
    assert COMMUNITY_FIELDS == (
        "community_id",
        "name",
        "population",
        "subdistrict_id",
        "district_id",
        "rural",
    )
    assert CASE_FIELDS == ("case_id", "reported", "type", "role", "lat", "lon")


# --------------------------------------------------------------------------- parse_column_map


def test_parse_column_map() -> None:
    spec = "lat=latitude,lon=longitude,case_id=patient_id,reported=date"
    assert parse_column_map(spec) == {
        "lat": "latitude",
        "lon": "longitude",
        "case_id": "patient_id",
        "reported": "date",
    }
    assert parse_column_map(None) == {}
    assert parse_column_map("  ") == {}
    assert parse_column_map(" community_id = EMD_CD , name=EMD_ENG_NM ") == {
        "community_id": "EMD_CD",
        "name": "EMD_ENG_NM",
    }
    assert parse_column_map("type=") == {"type": ""}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("lat", "'lat' has no '='"),
        ("lat=latitude,lon", "'lon' has no '='"),
        ("latt=latitude", "unknown field 'latt'"),
        ("=latitude", "unknown field ''"),
        ("lat=latitude,,lon=longitude", "part 2 is empty"),
        ("lat=latitude,", "part 2 is empty"),
        ("lat=a,lat=b", "mapped twice"),
    ],
)
def test_parse_column_map_errors(spec: str, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_column_map(spec)
    message = str(info.value)
    assert needle in message
    if "twice" not in needle:
        assert "community_id" in message and "lon" in message  # lists the allowed fields


# --------------------------------------------------------------------------- communities


def sample_communities(crs: Any = 4326) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "community_id": ["C1", "C2", "C3"],
            "name": ["Alpha", "Beta", None],
            "population": [100, 2500, 0],
            "subdistrict": ["S1", "S1", "S2"],
            "district": ["D1", "D1", "D1"],
        },
        geometry=[
            box(114.30, 30.59, 114.31, 30.60),
            box(114.31, 30.59, 114.32, 30.60),
            MultiPolygon([box(114.32, 30.59, 114.33, 30.60), box(114.34, 30.59, 114.35, 30.60)]),
        ],
        crs=4326,
    )
    return frame if crs == 4326 else frame.to_crs(crs)


SAMPLE_MAP = {"subdistrict_id": "subdistrict", "district_id": "district"}


def check_sample(result: LoadResult) -> None:
    frame = result.frame
    assert isinstance(frame, gpd.GeoDataFrame)
    assert list(frame.columns) == [*COMMUNITY_FIELDS, "geometry"]
    assert result.rows_read == 3 and len(frame) == 3 and result.rejects == []
    assert frame.crs.to_epsg() == 4326
    assert frame["community_id"].tolist() == ["C1", "C2", "C3"]
    assert frame["name"].tolist() == ["Alpha", "Beta", None]
    assert str(frame["population"].dtype) == "Int64"
    assert frame["population"].tolist() == [100, 2500, 0]
    assert frame["subdistrict_id"].tolist() == ["S1", "S1", "S2"]
    assert frame["district_id"].tolist() == ["D1", "D1", "D1"]
    # some writers (GeoPackage, Shapefile) promote Polygon to MultiPolygon
    assert set(frame.geometry.geom_type) <= {"Polygon", "MultiPolygon"}
    assert frame.geometry.iloc[2].geom_type == "MultiPolygon"
    expected = sample_communities()
    for got, want in zip(frame.geometry, expected.geometry, strict=True):
        assert got.symmetric_difference(want).area < 1e-12
        assert got.bounds == pytest.approx(want.bounds, abs=1e-7)


def test_communities_geojson(tmp_path: Path) -> None:
    path = tmp_path / "c.geojson"
    sample_communities().to_file(path, driver="GeoJSON")
    check_sample(read_communities(path, columns=SAMPLE_MAP))
    json_path = tmp_path / "c.json"
    shutil.copy(path, json_path)
    check_sample(read_communities(json_path, columns=SAMPLE_MAP))


def test_communities_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "c.gpkg"
    sample_communities().to_file(path, driver="GPKG")
    check_sample(read_communities(str(path), columns=SAMPLE_MAP))


def write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.rename(columns={"community_id": "cid", "subdistrict": "subdist"})
    frame.to_file(path, driver="ESRI Shapefile")
    return path


SHP_MAP = {"community_id": "cid", "subdistrict_id": "subdist", "district_id": "district"}


def test_communities_shapefile(tmp_path: Path) -> None:
    path = write_shapefile(sample_communities(), tmp_path / "c.shp")
    check_sample(read_communities(path, columns=SHP_MAP))


def test_communities_shapefile_truncated_field_names(tmp_path: Path) -> None:
    # 'community_id' is laundered to 'community_' (10 chars) by the shapefile driver
    path = tmp_path / "c.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer warns about the laundered names
        sample_communities().to_file(path, driver="ESRI Shapefile")
    result = read_communities(path, columns={"subdistrict_id": "subdistric"})
    assert result.frame["community_id"].tolist() == ["C1", "C2", "C3"]


def test_communities_zipped_shapefile(tmp_path: Path) -> None:
    shp = write_shapefile(sample_communities(), tmp_path / "shp" / "c.shp")
    flat = tmp_path / "c.zip"
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(flat, "w") as z1, zipfile.ZipFile(nested, "w") as z2:
        for part in sorted(shp.parent.iterdir()):
            z1.write(part, part.name)
            z2.write(part, f"boundaries/{part.name}")
    check_sample(read_communities(flat, columns=SHP_MAP))
    check_sample(read_communities(nested, columns=SHP_MAP))


def test_communities_geoparquet(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    sample_communities().to_parquet(path)
    check_sample(read_communities(path, columns=SAMPLE_MAP))
    geo = tmp_path / "c.geoparquet"
    shutil.copy(path, geo)
    check_sample(read_communities(geo, columns=SAMPLE_MAP))


def test_communities_projected_crs_is_reprojected(tmp_path: Path) -> None:
    utm = sample_communities(crs=32650)
    assert utm.total_bounds[0] > 100_000  # really metres
    for name in ("utm.gpkg", "utm.shp", "utm.parquet"):
        path = tmp_path / name
        if name.endswith(".shp"):
            write_shapefile(utm, path)
            columns = SHP_MAP
        elif name.endswith(".parquet"):
            utm.to_parquet(path)
            columns = SAMPLE_MAP
        else:
            utm.to_file(path)
            columns = SAMPLE_MAP
        result = read_communities(path, columns=columns)
        check_sample(result)
        assert result.frame.geometry.iloc[0].bounds == pytest.approx(
            (114.30, 30.59, 114.31, 30.60), abs=1e-7
        )


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_communities_projected_without_crs(tmp_path: Path) -> None:
    utm = sample_communities(crs=32650).set_crs(None, allow_override=True)
    shp = write_shapefile(utm, tmp_path / "noprj.shp")
    assert not shp.with_suffix(".prj").exists()
    with pytest.raises(InputFileError) as info:
        read_communities(shp, columns=SHP_MAP)
    message = str(info.value)
    assert "projected" in message and "no CRS" in message and ".prj" in message
    assert "bbox" in message
    parquet = tmp_path / "noprj.parquet"
    utm.to_parquet(parquet)
    with pytest.raises(InputFileError, match="projected"):
        read_communities(parquet, columns=SAMPLE_MAP)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_communities_lonlat_without_crs_is_assumed_wgs84(tmp_path: Path) -> None:
    shp = write_shapefile(
        sample_communities().set_crs(None, allow_override=True), tmp_path / "a.shp"
    )
    result = read_communities(shp, columns=SHP_MAP)
    check_sample(result)
    assert any("no CRS" in w and "EPSG:4326" in w for w in result.warnings)


def test_communities_geojson_with_projected_coordinates(tmp_path: Path) -> None:
    utm = sample_communities(crs=32650)
    features = [
        feature({"community_id": cid}, geom)
        for cid, geom in zip(utm["community_id"], utm.geometry, strict=True)
    ]
    path = write_geojson(tmp_path / "projected.geojson", features)  # GeoJSON is lon/lat by spec
    with pytest.raises(InputFileError, match="outside the lon/lat range"):
        read_communities(path)


BOWTIE = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])


def square(x: float) -> Polygon:
    return box(x, 0, x + 0.5, 0.5)


def test_communities_bad_rows(tmp_path: Path) -> None:
    features = [
        feature({"community_id": "C1", "population": "10"}, square(0)),  # 1 ok
        feature({"community_id": None, "population": "10"}, square(1)),  # 2 missing id
        feature({"community_id": "   ", "population": "10"}, square(2)),  # 3 blank id
        feature({"community_id": "C1", "population": "10"}, square(3)),  # 4 duplicate of row 1
        feature({"community_id": "C5", "population": "10"}, None),  # 5 null geometry
        feature({"community_id": "C6", "population": "10"}, Point(0, 0)),  # 6 not polygonal
        feature({"community_id": "C7", "population": "10"}, BOWTIE),  # 7 invalid -> made valid
        feature({"community_id": "C8", "population": "-5"}, square(4)),  # 8 negative
        feature({"community_id": "C9", "population": "many"}, square(5)),  # 9 not a number
        feature({"community_id": "C10", "population": ""}, square(6)),  # 10 empty population ok
        feature({"community_id": 11110, "population": "1e3"}, square(7)),  # 11 numeric id
        feature({"community_id": "C12", "population": "12.5"}, square(8)),  # 12 fractional
        feature({"community_id": "C13"}, {"type": "Polygon", "coordinates": []}),  # 13 empty
        feature({"community_id": None}, None),  # 14 two problems: the first field wins
        feature(
            {"community_id": "C15", "population": None},
            MultiPolygon([square(9), square(10)]),
        ),  # 15 ok
        feature({"community_id": " C16 ", "population": "7"}, square(11)),  # 16 ok, stripped
        feature({"community_id": "C16", "population": "7"}, square(12)),  # 17 duplicate of 16
        feature({"community_id": "C18"}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
    ]
    result = read_communities(write_geojson(tmp_path / "bad.geojson", features))
    assert result.rows_read == 18
    assert pairs(result) == [
        (2, "community_id"),
        (3, "community_id"),
        (4, "community_id"),
        (5, "geometry"),
        (6, "geometry"),
        (8, "population"),
        (9, "population"),
        (12, "population"),
        (13, "geometry"),
        (14, "community_id"),
        (17, "community_id"),
        (18, "geometry"),
    ]
    assert "row 1" in reason(result, 4) and "'C1'" in reason(result, 4)
    assert "row 16" in reason(result, 17)
    assert "Point" in reason(result, 6)
    assert reason(result, 5) == "missing geometry"
    assert reason(result, 13) == "empty geometry"
    frame = result.frame
    assert frame["community_id"].tolist() == ["C1", "C7", "C10", "11110", "C15", "C16"]
    assert frame["population"].isna().tolist() == [False, False, True, False, True, False]
    assert frame["population"].dropna().tolist() == [10, 10, 1000, 7]
    fixed = frame.geometry.iloc[1]
    assert fixed.is_valid and fixed.geom_type in ("Polygon", "MultiPolygon")
    assert fixed.area == pytest.approx(0.5)
    assert frame.geometry.is_valid.all()
    assert any(
        w.startswith("row 7: community_id C7: invalid polygon made valid") for w in result.warnings
    )
    assert all(r.file == str(tmp_path / "bad.geojson") for r in result.rejects)


def test_communities_unrepairable_polygon(tmp_path: Path) -> None:
    flat = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}
    path = write_geojson(
        tmp_path / "flat.geojson",
        [feature({"community_id": "A"}, square(0)), feature({"community_id": "B"}, flat)],
    )
    result = read_communities(path)
    assert pairs(result) == [(2, "geometry")]
    assert "cannot be repaired" in result.rejects[0].reason
    assert result.frame["community_id"].tolist() == ["A"]


def test_communities_numeric_ids_and_population(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {
            "code": [11110.0, 11120.0, 11130.0],
            "pop": [1234.0, np.nan, 5.0],
            "gu": [110, 110, 120],
        },
        geometry=[square(0), square(1), square(2)],
        crs=4326,
    )
    path = tmp_path / "numeric.gpkg"
    frame.to_file(path)
    result = read_communities(
        path, columns={"community_id": "code", "population": "pop", "district_id": "gu"}
    )
    assert result.frame["community_id"].tolist() == ["11110", "11120", "11130"]
    assert result.frame["district_id"].tolist() == ["110", "110", "120"]
    assert result.frame["population"].tolist()[0] == 1234
    assert result.frame["population"].isna().tolist() == [False, True, False]
    assert result.frame["name"].tolist() == [None, None, None]


def test_communities_column_mapping(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {
            "EMD_CD": ["11110101", "11110102"],
            "EMD_ENG_NM": ["Cheongun-dong", "Singyo-dong"],
            "POP": ["10", "20"],
            "SIG_CD": ["11110", "11110"],
            "extra": [1, 2],
        },
        geometry=[square(0), square(1)],
        crs=4326,
    )
    path = tmp_path / "mapped.geojson"
    frame.to_file(path)
    result = read_communities(
        path,
        columns=parse_column_map(
            "community_id=EMD_CD,name=EMD_ENG_NM,population=POP,district_id=SIG_CD"
        ),
    )
    assert result.frame["community_id"].tolist() == ["11110101", "11110102"]
    assert result.frame["name"].tolist() == ["Cheongun-dong", "Singyo-dong"]
    assert result.frame["population"].tolist() == [10, 20]
    assert result.frame["district_id"].tolist() == ["11110", "11110"]
    assert list(result.frame.columns) == [*COMMUNITY_FIELDS, "geometry"]
    # case-insensitive match of the mapped name
    lower = read_communities(path, columns={"community_id": "emd_cd"})
    assert lower.frame["community_id"].tolist() == ["11110101", "11110102"]


def test_communities_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "noid.geojson"
    gpd.GeoDataFrame({"code": ["A"], "label": ["x"]}, geometry=[square(0)], crs=4326).to_file(path)
    with pytest.raises(InputFileError) as info:
        read_communities(path)
    message = str(info.value)
    assert "'community_id'" in message and "'code'" in message and "'label'" in message
    with pytest.raises(InputFileError, match="'EMD_CD'"):
        read_communities(path, columns={"community_id": "EMD_CD"})
    with pytest.raises(InputFileError, match="'POP'"):  # an explicitly mapped optional column
        read_communities(path, columns={"community_id": "code", "population": "POP"})
    with pytest.raises(ValueError, match="lat"):
        read_communities(path, columns={"lat": "y"})


@pytest.mark.parametrize("name", ["c.geojson", "c.gpkg", "c.shp", "c.zip", "c.parquet"])
def test_communities_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_communities(path)


def test_communities_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_communities(tmp_path / "missing.geojson")
    other = tmp_path / "c.txt"
    other.write_text("hello")
    with pytest.raises(InputFileError, match="unknown file format"):
        read_communities(other)

    good = tmp_path / "good.geojson"
    sample_communities().to_file(good)
    truncated = tmp_path / "truncated.geojson"
    truncated.write_text(good.read_text()[:200])
    with pytest.raises(InputFileError) as info:
        read_communities(truncated)
    assert str(truncated) in str(info.value) and "cannot read" in str(info.value)

    no_features = write_geojson(tmp_path / "none.geojson", [])
    with pytest.raises(InputFileError, match="no features"):
        read_communities(no_features)

    garbage = tmp_path / "garbage.gpkg"
    garbage.write_bytes(b"this is not a geopackage" * 20)
    with pytest.raises(InputFileError):
        read_communities(garbage)

    parquet = tmp_path / "c.parquet"
    sample_communities().to_parquet(parquet)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(parquet.read_bytes()[:300])
    with pytest.raises(InputFileError, match="Parquet"):
        read_communities(cut)

    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"community_id": ["A"]}).to_parquet(plain)
    with pytest.raises(InputFileError, match="GeoParquet"):
        read_communities(plain)

    empty_zip = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no shapefile here")
    with pytest.raises(InputFileError, match=r"no \.shp"):
        read_communities(empty_zip)

    broken_zip = tmp_path / "broken.zip"
    broken_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputFileError, match="zip"):
        read_communities(broken_zip)


def test_communities_layers(tmp_path: Path) -> None:
    path = tmp_path / "layers.gpkg"
    sample_communities().to_file(path, layer="communities")
    gpd.GeoDataFrame({"community_id": ["P"]}, geometry=[Point(0, 0)], crs=4326).to_file(
        path, layer="points"
    )
    result = read_communities(path, columns=SAMPLE_MAP)
    check_sample(result)
    assert any("layers" in w for w in result.warnings)
    points = read_communities(path, layer="points")
    assert pairs(points) == [(1, "geometry")]
    with pytest.raises(InputFileError, match="no layer 'roads'"):
        read_communities(path, layer="roads")


# --------------------------------------------------------------------------- real Korean files


SEOUL_2015 = ("boundaries", "seoul_neighborhoods_2015.shp")
SEOUL_5174 = ("boundaries", "seoul_submunicipalities_2013_epsg5174.shp")


def test_seoul_euc_kr_shapefile_with_encoding() -> None:
    result = read_communities(
        shared(*SEOUL_2015),
        columns={"community_id": "EMD_CD", "name": "EMD_KOR_NM"},
        encoding="cp949",
    )
    assert result.rows_read == 467 and len(result.frame) == 467 and not result.rejects
    assert "대방동" in set(result.frame["name"])
    assert not any("encoding" in w for w in result.warnings)
    minx, miny, maxx, maxy = result.frame.total_bounds
    assert 126.76 < minx < maxx < 127.19 and 37.42 < miny < maxy < 37.71
    assert all(len(cid) == 8 and cid.isdigit() for cid in result.frame["community_id"])


def test_seoul_euc_kr_shapefile_without_encoding() -> None:
    # The .dbf header carries code page byte 0x4E (CP949), which GDAL honours: names are right
    # even without an encoding, and no warning is needed.
    result = read_communities(
        shared(*SEOUL_2015), columns={"community_id": "EMD_CD", "name": "EMD_KOR_NM"}
    )
    assert "대방동" in set(result.frame["name"])
    assert not any("encoding" in w for w in result.warnings)


def test_seoul_euc_kr_shapefile_without_code_page_warns(tmp_path: Path) -> None:
    # The same file with the .dbf code page byte cleared (as many tools write it): it is read as
    # Latin-1, which gives mojibake, and the reader suggests --encoding cp949.
    for part in shared(*SEOUL_2015).parent.glob("seoul_neighborhoods_2015.*"):
        if part.suffix in (".shp", ".shx", ".dbf", ".prj"):
            shutil.copyfile(part, tmp_path / part.name)
    dbf = tmp_path / "seoul_neighborhoods_2015.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))
    columns = {"community_id": "EMD_CD", "name": "EMD_KOR_NM"}
    shp = tmp_path / "seoul_neighborhoods_2015.shp"

    plain = read_communities(shp, columns=columns)
    assert "대방동" not in set(plain.frame["name"])
    assert any("--encoding cp949" in w and "대방동" in w for w in plain.warnings)

    fixed = read_communities(shp, columns=columns, encoding="cp949")
    assert "대방동" in set(fixed.frame["name"])
    assert not any("encoding" in w for w in fixed.warnings)


def test_seoul_epsg5174_reprojected() -> None:
    path = shared(*SEOUL_5174)
    result = read_communities(path, columns={"community_id": "code", "name": "name_eng"})
    assert result.rows_read == 423 and len(result.frame) == 423 and not result.rejects
    assert result.frame.crs.to_epsg() == 4326
    minx, miny, maxx, maxy = result.frame.total_bounds
    assert 126.7 < minx < maxx < 127.2
    assert 37.4 < miny < maxy < 37.7
    assert "Gil-dong" in set(result.frame["name"])
    # this .dbf is CP949 without a code page: Korean names need the encoding
    korean = read_communities(path, columns={"community_id": "code", "name": "name"})
    assert any("--encoding cp949" in w for w in korean.warnings)
    decoded = read_communities(
        path, columns={"community_id": "code", "name": "name"}, encoding="cp949"
    )
    assert "길동" in set(decoded.frame["name"])


# --------------------------------------------------------------------------- cases


CASE_HEADER = "case_id,reported,type,role,lat,lon"


def write_csv(path: Path, lines: list[str], *, newline: str = "\n", bom: bool = False) -> Path:
    data = newline.join(lines).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def check_case_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [*CASE_FIELDS, "row"]
    assert frame["lat"].dtype == np.float64 and frame["lon"].dtype == np.float64
    assert frame["row"].dtype == np.int64
    assert all(type(d) is dt.date for d in frame["reported"])
    assert all(isinstance(v, str) for col in ("case_id", "type", "role") for v in frame[col])


def test_cases_csv_crlf_bom_no_final_newline(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "cases.csv",
        [
            CASE_HEADER,
            "007,2020-03-01,confirmed,residence,30.59,114.30",
            "P-2,2020-03-02,Asymptomatic,Workplace,30.6,114.31",
        ],
        newline="\r\n",
        bom=True,
    )
    assert not path.read_bytes().endswith(b"\n")
    result = read_cases(path, today=TODAY)
    assert result.rows_read == 2 and result.rejects == []
    frame = result.frame
    check_case_frame(frame)
    assert frame["case_id"].tolist() == ["007", "P-2"]
    assert frame["reported"].tolist() == [dt.date(2020, 3, 1), dt.date(2020, 3, 2)]
    assert frame["type"].tolist() == ["confirmed", "asymptomatic"]
    assert frame["role"].tolist() == ["residence", "workplace"]
    assert frame["lat"].tolist() == [30.59, 30.6]
    assert frame["lon"].tolist() == [114.30, 114.31]
    assert frame["row"].tolist() == [2, 3]


def test_cases_csv_semicolon_and_comma_decimals(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "cases.csv",
        ["case_id;reported;type;role;lat;lon", "A;2020-03-01;confirmed;visit;30,59;114,3"],
    )
    result = read_cases(path, today=TODAY)
    assert result.rejects == []
    assert result.frame[["lat", "lon"]].iloc[0].tolist() == [30.59, 114.3]


def test_cases_csv_bad_rows(tmp_path: Path) -> None:
    lines = [
        CASE_HEADER + ",note",  # 1
        "A1,2020-03-01,confirmed,residence,30.59,114.30,",  # 2 ok
        ",2020-03-01,confirmed,residence,30.59,114.30,",  # 3 missing case_id
        "A3,3/1/2020,confirmed,residence,30.59,114.30,",  # 4 unparseable date
        "A4,2030-01-02,confirmed,residence,30.59,114.30,",  # 5 future
        "A5,1899-12-31,confirmed,residence,30.59,114.30,",  # 6 impossible
        "A6,2020-03-01,probable,residence,30.59,114.30,",  # 7 unknown type
        "A7,2020-03-01,confirmed,home,30.59,114.30,",  # 8 unknown role
        "A8,2020-03-01,confirmed,residence,abc,114.30,",  # 9 lat not a number
        "A9,2020-03-01,confirmed,residence,30.59,200,",  # 10 lon out of range
        "A10,2020-03-01,confirmed,residence,,114.30,",  # 11 lat missing
        "A11,2020-03-01,confirmed,residence,nan,114.30,",  # 12 lat NaN
        "A12,2020-03-01,confirmed,residence,30.59,inf,",  # 13 lon inf
        "A13,2020-03-01, Close Contact ,WORKPLACE,30.59,114.30,",  # 14 ok, normalised
        "A14,2020-03-01T10:00:00,suspected,visit,30.59,114.30,",  # 15 ok (time part)
        "A15,2020-03-01 10:00,suspected,visit,30.59,114.30,",  # 16 ok (time part)
        "A16,2020-02-30,confirmed,residence,30.59,114.30,",  # 17 no such day
        ",yesterday,what,where,x,y,",  # 18 everything wrong: case_id only
        "",  # 19 blank line (skipped, not a row)
        "A19,2020-03-01,confirmed,residence,30.59,114.30,",  # 20 ok
        'A20,2020-03-01,confirmed,residence,30.59,114.30,"two',  # 21 note spans 2 lines
        'lines"',  # 22
        "A22,2020-03-01,confirmed,residence,95,114.30,",  # 23 lat out of range
        "A1,2020-03-01,confirmed,residence,30.59,114.30,",  # 24 exact duplicate: kept
        "A24,2020-03-01,confirmed,,30.59,114.30,",  # 25 missing role, no default
        "A25,2020-03-01,,residence,30.59,114.30,",  # 26 missing type
        "A26,2020-03-01,confirmed,residence,30.59,114.30,x,y",  # 27 too many fields
        "A27,2020-03-01,confirmed,residence,30.59,114.30",  # 28 ok: the empty note is absent
        "A28,2026-01-01,confirmed,residence,30.59,114.30,",  # 29 ok: today is not the future
    ]
    result = read_cases(write_csv(tmp_path / "bad.csv", lines), today=TODAY)
    assert result.rows_read == 26  # 28 lines after the header: one blank, one continuation
    assert pairs(result) == [
        (3, "case_id"),
        (4, "reported"),
        (5, "reported"),
        (6, "reported"),
        (7, "type"),
        (8, "role"),
        (9, "lat"),
        (10, "lon"),
        (11, "lat"),
        (12, "lat"),
        (13, "lon"),
        (17, "reported"),
        (18, "case_id"),
        (23, "lat"),
        (25, "role"),
        (26, "type"),
        (27, "row"),
    ]
    assert reason(result, 4) == "unparseable date '3/1/2020' (expected YYYY-MM-DD)"
    assert "in the future" in reason(result, 5)
    assert "impossible date" in reason(result, 6)
    assert reason(result, 7).startswith("unknown type 'probable' (expected one of confirmed,")
    assert "unknown role 'home'" in reason(result, 8)
    assert "lat" in reason(result, 9) and "'abc'" in reason(result, 9)
    assert "lon" in reason(result, 10) and "200" in reason(result, 10)
    assert reason(result, 11) == "missing lat"
    assert "nan" in reason(result, 12)
    assert "inf" in reason(result, 13)
    assert "95" in reason(result, 23) and "out of range" in reason(result, 23)
    frame = result.frame
    check_case_frame(frame)
    assert frame["row"].tolist() == [2, 14, 15, 16, 20, 21, 24, 28, 29]
    assert frame["case_id"].tolist() == [
        "A1",
        "A13",
        "A14",
        "A15",
        "A19",
        "A20",
        "A1",
        "A27",
        "A28",
    ]
    assert frame.loc[1, "type"] == "close_contact" and frame.loc[1, "role"] == "workplace"
    assert frame.loc[2, "reported"] == dt.date(2020, 3, 1)


def test_cases_default_role(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "roles.csv",
        [
            CASE_HEADER,
            "A,2020-03-01,confirmed,,30.59,114.30",
            "B,2020-03-01,confirmed,visit,30.59,114.30",
        ],
    )
    result = read_cases(path, default_role="Frequent Activity", today=TODAY)
    assert result.frame["role"].tolist() == ["frequent_activity", "visit"]
    no_role = write_csv(
        tmp_path / "norole.csv", ["case_id,reported,lat,lon", "A,2020-03-01,30.59,114.30"]
    )
    result = read_cases(no_role, default_role="residence", today=TODAY)
    assert result.frame["role"].tolist() == ["residence"]
    assert result.frame["type"].tolist() == ["confirmed"]  # no type column: confirmed
    assert any("type" in w for w in result.warnings)
    with pytest.raises(InputFileError) as info:
        read_cases(no_role, today=TODAY)
    assert "'role'" in str(info.value) and "'case_id'" in str(info.value)
    with pytest.raises(ValueError, match="default_role"):
        read_cases(no_role, default_role="home", today=TODAY)


def test_cases_missing_required_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "nolat.csv",
        ["case_id,reported,role,latitude,lon", "A,2020-03-01,visit,30.59,114.30"],
    )
    with pytest.raises(InputFileError) as info:
        read_cases(path, today=TODAY)
    message = str(info.value)
    assert "'lat'" in message and "'latitude'" in message and "lat=<column>" in message
    ok = read_cases(path, columns={"lat": "latitude"}, today=TODAY)
    assert ok.frame["lat"].tolist() == [30.59]
    with pytest.raises(InputFileError, match="'when'"):
        read_cases(path, columns={"reported": "when", "lat": "latitude"}, today=TODAY)
    with pytest.raises(ValueError, match="name"):
        read_cases(path, columns={"name": "x"}, today=TODAY)


def test_cases_column_mapping_and_type_mapped_to_nothing(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "route.csv",
        [
            "patient_id,global_num,date,province,city,type,latitude,longitude",
            "1000000001,2,2020-01-22,Gyeonggi-do,Gimpo-si,airport,37.6152464,126.7156325",
            "1000000001,2,2020-01-24,Seoul,Jung-gu,hospital,37.5672412,127.0056589",
        ],
    )
    mapping = parse_column_map("case_id=patient_id,reported=date,lat=latitude,lon=longitude")
    unmapped = read_cases(path, columns=mapping, default_role="visit", today=TODAY)
    assert pairs(unmapped) == [(2, "type"), (3, "type")]
    assert any("--columns type=" in w for w in unmapped.warnings)
    mapped = read_cases(path, columns={**mapping, "type": ""}, default_role="visit", today=TODAY)
    assert mapped.rejects == []
    assert mapped.frame["case_id"].tolist() == ["1000000001", "1000000001"]
    assert mapped.frame["type"].tolist() == ["confirmed", "confirmed"]
    assert mapped.frame["lat"].tolist() == [37.6152464, 37.5672412]


def test_cases_csv_header_only_and_empty(tmp_path: Path) -> None:
    header_only = write_csv(tmp_path / "h.csv", [CASE_HEADER])
    with pytest.raises(InputFileError, match="no data rows"):
        read_cases(header_only, today=TODAY)
    header_crlf = write_csv(tmp_path / "h2.csv", [CASE_HEADER, "", ""], newline="\r\n")
    with pytest.raises(InputFileError, match="no data rows"):
        read_cases(header_crlf, today=TODAY)
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_cases(empty, today=TODAY)
    blank = tmp_path / "b.csv"
    blank.write_bytes(b"\xef\xbb\xbf\r\n  \r\n")
    with pytest.raises(InputFileError, match="empty"):
        read_cases(blank, today=TODAY)
    with pytest.raises(InputFileError, match="not found"):
        read_cases(tmp_path / "missing.csv", today=TODAY)
    xlsx = tmp_path / "cases.xlsx"
    xlsx.write_bytes(b"PK")
    with pytest.raises(InputFileError, match="unknown file format"):
        read_cases(xlsx, today=TODAY)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00\x00binary")
    with pytest.raises(InputFileError, match="binary"):
        read_cases(binary, today=TODAY)


def test_cases_csv_unterminated_quote(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "cut.csv",
        [CASE_HEADER, "A,2020-03-01,confirmed,visit,30.59,114.30", 'B,"2020-03-01,confirmed'],
    )
    with pytest.raises(InputFileError, match="line 3"):
        read_cases(path, today=TODAY)


def test_cases_csv_truncated_last_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "cut.csv",
        [CASE_HEADER, "A,2020-03-01,confirmed,visit,30.59,114.30", "B,2020-03-01,confirmed,vis"],
    )
    result = read_cases(path, today=TODAY)
    assert pairs(result) == [(3, "role")]


def test_cases_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "korean.csv"
    text = CASE_HEADER + ",city\r\nA,2020-03-01,confirmed,visit,37.5,127.0,서울"
    path.write_bytes(text.encode("cp949"))
    result = read_cases(path, today=TODAY)
    assert len(result.frame) == 1
    assert any("UTF-8" in w for w in result.warnings)


def case_features() -> list[dict[str, Any]]:
    base = {"type": "confirmed", "role": "residence"}
    return [
        feature({"case_id": "G1", "reported": "2020-03-01", **base}, Point(114.30, 30.59)),
        feature({"case_id": "G2", "reported": "2020-03-02T08:30:00", **base}, Point(114.31, 30.6)),
        feature({"case_id": "G3", "reported": "2020-03-03", **base}, None),
        feature(
            {"case_id": "G4", "reported": "2020-03-04", **base},
            {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
        ),
        feature({"case_id": "G5", "reported": "01.03.2020", **base}, Point(114.3, 30.5)),
        feature({"case_id": "G6", "reported": "2020-03-06", **base}, Point(114.3, 95.0)),
    ]


def test_cases_geojson_points(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "cases.geojson", case_features())
    result = read_cases(path, today=TODAY)
    assert result.rows_read == 6
    assert pairs(result) == [(3, "lat"), (4, "lat"), (5, "reported"), (6, "lat")]
    assert "LineString" in reason(result, 4)
    frame = result.frame
    check_case_frame(frame)
    assert frame["case_id"].tolist() == ["G1", "G2"]
    assert frame["reported"].tolist() == [dt.date(2020, 3, 1), dt.date(2020, 3, 2)]
    assert frame["lat"].tolist() == [30.59, 30.6]
    assert frame["lon"].tolist() == [114.30, 114.31]
    assert frame["row"].tolist() == [1, 2]


def test_cases_geojson_lat_lon_properties_win(tmp_path: Path) -> None:
    features = [
        feature(
            {"case_id": 17, "reported": "2020-03-01", "lat": 30.5, "lon": 114.2, "role": "visit"},
            None,
        )
    ]
    result = read_cases(write_geojson(tmp_path / "props.geojson", features), today=TODAY)
    assert result.rejects == []
    assert result.frame[["case_id", "lat", "lon"]].iloc[0].tolist() == ["17", 30.5, 114.2]


def test_cases_geojson_unreadable(tmp_path: Path) -> None:
    good = write_geojson(tmp_path / "good.geojson", case_features())
    truncated = tmp_path / "truncated.geojson"
    truncated.write_text(good.read_text()[:150])
    with pytest.raises(InputFileError, match="cannot read"):
        read_cases(truncated, today=TODAY)
    with pytest.raises(InputFileError, match="no features"):
        read_cases(write_geojson(tmp_path / "none.geojson", []), today=TODAY)
    empty = pd.DataFrame({"case_id": pd.Series([], dtype=str)})
    empty.to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(InputFileError, match="no data rows"):
        read_cases(tmp_path / "empty.parquet", today=TODAY)


def case_points(crs: Any = 4326) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "case_id": ["Q1", "Q2", "Q3"],
            "reported": [dt.date(2020, 3, 1), dt.date(2020, 3, 2), None],
            "type": ["confirmed", "suspected", "confirmed"],
            "role": ["residence", "visit", "visit"],
        },
        geometry=[Point(114.30, 30.59), Point(114.31, 30.60), Point(114.32, 30.61)],
        crs=4326,
    )
    return frame if crs == 4326 else frame.to_crs(crs)


def test_cases_geoparquet(tmp_path: Path) -> None:
    for crs in (4326, 3857):
        path = tmp_path / f"cases_{crs}.parquet"
        case_points(crs).to_parquet(path)
        result = read_cases(path, today=TODAY)
        assert result.rows_read == 3
        assert pairs(result) == [(3, "reported")]
        frame = result.frame
        check_case_frame(frame)
        assert frame["case_id"].tolist() == ["Q1", "Q2"]
        assert frame["reported"].tolist() == [dt.date(2020, 3, 1), dt.date(2020, 3, 2)]
        assert frame["lat"].tolist() == pytest.approx([30.59, 30.60], abs=1e-9)
        assert frame["lon"].tolist() == pytest.approx([114.30, 114.31], abs=1e-9)


def test_cases_plain_parquet(tmp_path: Path) -> None:
    path = tmp_path / "cases.parquet"
    pd.DataFrame(
        {
            "case_id": [1, 2, 3],
            "reported": [pd.Timestamp("2020-03-01 10:00"), pd.Timestamp("2030-01-01"), pd.NaT],
            "role": ["visit", "visit", "visit"],
            "lat": [30.59, np.nan, 30.6],
            "lon": [114.3, 114.3, 114.3],
        }
    ).to_parquet(path)
    result = read_cases(path, today=TODAY)
    assert pairs(result) == [(2, "reported"), (3, "reported")]
    check_case_frame(result.frame)
    assert result.frame["case_id"].tolist() == ["1"]
    assert result.frame["reported"].tolist() == [dt.date(2020, 3, 1)]
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputFileError, match="Parquet"):
        read_cases(cut, today=TODAY)


def test_patient_route_csv() -> None:
    path = shared("ds4c", "PatientRoute.csv")
    columns = parse_column_map("case_id=patient_id,reported=date,lat=latitude,lon=longitude,type=")
    result = read_cases(
        path, columns=columns, default_role="frequent_activity", today=dt.date(2026, 1, 1)
    )
    assert result.rows_read == 8092
    assert len(result.frame) == 8092 and result.rejects == []
    frame = result.frame
    check_case_frame(frame)
    assert frame["row"].tolist() == list(range(2, 8094))
    assert set(frame["type"]) == {"confirmed"}
    assert set(frame["role"]) == {"frequent_activity"}
    assert frame["case_id"].iloc[0] == "1000000001"
    assert frame["reported"].min() == dt.date(2020, 1, 20)
    assert frame["reported"].max() == dt.date(2020, 6, 1)
    assert frame.duplicated().sum() == 0  # 'row' makes every record distinct
    assert frame.drop(columns="row").duplicated().sum() > 0  # exact duplicates are kept


def test_shapely_types_in_output(tmp_path: Path) -> None:
    path = tmp_path / "c.geojson"
    sample_communities().to_file(path)
    result = read_communities(path, columns=SAMPLE_MAP)
    assert all(isinstance(g, shapely.Geometry) for g in result.frame.geometry)
    assert result.accepted == 3


def test_cases_csv_unterminated_quote_mid_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "quote.csv",
        [
            CASE_HEADER + ",note",
            'A,2020-03-01,confirmed,visit,30.59,114.30,"never closed',
            "B,2020-03-01,confirmed,visit,30.59,114.30,",
            "C,2020-03-01,confirmed,visit,30.59,114.30,",
        ],
    )
    with pytest.raises(InputFileError, match="unterminated quoted field .* line 2"):
        read_cases(path, today=TODAY)
    # a literal quote inside an unquoted value is fine
    ok = write_csv(
        tmp_path / "literal.csv",
        [CASE_HEADER + ",note", "A,2020-03-01,confirmed,visit,30.59,114.30,5'11\""],
    )
    assert len(read_cases(ok, today=TODAY).frame) == 1


def test_cases_tab_separated_and_swapped_names(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "cases.tsv",
        ["Case_ID\tReported\tRole\tLat\tLon", "A\t2020-03-01\tvisit\t30.59\t114.30"],
    )
    result = read_cases(path, today=TODAY)  # header names match case-insensitively
    assert result.frame[["case_id", "lat", "lon"]].iloc[0].tolist() == ["A", 30.59, 114.30]


def test_communities_row_outside_lonlat_range(tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "mixed.geojson",
        [
            feature({"community_id": "A"}, square(0)),
            feature({"community_id": "B"}, box(500000, 3000000, 500010, 3000010)),
        ],
    )
    result = read_communities(path)
    assert pairs(result) == [(2, "geometry")]
    assert "outside the lon/lat range" in result.rejects[0].reason


def test_rural_flag(tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    f = tmp_path / "c.geojson"
    gpd.GeoDataFrame(
        {"community_id": ["a", "b", "c", "d"], "kind": ["Rural", "no", None, "maybe"]},
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(4)],
        crs=4326,
    ).to_file(f, driver="GeoJSON")
    r = read_communities(f, columns={"rural": "kind"})
    assert r.frame["rural"].tolist() == [True, False, False]
    assert [(x.row, x.field) for x in r.rejects] == [(4, "rural")]


# --------------------------------------------------------------------------- bounds on input


def test_check_date_format() -> None:
    from riskmap.geo.io import check_date_format

    assert check_date_format(None) is None and check_date_format(" ") is None
    assert check_date_format("%d/%m/%Y") == "%d/%m/%Y"
    for bad in ("%H:%M", "%Y-%m", "no directives", "%", "%Q", "\x00%d", "%d%d%m%Y"):
        with pytest.raises(ValueError, match="does not name one day"):
            check_date_format(bad)
    with pytest.raises(ValueError, match="longer than 64 characters"):
        check_date_format("%d/%m/%Y" * 20)


def test_json_depth_ignores_brackets_in_strings() -> None:
    from riskmap.geo.io import _json_depth

    assert _json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert _json_depth(b'["\\"[[[", {"x": {}}]') == 3
    assert _json_depth(b"[" * 1000 + b"]" * 1000) == 1000
    assert _json_depth(b'"just a string"') == 0


def test_json_records_and_ndjson_files(tmp_path: Path) -> None:
    recs = [
        {"case_id": "a", "reported": "2024-03-01", "role": "residence", "lat": 1, "lon": 2},
        {"case_id": 12, "reported": "2024-03-01", "role": "residence", "lat": 1, "lon": 2},
        {"reported": "2024-03-01", "role": "residence", "lat": 1, "lon": 2},
    ]
    f = tmp_path / "c.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(recs).encode())
    r = read_cases(f, today=TODAY)
    assert r.frame["case_id"].tolist() == ["a", "12"] and pairs(r) == [(3, "case_id")]
    nd = tmp_path / "c.jsonl"
    nd.write_text("\n".join(json.dumps(x) for x in recs[:2]) + "\n\n[1]\n")
    r = read_cases(nd, today=TODAY)
    assert r.frame["case_id"].tolist() == ["a", "12"]
    assert pairs(r) == [(4, "row")] and "is a list, expected an object" in reason(r, 4)
    bad = tmp_path / "d.json"
    bad.write_text('{"case_id": "a"}')  # an object: read as GeoJSON, which it is not
    with pytest.raises(InputFileError, match="cannot read"):
        read_cases(bad, today=TODAY)


def test_names_replace_paths_in_messages(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("case_id,reported\na,2024-01-01\n")
    with pytest.raises(InputFileError) as info:
        read_cases(f, today=TODAY, name="upload.csv")
    assert str(info.value).startswith("upload.csv: ") and str(tmp_path) not in str(info.value)
    g = tmp_path / "x.geojson"
    g.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InputFileError) as info:
        read_communities(g, name="upload.geojson")
    assert "upload.geojson" in str(info.value) and str(tmp_path) not in str(info.value)


def test_parquet_unpacked_size_is_checked_first(tmp_path: Path) -> None:
    from riskmap.geo.io import InputLimits

    ring = [(114 + 0.01 * np.cos(t), 30 + 0.01 * np.sin(t)) for t in np.linspace(0, 6.28, 30_000)]
    gdf = gpd.GeoDataFrame({"community_id": ["a"]}, geometry=[Polygon(ring)], crs=4326)
    f = tmp_path / "c.parquet"
    gdf.to_parquet(f, compression="zstd")
    small = InputLimits(max_unpacked_mb=0.1)
    with pytest.raises(InputFileError, match="the Parquet file unpacks to 0.5 MB"):
        read_communities(f, limits=small)
    assert read_communities(f).accepted == 1
    cases = tmp_path / "cases.parquet"
    pd.DataFrame({"case_id": ["x" * 200_000], "reported": ["2024-01-01"]}).to_parquet(cases)
    with pytest.raises(InputFileError, match="more than the limit of 0.1 MB"):
        read_cases(cases, limits=small, today=TODAY)


def test_large_polygons_allowed_are_warned_about(tmp_path: Path) -> None:
    from riskmap.geo.io import InputLimits

    f = write_geojson(
        tmp_path / "c.geojson",
        [
            feature({"community_id": "big"}, box(100, 0, 103, 3)),
            feature({"community_id": "small"}, box(100, 0, 100.1, 0.1)),
        ],
    )
    r = read_communities(f)
    assert r.frame["community_id"].tolist() == ["small"]
    assert "km², more than the limit of 50,000 km²" in reason(r, 1)
    r = read_communities(f, limits=InputLimits(max_area_km2=200, allow_large_polygons=True))
    assert r.frame["community_id"].tolist() == ["big", "small"]
    allowed = [w for w in r.warnings if "large polygons allowed" in w]
    assert len(allowed) == 1 and allowed[0].startswith("row 1: the polygon's area is")


def test_parent_ids_are_checked(tmp_path: Path) -> None:
    from riskmap.geo.io import read_units

    f = tmp_path / "s.csv"
    f.write_text("subdistrict_id,district_id,name\nS1,D1,a\nS2,D\x1b2,b\nS3,,c\n")
    r = read_units(f)
    assert r.frame["unit_id"].tolist() == ["S1", "S3"]
    assert pairs(r) == [(3, "parent_id")] and "control characters" in reason(r, 3)
    g = write_geojson(
        tmp_path / "c.geojson",
        [
            feature({"community_id": "a", "district_id": "D" * 300}, box(100, 0, 100.1, 0.1)),
            feature({"community_id": "b", "district_id": "D1"}, box(101, 0, 101.1, 0.1)),
        ],
    )
    r = read_communities(g)
    assert r.frame["community_id"].tolist() == ["b"] and pairs(r) == [(1, "district_id")]
