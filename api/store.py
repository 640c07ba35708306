"""The embedded store: one SQLite file (WAL mode) holding communities, cases and batches.

Every ingest batch is one transaction; ``data_version`` increases with every batch that changed
something, so anything computed from the data can be cached under (data_version, rule, date).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo._errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    created TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    inserted INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
    row INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS communities (
    community_id TEXT PRIMARY KEY,
    name TEXT,
    population INTEGER,
    subdistrict_id TEXT,
    district_id TEXT,
    geometry BLOB NOT NULL,
    batch_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS community_cells (
    community_id TEXT NOT NULL,
    res INTEGER NOT NULL,
    cell INTEGER NOT NULL,
    PRIMARY KEY (res, community_id, cell)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    reported TEXT NOT NULL,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    batch_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS case_versions (
    case_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    reported TEXT NOT NULL,
    type TEXT NOT NULL,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (case_id, version)
);
CREATE TABLE IF NOT EXISTS case_locations (
    case_id TEXT NOT NULL,
    role TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    cell INTEGER NOT NULL,
    batch_id INTEGER NOT NULL,
    UNIQUE (case_id, role, lat, lon)
);
CREATE INDEX IF NOT EXISTS case_locations_cell ON case_locations (cell);
"""

V2_TABLES = """
CREATE TABLE IF NOT EXISTS unit_metrics (
    unit_id TEXT NOT NULL,
    date TEXT NOT NULL,
    admissions_per_100k REAL,
    beds_pct REAL,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (unit_id, date)
);
CREATE TABLE IF NOT EXISTS zone_events (
    policy_key TEXT NOT NULL,
    data_version INTEGER NOT NULL,
    upto TEXT NOT NULL,
    date TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit_type TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    level_from TEXT NOT NULL,
    level_to TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS zone_events_key ON zone_events (policy_key, date);
"""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Statements one by one (``executescript`` would commit the open transaction)."""
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _add_column(conn: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    if column not in have:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def _v2(conn: sqlite3.Connection) -> None:
    """Rural communities, hospital figures, zone history."""
    _add_column(conn, "communities", "rural", "INTEGER NOT NULL DEFAULT 0")
    _run_script(conn, V2_TABLES)


def case_digest(case_type: str, rows: list[tuple[str, str, float, float]]) -> str:
    """Fingerprint of a case record: its type and its (reported, role, lat, lon) rows."""
    body = case_type + "\n" + "\n".join(f"{d}|{r}|{la!r}|{lo!r}" for d, r, la, lo in sorted(rows))
    return hashlib.sha1(body.encode()).hexdigest()


def _v3(conn: sqlite3.Connection) -> None:
    """Dates per case location (a case's places can have different dates, as in DS4C), and
    whole-record versions of cases."""
    _run_script(
        conn,
        """
        CREATE TABLE case_locations_v3 (
            case_id TEXT NOT NULL,
            role TEXT NOT NULL,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            reported TEXT NOT NULL,
            cell INTEGER NOT NULL,
            batch_id INTEGER NOT NULL,
            UNIQUE (case_id, role, lat, lon, reported)
        );
        INSERT INTO case_locations_v3
            SELECT l.case_id, l.role, l.lat, l.lon, c.reported, l.cell, l.batch_id
            FROM case_locations l JOIN cases c USING (case_id);
        DROP TABLE case_locations;
        ALTER TABLE case_locations_v3 RENAME TO case_locations;
        CREATE INDEX case_locations_cell ON case_locations (cell);
        CREATE INDEX case_locations_case ON case_locations (case_id);
        """,
    )
    _add_column(conn, "cases", "digest", "TEXT")
    _add_column(conn, "case_versions", "rows", "TEXT")
    rows: dict[str, list[tuple[str, str, float, float]]] = {}
    for cid, d, r, la, lo in conn.execute(
        "SELECT case_id, reported, role, lat, lon FROM case_locations"
    ):
        rows.setdefault(cid, []).append((d, r, la, lo))
    conn.executemany(
        "UPDATE cases SET digest=? WHERE case_id=?",
        [
            (case_digest(t, rows.get(cid, [])), cid)
            for cid, t in conn.execute("SELECT case_id, type FROM cases").fetchall()
        ],
    )


def _v4(conn: sqlite3.Connection) -> None:
    """API keys, the audit log, and the warnings of each batch."""
    _run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            key_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            name TEXT NOT NULL,
            created TEXT NOT NULL,
            revoked TEXT
        );
        CREATE TABLE IF NOT EXISTS audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            key_id TEXT,
            action TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS batch_warnings (
            batch_id INTEGER NOT NULL,
            message TEXT NOT NULL
        );
        ALTER TABLE batches ADD COLUMN key_id TEXT
        """,
    )


