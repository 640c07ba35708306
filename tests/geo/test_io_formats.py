"""geo.io's format table, shared row checks, --date-format in every reader and format that
carries dates, and the probable case type (issue 9 item 3)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point, box

import riskmap.geo.io as io
from riskmap.geo._errors import InputFileError
from riskmap.geo.io import (
    CASES,
    COMMUNITIES,
    FORMATS,
    KINDS,
    METRICS,
    UNITS,
    InputFormat,
    formats_for,
    media_types,
    read_cases,
    read_communities,
    read_metrics,
    read_units,
)

TODAY = dt.date(2026, 1, 1)
DATES = ["25/02/2024", "2024-02-26", "01/03/2024"]  # day-first, ISO, day-first
EXPECTED = [dt.date(2024, 2, 25), dt.date(2024, 2, 26), dt.date(2024, 3, 1)]


def test_public_names_are_all_defined() -> None:
    assert sorted(io.__all__) == sorted(set(io.__all__))
    for name in io.__all__:
        assert hasattr(io, name), name
    public = {
        n
        for n, v in vars(io).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "riskmap.geo.io") == "riskmap.geo.io"
        and (callable(v) or n.isupper())
        and n not in ("PathArg",)
    }
    assert public <= set(io.__all__), public - set(io.__all__)


def test_format_table() -> None:
    # every extension names one format; every media type's extension is one of its format's
    seen: dict[str, str] = {}
    for f in FORMATS:
        assert f.kinds <= set(KINDS)
        for ext in f.extensions:
            assert ext not in seen, (ext, seen.get(ext), f.name)
            seen[ext] = f.name
        assert set(f.media_types.values()) <= set(f.extensions)
    assert sorted(formats_for(COMMUNITIES)) == sorted(
        [".geojson", ".json", ".gpkg", ".shp", ".zip", ".parquet", ".geoparquet"]
    )
    assert sorted(formats_for(UNITS)) == sorted([*formats_for(COMMUNITIES), ".csv", ".tsv"])
    assert sorted(formats_for(CASES)) == sorted(
        [".csv", ".tsv", ".geojson", ".json", ".ndjson", ".jsonl", ".parquet", ".geoparquet"]
    )
    assert sorted(formats_for(METRICS)) == [".csv", ".tsv"]
    assert media_types(CASES)["application/json"] == ".json"
    assert media_types(COMMUNITIES)["application/zip"] == ".zip"
    assert "text/csv" not in media_types(COMMUNITIES)
    with pytest.raises(ValueError, match="unknown kind of input 'zones'"):
        formats_for("zones")


def test_adding_a_format_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A format added to the table (here: pipe-separated text as '.txt') is read by the
    readers of the kinds it lists and accepted as its media type, nothing else changed."""
    csv = next(f for f in FORMATS if f.name == "CSV")
    text = dataclasses.replace(
        csv,
        name="pipe-separated text",
        extensions=(".txt",),
        media_types={"text/plain": ".txt"},
        kinds=frozenset({CASES, METRICS}),
    )
    assert isinstance(text, InputFormat)
    f = tmp_path / "cases.txt"
    f.write_text("case_id|reported|type|role|lat|lon\nk1|2024-03-01|confirmed|residence|1.5|2.5\n")
    with pytest.raises(InputFileError, match="unknown file format '.txt' for cases"):
        read_cases(f, today=TODAY)
    monkeypatch.setattr(io, "FORMATS", (*FORMATS, text))
    got = read_cases(f, today=TODAY)
    assert got.frame[["case_id", "lat", "lon"]].values.tolist() == [["k1", 1.5, 2.5]]
    assert media_types(CASES)["text/plain"] == ".txt" and ".txt" in formats_for(METRICS)
    assert ".txt" not in formats_for(COMMUNITIES)


# --------------------------------------------------------------------------- date formats


def _case_records() -> list[dict[str, object]]:
    return [
        {
            "case_id": f"k{i}",
            "reported": d,
            "type": "confirmed",
            "role": "residence",
            "lat": 30.5,
            "lon": 114.3,
        }
        for i, d in enumerate(DATES)
    ]


def _write_cases(path: Path) -> Path:
    records = _case_records()
    ext = path.suffix
    if ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"
        lines = [sep.join(records[0])] + [sep.join(map(str, r.values())) for r in records]
        path.write_text("\n".join(lines) + "\n")
    elif ext == ".json":
        path.write_text(json.dumps(records))
    elif ext in (".ndjson", ".jsonl"):
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    elif ext == ".geojson":
        gdf = gpd.GeoDataFrame(
            pd.DataFrame(records).drop(columns=["lat", "lon"]),
            geometry=[Point(114.3, 30.5)] * len(records),
            crs=4326,
        )
        path.write_text(gdf.to_json())
    elif ext == ".geoparquet":
        gdf = gpd.GeoDataFrame(
            pd.DataFrame(records), geometry=[Point(114.3, 30.5)] * len(records), crs=4326
        )
        gdf.to_parquet(path)
    else:
        pd.DataFrame(records).to_parquet(path)
    return path


@pytest.mark.parametrize("ext", sorted(formats_for(CASES)))
def test_date_format_reads_cases_in_every_format(tmp_path: Path, ext: str) -> None:
    f = _write_cases(tmp_path / f"cases{ext}")
    got = read_cases(f, today=TODAY, date_format="%d/%m/%Y")
    assert got.rejects == [] and got.frame["reported"].tolist() == EXPECTED
    # without it, the day-first dates are rejected, naming the field and the pattern to use
    plain = read_cases(f, today=TODAY)
    assert [(r.field, "expected YYYY-MM-DD" in r.reason) for r in plain.rejects] == [
        ("reported", True),
        ("reported", True),
    ]


