"""Readers for community boundary files and case files, with row-level validation.

Two public readers:

* :func:`read_communities` reads polygons (GeoJSON, GeoPackage, Shapefile, zipped Shapefile,
  GeoParquet), reprojects them to EPSG:4326 and returns one row per valid community.
* :func:`read_cases` reads case records (CSV, GeoJSON, GeoParquet or plain Parquet) and returns one
  row per valid case.

A file that cannot be read as a whole raises :class:`~geo._errors.InputFileError`. A bad record
does not stop the load: it becomes a :class:`~geo._errors.Reject` naming its row and the first
field that failed. Fixable problems (a self-intersecting polygon, a missing CRS on lon/lat data,
text that looks mis-decoded) are kept and reported in ``LoadResult.warnings``.

Row numbers: for CSV files the physical line number (the header is line 1, the first data row
line 2); for every other format the 1-based feature/record number.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import math
import re
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from riskmap.geo._errors import InputFileError, Reject

__all__ = [
    "CASE_FIELDS",
    "CASE_TYPES",
    "COMMUNITY_FIELDS",
    "DEFAULT_LIMITS",
    "ROLES",
    "InputLimits",
    "LoadResult",
    "check_date_format",
    "parse_column_map",
    "read_cases",
    "read_communities",
]

CASE_TYPES = ("confirmed", "asymptomatic", "suspected", "close_contact")
ROLES = ("residence", "workplace", "frequent_activity", "visit")
COMMUNITY_FIELDS = ("community_id", "name", "population", "subdistrict_id", "district_id", "rural")
_TRUE = {"1", "true", "t", "yes", "y", "rural"}
_FALSE = {"0", "false", "f", "no", "n", "urban"}
CASE_FIELDS = ("case_id", "reported", "type", "role", "lat", "lon")

#: Every field a column map may name (communities and cases).
METRIC_FIELDS = ("unit_id", "date", "admissions_per_100k", "beds_pct")
MAPPABLE_FIELDS = tuple(dict.fromkeys(COMMUNITY_FIELDS + CASE_FIELDS + METRIC_FIELDS))

DEFAULT_CASE_TYPE = "confirmed"
MIN_DATE = dt.date(1900, 1, 1)

_COMMUNITY_FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".shp": "Shapefile",
    ".zip": "zipped Shapefile",
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
}
_CASE_FORMATS = {
    ".csv": "CSV",
    ".tsv": "CSV",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON or JSON records",
    ".ndjson": "NDJSON records",
    ".jsonl": "NDJSON records",
    ".parquet": "Parquet",
    ".geoparquet": "GeoParquet",
}
_SHAPEFILE_EXTS = (".shp", ".zip")
_POLYGONAL_TYPE_IDS = (3, 6)  # shapely type ids: Polygon, MultiPolygon
_POINT_TYPE_ID = 0
_CSV_DELIMITERS = (",", ";", "\t", "|")
_NAN_WORDS = frozenset({"nan", "+nan", "-nan"})

# One physical line with its ending (\r\n, \r or \n), like universal-newline reading.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:\s*(?:Z|[+-]\d{2}(?::?\d{2})?))?)?"
)

PathArg = str | PathLike[str]

# the csv module's own limit (128 KiB) would refuse a whole file for one long field: fields are
# read whatever their size and a field over InputLimits.max_field_bytes rejects its row
csv.field_size_limit(2**31 - 1)

# a file starting with one of these is a binary document, not text
_BINARY_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"%PDF", b"\x89PNG", b"SQLite format 3")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_EARTH_RADIUS_M = 6_378_137.0
# warnings of other code that may fire while a file is read (garbage collection, deprecations)
_FOREIGN_WARNINGS = (ResourceWarning, DeprecationWarning, PendingDeprecationWarning)


@dataclass(frozen=True)
class InputLimits:
    """Bounds on input; the service sets them from ``RISKMAP_*`` settings (see README)."""

    #: longest id (case, community, unit, parent ids), in characters
    max_id_length: int = 128
    #: largest text field; a longer one rejects its row (not the file)
    max_field_bytes: int = 65_536
    #: deepest nesting of a JSON document (records or GeoJSON)
    max_json_depth: int = 32
    #: most vertices of one community's polygon
    max_vertices: int = 100_000
    #: largest area of one community (geodesic, km²)
    max_area_km2: float = 50_000.0
    #: accept polygons over the area limit or spanning more than 180° of longitude
    allow_large_polygons: bool = False
    #: largest unpacked size of a zip archive or of a Parquet file's data (MB)
    max_unpacked_mb: float = 200.0


DEFAULT_LIMITS = InputLimits()


@dataclass
class LoadResult:
    """What a reader returns: accepted rows, rejected rows, warnings and the number of rows read."""

    frame: pd.DataFrame | gpd.GeoDataFrame
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_read: int = 0

    @property
    def accepted(self) -> int:
        """Number of accepted rows (``len(frame)``)."""
        return len(self.frame)


# --------------------------------------------------------------------------- column maps


def parse_column_map(spec: str | None) -> dict[str, str]:
    """Parse ``"lat=latitude,lon=longitude"`` into ``{"lat": "latitude", "lon": "longitude"}``.

    Keys are our field names (see ``MAPPABLE_FIELDS``), values the file's column names. An empty
    value (``"type="``) means "the file has no such column" (the reader uses its default).
    ``None`` or a blank spec gives ``{}``. Raises ``ValueError`` naming the bad part.
    """
    if spec is None or not spec.strip():
        return {}
    allowed = ", ".join(MAPPABLE_FIELDS)
    result: dict[str, str] = {}
    for index, raw in enumerate(spec.split(","), start=1):
        part = raw.strip()
        if not part:
            raise ValueError(
                f"column map {spec!r}: part {index} is empty "
                f"(expected field=column pairs separated by commas; fields: {allowed})"
            )
        if "=" not in part:
            raise ValueError(
                f"column map {spec!r}: {part!r} has no '=' "
                f"(expected field=column, e.g. lat=latitude; fields: {allowed})"
            )
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key not in MAPPABLE_FIELDS:
            raise ValueError(
                f"column map {spec!r}: unknown field {key!r} in {part!r} (fields: {allowed})"
            )
        if key in result:
            raise ValueError(f"column map {spec!r}: field {key!r} is mapped twice")
        result[key] = value.strip()
    return result


def _check_column_map(columns: Mapping[str, str] | None, fields: tuple[str, ...]) -> dict[str, str]:
    if not columns:
        return {}
    unknown = [key for key in columns if key not in fields]
    if unknown:
        raise ValueError(
            f"unknown field(s) in column map: {', '.join(map(repr, unknown))} "
            f"(fields for this file: {', '.join(fields)})"
        )
    return {key: (value or "").strip() for key, value in columns.items()}


def _find_column(available: list[str], wanted: str) -> str | None:
    """Exact match, else a unique case-insensitive match, else the 10-char shapefile truncation."""
    if wanted in available:
        return wanted
    for candidate in (wanted, wanted[:10]):
        folded = candidate.strip().casefold()
        hits = [col for col in available if str(col).strip().casefold() == folded]
        if len(hits) == 1:
            return hits[0]
    return None


def _missing_column(
    src: str, field_name: str, wanted: str, available: list[str], extra: str = ""
) -> InputFileError:
    listing = ", ".join(repr(c) for c in available) or "(none)"
    hint = (
        f"; map it with columns={{'{field_name}': '<column>'}}"
        f" (CLI: --columns {field_name}=<column>)"
        if wanted == field_name
        else ""
    )
    which = repr(wanted) if wanted == field_name else f"{wanted!r} (mapped to field {field_name!r})"
    return InputFileError(
        src, f"required column {which} not found{extra}; the file has columns: {listing}{hint}"
    )


# --------------------------------------------------------------------------- small helpers


def _starts_with(path: Path, prefix: bytes) -> bool:
    """Whether the file's first non-blank bytes (after a UTF-8 BOM) are ``prefix``."""
    with path.open("rb") as f:
        head = f.read(4096)
    return head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(prefix)