# (version, what it does, migration); a store at version v gets every later migration, in order
MIGRATIONS = [
    (2, "rural communities, hospital figures, zone history", _v2),
    (3, "dates per case location, whole-record case versions", _v3),
    (4, "API keys, audit log, batch warnings", _v4),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass
class BatchCounts:
    rows_read: int = 0
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # row, field, reason


class Store:
    """A SQLite store. Open it with :meth:`open`; one instance per thread is fine."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by the API's worker threads: every use holds the lock
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        """Create the schema (version 1) and apply every later migration, each atomically."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                _run_script(conn, SCHEMA)
                conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', '0')")
                version = 1
            else:
                version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {version} is newer than this riskmap "
                    f"({SCHEMA_VERSION}); upgrade riskmap"
                )
            for target, _what, migrate in MIGRATIONS:
                if version < target:
                    migrate(conn)
                    version = target
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    @classmethod
    def open(cls, path: Path | str) -> Store:
        return cls(Path(path))

    def close(self) -> None:
        self.conn.close()

    # -- versions ---------------------------------------------------------------------------
    @property
    def data_version(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key='data_version'").fetchone()
        return int(row[0])

    @contextmanager
    def batch(self, kind: str, source: str) -> Iterator[tuple[sqlite3.Connection, int]]:
        """One atomic batch: yields (connection, batch_id); commits or rolls back as a whole."""
        with self.lock:
            yield from self._batch(kind, source)

    def _batch(self, kind: str, source: str) -> Iterator[tuple[sqlite3.Connection, int]]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                "INSERT INTO batches (kind, source, created, rows_read, accepted, inserted,"
                " updated, unchanged, rejected) VALUES (?, ?, ?, 0, 0, 0, 0, 0, 0)",
                (kind, source, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
            )
            batch_id = int(cur.lastrowid or 0)
            yield conn, batch_id
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @staticmethod
    def finish_batch(
        conn: sqlite3.Connection,
        batch_id: int,
        counts: BatchCounts,
        warnings: list[str] | None = None,
        key_id: str | None = None,
    ) -> None:
        conn.execute(
            "UPDATE batches SET rows_read=?, accepted=?, inserted=?, updated=?, unchanged=?,"
            " rejected=? WHERE batch_id=?",
            (
                counts.rows_read,
                counts.accepted,
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.rejected,
                batch_id,
            ),
        )
        conn.executemany(
            "INSERT INTO rejects (batch_id, row, field, reason) VALUES (?, ?, ?, ?)",
            [(batch_id, r, f, why) for r, f, why in counts.rejects],
        )
        conn.executemany(
            "INSERT INTO batch_warnings (batch_id, message) VALUES (?, ?)",
            [(batch_id, w) for w in warnings or []],
        )
        if key_id is not None:
            conn.execute("UPDATE batches SET key_id=? WHERE batch_id=?", (key_id, batch_id))
        kind = conn.execute("SELECT kind FROM batches WHERE batch_id=?", (batch_id,)).fetchone()
        conn.execute(
            "INSERT INTO audit_log (at, key_id, action, detail) VALUES (?, ?, ?, ?)",
            (
                _now(),
                key_id,
                f"ingest.{kind[0]}",
                f"batch {batch_id}: {counts.accepted} accepted, {counts.rejected} rejected",
            ),
        )
        if counts.inserted or counts.updated:
            conn.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='data_version'"
            )

    # -- reads ------------------------------------------------------------------------------
    def communities(self) -> gpd.GeoDataFrame:
        with self.lock:
            df = pd.read_sql_query(
                "SELECT community_id, name, population, subdistrict_id, district_id, rural,"
                " geometry FROM communities ORDER BY community_id",
                self.conn,
            )
        geoms = shapely.from_wkb(df.pop("geometry").to_numpy()) if len(df) else []
        df["population"] = df["population"].astype("Int64")
        df["rural"] = df["rural"].astype(bool)
        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)

    def community_cells(self, res: int) -> pd.DataFrame:
        with self.lock:
            return pd.read_sql_query(
                "SELECT community_id, cell FROM community_cells WHERE res=?"
                " ORDER BY community_id, cell",
                self.conn,
                params=(res,),
            )

    def versions(self) -> tuple[int, int]:
        """(data_version, last batch id), read together."""
        with self.lock:
            row = self.conn.execute(
                "SELECT (SELECT value FROM meta WHERE key='data_version'),"
                " (SELECT MAX(batch_id) FROM batches)"
            ).fetchone()
        return int(row[0]), int(row[1] or 0)

    def only_new_cases_since(self, batch_id: int) -> bool:
        """Whether every batch after ``batch_id`` only added case locations (no community,
        figure or case version changed)."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT kind, updated FROM batches WHERE batch_id > ? AND (inserted > 0 OR"
                " updated > 0)",
                (batch_id,),
            ).fetchall()
        return all(kind == "cases" and updated == 0 for kind, updated in rows)

    def case_locations(
        self, after_batch: int | None = None, upto_batch: int | None = None
    ) -> pd.DataFrame:
        """Case locations with their date and case type (those of the batches after
        ``after_batch`` and up to ``upto_batch`` only, if given)."""
        conds, args = [], []
        if after_batch:
            conds.append("l.batch_id > ?")
            args.append(after_batch)
        if upto_batch is not None:
            conds.append("l.batch_id <= ?")
            args.append(upto_batch)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        params = tuple(args)
        with self.lock:
            df = pd.read_sql_query(
                "SELECT l.case_id, l.reported, c.type, l.role, l.lat, l.lon, l.cell"
                f" FROM case_locations l JOIN cases c USING (case_id) {where}"
                " ORDER BY l.reported, l.case_id, l.role",
                self.conn,
                params=params,
            )
        df["reported"] = df["reported"].to_numpy().astype("datetime64[D]")
        df["cell"] = df["cell"].to_numpy().astype(np.uint64)
        return df

    def unit_metrics(self) -> pd.DataFrame:
        """Hospital figures per unit (district or community) and date."""
        with self.lock:
            df = pd.read_sql_query(
                "SELECT unit_id, date, admissions_per_100k, beds_pct FROM unit_metrics"
                " ORDER BY unit_id, date",
                self.conn,
            )
        df["date"] = [dt.date.fromisoformat(d) for d in df["date"]]
        return df

    # -- zone history ---------------------------------------------------------------------
    def zone_events(self, policy_key: str, version: int, upto: dt.date) -> pd.DataFrame | None:
        """Stored events of a rule for a data version covering days up to ``upto`` (or None)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT MAX(upto), COUNT(*) FROM zone_events WHERE policy_key=? AND data_version=?",
                (policy_key, version),
            ).fetchone()
            if row[1] == 0 or row[0] is None or row[0] < upto.isoformat():
                return None
            df = pd.read_sql_query(
                "SELECT date, kind, unit_type, unit_id, level_from, level_to FROM zone_events"
                " WHERE policy_key=? AND data_version=? AND kind != '_computed' ORDER BY rowid",
                self.conn,
                params=(policy_key, version),
            )
        df["date"] = [dt.date.fromisoformat(d) for d in df["date"]]
        return df

    def save_zone_events(
        self, policy_key: str, version: int, upto: dt.date, events: pd.DataFrame
    ) -> None:
        """Replace the stored events of a rule (a marker row records a computed empty history)."""
        rows = [
            (policy_key, version, upto.isoformat(), d.isoformat(), k, ut, ui, lf, lt)
            for d, k, ut, ui, lf, lt in events[
                ["date", "kind", "unit_type", "unit_id", "level_from", "level_to"]
            ].itertuples(index=False)
        ]
        rows.append(
            (policy_key, version, upto.isoformat(), upto.isoformat(), "_computed", "", "", "", "")
        )
        with self.lock, self.conn:
            self.conn.execute("DELETE FROM zone_events WHERE policy_key=?", (policy_key,))
            self.conn.executemany(
                "INSERT INTO zone_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    # -- API keys and audit ----------------------------------------------------------------
    def create_key(self, role: str, name: str) -> tuple[str, str]:
        """A new key: returns (key_id, the full key); only its hash is stored."""
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        with self.lock, self.conn:
            self.conn.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, _hash(secret), role, name, _now()),
            )
            self._audit(key_id, "keys.create", f"role={role} name={name}")
        return key_id, f"rk_{key_id}_{secret}"

    def check_key(self, key: str) -> tuple[str, str] | None:
        """(key_id, role) of a valid, unrevoked key, else None."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "rk":
            return None
        with self.lock:
            row = self.conn.execute(
                "SELECT secret_hash, role, revoked FROM api_keys WHERE key_id=?", (parts[1],)
            ).fetchone()
        if row is None or row[2] is not None:
            return None
        if not hmac.compare_digest(row[0], _hash(parts[2])):
            return None
        return parts[1], row[1]

    def revoke_key(self, key_id: str, by: str | None = None) -> bool:
        with self.lock, self.conn:
            cur = self.conn.execute(
                "UPDATE api_keys SET revoked=? WHERE key_id=? AND revoked IS NULL",
                (_now(), key_id),
            )
            if cur.rowcount:
                self._audit(by, "keys.revoke", f"key_id={key_id}")
        return bool(cur.rowcount)

    def api_keys(self) -> list[dict[str, object]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT key_id, role, name, created, revoked FROM api_keys ORDER BY created"
            ).fetchall()
        return [
            dict(zip(("key_id", "role", "name", "created", "revoked"), r, strict=True))
            for r in rows
        ]

    def audit(self, key_id: str | None, action: str, detail: str) -> None:
        with self.lock, self.conn:
            self._audit(key_id, action, detail)

    def _audit(self, key_id: str | None, action: str, detail: str) -> None:
        self.conn.execute(
            "INSERT INTO audit_log (at, key_id, action, detail) VALUES (?, ?, ?, ?)",
            (_now(), key_id, action, detail),
        )

    def audit_log(self) -> list[dict[str, object]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT at, key_id, action, detail FROM audit_log ORDER BY id"
            ).fetchall()
        return [dict(zip(("at", "key_id", "action", "detail"), r, strict=True)) for r in rows]

    def batch_report(self, batch_id: int) -> dict[str, object] | None:
        """The stored validation report of a batch."""
        with self.lock:
            row = self.conn.execute(
                "SELECT batch_id, kind, source, created, rows_read, accepted, inserted, updated,"
                " unchanged, rejected, key_id FROM batches WHERE batch_id=?",
                (batch_id,),
            ).fetchone()
            if row is None:
                return None
            rejects = self.conn.execute(
                "SELECT row, field, reason FROM rejects WHERE batch_id=? ORDER BY row",
                (batch_id,),
            ).fetchall()
            warnings = self.conn.execute(
                "SELECT message FROM batch_warnings WHERE batch_id=? ORDER BY rowid", (batch_id,)
            ).fetchall()
        names = (
            "batch_id",
            "kind",
            "source",
            "created",
            "rows_read",
            "accepted",
            "inserted",
            "updated",
            "unchanged",
            "rejected",
            "key_id",
        )
        out: dict[str, object] = dict(zip(names, row, strict=True))
        out["rejects"] = [{"row": r, "field": f, "reason": why} for r, f, why in rejects]
        out["warnings"] = [w for (w,) in warnings]
        return out

    def counts(self) -> dict[str, int]:
        q = {
            "communities": "SELECT COUNT(*) FROM communities",
            "cases": "SELECT COUNT(*) FROM cases",
            "case_locations": "SELECT COUNT(*) FROM case_locations",
            "batches": "SELECT COUNT(*) FROM batches",
        }
        with self.lock:
            return {k: int(self.conn.execute(v).fetchone()[0]) for k, v in q.items()}