@pytest.mark.parametrize("ext", sorted(formats_for(METRICS)))
def test_date_format_reads_hospital_figures(tmp_path: Path, ext: str) -> None:
    sep = "," if ext == ".csv" else "\t"
    lines = [sep.join(["unit_id", "date", "admissions_per_100k", "beds_pct"])]
    lines += [sep.join(["D1", d, "3.5", "7"]) for d in DATES]
    f = tmp_path / f"figures{ext}"
    f.write_text("\n".join(lines) + "\n")
    got = read_metrics(f, today=TODAY, date_format="%d/%m/%Y")
    assert got.rejects == [] and got.frame["date"].tolist() == EXPECTED
    plain = read_metrics(f, today=TODAY)
    assert [(r.row, r.field) for r in plain.rejects] == [(2, "date"), (4, "date")]
    assert "unparseable date '25/02/2024' (expected YYYY-MM-DD)" in plain.rejects[0].reason


def test_date_reasons_are_shared(tmp_path: Path) -> None:
    """Cases and figures check dates alike (missing, unparseable, impossible, future)."""
    f = tmp_path / "cases.csv"
    f.write_text(
        "case_id,reported,type,role,lat,lon\n"
        "a,,confirmed,residence,1,1\n"
        "b,2024-02-30,confirmed,residence,1,1\n"
        "c,1850-01-01,confirmed,residence,1,1\n"
        "d,2026-01-02,confirmed,residence,1,1\n"
    )
    g = tmp_path / "figures.csv"
    g.write_text("unit_id,date,beds_pct\nD,,1\nD,2024-02-30,1\nD,1850-01-01,1\nD,2026-01-02,1\n")
    cases = [r.reason for r in read_cases(f, today=TODAY).rejects]
    figures = [r.reason for r in read_metrics(g, today=TODAY).rejects]
    assert cases[0] == "missing reported date" and figures[0] == "missing date"
    assert (
        cases[1:]
        == figures[1:]
        == [
            "invalid date '2024-02-30' (no such day)",
            "impossible date 1850-01-01 (before 1900-01-01)",
            "date 2026-01-02 is in the future (today is 2026-01-01)",
        ]
    )


# --------------------------------------------------------------------------- shared row checks


def test_duplicate_keys_name_the_first_row_for_communities_and_units(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"community_id": ["a", "b", "a"], "district_id": ["D1", "D1", "D2"]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 0, 3, 1)],
        crs=4326,
    )
    f = tmp_path / "c.geojson"
    f.write_text(gdf.to_json())
    rej = read_communities(f).rejects
    assert [(r.row, r.field, r.reason) for r in rej] == [
        (3, "community_id", "duplicate community_id 'a' (first seen at row 1)")
    ]
    u = tmp_path / "units.csv"
    u.write_text(
        "unit_id,level,name\nD1,district,A\nS1,subdistrict,B\nD1,district,C\nD1,county,D\n"
    )
    rej = read_units(u).rejects
    assert [(r.row, r.field, r.reason) for r in rej] == [
        (4, "unit_id", "duplicate district id 'D1' (first seen at row 2)"),
        (5, "level", "unknown level 'county' (expected one of subdistrict, district)"),
    ]


def test_rows_with_more_fields_than_the_header_in_every_csv_reader(tmp_path: Path) -> None:
    reason = "4 fields but the header has 3 (an unquoted delimiter in a value?)"
    u = tmp_path / "units.csv"
    u.write_text("district_id,name,population\nD1,A,10\nD2,B,1,000\n")
    assert [(r.row, r.field, r.reason) for r in read_units(u).rejects] == [(3, "row", reason)]
    m = tmp_path / "figures.csv"
    m.write_text("unit_id,date,beds_pct\nD1,2024-03-01,1\nD1,2024-03-02,1,5\n")
    got = read_metrics(m, today=TODAY).rejects
    assert [(r.row, r.field, r.reason) for r in got] == [(3, "row", reason)]


def test_unit_column_map_takes_unit_fields(tmp_path: Path) -> None:
    """--columns may name every field of a units file (level and parent_id included)."""
    from riskmap.geo.io import parse_column_map

    cmap = parse_column_map("unit_id=code,level=kind,parent_id=up,name=label")
    u = tmp_path / "units.csv"
    u.write_text("code,kind,up,label\nS1,subdistrict,D1,North\n")
    got = read_units(u, columns=cmap).frame
    assert got[["unit_id", "level", "parent_id", "name"]].values.tolist() == [
        ["S1", "subdistrict", "D1", "North"]
    ]


# --------------------------------------------------------------------------- probable cases


def test_probable_is_a_case_type(tmp_path: Path) -> None:
    f = tmp_path / "cases.csv"
    f.write_text(
        "case_id,reported,type,role,lat,lon\n"
        "a,2024-03-01,probable,residence,1,1\n"
        "b,2024-03-01,Probable,residence,1,1\n"
        "c,2024-03-01,presumed,residence,1,1\n"
    )
    got = read_cases(f, today=TODAY)
    assert got.frame["type"].tolist() == ["probable", "probable"]
    assert [(r.row, r.field) for r in got.rejects] == [(4, "type")]
    assert "probable" in got.rejects[0].reason
