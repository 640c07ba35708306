"""The PostgreSQL + PostGIS backend, for deployments where several API replicas share one
database (``RISKMAP_DATABASE_URL=postgresql://user:password@host:5432/riskmap``).

Communities are stored as PostGIS geometries (SRID 4326, GiST-indexed) and case locations
carry a generated point column, so the tables can be read by any PostGIS client (QGIS, SQL).
Writers are serialised by a transaction-level advisory lock: batch ids are given out, and
committed, in order, which is what lets a replica read "the batches after the last one I saw".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from riskmap.api.store import SCHEMA_VERSION, Conn, Store, _first_line, migrate, scrub
from riskmap.api.store import redact as _redact
from riskmap.geo._errors import StoreError

# one lock for every writer of a riskmap database (an arbitrary constant: "riskmap" in ASCII)
WRITE_LOCK = 0x7269736B6D6170

# the schema at version 4 (SQLite reaches the same tables through its migrations 1 -> 4)
SCHEMA_V4 = """
CREATE TABLE batches (
    batch_id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    created TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    inserted INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    key_id TEXT
);
CREATE TABLE rejects (
    seq BIGSERIAL PRIMARY KEY,
    batch_id BIGINT NOT NULL REFERENCES batches (batch_id),
    "row" INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX rejects_batch ON rejects (batch_id);
CREATE TABLE batch_warnings (
    seq BIGSERIAL PRIMARY KEY,
    batch_id BIGINT NOT NULL REFERENCES batches (batch_id),
    message TEXT NOT NULL
);
CREATE INDEX batch_warnings_batch ON batch_warnings (batch_id);
CREATE TABLE communities (
    community_id TEXT PRIMARY KEY,
    name TEXT,
    population BIGINT,
    subdistrict_id TEXT,
    district_id TEXT,
    rural INTEGER NOT NULL DEFAULT 0,
    geometry geometry(Geometry, 4326) NOT NULL,
    batch_id BIGINT NOT NULL
);
CREATE INDEX communities_geometry ON communities USING GIST (geometry);
CREATE TABLE community_cells (
    community_id TEXT NOT NULL,
    res INTEGER NOT NULL,
    cell BIGINT NOT NULL,
    PRIMARY KEY (res, community_id, cell)
);
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY,
    reported TEXT NOT NULL,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    batch_id BIGINT NOT NULL,
    digest TEXT
);
CREATE TABLE case_versions (
    case_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    reported TEXT NOT NULL,
    type TEXT NOT NULL,
    batch_id BIGINT NOT NULL,
    rows TEXT,
    PRIMARY KEY (case_id, version)
);
CREATE TABLE case_locations (
    case_id TEXT NOT NULL,
    role TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    reported TEXT NOT NULL,
    cell BIGINT NOT NULL,
    batch_id BIGINT NOT NULL,
    geom geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326))
        STORED,
    UNIQUE (case_id, role, lat, lon, reported)
);
CREATE INDEX case_locations_cell ON case_locations (cell);
CREATE INDEX case_locations_case ON case_locations (case_id);
CREATE INDEX case_locations_batch ON case_locations (batch_id);
CREATE INDEX case_locations_geom ON case_locations USING GIST (geom);
CREATE TABLE unit_metrics (
    unit_id TEXT NOT NULL,
    date TEXT NOT NULL,
    admissions_per_100k DOUBLE PRECISION,
    beds_pct DOUBLE PRECISION,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (unit_id, date)
);
CREATE TABLE zone_events (
    seq BIGSERIAL PRIMARY KEY,
    policy_key TEXT NOT NULL,
    data_version BIGINT NOT NULL,
    upto TEXT NOT NULL,
    date TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit_type TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    level_from TEXT NOT NULL,
    level_to TEXT NOT NULL
);
CREATE INDEX zone_events_key ON zone_events (policy_key, data_version);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    key_id TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
)
"""


V5 = """
CREATE TABLE units (
    level TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    name TEXT,
    population BIGINT,
    parent_id TEXT,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (level, unit_id)
);
CREATE TABLE zone_snapshots (
    policy_key TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    data_version BIGINT NOT NULL,
    at TEXT NOT NULL,
    computed TEXT NOT NULL,
    zone_count INTEGER NOT NULL,
    PRIMARY KEY (policy_key, at, data_version)
);
CREATE TABLE zones (
    policy_key TEXT NOT NULL,
    data_version BIGINT NOT NULL,
    at TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    level TEXT NOT NULL,
    start TEXT,
    last_case TEXT,
    expected_lift TEXT,
    community_ids TEXT NOT NULL,
    population BIGINT,
    geometry geometry(Geometry, 4326) NOT NULL,
    PRIMARY KEY (policy_key, at, data_version, zone_id)
);
CREATE INDEX zones_geometry ON zones USING GIST (geometry);
ALTER TABLE batches ADD COLUMN data_version BIGINT
"""


def _v5(conn: Conn) -> None:
    """Parent units (subdistricts, districts): names and populations; zone snapshots; the
    data version each batch left behind."""
    for stmt in V5.split(";"):
        if stmt.strip():
            conn.execute(stmt)


# (version, what it does, migration) after the first PostgreSQL schema (version 4)
MIGRATIONS: list[tuple[int, str, Callable[[Conn], None]]] = [
    (5, "parent units, zone snapshots", _v5),
]


class PostgresStore(Store):
    """PostgreSQL + PostGIS. Two connections (reads, writes), each opened again when the
    server dropped it."""

    backend = "postgresql"
    geom_in = "ST_GeomFromWKB(?, 4326)"
    geom_out = "ST_AsBinary({})"
    seq = "seq"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._conn = Conn(self._connect(), "format", self._connect)
        self._wconn = Conn(self._connect(), "format", self._connect)
        try:
            self._migrate()
        except StoreError:
            self.close()
            raise

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            why = scrub(_first_line(e), self.url)
            raise StoreError(f"cannot connect to {_redact(self.url)}: {why}") from None

    @property
    def conn(self) -> Conn:
        self._conn.ensure()
        return self._conn

    def _close(self) -> None:
        for c in (self._conn, self._wconn):
            if not c.raw.closed:
                c.raw.close()

    @contextmanager
    def _begin(self) -> Iterator[Conn]:
        import psycopg

        conn = self._wconn
        conn.ensure()
        try:
            conn.raw.execute("SELECT 1")  # a connection the server dropped shows here
        except psycopg.OperationalError:
            conn.raw = self._connect()
        try:
            with conn.raw.transaction():
                conn.in_tx = True
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                yield conn
        except psycopg.OperationalError as e:
            raise StoreError(f"the database failed: {_first_line(e)}") from None
        finally:
            conn.in_tx = False

    @contextmanager
    def _read_begin(self) -> Iterator[None]:
        conn = self.conn
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.in_tx = True
        try:
            yield
        finally:
            conn.in_tx = False
            if not conn.raw.broken:
                conn.raw.execute("COMMIT")

    def _migrate(self) -> None:
        """Create the schema or bring it to SCHEMA_VERSION, atomically; replicas starting
        together wait for each other (the write lock)."""
        import psycopg

        try:
            with self.transaction() as conn:
                have = conn.one("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
                if have is None:
                    conn.execute("CREATE EXTENSION postgis")
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                row = conn.one("SELECT value FROM meta WHERE key='schema_version'")
                if row is None:
                    for stmt in SCHEMA_V4.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute("INSERT INTO meta VALUES ('schema_version', '4')")
                    conn.execute(
                        "INSERT INTO meta VALUES ('data_version', '0') ON CONFLICT DO NOTHING"
                    )
                    version = 4
                else:
                    version = int(row[0])
                version = migrate(conn, version, MIGRATIONS, _redact(self.url))
        except psycopg.errors.InsufficientPrivilege as e:
            raise StoreError(
                f"{_redact(self.url)}: {_first_line(e)}: the role needs to own the database's "
                "tables and, the first time, the right to create the postgis extension (or ask "
                "an administrator to run CREATE EXTENSION postgis in the database)"
            ) from None
        except psycopg.Error as e:
            raise StoreError(f"{_redact(self.url)}: {scrub(_first_line(e), self.url)}") from None
        assert version == SCHEMA_VERSION, (version, SCHEMA_VERSION)
