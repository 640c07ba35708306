"""Ingest: read a file, validate every row, store the accepted rows in one atomic batch.

The CLI (``riskmap ingest``) and, later, the HTTP ingest endpoints share this code path.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from riskmap.api.settings import Settings
from riskmap.api.store import BatchCounts, Store, case_digest
from riskmap.geo import cells as h3c
from riskmap.geo._errors import Reject
from riskmap.geo._values import text_or_none
from riskmap.geo.io import (
    DEFAULT_LIMITS,
    InputLimits,
    LoadResult,
    read_cases,
    read_communities,
    read_metrics,
    read_units,
)
from riskmap.geo.quality import location_flags
from riskmap.geo.zones import CommunityLayer


def input_limits(settings: Settings) -> InputLimits:
    """The bounds on input set by the ``RISKMAP_MAX_*`` settings (CLI and HTTP alike)."""
    return InputLimits(
        max_id_length=settings.max_id_length,
        max_field_bytes=settings.max_field_bytes,
        max_json_depth=settings.max_json_depth,
        max_vertices=settings.max_vertices,
        max_area_km2=settings.max_community_area_km2,
        allow_large_polygons=settings.allow_large_polygons,
        max_unpacked_mb=settings.max_unpacked_mb,
    )


@dataclass
class IngestReport:
    kind: str
    source: str
    batch_id: int
    counts: BatchCounts
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def by_reason(self) -> list[tuple[str, int]]:
        """Rejected rows counted by field and reason (values left out)."""
        c = Counter(f"{r.field}: {_generic(r.reason)}" for r in self.rejects)
        return c.most_common()

    @property
    def nothing_read(self) -> bool:
        return self.counts.accepted == 0

    def rows(self) -> list[list[Any]]:
        """Every rejected row and every warning as ``[kind, file, row, field, message]``
        (``riskmap ingest --report``): kind ``rejected`` or ``warning``; a warning about one
        row (``row 12: ...``) gives its row, one about the file has no row; warnings have no
        field."""
        out: list[list[Any]] = [
            ["rejected", r.file, r.row, r.field, r.reason] for r in self.rejects
        ]
        for w in self.warnings:
            match = _ROW_WARNING.match(w)
            if match:
                out.append(["warning", self.source, int(match[1]), "", match[2]])
            else:
                out.append(["warning", self.source, "", "", w])
        return out


_ROW_WARNING = re.compile(r"row (\d+): (.*)", re.S)


def _counts(res: LoadResult) -> BatchCounts:
    """The counts of a batch as read: rows read, accepted, rejected (with their reasons)."""
    counts = BatchCounts(
        rows_read=res.rows_read, accepted=len(res.frame), rejected=len(res.rejects)
    )
    counts.rejects = [(r.row, r.field, r.reason) for r in res.rejects]
    return counts


def _changed(counts: BatchCounts, prev: object, values: tuple[object, ...]) -> bool:
    """Count a keyed record as new, unchanged or updated; True when it must be written."""
    if prev is None:
        counts.inserted += 1
        return True
    if tuple(prev) == values:  # type: ignore[arg-type]
        counts.unchanged += 1
        return False
    counts.updated += 1
    return True


def _generic(reason: str) -> str:
    return re.sub(r"'[^']*'|-?\d+(\.\d+)?", "…", reason)


def ingest_communities(
    store: Store,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    encoding: str | None = None,
    h3_res: int = 10,
    key_id: str | None = None,
    source: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> IngestReport:
    """Community polygons; ``name`` is the file's name in messages (default: its path)."""
    res = read_communities(path, columns=columns, encoding=encoding, limits=limits, name=name)
    frame = res.frame.reset_index(drop=True)
    counts = _counts(res)
    wkb = shapely.to_wkb(frame.geometry.to_numpy(), output_dimension=2) if len(frame) else []
    with store.batch("communities", source or name or str(path)) as (conn, batch_id):
        old = store.stored_communities(conn)
        changed: list[int] = []
        rows = []
        for i, rec in enumerate(frame.itertuples(index=False)):
            pop = None if pd.isna(rec.population) else int(rec.population)
            values = (
                text_or_none(rec.name),
                pop,
                text_or_none(rec.subdistrict_id),
                text_or_none(rec.district_id),
                int(bool(rec.rural)),
                bytes(wkb[i]),
            )
            if not _changed(counts, old.get(rec.community_id), values):
                continue
            changed.append(i)
            rows.append((rec.community_id, *values, batch_id))
        cell_rows: list[tuple[str, int, int]] = []
        if changed:
            ids = frame["community_id"].to_numpy()[changed]
            owner, cells = h3c.community_cells(frame.geometry.to_numpy()[changed], h3_res)
            cell_rows = list(
                zip(
                    ids[owner].tolist(),
                    [h3_res] * len(cells),
                    cells.astype(np.int64).tolist(),
                    strict=True,
                )
            )
        store.put_communities(conn, rows, cell_rows)
        store.finish_batch(conn, batch_id, counts, res.warnings, key_id)
    return IngestReport(
        "communities", source or name or str(path), batch_id, counts, res.rejects, res.warnings
    )


