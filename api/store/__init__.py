"""The store: communities, cases, batches, zone history, API keys and the audit log.

Two backends share this interface and every statement of it (SQL that SQLite and PostgreSQL
both accept, with ``?`` placeholders):

- :class:`api.store.sqlite.SQLiteStore`, one file in WAL mode (the default), and
- :class:`api.store.postgres.PostgresStore`, PostgreSQL + PostGIS for shared deployments
  (several API replicas on one database).

``Store.open(url)`` picks the backend from ``RISKMAP_DATABASE_URL``. Every ingest batch is one
transaction, and batches are serialised (one writer at a time, across processes);
``data_version`` increases with every batch that changed something, so anything computed from
the data can be cached under (data_version, rule, date), and a replica sees another's writes
as soon as it reads the version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from riskmap.geo._errors import StoreError
from riskmap.geo._values import iso_date, missing

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

# the schema version both backends are at; each backend keeps its own migrations to it
SCHEMA_VERSION = 5


class StoreDamagedError(StoreError):
    """The store's file is damaged (SQLite: malformed, truncated, not a database)."""

    def __init__(self, where: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"{where}: the store is damaged ({reason}); restore it from a backup "
            "or move it away to start an empty one"
        )

    @property
    def public(self) -> str:
        """The message for HTTP answers (no file path)."""
        return f"the store is damaged ({self.reason}); the operator must restore it from a backup"


# what SQLite says of a damaged file
_DAMAGE_WORDS = ("malformed", "not a database", "disk i/o error", "corrupt")


def damage(e: BaseException, where: str = "the SQLite store") -> StoreDamagedError | None:
    """The StoreDamagedError that a sqlite3 error means, or None if it is not about damage."""
    if isinstance(e, sqlite3.DatabaseError):
        text = _first_line(e)
        if any(w in text.lower() for w in _DAMAGE_WORDS):
            return StoreDamagedError(where, text)
    return None


