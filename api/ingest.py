"""Ingest: read a file, validate every row, store the accepted rows in one atomic batch.

The CLI (``riskmap ingest``) and, later, the HTTP ingest endpoints share this code path.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from api.store import BatchCounts, Store
from geo import cells as h3c
from geo._errors import Reject
from geo.io import read_cases, read_communities, read_metrics


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


def _generic(reason: str) -> str:
    return re.sub(r"'[^']*'|-?\d+(\.\d+)?", "…", reason)


def ingest_communities(
    store: Store,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    encoding: str | None = None,
    h3_res: int = 10,
) -> IngestReport:
    res = read_communities(path, columns=columns, encoding=encoding)
    frame = res.frame.reset_index(drop=True)
    counts = BatchCounts(rows_read=res.rows_read, accepted=len(frame), rejected=len(res.rejects))
    counts.rejects = [(r.row, r.field, r.reason) for r in res.rejects]
    wkb = shapely.to_wkb(frame.geometry.to_numpy(), output_dimension=2) if len(frame) else []
    with store.batch("communities", str(path)) as (conn, batch_id):
        old = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT community_id, name, population, subdistrict_id, district_id, rural,"
                " geometry FROM communities"
            )
        }
        changed: list[int] = []
        rows = []
        for i, rec in enumerate(frame.itertuples(index=False)):
            pop = None if pd.isna(rec.population) else int(rec.population)
            values = (
                _opt(rec.name),
                pop,
                _opt(rec.subdistrict_id),
                _opt(rec.district_id),
                int(bool(rec.rural)),
                bytes(wkb[i]),
            )
            prev = old.get(rec.community_id)
            if prev is None:
                counts.inserted += 1
            elif tuple(prev) == values:
                counts.unchanged += 1
                continue
            else:
                counts.updated += 1
            changed.append(i)
            rows.append((rec.community_id, *values, batch_id))
        conn.executemany(
            "INSERT OR REPLACE INTO communities (community_id, name, population, subdistrict_id,"
            " district_id, rural, geometry, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if changed:
            ids = frame["community_id"].to_numpy()[changed]
            conn.executemany(
                "DELETE FROM community_cells WHERE community_id=?", [(c,) for c in ids]
            )
            owner, cells = h3c.community_cells(frame.geometry.to_numpy()[changed], h3_res)
            conn.executemany(
                "INSERT INTO community_cells (community_id, res, cell) VALUES (?, ?, ?)",
                zip(
                    ids[owner].tolist(),
                    [h3_res] * len(cells),
                    cells.astype(np.int64).tolist(),
                    strict=True,
                ),
            )
        store.finish_batch(conn, batch_id, counts)
    return IngestReport("communities", str(path), batch_id, counts, res.rejects, res.warnings)


def _opt(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    s = str(v).strip()
    return s or None


def ingest_cases(
    store: Store,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    default_role: str | None = None,
    today: dt.date | None = None,
    h3_res: int = 10,
) -> IngestReport:
    res = read_cases(path, columns=columns, default_role=default_role, today=today)
    src = str(path)
    frame = res.frame.reset_index(drop=True)
    rejects = list(res.rejects)

    # one case, one report date and type: rows that disagree with the case's first row go
    first = frame.groupby("case_id", sort=False)[["reported", "type", "row"]].transform("first")
    for fld in ("reported", "type"):
        bad = frame[fld] != first[fld]
        for i in np.flatnonzero(bad.to_numpy()):
            rejects.append(
                Reject(
                    src,
                    int(frame["row"].iat[i]),
                    fld,
                    f"'{frame[fld].iat[i]}' conflicts with '{first[fld].iat[i]}' given for case "
                    f"{frame['case_id'].iat[i]} at row {int(first['row'].iat[i])}",
                )
            )
        frame = frame[~bad.to_numpy()].reset_index(drop=True)
        first = first[~bad.to_numpy()].reset_index(drop=True)
    rejects.sort(key=lambda r: r.row)

    counts = BatchCounts(rows_read=res.rows_read, accepted=len(frame), rejected=len(rejects))
    counts.rejects = [(r.row, r.field, r.reason) for r in rejects]
    cells = h3c.points_to_cells(frame["lon"].to_numpy(), frame["lat"].to_numpy(), h3_res)
    cases = frame.drop_duplicates("case_id")
    with store.batch("cases", src) as (conn, batch_id):
        old: dict[str, tuple[str, str, int]] = {}
        ids = cases["case_id"].tolist()
        for k in range(0, len(ids), 900):
            chunk = ids[k : k + 900]
            q = ",".join("?" * len(chunk))
            for cid, rep, typ, ver in conn.execute(
                f"SELECT case_id, reported, type, version FROM cases WHERE case_id IN ({q})", chunk
            ):
                old[cid] = (rep, typ, ver)
        new_rows, upd_rows, hist_rows = [], [], []
        for cid, rep, typ in zip(cases["case_id"], cases["reported"], cases["type"], strict=True):
            r = rep.isoformat()
            prev = old.get(cid)
            if prev is None:
                new_rows.append((cid, r, typ, 1, batch_id))
            elif prev[:2] != (r, typ):
                hist_rows.append((cid, prev[2], prev[0], prev[1], batch_id))
                upd_rows.append((r, typ, prev[2] + 1, batch_id, cid))
        conn.executemany("INSERT INTO cases VALUES (?, ?, ?, ?, ?)", new_rows)
        conn.executemany(
            "INSERT OR IGNORE INTO case_versions (case_id, version, reported, type, batch_id)"
            " VALUES (?, ?, ?, ?, ?)",
            hist_rows,
        )
        conn.executemany(
            "UPDATE cases SET reported=?, type=?, version=?, batch_id=? WHERE case_id=?", upd_rows
        )
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO case_locations (case_id, role, lat, lon, cell, batch_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            zip(
                frame["case_id"].tolist(),
                frame["role"].tolist(),
                frame["lat"].tolist(),
                frame["lon"].tolist(),
                cells.astype(np.int64).tolist(),
                [batch_id] * len(frame),
                strict=True,
            ),
        )
        counts.inserted = conn.total_changes - before
        counts.unchanged = len(frame) - counts.inserted
        counts.updated = len(upd_rows)
        store.finish_batch(conn, batch_id, counts)
    return IngestReport("cases", src, batch_id, counts, rejects, res.warnings)


def ingest_metrics(
    store: Store, path: Path, *, columns: dict[str, str] | None = None
) -> IngestReport:
    """Hospital figures per unit and date; a figure already stored for the same unit and date
    is replaced when it changed."""
    res = read_metrics(path, columns=columns)
    frame = res.frame
    counts = BatchCounts(rows_read=res.rows_read, accepted=len(frame), rejected=len(res.rejects))
    counts.rejects = [(r.row, r.field, r.reason) for r in res.rejects]
    with store.batch("metrics", str(path)) as (conn, batch_id):
        old = {
            (u, d): (a, b)
            for u, d, a, b in conn.execute(
                "SELECT unit_id, date, admissions_per_100k, beds_pct FROM unit_metrics"
            )
        }
        rows = []
        for rec in frame.itertuples(index=False):
            a = None if np.isnan(rec.admissions_per_100k) else float(rec.admissions_per_100k)
            b = None if np.isnan(rec.beds_pct) else float(rec.beds_pct)
            key = (rec.unit_id, rec.date.isoformat())
            prev = old.get(key)
            if prev is None:
                counts.inserted += 1
            elif prev == (a, b):
                counts.unchanged += 1
                continue
            else:
                counts.updated += 1
            rows.append((*key, a, b, batch_id))
        conn.executemany("INSERT OR REPLACE INTO unit_metrics VALUES (?, ?, ?, ?, ?)", rows)
        store.finish_batch(conn, batch_id, counts)
    return IngestReport("metrics", str(path), batch_id, counts, res.rejects, res.warnings)
