"""Readers of the space-time scan's input files: SaTScan's own formats and CSV.

* Case file: SaTScan's whitespace-separated ``<location id> <count> <date>`` (dates
  ``yyyy/mm/dd`` or ``yyyy-mm-dd``, day precision), or CSV with a header naming ``location``
  (or ``id``, ``location_id``), ``date`` and optionally ``count`` (or ``cases``; without it
  each row is one case).
* Coordinates file: SaTScan's ``<location id> <latitude> <longitude>`` (latitude first, as
  SaTScan's lat/long files have it), or CSV with ``location`` (or ``id``, ``location_id``),
  ``lat`` (or ``latitude``) and ``lon`` (or ``lng``, ``longitude``).

A file ending in ``.csv`` is read as CSV, any other (``.cas``, ``.geo``, ``.txt``...) in
SaTScan's format. A scan on part of the data would mislead, so a file with bad rows is refused
as a whole: :class:`ScanInputError` lists every bad row (line number, field, reason).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Callable, Iterator
from os import PathLike
from pathlib import Path

import pandas as pd

from riskmap.geo._errors import InputFileError, Reject

__all__ = ["ScanInputError", "read_scan_cases", "read_scan_coords"]

_DATE = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})")
_COARSE_DATE = re.compile(r"\d{4}(?:[/-]\d{1,2})?")
_LOCATION = ("location", "id", "location_id")
_SHOWN = 10


class ScanInputError(InputFileError):
    """A scan input file has bad rows; ``rejects`` lists each of them."""

    def __init__(self, path: str, rejects: list[Reject]) -> None:
        self.rejects = rejects
        lines = [f"row {r.row}: {r.field}: {r.reason}" for r in rejects[:_SHOWN]]
        if len(rejects) > _SHOWN:
            lines.append(f"... and {len(rejects) - _SHOWN} more bad rows")
        super().__init__(path, f"{len(rejects)} bad row(s):\n  " + "\n  ".join(lines))


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in raw[:4096]:
        raise InputFileError(str(path), "is a binary file, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(str(path), f"is not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise InputFileError(str(path), "is empty")
    return text


def _parse_date(value: str) -> dt.date | str:
    """The date, or the reason it is refused."""
    m = _DATE.fullmatch(value)
    if not m:
        if _COARSE_DATE.fullmatch(value):
            return f"{value!r} has no day: the scan needs day precision (yyyy/mm/dd)"
        return f"{value!r} is not a date (yyyy/mm/dd or yyyy-mm-dd)"
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return f"{value!r} is not a calendar date"


def _parse_count(value: str) -> int | str:
    try:
        n = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if not math.isfinite(n) or n < 0 or n != int(n):
        return f"{value!r} is not a whole number >= 0"
    return int(n)


def _parse_degrees(value: str, limit: float) -> float | str:
    try:
        x = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if not math.isfinite(x) or abs(x) > limit:
        return f"{value!r} is outside -{limit:g} .. {limit:g} degrees"
    return x


def _satscan_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    for number, line in enumerate(io.StringIO(text), start=1):
        fields = line.split()
        if fields:
            yield number, fields


def _csv_rows(
    text: str, path: Path, wanted: dict[str, tuple[str, ...]], optional: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise InputFileError(str(path), "is empty")
    names = [h.strip().lower() for h in header]
    where: dict[str, int] = {}
    for key, aliases in wanted.items():
        found = [a for a in aliases if a in names]
        if found:
            where[key] = names.index(found[0])
        elif key not in optional:
            raise InputFileError(
                str(path),
                f"header has no {key} column (one of: {', '.join(aliases)}); found "
                f"{', '.join(repr(h) for h in header)}",
            )
    for row in reader:
        number = reader.line_num
        if not any(f.strip() for f in row):
            continue
        yield number, {key: (row[i].strip() if i < len(row) else "") for key, i in where.items()}


def _each_row(
    path: Path,
    text: str,
    wanted: dict[str, tuple[str, ...]],
    optional: tuple[str, ...],
    shape: str,
    rejects: list[Reject],
    take: Callable[[int, dict[str, str]], None],
) -> None:
    """Call ``take(line number, fields by name)`` for each row: of a CSV file by its header
    (``wanted``: field -> accepted column names), else of a SaTScan file by position, where a
    row without exactly one value per field is rejected as not of ``shape``."""
    if path.suffix.lower() == ".csv":
        for number, row in _csv_rows(text, path, wanted, optional=optional):
            take(number, row)
        return
    names = list(wanted)
    for number, fields in _satscan_rows(text):
        if len(fields) != len(names):
            rejects.append(Reject(str(path), number, "row", f"{len(fields)} field(s); {shape}"))
            continue
        take(number, dict(zip(names, fields, strict=True)))


def read_scan_cases(path: str | PathLike[str]) -> pd.DataFrame:
    """Read a case file: a DataFrame with ``location`` (str), ``date`` (date), ``count`` (int),
    one row per line of the file."""
    path = Path(path)
    text = _text(path)
    rejects: list[Reject] = []
    out: list[tuple[str, dt.date, int]] = []
    name = str(path)

    def take(number: int, location: str, count: str, date: str) -> None:
        if not location:
            rejects.append(Reject(name, number, "location", "missing"))
            return
        n = _parse_count(count)
        if isinstance(n, str):
            rejects.append(Reject(name, number, "count", n))
            return
        d = _parse_date(date)
        if isinstance(d, str):
            rejects.append(Reject(name, number, "date", d))
            return
        out.append((location, d, n))

    _each_row(
        path,
        text,
        {"location": _LOCATION, "count": ("count", "cases"), "date": ("date",)},
        ("count",),
        "a case row is <location id> <count> <date> (covariates and other columns are not "
        "supported)",
        rejects,
        lambda number, row: take(number, row["location"], row.get("count", "1") or "", row["date"]),
    )
    if rejects:
        raise ScanInputError(name, rejects)
    if not out:
        raise InputFileError(name, "has no case row")
    return pd.DataFrame(out, columns=["location", "date", "count"])


def read_scan_coords(path: str | PathLike[str]) -> pd.DataFrame:
    """Read a coordinates file: a DataFrame with ``location`` (str), ``lat``, ``lon``."""
    path = Path(path)
    text = _text(path)
    rejects: list[Reject] = []
    out: list[tuple[str, float, float]] = []
    seen: dict[str, int] = {}
    name = str(path)

    def take(number: int, location: str, lat: str, lon: str) -> None:
        if not location:
            rejects.append(Reject(name, number, "location", "missing"))
            return
        if location in seen:
            rejects.append(
                Reject(name, number, "location", f"{location!r} is already on row {seen[location]}")
            )
            return
        y = _parse_degrees(lat, 90)
        if isinstance(y, str):
            rejects.append(Reject(name, number, "lat", y + " (latitude comes before longitude)"))
            return
        x = _parse_degrees(lon, 180)
        if isinstance(x, str):
            rejects.append(Reject(name, number, "lon", x))
            return
        seen[location] = number
        out.append((location, y, x))

    _each_row(
        path,
        text,
        {"location": _LOCATION, "lat": ("lat", "latitude"), "lon": ("lon", "lng", "longitude")},
        (),
        "a coordinates row is <location id> <latitude> <longitude>",
        rejects,
        lambda number, row: take(number, row["location"], row["lat"], row["lon"]),
    )
    if rejects:
        raise ScanInputError(name, rejects)
    if not out:
        raise InputFileError(name, "has no location row")
    return pd.DataFrame(out, columns=["location", "lat", "lon"])