def _check_file(path: Path, src: str, formats: Mapping[str, str], what: str) -> str:
    ext = path.suffix.lower()
    if ext not in formats:
        known = ", ".join(sorted(formats))
        raise InputFileError(
            src,
            f"unknown file format {ext or '(no extension)'!r} for {what} (expected one of {known})",
        )
    if not path.exists():
        raise InputFileError(src, "file not found")
    if not path.is_file():
        raise InputFileError(src, "not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(src, "file is empty (0 bytes)")
    return ext


def _cell_to_str(value: Any) -> str | None:
    """A cell as a stripped string; None for null/empty. Integral numbers lose their '.0'."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return repr(number)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None


def _as_str(series: pd.Series) -> pd.Series:
    """Object series of stripped ``str`` or ``None`` (empty strings become ``None``)."""
    vectorised = pd.api.types.is_string_dtype(series.dtype) and not pd.api.types.is_object_dtype(
        series.dtype
    )
    if not vectorised and pd.api.types.is_object_dtype(series.dtype):
        vectorised = pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
    if vectorised:
        stripped = series.str.strip()
        keep = stripped.notna() & (stripped != "")
        return stripped.astype(object).where(keep, None)
    values = [_cell_to_str(v) for v in series.to_numpy(dtype=object)]
    return pd.Series(values, index=series.index, dtype=object)


def _normalise_word(series: pd.Series) -> pd.Series:
    """Lower-case; inner spaces/hyphens become '_' (``'Close Contact'`` -> ``close_contact``)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.array([_normalise_word_value(str(u)) for u in uniques] + [None], dtype=object)
    return pd.Series(table[codes], index=series.index, dtype=object)


def _normalise_word_value(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


class _Rejects:
    """Per-row first failure; ``add`` only touches rows that have not failed yet."""

    def __init__(self, n: int) -> None:
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.ok = np.ones(n, dtype=bool)

    def add(self, mask: Any, field_name: str, reason: str | Callable[[int], str]) -> None:
        hit = np.asarray(mask, dtype=bool) & self.ok
        idx = np.flatnonzero(hit)
        if idx.size == 0:
            return
        self.field[idx] = field_name
        if isinstance(reason, str):
            self.reason[idx] = reason
        else:
            for i in idx:
                self.reason[i] = reason(int(i))
        self.ok[idx] = False

    def to_list(self, src: str, rows: np.ndarray) -> list[Reject]:
        return [
            Reject(src, int(rows[i]), str(self.field[i]), str(self.reason[i]))
            for i in np.flatnonzero(~self.ok)
        ]


def _record_warnings(caught: list[str], out: list[str], prefix: str) -> None:
    seen: set[str] = set()
    for item in caught:
        message = item.strip()
        if message and message not in seen:
            seen.add(message)
            out.append(f"{prefix}: {message}")


# --------------------------------------------------------------------------- bounds on input


def _nonscalar(value: Any) -> str | None:
    """'a list', 'an object'... for a value that is not one value (JSON arrays/objects)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple | set | np.ndarray):
        return "a list"
    return None


def _screen_cells(
    frame: pd.DataFrame, names: Mapping[str, str], rej: _Rejects, limits: InputLimits
) -> pd.DataFrame:
    """Reject the rows holding a NUL byte, a field larger than ``limits.max_field_bytes`` or, in
    a column we read (``names``: column -> field name), a list or object; those cells become
    None so that nothing downstream sees them. Every column is screened, read or not."""
    copied = False
    limit = limits.max_field_bytes
    for col in list(frame.columns):
        series = frame[col]
        if not pd.api.types.is_object_dtype(series.dtype) and not pd.api.types.is_string_dtype(
            series.dtype
        ):
            continue
        if isinstance(frame, gpd.GeoDataFrame) and col == frame.geometry.name:
            continue
        label = names.get(str(col), str(col))
        values = series.to_numpy(dtype=object)
        kind = pd.api.types.infer_dtype(series, skipna=True)
        drop = np.zeros(len(values), dtype=bool)
        if kind not in ("string", "empty", "integer", "floating", "boolean", "mixed-integer-float"):
            shapes = [_nonscalar(v) for v in values]
            bad = np.array([k is not None for k in shapes], dtype=bool)
            if str(col) in names:
                rej.add(bad, label, partial(_shape_reason, label, shapes))
            drop |= bad
        # C-speed passes over the column; a value-by-value look only where something was found
        try:  # only text (a CSV file): no copy
            texts, joined = values, "".join(values)
        except TypeError:
            texts = [v if isinstance(v, str) else "" for v in values]
            joined = "".join(texts)
        chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        if chars.any():
            nul = np.zeros(len(values), dtype=bool)
            if "\x00" in joined:
                nul = np.fromiter(("\x00" in t for t in texts), dtype=bool, count=len(texts))
            rej.add(nul, label, f"{label} contains a NUL byte (\\x00)")
            big = np.zeros(len(values), dtype=bool)
            maybe = np.flatnonzero(chars * 4 > limit)  # at most 4 bytes a character
            sizes = np.zeros(len(values), dtype=np.int64)
            for i in maybe:
                sizes[i] = len(values[i].encode("utf-8", errors="surrogatepass"))
            big[maybe] = sizes[maybe] > limit
            rej.add(big, label, partial(_size_reason, label, sizes, limit))
            drop |= nul | big
        if drop.any():
            if not copied:
                frame, copied = frame.copy(), True
            values = values.copy()
            values[drop] = None
            frame[col] = pd.Series(values, index=series.index, dtype=object)
    return frame


def _shape_reason(label: str, shapes: list[str | None], i: int) -> str:
    return f"{label} is {shapes[i]}, expected a single value"


def _size_reason(label: str, sizes: np.ndarray, limit: int, i: int) -> str:
    return f"{label} is {int(sizes[i]):,} bytes long, more than the limit of {limit:,} bytes"


def _check_ids(
    raw: pd.Series, name: str, rej: _Rejects, limits: InputLimits, required: bool = True
) -> pd.Series:
    """Ids as stripped text (None when missing): a boolean, an empty or missing id (if
    ``required``), control characters or more than ``limits.max_id_length`` characters reject
    the row."""
    raw = raw.reset_index(drop=True)
    values = raw.to_numpy(dtype=object)
    if pd.api.types.is_bool_dtype(raw.dtype):
        flags = np.ones(len(values), dtype=bool)
    elif pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty", "integer", "floating"):
        flags = np.zeros(len(values), dtype=bool)
    else:
        flags = np.array([isinstance(v, bool | np.bool_) for v in values], dtype=bool)
    rej.add(flags, name, lambda i: f"{name} is {str(values[i]).lower()}, expected text or a number")
    ids = _as_str(raw)
    ids = ids.where(~flags, None)
    if required:
        rej.add(ids.isna().to_numpy(), name, f"missing {name}")
    present = ids.notna().to_numpy()
    if not present.any():
        return ids
    texts = [v if v is not None else "" for v in ids.to_numpy(dtype=object)]  # str or None
    control = np.zeros(len(texts), dtype=bool)
    if _CONTROL.search("".join(texts)):
        control = np.fromiter((bool(_CONTROL.search(t)) for t in texts), dtype=bool)
    rej.add(control, name, f"{name} contains control characters")
    length = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    limit = limits.max_id_length
    rej.add(
        length > limit,
        name,
        lambda i: f"{name} is {length[i]:,} characters long, more than the limit of {limit}",
    )
    return ids.where(~control & (length <= limit), None)


def _json_depth(data: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (strings left out), without parsing it."""
    stripped = _JSON_STRING.sub(b'""', data)
    arr = np.frombuffer(stripped, dtype=np.uint8)
    opening = (arr == ord("[")) | (arr == ord("{"))
    closing = (arr == ord("]")) | (arr == ord("}"))
    idx = np.flatnonzero(opening | closing)
    if idx.size == 0:
        return 0
    steps = np.where(opening[idx], 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _check_json_depth(data: bytes, src: str, limits: InputLimits) -> None:
    depth = _json_depth(data)
    if depth > limits.max_json_depth:
        raise InputFileError(
            src,
            f"the JSON is nested {depth} levels deep, more than the limit of "
            f"{limits.max_json_depth}",
        )


def _read_json_records(
    path: Path, src: str, ndjson: bool, limits: InputLimits
) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """A JSON array of objects (row = record number) or NDJSON (row = line number): the frame,
    the row numbers and the records that are not objects or not JSON (index -> reason)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(src, f"cannot read the file: {exc}") from exc
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    _check_json_depth(data, src, limits)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(src, f"the JSON is not UTF-8 text ({exc})") from exc
    bad: dict[int, str] = {}
    items: list[Any] = []
    if ndjson:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                bad[len(items)] = f"line is not JSON ({exc.msg} at column {exc.colno})"
                items.append(None)
            rows.append(number)
        row_numbers = np.asarray(rows, dtype=np.int64)
    else:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                src, f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from exc
        if not isinstance(items, list):
            raise InputFileError(
                src, f"expected a JSON array of objects (one per record), got {_json_kind(items)}"
            )
        row_numbers = np.arange(1, len(items) + 1, dtype=np.int64)
    if not items:
        raise InputFileError(src, "no records")
    records: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            records.append(item)
            continue
        bad.setdefault(i, f"the record is {_json_kind(item)}, expected an object")
        records.append({})
    frame = pd.DataFrame.from_records(records)
    frame.columns = [str(c) for c in frame.columns]
    return frame, row_numbers, bad


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _nonscalar(value) or "a string"


def _unpacked_size_check(size: int, src: str, what: str, limits: InputLimits) -> None:
    limit = limits.max_unpacked_mb * 1024 * 1024
    if size > limit:
        raise InputFileError(
            src,
            f"{what} unpacks to {size / 1024 / 1024:,.1f} MB, more than the limit of "
            f"{limits.max_unpacked_mb:g} MB",
        )


def _bbox_area_km2(bounds: np.ndarray) -> np.ndarray:
    """Area of lon/lat boxes on a sphere of the equatorial radius: an upper bound of the
    geodesic area of what they hold (km²)."""
    lon = np.radians(np.clip(bounds[:, 2] - bounds[:, 0], 0, 360))
    lat = np.abs(np.sin(np.radians(bounds[:, 3])) - np.sin(np.radians(bounds[:, 1])))
    return _EARTH_RADIUS_M**2 * lon * lat / 1e6 * 1.01


def _check_polygon_extent(
    geoms: np.ndarray, bounds: np.ndarray, rej: _Rejects, limits: InputLimits, notes: list[str]
) -> None:
    """Longitude span (antimeridian, whole world) and geodesic area of each polygon still ok."""
    from pyproj import Geod

    allow = limits.allow_large_polygons
    todo = np.flatnonzero(rej.ok)
    span = np.zeros(len(geoms))
    span[todo] = bounds[todo, 2] - bounds[todo, 0]
    wide = span > 180
    area = np.zeros(len(geoms))
    big_box = np.zeros(len(geoms), dtype=bool)
    big_box[todo] = _bbox_area_km2(bounds[todo]) > limits.max_area_km2
    geod = Geod(ellps="WGS84")
    for i in np.flatnonzero(big_box & ~wide):
        area[i] = abs(geod.geometry_area_perimeter(geoms[i])[0]) / 1e6
    large = area > limits.max_area_km2
    hint = "; set RISKMAP_ALLOW_LARGE_POLYGONS=true to accept it"

    def wide_reason(i: int) -> str:
        return (
            f"the polygon spans {span[i]:.1f} degrees of longitude: it crosses the antimeridian "
            "or covers the whole world"
        )

    def large_reason(i: int) -> str:
        return (
            f"the polygon's area is {area[i]:,.0f} km², more than the limit of "
            f"{limits.max_area_km2:,.0f} km²"
        )

    if allow:
        for k in np.flatnonzero(wide).tolist():
            notes.append(f"row {k + 1}: {wide_reason(k)} (accepted: large polygons allowed)")
        for k in np.flatnonzero(large).tolist():
            notes.append(f"row {k + 1}: {large_reason(k)} (accepted: large polygons allowed)")
        return
    rej.add(wide, "geometry", lambda i: wide_reason(i) + hint)
    rej.add(large, "geometry", lambda i: large_reason(i) + hint)


def _parse_strptime(text: str, date_format: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, date_format).date()
    except (ValueError, re.error):  # re.error: a pattern strptime cannot compile
        return None


def check_encoding(encoding: str | None) -> None:
    """Raise ValueError for an encoding Python does not know."""
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except (LookupError, ValueError):
        raise ValueError(f"unknown encoding {encoding!r}") from None


def check_date_format(date_format: str | None) -> str | None:
    """``None`` or a strftime pattern that names a day (``%d/%m/%Y``); raises ValueError."""
    if date_format is None or not date_format.strip():
        return None
    if len(date_format) > 64:
        raise ValueError(f"date format {date_format[:20]!r}... is longer than 64 characters")
    probe = dt.date(2001, 2, 3)
    try:
        text = probe.strftime(date_format)
    except ValueError as exc:
        raise ValueError(f"date format {date_format!r}: {exc}") from None
    if _parse_strptime(text, date_format) != probe:
        raise ValueError(
            f"date format {date_format!r} does not name one day (expected a strftime pattern "
            "with the day, month and year, e.g. %d/%m/%Y)"
        )
    return date_format


# --------------------------------------------------------------------------- vector reading


@contextmanager
def _unzipped(
    path: Path, src: str, layer: str | None, notes: list[str], limits: InputLimits
) -> Iterator[Path]:
    """The shapefile (with its side files) or other vector file of a .zip archive, extracted to
    a temporary folder. The sizes the archive declares are checked first, and no more than the
    limit is ever written, whatever the archive declares (GDAL's /vsizip would read on)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _unpacked_size_check(sum(i.file_size for i in infos), src, "the zip archive", limits)
            chosen = _zip_choice(infos, src, layer, notes)
            stem = PurePosixPath(chosen).with_suffix("")
            members = [i for i in infos if PurePosixPath(i.filename).with_suffix("") == stem]
            budget = int(limits.max_unpacked_mb * 1024 * 1024)
            with tempfile.TemporaryDirectory(prefix="riskmap-zip-") as folder:
                for info in members:
                    target = Path(folder) / PurePosixPath(info.filename).name
                    with archive.open(info) as packed, target.open("wb") as out:
                        while chunk := packed.read(1 << 20):
                            budget -= len(chunk)
                            if budget < 0:
                                raise InputFileError(
                                    src,
                                    "the zip archive unpacks to more than the limit of "
                                    f"{limits.max_unpacked_mb:g} MB (more than it declares)",
                                )
                            out.write(chunk)
                yield Path(folder) / PurePosixPath(chosen).name
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputFileError(src, f"not a readable zip archive ({_clean(exc, path, src)})") from exc


def _zip_choice(infos: list[zipfile.ZipInfo], src: str, layer: str | None, notes: list[str]) -> str:
    names = [i.filename for i in infos if not i.is_dir() and "__MACOSX" not in i.filename]
    shapefiles = [n for n in names if n.lower().endswith(".shp")]
    if not shapefiles:
        others = [n for n in names if Path(n).suffix.lower() in (".gpkg", ".geojson", ".json")]
        if not others:
            listing = ", ".join(names[:20]) or "(empty archive)"
            raise InputFileError(src, f"the zip archive holds no .shp file (contents: {listing})")
        shapefiles = others
    chosen = shapefiles[0]
    if len(shapefiles) > 1:
        by_stem = [n for n in shapefiles if layer is not None and Path(n).stem == layer]
        if by_stem:
            chosen = by_stem[0]
        else:
            notes.append(
                f"the zip archive holds {len(shapefiles)} shapefiles ({', '.join(shapefiles)}); "
                f"reading {chosen!r}"
            )
    return chosen


def _clean(exc: BaseException | str, path: Path, src: str) -> str:
    """An error message with the file's path on this machine replaced by its name ``src``."""
    text = str(exc)
    for p in sorted({str(path.resolve()), str(path.absolute()), str(path)}, key=len, reverse=True):
        text = text.replace(p, src)
    for p in sorted({str(path.resolve().parent), str(path.parent)}, key=len, reverse=True):
        if len(p) > 1:
            text = text.replace(p + "/", "")
    return text


def _choose_layer(
    gdal_path: str, path: Path, src: str, fmt: str, layer: str | None, notes: list[str]
) -> str | None:
    import pyogrio

    try:
        layers = pyogrio.list_layers(gdal_path)
    except Exception as exc:  # GDAL: not recognised, truncated, corrupt...
        raise InputFileError(src, f"cannot read {fmt} file: {_clean(exc, path, src)}") from exc
    names = [str(row[0]) for row in layers]
    if not names:
        raise InputFileError(src, "the file holds no layers")
    if layer is not None:
        if layer not in names:
            raise InputFileError(
                src, f"no layer {layer!r} in the file (layers: {', '.join(map(repr, names))})"
            )
        return layer
    if len(names) == 1:
        return None
    polygonal = [str(row[0]) for row in layers if "polygon" in str(row[1]).lower()]
    chosen = polygonal[0] if polygonal else names[0]
    notes.append(
        f"the file has {len(names)} layers ({', '.join(map(repr, names))}); reading {chosen!r} "
        f"(choose another with layer=...)"
    )
    return chosen


def _read_vector(
    path: Path,
    src: str,
    ext: str,
    *,
    encoding: str | None,
    layer: str | None,
    notes: list[str],
    limits: InputLimits,
) -> gpd.GeoDataFrame:
    """Read a vector file with pyogrio (or GeoParquet with geopandas); errors -> InputFileError."""
    import pyogrio

    fmt = _COMMUNITY_FORMATS.get(ext) or _CASE_FORMATS.get(ext, ext)
    if ext in (".parquet", ".geoparquet"):
        return _read_geoparquet(path, src, limits)
    if ext == ".zip":
        with _unzipped(path, src, layer, notes, limits) as member:
            inner = member.suffix.lower()
            return _read_vector(
                member,
                src,
                inner,
                encoding=encoding,
                layer=None if inner == ".shp" else layer,
                notes=notes,
                limits=limits,
            )
    data = None
    if ext in (".json", ".geojson"):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputFileError(src, f"cannot read the file: {_clean(exc, path, src)}") from exc
        _check_json_depth(data, src, limits)
    gdal_path = str(path)
    use_layer = _choose_layer(gdal_path, path, src, fmt, layer, notes)
    kwargs: dict[str, Any] = {}
    if encoding is not None:
        if ext in _SHAPEFILE_EXTS:
            kwargs["encoding"] = encoding
        else:
            notes.append(f"encoding {encoding!r} ignored: {fmt} text is always UTF-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pyogrio.read_dataframe(
                gdal_path, layer=use_layer, datetime_as_string=True, **kwargs
            )
        except UnicodeDecodeError as exc:
            raise InputFileError(
                src,
                f"cannot decode the text fields with encoding {encoding!r} ({exc}); "
                f"try another encoding, e.g. cp949 for Korean data",
            ) from exc
        except Exception as exc:  # pyogrio/GDAL errors: truncated, corrupt, not recognised...
            raise InputFileError(src, f"cannot read {fmt} file: {_clean(exc, path, src)}") from exc
    # the reader's own warnings (not those of unrelated objects collected meanwhile)
    ours = [w for w in caught if not issubclass(w.category, _FOREIGN_WARNINGS)]
    _record_warnings([_clean(str(w.message), path, src) for w in ours], notes, f"{fmt} reader")
    if not isinstance(frame, gpd.GeoDataFrame):
        frame = gpd.GeoDataFrame(frame)
    if data is not None:
        frame = _geojson_list_properties(frame, data)
    return frame


def _geojson_list_properties(frame: gpd.GeoDataFrame, data: bytes) -> gpd.GeoDataFrame:
    """GDAL turns a GeoJSON property holding an array in one feature into a list in every
    feature (``"A"`` becomes ``["A"]``): such columns are taken from the JSON itself, so that
    only the features whose value really is an array or object are rejected."""
    listed = [
        col
        for col in frame.columns
        if col != frame.geometry.name
        and frame[col].dtype == object
        and any(isinstance(v, np.ndarray | list) for v in frame[col].to_numpy())
    ]
    if not listed:
        return frame
    try:
        doc = json.loads(data.removeprefix(codecs.BOM_UTF8))
    except (ValueError, RecursionError):
        return frame
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list) or len(features) != len(frame):
        return frame
    frame = frame.copy()
    for col in listed:
        values = np.empty(len(features), dtype=object)
        for i, feature in enumerate(features):
            props = feature.get("properties") if isinstance(feature, dict) else None
            values[i] = props.get(col) if isinstance(props, dict) else None
        frame[col] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _parquet_size_check(path: Path, src: str, limits: InputLimits) -> None:
    """Refuse a Parquet file whose data unpacks to more than the limit (from its metadata)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # pyarrow: truncated, not a parquet file...
        raise InputFileError(src, f"cannot read Parquet file: {_clean(exc, path, src)}") from exc
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    _unpacked_size_check(size, src, "the Parquet file", limits)


def _read_geoparquet(path: Path, src: str, limits: InputLimits) -> gpd.GeoDataFrame:
    _parquet_size_check(path, src, limits)
    try:
        return gpd.read_parquet(path)
    except Exception as exc:  # pyarrow / geopandas: truncated, not parquet, no geo metadata...
        reason = _clean(exc, path, src)
        if "geo metadata" in reason.lower():
            raise InputFileError(
                src, f"not a GeoParquet file (no 'geo' metadata / geometry column): {reason}"
            ) from exc
        raise InputFileError(src, f"cannot read Parquet file: {reason}") from exc


# --------------------------------------------------------------------------- encoding check


def _mojibake_warning(
    frame: pd.DataFrame, text_columns: list[str], encoding: str | None
) -> str | None:
    samples: list[str] = []
    for col in text_columns:
        values = frame[col]
        if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
            continue
        for value in pd.unique(values.dropna())[:1000]:
            if isinstance(value, str) and not value.isascii():
                samples.append(value)
    if not samples:
        return None
    how = "with the file's declared/default encoding" if encoding is None else f"as {encoding!r}"
    bad = [s for s in samples if "\ufffd" in s]
    if bad:
        return (
            f"text fields contain replacement characters (e.g. {bad[0]!r}) when read {how}: the "
            "encoding is probably wrong; Korean shapefiles without a .cpg file are usually "
            "EUC-KR/CP949: pass encoding='cp949' (CLI: --encoding cp949)"
        )
    if encoding is not None:
        return None
    latin = [s for s in samples if max(map(ord, s)) < 256]
    if len(latin) < 0.9 * len(samples):
        return None  # real non-Latin text (e.g. correctly decoded Hangul)

    def redecode(text: str, codec: str) -> str | None:
        try:
            return text.encode("latin-1").decode(codec)
        except UnicodeError:
            return None

    utf8 = [r for r in (redecode(s, "utf-8") for s in latin) if r is not None]
    if len(utf8) >= 0.9 * len(latin):
        return (
            f"text fields look mis-decoded (e.g. {latin[0]!r}, which as UTF-8 reads {utf8[0]!r}): "
            "the .dbf has no code page; pass encoding='utf-8' (CLI: --encoding utf-8)"
        )
    pairs = re.compile(r"(?:[\x00-\x7f]|[\x81-\xfe][\x81-\xfe])*")
    korean = [r for s in latin if pairs.fullmatch(s) and (r := redecode(s, "cp949")) is not None]
    if len(korean) >= 0.9 * len(latin):
        non_ascii = [c for r in korean for c in r if not c.isascii()]
        hangul = sum(1 for c in non_ascii if "\uac00" <= c <= "\ud7a3")
        if non_ascii and hangul >= 0.5 * len(non_ascii):
            return (
                f"text fields look mis-decoded (e.g. {latin[0]!r}, which as CP949 reads "
                f"{korean[0]!r}): the .dbf has no .cpg file and is probably EUC-KR/CP949; "
                "pass encoding='cp949' (CLI: --encoding cp949)"
            )
    if any(0x80 <= ord(c) <= 0x9F for s in latin for c in s):
        return (
            f"text fields contain control characters (e.g. {latin[0]!r}): the encoding is "
            "probably wrong; pass the right one, e.g. encoding='cp949' (CLI: --encoding cp949)"
        )
    return None


# --------------------------------------------------------------------------- CRS


def _is_wgs84(crs: Any) -> bool:
    try:
        return bool(crs.to_epsg() == 4326)
    except Exception:  # pragma: no cover - exotic CRS objects
        return False


def _crs_label(crs: Any) -> str:
    if crs is None:
        return "no CRS (assumed EPSG:4326)"
    try:
        epsg = crs.to_epsg()
    except Exception:  # pragma: no cover
        epsg = None
    return f"EPSG:{epsg}" if epsg else str(crs.name)


def _fmt_bbox(bounds: np.ndarray) -> str:
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    return f"x {minx:.6g}..{maxx:.6g}, y {miny:.6g}..{maxy:.6g}"


def _total_bounds(bounds: np.ndarray) -> np.ndarray:
    finite = np.isfinite(bounds).all(axis=1)
    if not finite.any():
        return np.array([np.nan] * 4)
    sub = bounds[finite]
    return np.array([sub[:, 0].min(), sub[:, 1].min(), sub[:, 2].max(), sub[:, 3].max()])


def _in_lonlat(bounds: np.ndarray) -> np.ndarray:
    """Per row: bounds (minx, miny, maxx, maxy) inside lon [-180, 180] and lat [-90, 90]."""
    with np.errstate(invalid="ignore"):
        return (
            (bounds[:, 0] >= -180)
            & (bounds[:, 2] <= 180)
            & (bounds[:, 1] >= -90)
            & (bounds[:, 3] <= 90)
        )


def _to_wgs84(frame: gpd.GeoDataFrame, src: str, notes: list[str], what: str) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326, or assume it when the file has no CRS and looks like lon/lat."""
    geoms = frame.geometry.to_numpy()
    if frame.crs is None:
        bounds = shapely.bounds(geoms)
        present = np.isfinite(bounds).all(axis=1)
        if present.any() and not _in_lonlat(bounds[present]).all():
            raise InputFileError(
                src,
                f"the coordinates look projected (bbox {_fmt_bbox(_total_bounds(bounds))}, not "
                "lon/lat) and the file has no CRS (.prj file missing or no CRS metadata); add the "
                ".prj file that came with the data, or assign the CRS, e.g. "
                "ogr2ogr -a_srs EPSG:<code> fixed.shp input.shp",
            )
        notes.append(f"the {what} file has no CRS; coordinates are lon/lat, assuming EPSG:4326")
        return frame.set_crs(4326, allow_override=True)
    if _is_wgs84(frame.crs):
        return frame
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return frame.to_crs(4326)
    except Exception as exc:
        raise InputFileError(
            src, f"cannot reproject from {_crs_label(frame.crs)} to EPSG:4326: {exc}"
        ) from exc


# --------------------------------------------------------------------------- communities


def read_communities(
    path: PathArg,
    *,
    columns: dict[str, str] | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> LoadResult:
    """Read community polygons; return them in EPSG:4326 with normalised columns.

    ``columns`` maps our fields (``COMMUNITY_FIELDS``) to the file's column names; an empty value
    means "no such column". Only ``community_id`` is required. ``encoding`` applies to
    shapefiles (their .dbf); ``layer`` picks a layer of a multi-layer file (GeoPackage).
    ``limits`` bounds ids, fields, vertices, areas and unpacked sizes; ``name`` is the file's
    name in messages (default: its path).

    The frame has exactly ``community_id`` (str), ``name``, ``subdistrict_id``, ``district_id``
    (str or None, object dtype), ``population`` (Int64) and ``geometry`` (Polygon/MultiPolygon).
    """
    src = name or str(path)
    file_path = Path(path)
    cmap = _check_column_map(columns, COMMUNITY_FIELDS)
    check_encoding(encoding)
    ext = _check_file(file_path, src, _COMMUNITY_FORMATS, "community boundaries")
    notes: list[str] = []
    raw = _read_vector(
        file_path, src, ext, encoding=encoding, layer=layer, notes=notes, limits=limits
    )
    n = len(raw)
    if n == 0:
        raise InputFileError(src, "the file has no features")
    geom_name = raw.geometry.name if raw._geometry_column_name in raw.columns else None
    if geom_name is None:
        raise InputFileError(src, "the file has no geometry column")
    available = [str(c) for c in raw.columns if c != geom_name]

    resolved: dict[str, str | None] = {}
    for fld in COMMUNITY_FIELDS:
        wanted = cmap.get(fld, fld)
        if wanted == "":
            if fld == "community_id":
                raise ValueError("field 'community_id' is required and cannot be mapped to nothing")
            resolved[fld] = None
            continue
        found = _find_column(available, wanted)
        if found is None and (fld == "community_id" or fld in cmap):
            raise _missing_column(src, fld, wanted, available)
        resolved[fld] = found

    if ext in _SHAPEFILE_EXTS:
        text_cols = [c for c in available if c in raw.columns]
        message = _mojibake_warning(raw, text_cols, encoding)
        if message:
            notes.append(message)

    rows = np.arange(1, n + 1)
    rej = _Rejects(n)
    raw = raw.reset_index(drop=True)
    raw = _screen_cells(raw, {c: f for f, c in resolved.items() if c is not None}, rej, limits)

    # vertices, counted before anything else is done with the geometries
    geoms = np.asarray(raw.geometry.to_numpy(), dtype=object)
    vertices = shapely.get_num_coordinates(geoms)
    too_many = vertices > limits.max_vertices
    rej.add(
        too_many,
        "geometry",
        lambda i: (
            f"the polygon has {int(vertices[i]):,} vertices, more than the limit of "
            f"{limits.max_vertices:,}"
        ),
    )
    if too_many.any():
        geoms = geoms.copy()
        geoms[too_many] = None
        raw = raw.set_geometry(gpd.GeoSeries(geoms, index=raw.index, crs=raw.crs))
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    not_finite = np.zeros(n, dtype=bool)
    not_finite[owner[~np.isfinite(coords).all(axis=1)]] = True
    del coords, owner
    rej.add(not_finite, "geometry", "a vertex has a coordinate that is not a finite number (NaN)")
    if not_finite.any():
        geoms = geoms.copy()
        geoms[not_finite] = None
        raw = raw.set_geometry(gpd.GeoSeries(geoms, index=raw.index, crs=raw.crs))

    declared_crs = raw.crs
    raw = _to_wgs84(raw, src, notes, "community")

    # community_id: present, then unique (the first row in the file keeps the id)
    id_col = resolved["community_id"]
    assert id_col is not None
    ids = _check_ids(raw[id_col], "community_id", rej, limits)
    missing = ids.isna().to_numpy()
    dup = (ids.duplicated(keep="first") & ids.notna()).to_numpy()
    if dup.any():
        first_row: dict[str, int] = {}
        for i in np.flatnonzero(~missing):
            first_row.setdefault(ids.iat[i], int(rows[i]))
        rej.add(
            dup,
            "community_id",
            lambda i: (
                f"duplicate community_id {ids.iat[i]!r} (first seen at row {first_row[ids.iat[i]]})"
            ),
        )

    # geometry
    geoms = np.asarray(raw.geometry.to_numpy(), dtype=object)
    is_null = shapely.is_missing(geoms) & rej.ok
    rej.add(is_null, "geometry", "missing geometry")
    rej.add(shapely.is_empty(geoms) & ~is_null, "geometry", "empty geometry")
    type_ids = shapely.get_type_id(geoms)
    non_poly = ~np.isin(type_ids, _POLYGONAL_TYPE_IDS) & ~is_null
    rej.add(
        non_poly,
        "geometry",
        lambda i: f"not a polygon ({geoms[i].geom_type}); expected Polygon or MultiPolygon",
    )
    bounds = shapely.bounds(geoms)
    finite = np.isfinite(bounds).all(axis=1)
    rej.add(~finite, "geometry", "coordinates are not finite (reprojection failed?)")
    outside = finite & ~_in_lonlat(bounds)
    if outside.any() and not (finite & ~outside).any():
        raise InputFileError(
            src,
            f"all coordinates are outside the lon/lat range "
            f"(bbox {_fmt_bbox(_total_bounds(bounds))}) although the file declares "
            f"{_crs_label(declared_crs)}: the "
            "declared CRS is probably wrong (GeoJSON must be lon/lat, RFC 7946)",
        )
    rej.add(
        outside,
        "geometry",
        lambda i: f"coordinates outside the lon/lat range (bbox {_fmt_bbox(bounds[i])})",
    )
    _check_polygon_extent(geoms, bounds, rej, limits, notes)
    geoms = geoms.copy()
    candidates = np.flatnonzero(rej.ok)
    if candidates.size:
        geoms[candidates] = shapely.force_2d(geoms[candidates])
    invalid_idx = (
        candidates[~shapely.is_valid(geoms[candidates])] if candidates.size else candidates
    )
    repair_notes: dict[int, str] = {}
    unrepairable: dict[int, str] = {}
    for i in invalid_idx:
        why = shapely.is_valid_reason(geoms[i])
        fixed = _polygonal_part(shapely.make_valid(geoms[i]))
        if fixed is None:
            unrepairable[int(i)] = f"invalid polygon that cannot be repaired ({why})"
            continue
        geoms[i] = fixed
        repair_notes[int(i)] = f"invalid polygon made valid ({why})"
    if unrepairable:
        mask = np.zeros(n, dtype=bool)
        mask[list(unrepairable)] = True
        rej.add(mask, "geometry", lambda i: unrepairable[i])

    # population
    pop_col = resolved["population"]
    population = pd.array([pd.NA] * n, dtype="Int64")
    if pop_col is not None:
        population = _parse_population(raw[pop_col].reset_index(drop=True), rej)

    # text fields
    def text(field_name: str) -> pd.Series:
        col = resolved[field_name]
        if col is None:
            return pd.Series([None] * n, dtype=object)
        if field_name.endswith("_id"):
            return _check_ids(raw[col], field_name, rej, limits, required=False)
        return _as_str(raw[col]).reset_index(drop=True)

    parents = {f: text(f) for f in ("subdistrict_id", "district_id")}

    # rural: a yes/no flag (empty: no)
    rural = np.zeros(n, dtype=bool)
    rural_col = resolved["rural"]
    if rural_col is not None:
        flags = _as_str(raw[rural_col]).reset_index(drop=True)
        low = flags.str.strip().str.lower()
        given = flags.notna().to_numpy()
        is_true = low.isin(_TRUE).to_numpy()
        is_false = low.isin(_FALSE).to_numpy()
        rej.add(
            given & ~is_true & ~is_false,
            "rural",
            lambda i: f"rural flag {flags.iat[i]!r} (expected true/false, yes/no, 1/0)",
        )
        rural = given & is_true

    keep = rej.ok
    for k, message in repair_notes.items():
        if keep[k]:
            notes.append(f"row {rows[k]}: community_id {ids.iat[k]}: {message}")
    out = gpd.GeoDataFrame(
        {
            "community_id": ids.astype(object),
            "name": text("name"),
            "population": pd.Series(population, dtype="Int64"),
            "subdistrict_id": parents["subdistrict_id"],
            "district_id": parents["district_id"],
            "rural": rural,
        },
        geometry=gpd.GeoSeries(geoms, crs=4326),
        crs=4326,
    )
    out = out.loc[keep].reset_index(drop=True)
    return LoadResult(frame=out, rejects=rej.to_list(src, rows), warnings=notes, rows_read=n)


def _polygonal_part(geom: Any) -> Any | None:
    """The polygonal part of a make_valid result, or None if nothing polygonal is left."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [
        g
        for g in shapely.get_parts(shapely.get_parts(geom))
        if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty
    ]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    if merged.geom_type not in ("Polygon", "MultiPolygon") or merged.is_empty:
        return None
    return merged


def _parse_population(raw: pd.Series, rej: _Rejects) -> Any:
    n = len(raw)
    texts = _as_str(raw)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        numbers = raw.astype("float64").to_numpy()
        missing = np.isnan(numbers)
        not_number = np.zeros(n, dtype=bool)
    else:
        missing = texts.isna().to_numpy()
        numbers = pd.to_numeric(texts, errors="coerce").astype("float64").to_numpy()
        lowered = texts.str.lower()
        literal_nan = lowered.isin(_NAN_WORDS).to_numpy()
        not_number = ~missing & np.isnan(numbers) & ~literal_nan
    with np.errstate(invalid="ignore"):
        non_finite = ~missing & ~not_number & ~np.isfinite(numbers)
        negative = ~missing & np.isfinite(numbers) & (numbers < 0)
        fractional = ~missing & np.isfinite(numbers) & (numbers != np.floor(numbers))
        too_big = ~missing & np.isfinite(numbers) & (np.abs(numbers) > 2**53)

    def shown(i: int) -> str:
        return texts.iat[i] if texts.iat[i] is not None else repr(numbers[i])

    rej.add(not_number, "population", lambda i: f"population {shown(i)!r} is not a number")
    rej.add(non_finite, "population", lambda i: f"population {shown(i)} is not a finite number")
    rej.add(negative, "population", lambda i: f"population {shown(i)} is negative")
    rej.add(fractional, "population", lambda i: f"population {shown(i)} is not a whole number")
    rej.add(too_big, "population", lambda i: f"population {shown(i)} is too large")
    good = ~missing & ~not_number & ~non_finite & ~negative & ~fractional & ~too_big
    result = pd.array([pd.NA] * n, dtype="Int64")
    idx = np.flatnonzero(good)
    if idx.size:
        result[idx] = numbers[idx].astype(np.int64)
    return result


# --------------------------------------------------------------------------- cases: reading


def _decode_text(data: bytes, src: str, notes: list[str]) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputFileError(src, f"cannot decode UTF-16 text: {exc}") from exc
    head = data[:65536]
    if data.startswith(_BINARY_MAGIC) or head.count(b"\x00") > max(16, len(head) // 100):
        raise InputFileError(
            src,
            "not a text CSV file (it is binary: an Excel, zip or other document? "
            "save it as CSV UTF-8)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        for codec in ("cp949", "latin-1"):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                continue
            notes.append(
                f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start});"
                f" decoded it as {codec}; save it as UTF-8 to be sure"
            )
            return text
        raise InputFileError(
            src, f"cannot decode the file as text: {exc}"
        ) from exc  # pragma: no cover


def _sniff_delimiter(header: str, ext: str) -> str:
    if ext == ".tsv":
        return "\t"
    counts = {}
    for delim in _CSV_DELIMITERS:
        try:
            fields = next(csv.reader([header], delimiter=delim))
        except (csv.Error, StopIteration):
            fields = []
        counts[delim] = len(fields) - 1
    best = max(_CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _read_csv(
    path: Path, src: str, ext: str, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray, str, list[tuple[int, int]]]:
    """Parse a CSV into an all-string frame.

    Also returns the file line number of every record, the delimiter, and (record index, field
    count) for records with more non-empty fields than the header.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(src, f"cannot read the file: {exc}") from exc
    text = _decode_text(data, src, notes)
    if not text.strip():
        raise InputFileError(src, "file is empty (no header, no data)")
    lines = _LINE.findall(text)
    first = next((line for line in lines if line.strip()), "")
    delimiter = _sniff_delimiter(first.rstrip("\r\n"), ext)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    records: list[list[str]] = []
    line_numbers: list[int] = []
    malformed: list[tuple[int, int]] = []
    empty_rows = 0
    last_start = 0
    try:
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            if not record or (not record[0].strip() and all(not value.strip() for value in record)):
                if record and header is not None:
                    empty_rows += 1
                continue
            if header is None:
                header = record
                continue
            last_start = start
            records.append(record)
            line_numbers.append(start)
    except csv.Error as exc:
        raise InputFileError(src, f"malformed CSV near line {reader.line_num}: {exc}") from exc
    if header is None:
        raise InputFileError(src, "file is empty (no header, no data)")
    if records and _unterminated_quote(lines[last_start - 1 :], delimiter):
        raise InputFileError(
            src,
            f"unterminated quoted field in the record starting at line {last_start} "
            "(file truncated, or a stray '\"')",
        )
    if not records:
        raise InputFileError(src, "no data rows (the file has only a header)")
    if empty_rows:
        notes.append(f"skipped {empty_rows} empty row(s) (only delimiters)")

    names = _unique_names([h.strip() for h in header])
    width = len(names)
    for k, record in enumerate(records):
        if len(record) < width:
            records[k] = record + [""] * (width - len(record))
        elif len(record) > width:
            if any(value.strip() for value in record[width:]):
                malformed.append((k, len(record)))
            records[k] = record[:width]
    frame = pd.DataFrame(records, columns=names, dtype=object)
    return frame, np.asarray(line_numbers, dtype=np.int64), delimiter, malformed


def _unterminated_quote(tail: list[str], delimiter: str) -> bool:
    """True if the last record opens a quoted field that never closes (truncated file)."""
    try:
        for _ in csv.reader(tail, delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for position, name in enumerate(names, start=1):
        base = name or f"column_{position}"
        candidate = base
        while candidate in seen:
            seen[base] += 1
            candidate = f"{base}.{seen[base]}"
        seen.setdefault(candidate, 0)
        out.append(candidate)
    return out


def _read_case_table(path: Path, src: str, limits: InputLimits) -> pd.DataFrame:
    """Parquet: GeoParquet if it has 'geo' metadata, else a plain table."""
    import pyarrow.parquet as pq

    _parquet_size_check(path, src, limits)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow: truncated, not a parquet file...
        raise InputFileError(src, f"cannot read Parquet file: {_clean(exc, path, src)}") from exc
    metadata = schema.metadata or {}
    if b"geo" in metadata:
        return _read_geoparquet(path, src, limits)
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise InputFileError(src, f"cannot read Parquet file: {_clean(exc, path, src)}") from exc


# --------------------------------------------------------------------------- cases: validation


def _parse_date_value(
    value: Any, date_format: str | None = None
) -> tuple[dt.date | None, str | None]:
    if value is None or value is pd.NA or value is pd.NaT:
        return None, "missing reported date"
    if isinstance(value, float) and math.isnan(value):
        return None, "missing reported date"
    if isinstance(value, dt.datetime):  # includes pandas.Timestamp
        return value.date(), None
    if isinstance(value, dt.date):
        return value, None
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None, "missing reported date"
        return pd.Timestamp(value).date(), None
    text = _cell_to_str(value)
    if text is None:
        return None, "missing reported date"
    match = _ISO_DATE.fullmatch(text)
    if match is None and date_format is not None:
        parsed = _parse_strptime(text, date_format)
        if parsed is not None:
            return parsed, None
        return None, f"unparseable date {text!r} (expected {date_format} or YYYY-MM-DD)"
    if match is None:
        return None, f"unparseable date {text!r} (expected YYYY-MM-DD)"
    year, month, day, hour, minute, second = match.groups()
    if (hour is not None and int(hour) > 23) or (minute is not None and int(minute) > 59):
        return None, f"unparseable date {text!r} (bad time of day; expected YYYY-MM-DD)"
    if second is not None and int(second) > 60:
        return None, f"unparseable date {text!r} (bad time of day; expected YYYY-MM-DD)"
    try:
        return dt.date(int(year), int(month), int(day)), None
    except ValueError:
        return None, f"invalid date {text!r} (no such day)"


def _parse_dates(
    series: pd.Series, date_format: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: a ``datetime.date`` (or None) and a failure reason (or None)."""
    n = len(series)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = np.array(series.dt.date.to_numpy(dtype=object), dtype=object, copy=True)
        missing = series.isna().to_numpy()
        values[missing] = None
        reasons = np.full(len(series), None, dtype=object)
        reasons[missing] = "missing reported date"
        return values, reasons
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    parsed = [_parse_date_value(u, date_format) for u in np.asarray(uniques, dtype=object)]
    dates = np.empty(n, dtype=object)
    reasons = np.empty(n, dtype=object)
    na = codes < 0
    dates[na] = None
    reasons[na] = "missing reported date"
    if parsed:
        lookup_dates = np.empty(len(parsed), dtype=object)
        lookup_reasons = np.empty(len(parsed), dtype=object)
        for k, (d, r) in enumerate(parsed):
            lookup_dates[k] = d
            lookup_reasons[k] = r
        dates[~na] = lookup_dates[codes[~na]]
        reasons[~na] = lookup_reasons[codes[~na]]
    return dates, reasons


def _coordinate(
    raw: pd.Series, name: str, low: float, high: float, comma_decimal: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[int], str]]:
    """Parse a lat or lon column: values, missing mask, bad mask (with a reason function)."""
    n = len(raw)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        numbers = raw.astype("float64").to_numpy()
        texts = pd.Series([None] * n, dtype=object)
        missing = np.isnan(numbers)
        not_number = np.zeros(n, dtype=bool)
    else:
        texts = _as_str(raw).reset_index(drop=True)
        missing = texts.isna().to_numpy()
        candidate = texts
        if comma_decimal:  # '30,59' in a ';'-separated file
            candidate = texts.str.replace(r"^([+-]?\d+),(\d+)$", r"\1.\2", regex=True)
        numbers = pd.to_numeric(candidate, errors="coerce").astype("float64").to_numpy()
        not_number = ~missing & np.isnan(numbers)
        for i in np.flatnonzero(not_number):
            if str(candidate.iat[i]).lower() in _NAN_WORDS:
                not_number[i] = False  # a literal 'NaN': reported as not finite
    with np.errstate(invalid="ignore"):
        non_finite = ~missing & ~not_number & ~np.isfinite(numbers)
        out_of_range = np.isfinite(numbers) & ((numbers < low) | (numbers > high))

    def shown(i: int) -> str:
        text = texts.iat[i]
        return text if text is not None else repr(float(numbers[i]))

    def reason(i: int) -> str:
        if missing[i]:
            return f"missing {name}"
        if not_number[i]:
            return f"{name} {shown(i)!r} is not a number"
        if non_finite[i]:
            return f"{name} {shown(i)} is not a finite number"
        return f"{name} {shown(i)} out of range [{low:g}, {high:g}]"

    bad = missing | not_number | non_finite | out_of_range
    return numbers, missing, bad, reason


def read_cases(
    path: PathArg,
    *,
    columns: dict[str, str] | None = None,
    default_role: str | None = None,
    today: dt.date | None = None,
    coverage: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    date_format: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> LoadResult:
    """Read case records (CSV, GeoJSON points, GeoParquet points, a plain Parquet table, or
    JSON records: a ``.json`` file holding an array of objects, or ``.ndjson``/``.jsonl``).

    ``date_format`` (a strftime pattern such as ``%d/%m/%Y``) is how the dates are written
    (ISO dates are read too); ``limits`` bounds ids and fields; ``name`` is the file's name in
    messages (default: its path).

    ``coverage(lon, lat)`` (optional) tells which points lie in the area the data covers (the
    communities): a row whose given point is outside it while the point with lat and lon
    swapped is inside has them swapped back, with a warning.

    ``columns`` maps our fields (``CASE_FIELDS``) to the file's column names; an empty value means
    "no such column" (``{"type": ""}``: every case is ``confirmed``; ``{"role": ""}`` with
    ``default_role``: every case gets that role; ``{"lat": "", "lon": ""}``: take the point
    geometry). Required: case_id, reported, lat and lon (or a point geometry), role unless
    ``default_role`` is given.

    The frame has exactly ``case_id`` (str), ``reported`` (``datetime.date``), ``type`` (str),
    ``role`` (str), ``lat``, ``lon`` (float64) and ``row`` (int64: CSV line number, else the
    1-based record number). Exact duplicate rows are kept.
    """
    src = name or str(path)
    file_path = Path(path)
    cmap = _check_column_map(columns, CASE_FIELDS)
    date_format = check_date_format(date_format)
    role_default: str | None = None
    if default_role is not None and default_role.strip():
        role_default = _normalise_word_value(default_role)
        if role_default not in ROLES:
            raise ValueError(
                f"unknown default_role {default_role!r} (expected one of {', '.join(ROLES)})"
            )
    if today is None:
        today = dt.date.today()
    elif isinstance(today, dt.datetime):
        today = today.date()
    ext = _check_file(file_path, src, _CASE_FORMATS, "cases")
    notes: list[str] = []

    comma_decimal = False
    bad_records: dict[int, str] = {}
    if ext in (".csv", ".tsv"):
        frame, rows, delimiter, malformed = _read_csv(file_path, src, ext, notes)
        comma_decimal = delimiter != ","
    elif ext in (".ndjson", ".jsonl") or (ext == ".json" and _starts_with(file_path, b"[")):
        frame, rows, bad_records = _read_json_records(file_path, src, ext != ".json", limits)
        malformed = []
    else:
        if ext in (".json", ".geojson"):
            frame = _read_vector(
                file_path, src, ext, encoding=None, layer=None, notes=notes, limits=limits
            )
        else:
            frame = _read_case_table(file_path, src, limits)
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
        malformed = []
        if len(frame) == 0:
            what = "the file has no features" if ext in (".json", ".geojson") else "no data rows"
            raise InputFileError(src, what)
    frame = frame.reset_index(drop=True)
    n = len(frame)
    has_geometry = False
    if isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns:
        has_geometry = bool(frame.geometry.notna().any())
        available = [str(c) for c in frame.columns if c != frame.geometry.name]
    else:
        available = [str(c) for c in frame.columns]

    def column(name: str, required: bool, extra: str = "") -> str | None:
        wanted = cmap.get(name, name)
        if wanted == "":
            return None
        found = _find_column(available, wanted)
        if found is None and (required or name in cmap):
            raise _missing_column(src, name, wanted, available, extra)
        return found

    for name in ("case_id", "reported"):
        if cmap.get(name) == "":
            raise ValueError(f"field {name!r} is required and cannot be mapped to nothing")
    id_col = column("case_id", True)
    date_col = column("reported", True)
    type_col = column("type", False)
    role_col = column("role", role_default is None, " (or give a default role)")
    if role_col is None and role_default is None:
        raise ValueError("field 'role' is mapped to nothing: give a default role")
    lat_col = lon_col = None
    coords_from_geometry = False
    lat_wanted, lon_wanted = cmap.get("lat", "lat"), cmap.get("lon", "lon")
    lat_found = _find_column(available, lat_wanted) if lat_wanted else None
    lon_found = _find_column(available, lon_wanted) if lon_wanted else None
    if lat_found is not None and lon_found is not None:
        lat_col, lon_col = lat_found, lon_found
    elif has_geometry and not (
        (lat_wanted and "lat" in cmap and lat_found is None)
        or (lon_wanted and "lon" in cmap and lon_found is None)
    ):
        coords_from_geometry = True
    else:
        for name, wanted, found in (("lat", lat_wanted, lat_found), ("lon", lon_wanted, lon_found)):
            if found is None:
                if not wanted:
                    raise InputFileError(
                        src, f"field {name!r} is mapped to nothing and the file has no geometry"
                    )
                raise _missing_column(src, name, wanted, available, " (and no point geometries)")

    rej = _Rejects(n)
    if bad_records:
        mask = np.zeros(n, dtype=bool)
        mask[list(bad_records)] = True
        rej.add(mask, "row", lambda i: bad_records[i])
    used = {"case_id": id_col, "reported": date_col, "type": type_col, "role": role_col}
    used |= {"lat": lat_col, "lon": lon_col}
    frame = _screen_cells(frame, {c: f for f, c in used.items() if c is not None}, rej, limits)
    if malformed:
        field_counts = dict(malformed)
        mask = np.zeros(n, dtype=bool)
        mask[list(field_counts)] = True
        rej.add(
            mask,
            "row",
            lambda i: (
                f"{field_counts[i]} fields but the header has {len(available)} "
                "(an unquoted delimiter in a value?)"
            ),
        )

    # case_id
    assert id_col is not None and date_col is not None
    ids = _check_ids(frame[id_col], "case_id", rej, limits)

    # reported
    dates, date_reasons = _parse_dates(frame[date_col], date_format)
    has_date = pd.isna(date_reasons)
    rej.add(~has_date, "reported", lambda i: str(date_reasons[i]))
    future = np.zeros(n, dtype=bool)
    ancient = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(has_date)
    if idx.size:
        future[idx] = [d > today for d in dates[idx]]
        ancient[idx] = [d < MIN_DATE for d in dates[idx]]
    rej.add(future, "reported", lambda i: f"date {dates[i]} is in the future (today is {today})")
    rej.add(ancient, "reported", lambda i: f"impossible date {dates[i]} (before {MIN_DATE})")

    # type
    if type_col is None:
        types = pd.Series([DEFAULT_CASE_TYPE] * n, dtype=object)
        if "type" not in cmap:
            notes.append(f"no 'type' column: every case is treated as {DEFAULT_CASE_TYPE!r}")
    else:
        type_text = _as_str(frame[type_col])
        types = _normalise_word(type_text)
        bad_type = ~types.isin(CASE_TYPES).to_numpy()
        expected = ", ".join(CASE_TYPES)
        rej.add(
            bad_type,
            "type",
            lambda i: (
                f"missing type (expected one of {expected})"
                if type_text.iat[i] is None
                else f"unknown type {type_text.iat[i]!r} (expected one of {expected})"
            ),
        )
        if bad_type.all():
            sample = next((v for v in type_text if v is not None), None)
            notes.append(
                f"no row of column {type_col!r} holds a case type (e.g. {sample!r}); if that "
                "column is not a case type, map it to nothing: columns={'type': ''} "
                "(CLI: --columns type=)"
            )

    # role
    if role_col is None:
        roles = pd.Series([role_default] * n, dtype=object)
    else:
        role_text = _as_str(frame[role_col])
        roles = _normalise_word(role_text)
        if role_default is not None:
            roles = roles.where(roles.notna(), role_default)
        bad_role = ~roles.isin(ROLES).to_numpy()
        expected_roles = ", ".join(ROLES)
        rej.add(
            bad_role,
            "role",
            lambda i: (
                f"missing role (expected one of {expected_roles})"
                if role_text.iat[i] is None
                else f"unknown role {role_text.iat[i]!r} (expected one of {expected_roles})"
            ),
        )

    # lat / lon
    if coords_from_geometry:
        assert isinstance(frame, gpd.GeoDataFrame)
        frame = _to_wgs84(frame, src, notes, "case")
        geometry = np.asarray(frame.geometry.to_numpy(), dtype=object)
        lat_raw, lon_raw = _coords_from_geometry(geometry, rej)
        lat_input, lon_input = pd.Series(lat_raw), pd.Series(lon_raw)
    else:
        assert lat_col is not None and lon_col is not None
        lat_input, lon_input = frame[lat_col], frame[lon_col]
    lat_values, _, lat_bad, lat_reason = _coordinate(lat_input, "lat", -90, 90, comma_decimal)
    lon_values, _, lon_bad, lon_reason = _coordinate(lon_input, "lon", -180, 180, comma_decimal)
    if coverage is not None:
        swap = _swapped(lat_values, lon_values, lat_bad | lon_bad, coverage)
        for i in np.flatnonzero(swap):
            notes.append(
                f"row {rows[i]}: lat {lat_values[i]:g} and lon {lon_values[i]:g} look swapped "
                "(the swapped point lies in the area the communities cover, the given one "
                "does not): swapped"
            )
        lat_values, lon_values = lat_values.copy(), lon_values.copy()
        lat_values[swap], lon_values[swap] = lon_values[swap], lat_values[swap]
        lat_bad, lon_bad = lat_bad & ~swap, lon_bad & ~swap
    rej.add(lat_bad, "lat", lat_reason)
    rej.add(lon_bad, "lon", lon_reason)

    keep = rej.ok
    out = pd.DataFrame(
        {
            "case_id": pd.Series(ids.to_numpy(dtype=object), dtype=object),
            "reported": pd.Series(dates, dtype=object),
            "type": pd.Series(types.to_numpy(dtype=object), dtype=object),
            "role": pd.Series(roles.to_numpy(dtype=object), dtype=object),
            "lat": pd.Series(lat_values, dtype="float64"),
            "lon": pd.Series(lon_values, dtype="float64"),
            "row": pd.Series(rows, dtype="int64"),
        }
    )
    out = out.loc[keep].reset_index(drop=True)
    return LoadResult(frame=out, rejects=rej.to_list(src, rows), warnings=notes, rows_read=n)


def _swapped(
    lat: np.ndarray,
    lon: np.ndarray,
    bad: np.ndarray,
    coverage: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Rows whose point is outside the coverage while the swapped point is inside."""
    n = len(lat)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(lat) & np.isfinite(lon)
        can_swap = finite & (np.abs(lon) <= 90) & (np.abs(lat) <= 180)
    given_in = np.zeros(n, dtype=bool)
    ok = finite & ~bad
    if ok.any():
        given_in[ok] = np.asarray(coverage(lon[ok], lat[ok]), dtype=bool)
    swapped_in = np.zeros(n, dtype=bool)
    cand = can_swap & ~given_in
    if cand.any():
        swapped_in[cand] = np.asarray(coverage(lat[cand], lon[cand]), dtype=bool)
    return cand & swapped_in


def _coords_from_geometry(geometry: np.ndarray, rej: _Rejects) -> tuple[np.ndarray, np.ndarray]:
    n = len(geometry)
    is_null = shapely.is_missing(geometry)
    empty = shapely.is_empty(geometry) & ~is_null
    type_ids = shapely.get_type_id(geometry)
    rej.add(is_null | empty, "lat", "missing point geometry (and no lat/lon columns)")
    not_point = ~is_null & ~empty & (type_ids != _POINT_TYPE_ID)
    rej.add(not_point, "lat", lambda i: f"geometry is a {geometry[i].geom_type}, expected a Point")
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    points = np.flatnonzero(~is_null & ~empty & (type_ids == _POINT_TYPE_ID))
    if points.size:
        lon[points] = shapely.get_x(geometry[points])
        lat[points] = shapely.get_y(geometry[points])
    finite = np.isfinite(lat) & np.isfinite(lon)
    rej.add(~finite, "lat", "point coordinates are not finite")
    return lat, lon


# --------------------------------------------------------------------------- hospital figures


def read_metrics(
    path: PathArg,
    *,
    columns: dict[str, str] | None = None,
    today: dt.date | None = None,
    date_format: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> LoadResult:
    """Read hospital figures per unit and date from a CSV file.

    Columns (``columns`` maps our names to the file's): ``unit_id`` (a district or community
    id), ``date`` (YYYY-MM-DD: the figures apply from that day until a later figure),
    ``admissions_per_100k`` (new COVID-19 admissions per 100,000 in the past 7 days, >= 0) and
    ``beds_pct`` (percent of staffed inpatient beds with COVID-19 patients, 0..100); one of
    the two figures may be empty. The frame has those columns and ``row`` (line number).
    ``date_format``, ``limits`` and ``name`` as for :func:`read_cases`.
    """
    src = name or str(path)
    file_path = Path(path)
    cmap = _check_column_map(columns, METRIC_FIELDS)
    date_format = check_date_format(date_format)
    today = today or dt.date.today()
    ext = _check_file(file_path, src, {".csv": "CSV", ".tsv": "TSV"}, "hospital figures")
    notes: list[str] = []
    frame, rows, _delimiter, malformed = _read_csv(file_path, src, ext, notes)
    available = [str(c) for c in frame.columns]
    cols = {}
    for fld in METRIC_FIELDS:
        wanted = cmap.get(fld, fld)
        found = _find_column(available, wanted) if wanted else None
        if found is None and fld in ("unit_id", "date"):
            raise _missing_column(src, fld, wanted, available, "")
        cols[fld] = found
    if cols["admissions_per_100k"] is None and cols["beds_pct"] is None:
        raise _missing_column(
            src, "admissions_per_100k", "admissions_per_100k", available, " (or beds_pct)"
        )
    n = len(frame)
    rej = _Rejects(n)
    for rec, count in malformed:
        rej.add(np.arange(n) == rec, "row", f"{count} fields, more than the header")
    frame = _screen_cells(frame, {c: f for f, c in cols.items() if c is not None}, rej, limits)
    unit = _check_ids(frame[cols["unit_id"]], "unit_id", rej, limits)
    dates, reasons = _parse_dates(frame[cols["date"]], date_format)
    bad_date = np.array([r is not None for r in reasons], dtype=bool)
    for i in np.flatnonzero(bad_date & rej.ok):
        rej.add(np.arange(n) == i, "date", str(reasons[i]).replace("reported date", "date"))
    future = np.array([d is not None and d > today for d in dates], dtype=bool)
    rej.add(future, "date", "in the future")
    ancient = np.array([d is not None and d < MIN_DATE for d in dates], dtype=bool)
    rej.add(ancient, "date", lambda i: f"impossible date {dates[i]} (before {MIN_DATE})")
    values = {}
    for fld, hi in (("admissions_per_100k", None), ("beds_pct", 100.0)):
        col = cols[fld]
        if col is None:
            values[fld] = np.full(n, np.nan)
            continue
        text = _as_str(frame[col])
        num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        given = text.notna().to_numpy()
        rej.add(given & ~np.isfinite(num), fld, f"{fld} is not a number")
        out = (num < 0) | (num > hi) if hi is not None else num < 0
        rng = f"0 to {hi:g}" if hi is not None else ">= 0"
        rej.add(given & np.isfinite(num) & out, fld, f"{fld} out of range (expected {rng})")
        values[fld] = np.where(given, num, np.nan)
    none_given = np.isnan(values["admissions_per_100k"]) & np.isnan(values["beds_pct"])
    rej.add(none_given, "admissions_per_100k", "no figure given (admissions_per_100k, beds_pct)")
    ok = rej.ok
    out_frame = pd.DataFrame(
        {
            "unit_id": unit.to_numpy(dtype=object)[ok],
            "date": dates[ok],
            "admissions_per_100k": values["admissions_per_100k"][ok],
            "beds_pct": values["beds_pct"][ok],
            "row": rows[ok],
        }
    )
    return LoadResult(out_frame, rej.to_list(src, rows), notes, n)


# --------------------------------------------------------------------------- parent units

UNIT_FIELDS = ("unit_id", "level", "name", "population", "parent_id")
UNIT_LEVELS = ("subdistrict", "district")
_UNIT_FORMATS = {**_COMMUNITY_FORMATS, ".csv": "CSV", ".tsv": "CSV"}


def read_units(
    path: PathArg,
    *,
    level: str | None = None,
    columns: dict[str, str] | None = None,
    encoding: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> LoadResult:
    """Read the parent units of communities (subdistricts, districts): their names and
    populations. Their shapes are not read: a unit is the union of its communities.

    A subdistricts file has ``subdistrict_id`` (and ``district_id``, its parent), a districts
    file ``district_id``; ``level`` says which when the file has neither or both (with
    ``unit_id``), and a ``level`` column may give it row by row. ``name`` and ``population``
    are optional. Vector formats (as for communities) or CSV. The frame has exactly
    ``unit_id``, ``level``, ``name``, ``population`` (Int64) and ``parent_id``.
    """
    src = name or str(path)
    file_path = Path(path)
    cmap = _check_column_map(columns, UNIT_FIELDS)
    check_encoding(encoding)
    if level is not None and level not in UNIT_LEVELS:
        raise ValueError(f"unknown unit level {level!r}: expected one of {', '.join(UNIT_LEVELS)}")
    ext = _check_file(file_path, src, _UNIT_FORMATS, "parent units")
    notes: list[str] = []
    if ext in (".csv", ".tsv"):
        raw, rows, _delimiter, malformed = _read_csv(file_path, src, ext, notes)
    else:
        raw = pd.DataFrame(
            _read_vector(
                file_path, src, ext, encoding=encoding, layer=None, notes=notes, limits=limits
            )
        )
        raw = raw.drop(columns=[c for c in raw.columns if c == "geometry"])
        rows, malformed = np.arange(1, len(raw) + 1), []
    n = len(raw)
    if n == 0:
        raise InputFileError(src, "the file has no rows")
    available = [str(c) for c in raw.columns]

    def column(fld: str) -> str | None:
        wanted = cmap.get(fld, fld)
        if wanted == "":
            return None
        found = _find_column(available, wanted)
        if found is None and fld in cmap:
            raise _missing_column(src, fld, wanted, available)
        return found

    id_col, parent_col, level_col = column("unit_id"), column("parent_id"), column("level")
    sub, dist = _find_column(available, "subdistrict_id"), _find_column(available, "district_id")
    if id_col is None:
        if level == "district" or (level is None and sub is None and dist is not None):
            level, id_col = "district", dist
        elif level == "subdistrict" or (level is None and sub is not None):
            level, id_col = "subdistrict", sub
            parent_col = parent_col or dist
    if id_col is None:
        raise _missing_column(
            src,
            "unit_id",
            cmap.get("unit_id", "unit_id"),
            available,
            " (or subdistrict_id / district_id)",
        )
    if level is None and level_col is None:
        raise InputFileError(
            src, "cannot tell whether the units are subdistricts or districts: pass --level"
        )
    rej = _Rejects(n)
    for rec, count in malformed:
        rej.add(np.arange(n) == rec, "row", f"{count} fields, more than the header")
    raw = raw.reset_index(drop=True)
    used = {"unit_id": id_col, "parent_id": parent_col, "level": level_col}
    used |= {"name": column("name"), "population": column("population")}
    raw = _screen_cells(raw, {c: f for f, c in used.items() if c is not None}, rej, limits)
    ids = _check_ids(raw[id_col], "unit_id", rej, limits)
    if level_col is not None:
        levels = _normalise_word(_as_str(raw[level_col]).reset_index(drop=True))
        if level is not None:
            levels = levels.fillna(level)
        bad = ~levels.isin(UNIT_LEVELS).to_numpy()
        rej.add(
            bad,
            "level",
            lambda i: f"level {levels.iat[i]!r} (expected one of {', '.join(UNIT_LEVELS)})",
        )
    else:
        levels = pd.Series([level] * n, dtype=object)
    key = levels.astype(str) + "\0" + ids.astype(str)
    dup = (key.duplicated(keep="first") & ids.notna()).to_numpy()
    rej.add(dup, "unit_id", lambda i: f"duplicate {levels.iat[i]} id {ids.iat[i]!r}")
    pop_col = column("population")
    population = pd.array([pd.NA] * n, dtype="Int64")
    if pop_col is not None:
        population = _parse_population(raw[pop_col].reset_index(drop=True), rej)

    def text(col: str | None) -> pd.Series:
        if col is None:
            return pd.Series([None] * n, dtype=object)
        return _as_str(raw[col]).reset_index(drop=True)

    parent = (
        _check_ids(raw[parent_col], "parent_id", rej, limits, required=False)
        if parent_col is not None
        else text(None)
    )
    parent[levels.to_numpy() == "district"] = None
    out = pd.DataFrame(
        {
            "unit_id": ids.astype(object),
            "level": levels.astype(object),
            "name": text(column("name")),
            "population": pd.Series(population, dtype="Int64"),
            "parent_id": parent,
        }
    )
    keep = rej.ok
    out = out.loc[keep].reset_index(drop=True)
    return LoadResult(
        frame=out, rejects=rej.to_list(src, np.asarray(rows)), warnings=notes, rows_read=n
    )
