"""The SQLite backend: one file in WAL mode, the default store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from riskmap.api.store import (
    SCHEMA_VERSION,
    Conn,
    Store,
    StoreDamagedError,
    _first_line,
    case_digest,
    damage,
    migrate,
)
from riskmap.geo._errors import StoreError

#: ``check()`` runs PRAGMA quick_check again after this many seconds (or when the file changed)
CHECK_INTERVAL_S = 60.0

# version 1 of the schema; MIGRATIONS bring it to SCHEMA_VERSION
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


UNITS_TABLE = """
CREATE TABLE IF NOT EXISTS units (
    level TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    name TEXT,
    population INTEGER,
    parent_id TEXT,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (level, unit_id)
)
"""


SNAPSHOT_TABLES = """
CREATE TABLE IF NOT EXISTS zone_snapshots (
    policy_key TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    data_version INTEGER NOT NULL,
    at TEXT NOT NULL,
    computed TEXT NOT NULL,
    zone_count INTEGER NOT NULL,
    PRIMARY KEY (policy_key, at, data_version)
);
CREATE TABLE IF NOT EXISTS zones (
    policy_key TEXT NOT NULL,
    data_version INTEGER NOT NULL,
    at TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    level TEXT NOT NULL,
    start TEXT,
    last_case TEXT,
    expected_lift TEXT,
    community_ids TEXT NOT NULL,
    population INTEGER,
    geometry BLOB NOT NULL,
    PRIMARY KEY (policy_key, at, data_version, zone_id)
)
"""


def _v5(conn: sqlite3.Connection) -> None:
    """Parent units (subdistricts, districts): names and populations; zone snapshots; the
    data version each batch left behind."""
    _run_script(conn, UNITS_TABLE)
    _run_script(conn, SNAPSHOT_TABLES)
    _add_column(conn, "batches", "data_version", "INTEGER")


# (version, what it does, migration); a store at version v gets every later migration, in order
MIGRATIONS = [
    (2, "rural communities, hospital figures, zone history", _v2),
    (3, "dates per case location, whole-record case versions", _v3),
    (4, "API keys, audit log, batch warnings", _v4),
    (5, "parent units, zone snapshots", _v5),
]
assert MIGRATIONS[-1][0] == SCHEMA_VERSION


class SQLiteStore(Store):
    """A SQLite file in WAL mode: readers never wait for the writer. Two connections, one
    for reads and one for writes, shared by the API's worker threads (each use holds its
    lock); writers in other processes wait for the file lock (``BEGIN IMMEDIATE``)."""

    backend = "sqlite"

    def __init__(self, path: Path, check: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        where = str(self.path)
        self._wconn = Conn(self._connect(), where=where)
        try:
            if check:
                self._quick_check(self._wconn.raw)
            self._migrate()
            self._conn = Conn(self._connect(), where=where)
            self._quick = Conn(self._connect(), where=where)
        except BaseException:
            for c in (self._wconn, getattr(self, "_conn", None)):
                if c is not None:
                    c.raw.close()
            raise
        # not checked on opening: the first check() checks
        self._checked: tuple[tuple[int, int], float] | None = (
            (self._stat(), time.monotonic()) if check else None
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            raw = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
            raw.execute("PRAGMA journal_mode=WAL")
            # in WAL mode, NORMAL loses nothing when the process dies (only on power loss)
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            damaged = damage(e, str(self.path))
            if damaged is not None:
                raise damaged from None
            raise StoreError(f"{self.path}: cannot open the SQLite store: {e}") from None
        return raw

    def _stat(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)

    def _quick_check(self, raw: sqlite3.Connection) -> None:
        """PRAGMA quick_check (every page and b-tree read, O(size) but no index cross-check):
        raise StoreDamagedError unless it says ok."""
        try:
            rows = raw.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreDamagedError(str(self.path), _first_line(e)) from None
        if not rows or rows[0][0] != "ok":
            found = "; ".join(str(r[0]) for r in rows[:3]) or "no answer"
            raise StoreDamagedError(str(self.path), found)

    def check(self) -> None:
        """quick_check again when the file changed on disk or CHECK_INTERVAL_S passed."""
        stat = self._stat()
        last = self._checked
        if last is not None and last[0] == stat and time.monotonic() - last[1] < CHECK_INTERVAL_S:
            return
        if self._quick is not None:  # not behind a long read on the main connection
            with self.quick_lock:
                self._quick_check(self._quick.raw)
        else:
            with self.lock:
                self._quick_check(self._conn.raw)
        self._checked = (stat, time.monotonic())

    @property
    def conn(self) -> Conn:
        return self._conn

    def _close(self) -> None:
        self._conn.raw.close()
        self._wconn.raw.close()
        if self._quick is not None:
            self._quick.raw.close()

    @contextmanager
    def _begin(self) -> Iterator[Conn]:
        raw = self._wconn.raw
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield self._wconn
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        else:
            raw.execute("COMMIT")

    @contextmanager
    def _read_begin(self) -> Iterator[None]:
        raw = self._conn.raw
        raw.execute("BEGIN")  # deferred: the first read fixes the snapshot
        try:
            yield
        finally:
            raw.execute("COMMIT")

    def _migrate(self) -> None:
        """Create the schema (version 1) and apply every later migration, each atomically."""
        with self.transaction() as conn:
            raw = conn.raw
            raw.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                _run_script(raw, SCHEMA)
                raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
                raw.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', '0')")
                version = 1
            else:
                version = int(row[0])
            migrate(raw, version, MIGRATIONS, str(self.path))