@contextmanager
def _damage_as_error(where: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as e:
        found = damage(e, where)
        if found is None:
            raise
        raise found from None


def sqlite_path(url: Path | str) -> Path | None:
    """The file of a SQLite store URL (``sqlite:///path`` or a plain path); None for any other
    scheme (PostgreSQL)."""
    text = str(url)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///") :])
    if "://" in text:
        return None
    return Path(text)


def redact(url: str) -> str:
    """A database URL without its password (in the user part or as a parameter)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.split(':')[0]}:***@{host}" if ":" in user else f"{user}@{host}"
        query = urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)],
            safe="*,=",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(a database URL that cannot be parsed)"


def scrub(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) without any piece of the URL's password."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url)
        secrets_ = [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        user = parts.netloc.rpartition("@")[0]
        if ":" in user:
            secrets_.append(unquote(user.split(":", 1)[1]))
    except ValueError:
        return "(details withheld)"
    for sec in secrets_:
        for piece in sorted({sec, *sec.split("@")}, key=len, reverse=True):
            if len(piece) >= 2:
                text = text.replace(piece, "***")
    return text


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def case_digest(case_type: str, rows: list[tuple[str, str, float, float]]) -> str:
    """Fingerprint of a case record: its type and its (reported, role, lat, lon) rows."""
    body = case_type + "\n" + "\n".join(f"{d}|{r}|{la!r}|{lo!r}" for d, r, la, lo in sorted(rows))
    return hashlib.sha1(body.encode()).hexdigest()


@dataclass
class BatchCounts:
    rows_read: int = 0
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # row, field, reason


class Conn:
    """A DB-API connection seen through ``?`` placeholders (the backends translate them; SQL
    text must hold no other ``?`` and, for PostgreSQL, no ``%``).

    ``reconnect`` (PostgreSQL) opens the connection again when the server dropped it: a
    statement outside a transaction is then retried once.
    """

    def __init__(
        self,
        raw: Any,
        paramstyle: str = "qmark",
        reconnect: Callable[[], Any] | None = None,
        where: str = "the SQLite store",
    ) -> None:
        self.raw = raw
        self._pg = paramstyle == "format"
        self._reconnect = reconnect
        self.in_tx = False
        self.where = where

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def ensure(self) -> None:
        """Open the connection again if it is known to be lost (PostgreSQL)."""
        if self._reconnect is not None and (self.raw.closed or self.raw.broken):
            self.raw = self._reconnect()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if not self._pg:
            with _damage_as_error(self.where):
                return self.raw.execute(sql, params)
        import psycopg

        self.ensure()
        for retry in (False, True):
            try:
                cur = self.raw.cursor()
                cur.execute(self._sql(sql), params or None)
                return cur
            except psycopg.OperationalError as e:
                dropped = self._reconnect is not None and self.raw.broken and not self.in_tx
                if retry or not dropped:
                    raise StoreError(f"the database failed: {_first_line(e)}") from None
            assert self._reconnect is not None
            self.raw = self._reconnect()  # the server dropped us: once more, on a new connection
        raise AssertionError("unreachable")

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if self._pg:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            with _damage_as_error(self.where):
                self.raw.executemany(sql, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Append rows to a table (PostgreSQL: COPY, fast for millions of rows)."""
        if self._pg:
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with self.raw.cursor() as cur, cur.copy(sql) as cp:
                for r in rows:
                    cp.write_row(r)
        else:
            marks = ", ".join("?" * len(columns))
            self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cur = self.execute(sql, params)
        cols = [d[0] for d in cur.description]
        with _damage_as_error(self.where):
            rows = cur.fetchall()
        import pandas as pd  # not for a store opened only to read its meta (the CLI's status)

        return pd.DataFrame.from_records(rows, columns=cols)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.execute(sql, params)
        with _damage_as_error(self.where):
            return cur.fetchone()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Store:
    """The store interface. Open one with :meth:`Store.open`; an instance may be shared by
    threads. Reads use one connection (:attr:`conn`, under :attr:`lock`), writes another
    (under :attr:`write_lock`): a writer waiting for the database's write lock (another
    process's batch) never holds up this process's reads."""

    backend = "?"
    #: SQL of a geometry parameter (WKB) and of a geometry column read as WKB
    geom_in = "?"
    geom_out = "{}"
    #: a column that orders rows of a table by insertion
    seq = "rowid"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.write_lock = threading.RLock()
        self._read_depth = 0
        self._reader: int | None = None  # the thread inside reading()
        # a connection of its own for the data version and the health check (SQLite), so
        # that they never wait behind a long read on :attr:`conn` (a million case locations)
        self._quick: Conn | None = None
        self.quick_lock = threading.Lock()

    def _quick_one(self, sql: str) -> Any:
        """One row of a short metadata query: on the quick connection, unless this thread
        reads inside :meth:`reading` (then on its transaction: one state of the data)."""
        quick = self._quick
        if quick is not None and self._reader != threading.get_ident():
            with self.quick_lock:
                return quick.one(sql)
        with self.lock:
            return self.conn.one(sql)

    # -- opening ----------------------------------------------------------------------------
    @staticmethod
    def open(url: Path | str, check: bool = True) -> Store:
        """A store from a database URL: ``postgresql://...`` (or ``postgres://``) opens
        PostgreSQL + PostGIS; ``sqlite:///path``, or a plain path, a SQLite file.

        ``check``: a SQLite file is checked whole on opening (``PRAGMA quick_check``: every
        page read, about 3 s a GB); a command that only reads a few rows of metadata (the
        CLI's status from a stored snapshot) opens it without (a damaged page it reads still
        fails as damage)."""
        text = str(url)
        if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            from riskmap.api.store.postgres import PostgresStore

            return PostgresStore(text.replace("postgresql+psycopg://", "postgresql://"))
        from riskmap.api.store.sqlite import SQLiteStore

        path = sqlite_path(text)
        if path is None:
            raise StoreError(
                f"unsupported database URL scheme {text.split('://')[0]!r}: expected "
                "postgresql://user@host/db, sqlite:///path/to/file.db or a plain file path"
            )
        return SQLiteStore(path, check=check)

    @property
    def conn(self) -> Conn:
        raise NotImplementedError

    def close(self) -> None:
        """Close the connections once no read or write of another thread is using them
        (closing a connection under a running statement can crash the process)."""
        with self.write_lock, self.lock, self.quick_lock:
            self._close()

    def _close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _begin(self) -> Iterator[Conn]:
        """One write transaction, serialised with every other writer (other processes too)."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def _read_begin(self) -> Iterator[None]:
        """A read transaction on :attr:`conn`: every read in it sees one state of the data."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """One write transaction (on the write connection)."""
        with self.write_lock, self._begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads that must see one state of the data (a batch committing meanwhile is either
        wholly seen or not at all)."""
        with self.lock:
            if self._read_depth:
                self._read_depth += 1
                try:
                    yield
                finally:
                    self._read_depth -= 1
                return
            with self._read_begin():
                self._read_depth = 1
                self._reader = threading.get_ident()
                try:
                    yield
                finally:
                    self._read_depth = 0
                    self._reader = None

    def check(self) -> None:
        """Raise StoreError (StoreDamagedError for a damaged file) unless the store answers;
        cheap enough for every ``/healthz``."""
        self._quick_one("SELECT value FROM meta WHERE key='data_version'")

    # -- versions ---------------------------------------------------------------------------
    @property
    def data_version(self) -> int:
        row = self._quick_one("SELECT value FROM meta WHERE key='data_version'")
        return int(row[0])

    def versions(self) -> tuple[int, int]:
        """(data_version, last batch id), read together."""
        with self.lock:
            row = self.conn.one(
                "SELECT (SELECT value FROM meta WHERE key='data_version'),"
                " (SELECT MAX(batch_id) FROM batches)"
            )
        return int(row[0]), int(row[1] or 0)

    # -- batches ----------------------------------------------------------------------------
    @contextmanager
    def batch(self, kind: str, source: str) -> Iterator[tuple[Conn, int]]:
        """One atomic batch: yields (connection, batch_id); commits or rolls back as a whole."""
        with self.transaction() as conn:
            row = conn.one(
                "INSERT INTO batches (kind, source, created, rows_read, accepted, inserted,"
                " updated, unchanged, rejected) VALUES (?, ?, ?, 0, 0, 0, 0, 0, 0)"
                " RETURNING batch_id",
                (kind, source, _now()),
            )
            yield conn, int(row[0])

    @staticmethod
    def finish_batch(
        conn: Conn,
        batch_id: int,
        counts: BatchCounts,
        warnings: list[str] | None = None,
        key_id: str | None = None,
    ) -> None:
        conn.execute(
            "UPDATE batches SET rows_read=?, accepted=?, inserted=?, updated=?, unchanged=?,"
            " rejected=?, key_id=? WHERE batch_id=?",
            (
                counts.rows_read,
                counts.accepted,
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.rejected,
                key_id,
                batch_id,
            ),
        )
        conn.insert_rows(
            "rejects",
            ("batch_id", '"row"', "field", "reason"),
            [(batch_id, r, f, why) for r, f, why in counts.rejects],
        )
        conn.insert_rows(
            "batch_warnings", ("batch_id", "message"), [(batch_id, w) for w in warnings or []]
        )
        kind = conn.one("SELECT kind FROM batches WHERE batch_id=?", (batch_id,))[0]
        conn.execute(
            "INSERT INTO audit_log (at, key_id, action, detail) VALUES (?, ?, ?, ?)",
            (
                _now(),
                key_id,
                f"ingest.{kind}",
                f"batch {batch_id}: {counts.accepted} accepted, {counts.rejected} rejected",
            ),
        )
        if counts.inserted or counts.updated:
            conn.execute(
                "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                " WHERE key='data_version'"
            )
        # the data version this batch left behind (batches commit in batch id order)
        conn.execute(
            "UPDATE batches SET data_version = (SELECT CAST(value AS INTEGER) FROM meta"
            " WHERE key='data_version') WHERE batch_id=?",
            (batch_id,),
        )

    # -- writes inside a batch ------------------------------------------------------------
    def stored_communities(self, conn: Conn) -> dict[str, tuple[Any, ...]]:
        """Every stored community: id -> (name, population, subdistrict, district, rural, WKB)."""
        rows = conn.execute(
            "SELECT community_id, name, population, subdistrict_id, district_id, rural,"
            f" {self.geom_out.format('geometry')} FROM communities"
        )
        return {r[0]: (*r[1:6], bytes(r[6])) for r in rows}

    def put_communities(
        self,
        conn: Conn,
        rows: list[tuple[Any, ...]],
        cells: list[tuple[str, int, int]],
    ) -> None:
        """Insert or replace communities (id, name, population, subdistrict, district, rural,
        WKB, batch_id) and their H3 cells (community_id, res, cell)."""
        conn.executemany(
            "INSERT INTO communities (community_id, name, population, subdistrict_id,"
            f" district_id, rural, geometry, batch_id) VALUES (?, ?, ?, ?, ?, ?, {self.geom_in}, ?)"
            " ON CONFLICT (community_id) DO UPDATE SET name=excluded.name,"
            " population=excluded.population, subdistrict_id=excluded.subdistrict_id,"
            " district_id=excluded.district_id, rural=excluded.rural,"
            " geometry=excluded.geometry, batch_id=excluded.batch_id",
            rows,
        )
        conn.executemany(
            "DELETE FROM community_cells WHERE community_id=?", [(r[0],) for r in rows]
        )
        conn.insert_rows("community_cells", ("community_id", "res", "cell"), cells)

    def case_heads(self, conn: Conn, ids: list[str]) -> dict[str, tuple[str | None, int]]:
        """(digest, version) of the stored cases among ``ids``."""
        out: dict[str, tuple[str | None, int]] = {}
        for k in range(0, len(ids), 900):
            chunk = ids[k : k + 900]
            marks = ",".join("?" * len(chunk))
            for cid, digest, ver in conn.execute(
                f"SELECT case_id, digest, version FROM cases WHERE case_id IN ({marks})", chunk
            ):
                out[cid] = (digest, int(ver))
        return out

    def replace_case(
        self, conn: Conn, cid: str, latest: str, typ: str, version: int, digest: str, batch_id: int
    ) -> None:
        """Archive the stored record of a case as version ``version - 1`` and make room for
        its new rows (added by :meth:`add_cases`)."""
        archived = conn.execute(
            "SELECT reported, role, lat, lon FROM case_locations WHERE case_id=?"
            " ORDER BY reported, role, lat, lon",
            (cid,),
        ).fetchall()
        prev = conn.one("SELECT reported, type FROM cases WHERE case_id=?", (cid,))
        conn.execute(
            "INSERT INTO case_versions (case_id, version, reported, type, batch_id, rows)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, version) DO UPDATE SET"
            " reported=excluded.reported, type=excluded.type, batch_id=excluded.batch_id,"
            " rows=excluded.rows",
            (cid, version - 1, prev[0], prev[1], batch_id, json.dumps([list(a) for a in archived])),
        )
        conn.execute("DELETE FROM case_locations WHERE case_id=?", (cid,))
        conn.execute(
            "UPDATE cases SET reported=?, type=?, version=?, batch_id=?, digest=? WHERE case_id=?",
            (latest, typ, version, batch_id, digest, cid),
        )

    def add_cases(
        self, conn: Conn, cases: list[tuple[Any, ...]], locations: list[tuple[Any, ...]]
    ) -> None:
        """New cases (case_id, reported, type, version, batch_id, digest) and case locations
        (case_id, role, lat, lon, reported, cell, batch_id)."""
        conn.insert_rows(
            "cases", ("case_id", "reported", "type", "version", "batch_id", "digest"), cases
        )
        conn.insert_rows(
            "case_locations",
            ("case_id", "role", "lat", "lon", "reported", "cell", "batch_id"),
            locations,
        )

    def stored_metrics(self, conn: Conn) -> dict[tuple[str, str], tuple[Any, Any]]:
        return {
            (u, d): (a, b)
            for u, d, a, b in conn.execute(
                "SELECT unit_id, date, admissions_per_100k, beds_pct FROM unit_metrics"
            )
        }

    def put_metrics(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Insert or replace figures (unit_id, date, admissions_per_100k, beds_pct, batch_id)."""
        conn.executemany(
            "INSERT INTO unit_metrics (unit_id, date, admissions_per_100k, beds_pct, batch_id)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (unit_id, date) DO UPDATE SET"
            " admissions_per_100k=excluded.admissions_per_100k, beds_pct=excluded.beds_pct,"
            " batch_id=excluded.batch_id",
            rows,
        )

    def stored_units(self, conn: Conn) -> dict[tuple[str, str], tuple[Any, ...]]:
        """Every stored parent unit: (level, id) -> (name, population, parent_id)."""
        rows = conn.execute("SELECT level, unit_id, name, population, parent_id FROM units")
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}

    def put_units(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Insert or replace units (level, unit_id, name, population, parent_id, batch_id)."""
        conn.executemany(
            "INSERT INTO units (level, unit_id, name, population, parent_id, batch_id)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (level, unit_id) DO UPDATE SET"
            " name=excluded.name, population=excluded.population,"
            " parent_id=excluded.parent_id, batch_id=excluded.batch_id",
            rows,
        )

    # -- reads ------------------------------------------------------------------------------
    def units(self) -> pd.DataFrame:
        """Parent units: level, unit_id, name, population, parent_id."""
        with self.lock:
            df = self.conn.frame(
                "SELECT level, unit_id, name, population, parent_id FROM units"
                " ORDER BY level, unit_id"
            )
        df["population"] = df["population"].astype("Int64")
        return df

    def communities(self) -> gpd.GeoDataFrame:
        with self.lock:
            df = self.conn.frame(
                "SELECT community_id, name, population, subdistrict_id, district_id, rural,"
                f" {self.geom_out.format('geometry')} AS geometry FROM communities"
                " ORDER BY community_id"
            )
        wkb = df.pop("geometry").to_numpy()
        geoms = shapely.from_wkb([bytes(g) for g in wkb]) if len(df) else []
        df["population"] = df["population"].astype("Int64")
        df["rural"] = df["rural"].astype(bool)
        import geopandas as gpd

        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)

    def community_cells(self, res: int) -> pd.DataFrame:
        with self.lock:
            return self.conn.frame(
                "SELECT community_id, cell FROM community_cells WHERE res=?"
                " ORDER BY community_id, cell",
                (res,),
            )

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
        with self.lock:
            df = self.conn.frame(
                "SELECT l.case_id, l.reported, c.type, l.role, l.lat, l.lon, l.cell"
                f" FROM case_locations l JOIN cases c ON c.case_id = l.case_id {where}"
                " ORDER BY l.reported, l.case_id, l.role, l.lat, l.lon",
                tuple(args),
            )
        df["reported"] = df["reported"].to_numpy().astype("datetime64[D]")
        df["lat"] = df["lat"].to_numpy(dtype=np.float64)
        df["lon"] = df["lon"].to_numpy(dtype=np.float64)
        df["cell"] = df["cell"].to_numpy().astype(np.int64).astype(np.uint64)
        return df

    def unit_metrics(self) -> pd.DataFrame:
        """Hospital figures per unit (district or community) and date."""
        with self.lock:
            df = self.conn.frame(
                "SELECT unit_id, date, admissions_per_100k, beds_pct FROM unit_metrics"
                " ORDER BY unit_id, date"
            )
        import pandas as pd

        df["date"] = [dt.date.fromisoformat(d) for d in df["date"]]
        for c in ("admissions_per_100k", "beds_pct"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        return df

    # -- zone history ---------------------------------------------------------------------
    def zone_events(self, policy_key: str, version: int, upto: dt.date) -> pd.DataFrame | None:
        """Stored events of a rule for a data version covering days up to ``upto`` (or None)."""
        with self.lock:
            row = self.conn.one(
                "SELECT MAX(upto), COUNT(*) FROM zone_events WHERE policy_key=? AND data_version=?",
                (policy_key, version),
            )
            if row[1] == 0 or row[0] is None or row[0] < upto.isoformat():
                return None
            df = self.conn.frame(
                "SELECT date, kind, unit_type, unit_id, level_from, level_to FROM zone_events"
                " WHERE policy_key=? AND data_version=? AND kind != '_computed'"
                f" ORDER BY {self.seq}",
                (policy_key, version),
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
        with self.transaction() as conn:
            conn.execute("DELETE FROM zone_events WHERE policy_key=?", (policy_key,))
            conn.insert_rows(
                "zone_events",
                (
                    "policy_key",
                    "data_version",
                    "upto",
                    "date",
                    "kind",
                    "unit_type",
                    "unit_id",
                    "level_from",
                    "level_to",
                ),
                rows,
            )

    # -- zone snapshots -------------------------------------------------------------------
    def save_zone_snapshot(
        self, policy_key: str, policy_id: str, version: int, at: dt.date, zones: gpd.GeoDataFrame
    ) -> bool:
        """Keep the zones of a rule at a date for a data version (older data versions of the
        same rule and date are dropped). False if it, or a newer version, was stored already."""
        rows = [
            (
                policy_key,
                version,
                at.isoformat(),
                z.zone_id,
                z.level,
                iso_date(z.start),
                iso_date(z.last_case),
                iso_date(z.expected_lift),
                json.dumps(list(z.community_ids)),
                None if missing(z.population) else int(z.population),
                shapely.to_wkb(z.geometry, output_dimension=2),
            )
            for z in zones.itertuples(index=False)
        ]
        with self.transaction() as conn:
            if conn.one(  # stored already, or a newer version is (a replica lagging behind)
                "SELECT 1 FROM zone_snapshots WHERE policy_key=? AND at=? AND data_version>=?",
                (policy_key, at.isoformat(), version),
            ):
                return False
            for table in ("zones", "zone_snapshots"):
                conn.execute(
                    f"DELETE FROM {table} WHERE policy_key=? AND at=? AND data_version < ?",
                    (policy_key, at.isoformat(), version),
                )
            conn.execute(
                "INSERT INTO zone_snapshots (policy_key, policy_id, data_version, at, computed,"
                " zone_count) VALUES (?, ?, ?, ?, ?, ?)",
                (policy_key, policy_id, version, at.isoformat(), _now(), len(rows)),
            )
            conn.executemany(
                "INSERT INTO zones (policy_key, data_version, at, zone_id, level, start,"
                " last_case, expected_lift, community_ids, population, geometry)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {self.geom_in})",
                rows,
            )
        return True

    def zone_snapshot(self, policy_key: str, version: int, at: dt.date) -> gpd.GeoDataFrame | None:
        """Stored zones of a rule at a date for a data version (None if not stored)."""
        with self.reading():
            if not self.conn.one(
                "SELECT 1 FROM zone_snapshots WHERE policy_key=? AND at=? AND data_version=?",
                (policy_key, at.isoformat(), version),
            ):
                return None
            df = self.conn.frame(
                "SELECT zone_id, level, start, last_case, expected_lift, community_ids,"
                f" population, {self.geom_out.format('geometry')} AS geometry FROM zones"
                " WHERE policy_key=? AND at=? AND data_version=? ORDER BY zone_id",
                (policy_key, at.isoformat(), version),
            )
        for c in ("start", "last_case", "expected_lift"):
            df[c] = [None if v is None else dt.date.fromisoformat(v) for v in df[c]]
        df["community_ids"] = [json.loads(v) for v in df["community_ids"]]
        df["population"] = df["population"].astype("Int64")
        geoms = shapely.from_wkb([bytes(g) for g in df.pop("geometry")]) if len(df) else []
        import geopandas as gpd

        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)

    # -- secrets ----------------------------------------------------------------------------
    def meta_secret(self, name: str) -> str:
        """A random secret kept in the meta table under ``name``: made on first use, then the
        same for every process and restart on this store (never logged or shown)."""
        with self.lock:
            row = self.conn.one("SELECT value FROM meta WHERE key=?", (name,))
        if row is not None:
            return str(row[0])
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (name, secrets.token_hex(32)),
            )
            return str(conn.one("SELECT value FROM meta WHERE key=?", (name,))[0])

    # -- API keys and audit ----------------------------------------------------------------
    def create_key(self, role: str, name: str, by: str | None = None) -> tuple[str, str]:
        """A new key: returns (key_id, the full key); only its hash is stored. ``by`` is the
        actor the audit log names: the creating admin key's id, or ``cli:<os user>``."""
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, secret_hash, role, name, created, revoked)"
                " VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, _hash(secret), role, name, _now()),
            )
            self._audit(conn, by, "keys.create", f"key_id={key_id} role={role} name={name}")
        return key_id, f"rk_{key_id}_{secret}"

    def check_key(self, key: str) -> tuple[str, str] | None:
        """(key_id, role) of a valid, unrevoked key, else None."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "rk":
            return None
        with self.lock:
            row = self.conn.one(
                "SELECT secret_hash, role, revoked FROM api_keys WHERE key_id=?", (parts[1],)
            )
        if row is None or row[2] is not None:
            return None
        if not hmac.compare_digest(row[0], _hash(parts[2])):
            return None
        return parts[1], row[1]

    def key_failure(self, key: str) -> tuple[str, str | None]:
        """Why ``key`` is refused (for the audit log), and the id of the stored key it names
        if there is one (a revoked key, or a known id with a wrong secret)."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "rk":
            return "malformed key", None
        with self.lock:
            row = self.conn.one(
                "SELECT secret_hash, revoked FROM api_keys WHERE key_id=?", (parts[1],)
            )
        if row is None:
            return "unknown key", None
        if not hmac.compare_digest(row[0], _hash(parts[2])):
            return "wrong secret", parts[1]
        if row[1] is not None:
            return "revoked key", parts[1]
        return "valid key", parts[1]

    def revoke_key(self, key_id: str, by: str | None = None) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked=? WHERE key_id=? AND revoked IS NULL",
                (_now(), key_id),
            )
            done = bool(cur.rowcount)
            if done:
                self._audit(conn, by, "keys.revoke", f"key_id={key_id}")
        return done

    def api_keys(self) -> list[dict[str, object]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT key_id, role, name, created, revoked FROM api_keys ORDER BY created"
            ).fetchall()
        return [
            dict(zip(("key_id", "role", "name", "created", "revoked"), r, strict=True))
            for r in rows
        ]

    def audit(self, actor: str | None, action: str, detail: str) -> None:
        """One audit row. The actor (column ``key_id``) is a key id, ``cli:<os user>`` for the
        command line, ``client:<address>`` for a failed authentication, or None."""
        with self.transaction() as conn:
            self._audit(conn, actor, action, detail)

    @staticmethod
    def _audit(conn: Conn, key_id: str | None, action: str, detail: str) -> None:
        conn.execute(
            "INSERT INTO audit_log (at, key_id, action, detail) VALUES (?, ?, ?, ?)",
            (_now(), key_id, action, detail),
        )

    def audit_log(self) -> list[dict[str, object]]:
        """Every audit row: ``actor`` (who: a key id, ``cli:<os user>``, ``client:<address>``),
        ``key_id`` (the actor when it is a key, else None), ``action``, ``detail``."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT at, key_id, action, detail FROM audit_log ORDER BY id"
            ).fetchall()
        return [
            {
                "at": at,
                "actor": actor,
                "key_id": actor if actor and ":" not in actor else None,
                "action": action,
                "detail": detail,
            }
            for at, actor, action, detail in rows
        ]

    def batch_report(self, batch_id: int) -> dict[str, object] | None:
        """The stored validation report of a batch."""
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
            "data_version",
        )
        with self.lock:
            row = self.conn.one(
                f"SELECT {', '.join(names)} FROM batches WHERE batch_id=?", (batch_id,)
            )
            if row is None:
                return None
            rejects = self.conn.execute(
                'SELECT "row", field, reason FROM rejects WHERE batch_id=?'
                f' ORDER BY "row", {self.seq}',
                (batch_id,),
            ).fetchall()
            warnings = self.conn.execute(
                f"SELECT message FROM batch_warnings WHERE batch_id=? ORDER BY {self.seq}",
                (batch_id,),
            ).fetchall()
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
            return {k: int(self.conn.one(v)[0]) for k, v in q.items()}


def check_schema_version(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where}: store schema version {version} is newer than this riskmap "
            f"({SCHEMA_VERSION}); upgrade riskmap"
        )


def migrate(
    conn: Any,
    version: int,
    migrations: Sequence[tuple[int, str, Callable[[Any], None]]],
    where: str,
) -> int:
    """Apply, in order, every migration above ``version`` (inside the caller's transaction)
    and record the new version; a store newer than this riskmap is refused."""
    check_schema_version(version, where)
    for target, _what, step in migrations:
        if version < target:
            step(conn)
            version = target
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
    return version


__all__ = [
    "SCHEMA_VERSION",
    "BatchCounts",
    "Conn",
    "Store",
    "StoreDamagedError",
    "case_digest",
    "check_schema_version",
    "damage",
    "migrate",
    "redact",
]
