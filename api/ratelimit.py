"""The rate limit of the public status routes, with the ``limits`` library.

One limit per client (``RISKMAP_RATE_LIMIT_PER_MINUTE``, off by default) counted with the
sliding window counter strategy. The counters live in a ``limits`` storage named by
``RISKMAP_RATE_LIMIT_STORAGE``:

- ``memory://`` (the default of one process);
- ``riskmap+sqlite:///path/limits.db``: a SQLite file shared by every worker process of one
  machine (the default of ``riskmap serve --workers N``, which makes one in a private
  temporary directory): the limit holds across workers, whichever worker the kernel hands a
  connection to;
- any storage ``limits`` knows (``redis://host:6379``, ``memcached://...``), for servers on
  several machines, with that storage's client library installed.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow
from limits.strategies import SlidingWindowCounterRateLimiter

SQLITE_SCHEME = "riskmap+sqlite"

# add to a counter, or start it again (with its new expiry) when it has expired
_ADD = (
    "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
    "count = CASE WHEN expires <= ? THEN excluded.count ELSE count + excluded.count END, "
    "expires = CASE WHEN expires <= ? THEN excluded.expires ELSE expires END"
)


class SQLiteStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters in one SQLite file (WAL, one short write transaction per hit), so that the
    worker processes of one server share them. Expired counters are swept now and then."""

    STORAGE_SCHEME = [SQLITE_SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: object) -> None:
        path = urllib.parse.urlparse(uri).path
        if not path:
            raise ValueError(f"{uri!r}: expected {SQLITE_SCHEME}:///path/to/limits.db")
        self.path = Path(path)
        self._local = threading.local()
        self._last_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._db().execute(
            "CREATE TABLE IF NOT EXISTS counters "
            "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)"
        )

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")  # counters: losing the last ones is harmless
            self._local.db = db
        return db

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        if now - self._last_sweep > 60:
            self._last_sweep = now
            db.execute("DELETE FROM counters WHERE expires <= ?", (now,))

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        db = self._db()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._sweep(db, now)
            row = db.execute(
                _ADD + " RETURNING count", (key, amount, now + expiry, now, now)
            ).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(row[0])

    def decr(self, key: str, amount: int = 1) -> None:
        self._db().execute(
            "UPDATE counters SET count = MAX(count - ?, 0) WHERE key = ?", (amount, key)
        )

    def get(self, key: str) -> int:
        row = (
            self._db()
            .execute("SELECT count FROM counters WHERE key = ? AND expires > ?", (key, time.time()))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expires FROM counters WHERE key = ?", (key,)).fetchone()
        return time.time() if row is None else float(row[0])

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        cur = self._db().execute("DELETE FROM counters")
        return cur.rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM counters WHERE key = ?", (key,))

    # -- the sliding window counter (the same arithmetic as limits' own storages) ------------

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: no hit wins a race
        try:
            prev, prev_ttl, cur, _ = self._window(previous_key, current_key, expiry, now)
            if math.floor(prev * prev_ttl / expiry + cur) + amount > limit:
                db.execute("COMMIT")
                return False
            db.execute(_ADD, (current_key, amount, now + 2 * expiry, now, now))
            self._sweep(db, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return True

    def _window(
        self, previous_key: str, current_key: str, expiry: int, now: float
    ) -> tuple[int, float, int, float]:
        prev, cur = self.get(previous_key), self.get(current_key)
        prev_ttl = 0.0 if prev == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        cur_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return prev, prev_ttl, cur, cur_ttl

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        return self._window(previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        now = time.time()
        for k in self.sliding_window_keys(key, expiry, now):
            self.clear(k)


def open_storage(uri: str) -> Storage:
    """The ``limits`` storage named by ``uri`` (see the module's documentation)."""
    if urllib.parse.urlparse(uri).scheme == SQLITE_SCHEME:
        return SQLiteStorage(uri)
    return storage_from_string(uri)


class RateLimit:
    """``rate`` requests a minute per client, counted in a shared ``limits`` storage."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.storage_uri = storage_uri or "memory://"
        self._storage: Storage | None = None
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._lock = threading.Lock()

    @property
    def limiter(self) -> SlidingWindowCounterRateLimiter:
        if self._limiter is None:
            with self._lock:
                if self._limiter is None:
                    self._storage = open_storage(self.storage_uri)
                    self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        return self._limiter

    def take(self, client: str, rate: int) -> float:
        """0 if the request may go, else the seconds to wait before the next one may."""
        item = RateLimitItemPerMinute(rate)
        if self.limiter.hit(item, "status", client):
            return 0.0
        stats = self.limiter.get_window_stats(item, "status", client)
        # the sliding window frees one request at the latest when the current window ends
        return max(1.0, min(60.0, stats.reset_time - time.time()))