def ingest_cases(
    store: Store,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    default_role: str | None = None,
    today: dt.date | None = None,
    h3_res: int = 10,
    key_id: str | None = None,
    source: str | None = None,
    date_format: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
    layer: CommunityLayer | None = None,
) -> IngestReport:
    """Case locations, one row each. All the rows of a case in a batch form its record: a new
    case is added, an identical record changes nothing, and a changed record (another date,
    type or set of places) becomes the case's new version, the previous one being kept in
    ``case_versions``. A case has one type: rows that disagree with its first row are rejected.

    ``layer``: the store's communities, prepared, when the caller has them (a server's data in
    memory); else they are read from the store. They only flag rows (points outside every
    community, swapped coordinates, area centroids), so a layer of slightly older
    communities changes warnings, never what is stored.
    """
    if layer is None or len(layer) == 0:
        communities = store.communities()
        layer = CommunityLayer(communities, h3_res) if len(communities) else None

    def coverage(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        assert layer is not None
        return np.asarray(layer.locate(lon, lat) >= 0)

    res = read_cases(
        path,
        columns=columns,
        default_role=default_role,
        today=today,
        coverage=coverage if layer is not None else None,
        date_format=date_format,
        limits=limits,
        name=name,
    )
    src = name or str(path)
    frame = res.frame.reset_index(drop=True)
    rejects = list(res.rejects)
    warnings = list(res.warnings)
    if layer is not None and len(frame):
        warnings += location_flags(frame, layer)

    first = frame.groupby("case_id", sort=False)[["type", "row"]].transform("first")
    bad = (frame["type"] != first["type"]).to_numpy()
    for i in np.flatnonzero(bad):
        rejects.append(
            Reject(
                src,
                int(frame["row"].iat[i]),
                "type",
                f"'{frame['type'].iat[i]}' conflicts with '{first['type'].iat[i]}' given for "
                f"case {frame['case_id'].iat[i]} at row {int(first['row'].iat[i])}",
            )
        )
    frame = frame[~bad].reset_index(drop=True)
    rejects.sort(key=lambda r: r.row)
    counts = BatchCounts(rows_read=res.rows_read, accepted=len(frame), rejected=len(rejects))
    counts.rejects = [(r.row, r.field, r.reason) for r in rejects]

    # exact duplicate rows say nothing more
    frame["_d"] = [d.isoformat() for d in frame["reported"]]
    unique = frame.drop_duplicates(["case_id", "_d", "role", "lat", "lon"]).reset_index(drop=True)
    duplicates = len(frame) - len(unique)
    cells = h3c.points_to_cells(unique["lon"].to_numpy(), unique["lat"].to_numpy(), h3_res)
    unique["cell"] = cells.astype(np.int64)
    records: dict[str, list[tuple[str, str, float, float, int]]] = {}
    types: dict[str, str] = {}
    for cid, d, role, la, lo, typ, cell in zip(
        unique["case_id"],
        unique["_d"],
        unique["role"],
        unique["lat"],
        unique["lon"],
        unique["type"],
        unique["cell"],
        strict=True,
    ):
        records.setdefault(cid, []).append((d, role, float(la), float(lo), int(cell)))
        types[cid] = typ

    with store.batch("cases", source or src) as (conn, batch_id):
        old = store.case_heads(conn, list(records))
        new_cases, changed, loc_rows = [], [], []
        unchanged_rows = 0
        for cid, recs in records.items():
            digest = case_digest(types[cid], [r[:4] for r in recs])
            latest = max(r[0] for r in recs)
            prev = old.get(cid)
            if prev is not None and prev[0] == digest:
                unchanged_rows += len(recs)
                continue
            if prev is None:
                new_cases.append((cid, latest, types[cid], 1, batch_id, digest))
            else:
                changed.append((cid, latest, types[cid], prev[1] + 1, digest))
            loc_rows += [(cid, role, la, lo, d, cell, batch_id) for d, role, la, lo, cell in recs]
        for cid, latest, typ, version, digest in changed:
            store.replace_case(conn, cid, latest, typ, version, digest, batch_id)
        store.add_cases(conn, new_cases, loc_rows)
        counts.inserted = sum(len(records[c[0]]) for c in new_cases)
        counts.updated = len(changed)
        counts.unchanged = unchanged_rows + duplicates
        store.finish_batch(conn, batch_id, counts, warnings, key_id)
    return IngestReport("cases", source or src, batch_id, counts, rejects, warnings)


def ingest_metrics(
    store: Store,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    key_id: str | None = None,
    source: str | None = None,
    date_format: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> IngestReport:
    """Hospital figures per unit and date; a figure already stored for the same unit and date
    is replaced when it changed."""
    res = read_metrics(path, columns=columns, date_format=date_format, limits=limits, name=name)
    frame = res.frame
    counts = _counts(res)
    with store.batch("metrics", source or name or str(path)) as (conn, batch_id):
        old = store.stored_metrics(conn)
        rows = []
        for rec in frame.itertuples(index=False):
            a = None if np.isnan(rec.admissions_per_100k) else float(rec.admissions_per_100k)
            b = None if np.isnan(rec.beds_pct) else float(rec.beds_pct)
            key = (rec.unit_id, rec.date.isoformat())
            if _changed(counts, old.get(key), (a, b)):
                rows.append((*key, a, b, batch_id))
        store.put_metrics(conn, rows)
        store.finish_batch(conn, batch_id, counts, res.warnings, key_id)
    return IngestReport(
        "metrics", source or name or str(path), batch_id, counts, res.rejects, res.warnings
    )


def ingest_units(
    store: Store,
    path: Path,
    *,
    level: str | None = None,
    columns: dict[str, str] | None = None,
    encoding: str | None = None,
    key_id: str | None = None,
    source: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> IngestReport:
    """Parent units (subdistricts, districts): names and populations; a unit already stored
    is replaced when it changed."""
    res = read_units(
        path, level=level, columns=columns, encoding=encoding, limits=limits, name=name
    )
    frame = res.frame
    counts = _counts(res)
    with store.batch("units", source or name or str(path)) as (conn, batch_id):
        old = store.stored_units(conn)
        rows = []
        for rec in frame.itertuples(index=False):
            pop = None if pd.isna(rec.population) else int(rec.population)
            values = (text_or_none(rec.name), pop, text_or_none(rec.parent_id))
            if _changed(counts, old.get((rec.level, rec.unit_id)), values):
                rows.append((rec.level, rec.unit_id, *values, batch_id))
        store.put_units(conn, rows)
        store.finish_batch(conn, batch_id, counts, res.warnings, key_id)
    return IngestReport(
        "units", source or name or str(path), batch_id, counts, res.rejects, res.warnings
    )
